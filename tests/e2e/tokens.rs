//! The token flow (issue 2): challenges that point clients at the proxy,
//! anonymous tokens kept in it, credentials forwarded, GET and OAuth2 POST.

use super::common::*;
use support::{AUTH, AUTH_GET_ONLY, REDIRECTING, env, token_server};

#[test]
fn challenge_points_clients_at_the_proxy() {
    let e = env();
    let r = get(&format!("{}/v2/", e.proxy(AUTH)), &[]);
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap();
    assert_eq!(
        challenge,
        format!(
            r#"Bearer realm="{}/v2/auth",service="{}""#,
            e.proxy(AUTH),
            token_server::SERVICE
        )
    );
    let r = get(
        &format!("{}/v2/private/secret/manifests/v1", e.proxy(AUTH)),
        &[("x-forwarded-proto", "https")],
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        format!(
            r#"Bearer realm="https://{}/v2/auth",service="{}",scope="repository:private/secret:pull""#,
            e.proxies[AUTH].addr,
            token_server::SERVICE
        )
    );
}

/// An upstream without auth still gets a challenge on `/v2/` (a pull may name
/// another registry), answered by a token the proxy never sends upstream.
#[test]
fn open_upstreams_get_an_anonymous_token_that_stays_in_the_proxy() {
    let e = env();
    let r = get(&format!("{}/v2/", e.proxy(REDIRECTING)), &[]);
    assert_eq!(r.status, 401);
    assert_eq!(error_code(&r), "UNAUTHORIZED");
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        format!(
            r#"Bearer realm="{}/v2/auth",service="registry-proxy""#,
            e.proxy(REDIRECTING)
        )
    );
    let t = get(
        &format!(
            "{}/v2/auth?service=registry-proxy&scope=repository:test/multi:pull",
            e.proxy(REDIRECTING)
        ),
        &[],
    );
    assert_eq!(t.status, 200, "{}", t.text());
    let bearer = format!("Bearer {}", t.json()["token"].as_str().unwrap());
    let r = get(
        &format!("{}/v2/", e.proxy(REDIRECTING)),
        &[("authorization", &bearer)],
    );
    assert_eq!(r.status, 200);
    let r = get(
        &format!("{}/v2/test/multi/manifests/v1", e.proxy(REDIRECTING)),
        &[("authorization", &bearer), ("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200);
    let front = e.fronts.front_seen.lock().unwrap().clone();
    let multi: Vec<_> = front
        .iter()
        .filter(|s| s.path == "/v2/test/multi/manifests/v1")
        .collect();
    assert!(
        !multi.is_empty() && multi.iter().all(|s| s.authorization.is_none()),
        "{multi:?}"
    );
}

#[test]
fn authenticated_pull_forwards_credentials_and_refuses_a_wrong_password() {
    let e = env();
    let creds = format!("{}:{}", token_server::USER, token_server::PASSWORD);
    assert_eq!(
        pulled_digest(&e.proxy(AUTH), "private/secret:v1", Some(&creds), false),
        e.private.digest
    );
    let seen = e.token.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| s
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "))
            && s.query.contains("private%2Fsecret")),
        "token server never saw alice's Basic credentials: {seen:?}"
    );

    let (out, _) = skopeo_copy(
        &e.proxy(AUTH),
        "private/secret:v1",
        Some("alice:wrong"),
        false,
    );
    assert!(!out.status.success());
    let (out, _) = skopeo_copy(&e.proxy(AUTH), "private/secret:v1", None, false);
    assert!(
        !out.status.success(),
        "an anonymous client pulled a private image"
    );

    assert_not_logged(token_server::PASSWORD);

    // Public images need no credentials even behind token auth.
    assert_eq!(
        pulled_digest(&e.proxy(AUTH), "test/single:v1", None, false),
        e.single.digest
    );
}

#[test]
fn token_endpoint_get_and_oauth2_post_with_get_fallback() {
    let e = env();
    let basic = basic_auth(token_server::USER, token_server::PASSWORD);
    let r = get(
        &format!(
            "{}/v2/auth?service=x&scope=repository:private/secret:pull&scope=repository:../x:pull",
            e.proxy(AUTH)
        ),
        &[("authorization", &basic)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["token"].is_string());
    let last = e
        .token
        .seen
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s.method == "GET")
        .cloned()
        .unwrap();
    assert!(
        last.query
            .contains(&format!("service={}", token_server::SERVICE)),
        "{last:?}"
    );
    assert!(
        !last.query.contains(".."),
        "an invalid scope reached the realm: {last:?}"
    );

    let wrong = basic_auth(token_server::USER, "nope");
    let r = get(
        &format!(
            "{}/v2/auth?scope=repository:private/secret:pull",
            e.proxy(AUTH)
        ),
        &[("authorization", &wrong)],
    );
    assert_eq!(r.status, 401);

    let form = format!(
        "grant_type=password&username={}&password={}&service=x&client_id=containerd&scope=repository%3Aprivate%2Fsecret%3Apull",
        token_server::USER,
        token_server::PASSWORD
    );
    let ct = [("content-type", "application/x-www-form-urlencoded")];
    let r = send("POST", &format!("{}/v2/auth", e.proxy(AUTH)), &ct, &form);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["access_token"].is_string());

    // A realm without POST support: the proxy retries as GET with Basic.
    let r = send(
        "POST",
        &format!("{}/v2/auth", e.proxy(AUTH_GET_ONLY)),
        &ct,
        &form,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["access_token"].is_string());
    let seen = e.token.seen.lock().unwrap().clone();
    let n = seen.len();
    assert!(
        seen[n - 2]
            .form
            .contains("scope=repository%3Aprivate%2Fsecret%3Apull"),
        "{:?}",
        seen[n - 2]
    );
    assert!(
        seen[n - 2].method == "POST"
            && seen[n - 1].method == "GET"
            && seen[n - 1].authorization.as_deref() == Some(basic.as_str()),
        "{:?}",
        &seen[n - 2..]
    );
}
