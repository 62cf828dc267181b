//! One host for every registry (issue 3): path prefixes, `ns=`, mirrors,
//! repository prefixes, browser redirects.

use super::common::*;
use support::{HUB, OPEN, env, token_server};

/// Through one proxy host, the registry named before the image.
#[test]
fn path_prefix_pulls_from_two_upstreams_through_one_host() {
    let e = env();
    assert_eq!(
        pulled_digest(&e.proxy(HUB), "registry-a.test/test/single:v1", None, false),
        e.single.digest
    );

    let creds = format!("{}:{}", token_server::USER, token_server::PASSWORD);
    assert_eq!(
        pulled_digest(
            &e.proxy(HUB),
            "registry-b.test/private/secret:v1",
            Some(&creds),
            false,
        ),
        e.private.digest
    );
    let seen = e.token.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| s
            .query
            .contains("scope=repository%3Aprivate%2Fsecret%3Apull")),
        "the upstream realm never got the upstream's name: {seen:?}"
    );

    // The challenge names the registry, in the realm and the scope.
    let r = get(
        &format!(
            "{}/v2/registry-b.test/private/secret/manifests/v1",
            e.proxy(HUB)
        ),
        &[],
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        format!(
            r#"Bearer realm="{}/v2/auth?ns=registry-b.test",service="{}",scope="repository:registry-b.test/private/secret:pull""#,
            e.proxy(HUB),
            token_server::SERVICE
        )
    );
    let tags = get(
        &format!("{}/v2/registry-a.test/test/single/tags/list", e.proxy(HUB)),
        &[],
    );
    assert_eq!(tags.json()["name"], "registry-a.test/test/single");
}

#[test]
fn containerd_ns_parameter_routes_and_is_echoed() {
    let e = env();
    let r = get(
        &format!(
            "{}/v2/test/single/manifests/v1?ns=registry-a.test",
            e.proxy(HUB)
        ),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.single.manifest);
    assert_eq!(r.header("oci-namespace"), Some("registry-a.test"));

    let r = get(
        &format!(
            "{}/v2/private/secret/manifests/v1?ns=registry-b.test",
            e.proxy(HUB)
        ),
        &[],
    );
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap().to_string();
    assert!(
        challenge.contains(&format!(
            r#"realm="{}/v2/auth?ns=registry-b.test""#,
            e.proxy(HUB)
        )),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"scope="repository:private/secret:pull""#),
        "{challenge}"
    );

    // The token request containerd sends next reaches registry-b's realm.
    let form = format!(
        "grant_type=password&username={}&password={}&client_id=containerd&scope=repository%3Aprivate%2Fsecret%3Apull",
        token_server::USER,
        token_server::PASSWORD
    );
    let t = send(
        "POST",
        &format!("{}/v2/auth?ns=registry-b.test", e.proxy(HUB)),
        &[("content-type", "application/x-www-form-urlencoded")],
        &form,
    );
    assert_eq!(t.status, 200, "{}", t.text());
    let token = t.json()["access_token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {token}");
    let r = get(
        &format!(
            "{}/v2/private/secret/manifests/v1?ns=registry-b.test",
            e.proxy(HUB)
        ),
        &[("authorization", &bearer), ("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.private.manifest);

    let r = get(
        &format!(
            "{}/v2/test/single/tags/list?ns=registry-a.test&n=2",
            e.proxy(HUB)
        ),
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], "test/single");
}

/// A registry named by its own host is found through the route whose
/// upstream it is, when no route is stored under its name.
#[test]
fn a_registry_is_found_by_a_routes_upstream() {
    let e = env();
    let registry = e.open.to_string();
    let r = get(
        &format!("{}/v2/{registry}/test/single/manifests/v1", e.proxy(HUB)),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.single.manifest);
    let r = get(
        &format!("{}/v2/test/single/manifests/v1?ns={registry}", e.proxy(HUB)),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("oci-namespace"), Some(registry.as_str()));
}

#[test]
fn docker_mirror_requests_with_library() {
    let e = env();
    let r = get(
        &format!("{}/v2/library/alpine/manifests/latest", e.proxy(HUB)),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(e.alpine.digest.as_str())
    );
}

#[test]
fn repository_prefix_applies_to_paths_scopes_links_and_tag_lists() {
    let e = env();
    let host = [("host", "prefixed.test"), ("accept", ACCEPT_ALL)];
    let r = get(&format!("{}/v2/single/manifests/v1", e.proxy(OPEN)), &host);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.single.manifest);
    let tags = get(&format!("{}/v2/single/tags/list", e.proxy(OPEN)), &host);
    assert_eq!(tags.json()["name"], "single");
    assert_eq!(
        tags.header("content-length"),
        Some(tags.body.len().to_string().as_str())
    );

    let host = [("host", "prefixed-auth.test")];
    let r = get(&format!("{}/v2/secret/manifests/v1", e.proxy(OPEN)), &host);
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains(r#"scope="repository:secret:pull""#),
        "{:?}",
        r.header("www-authenticate")
    );
    let basic = basic_auth(token_server::USER, token_server::PASSWORD);
    let t = get(
        &format!("{}/v2/auth?scope=repository:secret:pull", e.proxy(OPEN)),
        &[("host", "prefixed-auth.test"), ("authorization", &basic)],
    );
    assert_eq!(t.status, 200, "{}", t.text());
    let token = format!("Bearer {}", t.json()["token"].as_str().unwrap());
    let r = get(
        &format!("{}/v2/secret/manifests/v1", e.proxy(OPEN)),
        &[
            ("host", "prefixed-auth.test"),
            ("authorization", &token),
            ("accept", ACCEPT_ALL),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.private.manifest);
}

#[test]
fn unconfigured_registries_and_mixed_scopes_are_refused() {
    let e = env();
    let before = e.outbound_denied();
    for url in [
        format!("{}/v2/unknown.example/x/manifests/latest", e.proxy(HUB)),
        format!("{}/v2/x/manifests/latest?ns=unknown.example", e.proxy(HUB)),
    ] {
        let r = get(&url, &[]);
        assert_eq!(r.status, 404, "{url}: {}", r.text());
        assert_eq!(error_code(&r), "NAME_UNKNOWN");
        assert!(
            r.text().contains("unknown.example is not configured"),
            "{}",
            r.text()
        );
    }
    assert_eq!(
        e.outbound_denied(),
        before,
        "an unconfigured registry was contacted"
    );
    let r = get(
        &format!(
            "{}/v2/auth?scope=repository:registry-a.test/a:pull&scope=repository:registry-b.test/b:pull",
            e.proxy(HUB)
        ),
        &[],
    );
    assert_eq!(r.status, 400);
    assert_eq!(error_code(&r), "DENIED");
}

#[test]
fn browsers_are_redirected_to_the_upstream_page_unless_turned_off() {
    let e = env();
    let html = [
        ("accept", "text/html,application/xhtml+xml"),
        ("host", "hub-browser.test"),
    ];
    e.store.set(
        "route/hub-browser.test",
        br#"{"upstream":"https://registry-1.docker.io"}"#,
    );
    let r = get(&format!("{}/alpine:3.20", e.proxy(OPEN)), &html);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://hub.docker.com/_/alpine")
    );
    let r = get(
        &format!("{}/v2/bitnami/redis/manifests/latest", e.proxy(OPEN)),
        &html,
    );
    assert_eq!(
        r.header("location"),
        Some("https://hub.docker.com/r/bitnami/redis")
    );
    let r = get(&format!("{}/ghcr.io/owner/image", e.proxy(OPEN)), &html);
    assert_eq!(r.header("location"), Some("https://ghcr.io/owner/image"));

    e.store.set(
        "route/hub-browser.test",
        br#"{"upstream":"https://registry-1.docker.io","browser_redirects":false}"#,
    );
    let r = get(&format!("{}/alpine", e.proxy(OPEN)), &html);
    assert_eq!(r.status, 404);
    // No browser, no redirect: a registry client gets the API.
    let r = get(
        &format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN)),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn a_host_without_a_route_answers_the_ping_and_serves_path_prefix_pulls() {
    let e = env();
    let bare = support::spin::Instance::start(&e.app, "no-route", &[("default_upstream", "")]);
    let r = get(&format!("{}/v2/", bare.url()), &[]);
    let challenge = r.header("www-authenticate").unwrap_or_default().to_string();
    let digest = pulled_digest(&bare.url(), "registry-a.test/test/single:v1", None, false);
    bare.stop();
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(challenge.contains("/v2/auth"), "{challenge}");
    assert_eq!(digest, e.single.digest);
}

#[test]
fn a_route_whose_credentials_are_unset_names_the_variables() {
    let e = env();
    e.store.set(
        "route/unset-credentials.test",
        serde_json::json!({"upstream": format!("http://{}", e.open), "credentials": "upstream3"})
            .to_string()
            .as_bytes(),
    );
    let r = get(
        &format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN)),
        &[("host", "unset-credentials.test"), ("accept", ACCEPT_ALL)],
    );
    assert_eq!((r.status, error_code(&r).as_str()), (403, "DENIED"));
    let text = r.text();
    assert!(
        text.contains("upstream3_username") && text.contains(&e.open.to_string()),
        "{text}"
    );
}

#[test]
fn a_token_service_on_another_port_of_an_ip_upstream_needs_listing() {
    // The token server shares the registry's IP address, on another port:
    // another port of an address is another service, maybe another
    // tenant's, so the route must name it before credentials go there.
    let e = env();
    let token_host = e.token.addr.to_string();
    let route = |allowed: &[&str]| {
        serde_json::json!({"upstream": format!("http://{}", e.auth), "allowed_hosts": allowed})
            .to_string()
    };
    let creds = format!("{}:{}", token_server::USER, token_server::PASSWORD);
    e.store.set("route/beside.test", route(&[]).as_bytes());
    let (out, _) = skopeo_copy(
        &e.proxy(HUB),
        "beside.test/private/secret:v1",
        Some(&creds),
        false,
    );
    assert!(!out.status.success(), "the unlisted token service was used");
    e.store
        .set("route/beside.test", route(&[&token_host]).as_bytes());
    assert_eq!(
        pulled_digest(
            &e.proxy(HUB),
            "beside.test/private/secret:v1",
            Some(&creds),
            false
        ),
        e.private.digest
    );
}
