//! Safe on the internet (issue 4): proxy-held credentials, the proxy's own
//! users, allow/deny lists, the route management API.

use super::common::*;
use support::{HUB, OPEN, env, registry, token_server};

/// Upstream credentials the proxy holds: the client sends nothing, the
/// upstream token is fetched once and shared, and the secret goes nowhere
/// but the token realm.
#[test]
fn proxy_held_credentials_pull_private_images_for_anonymous_clients() {
    let e = env();
    let scope_seen = || {
        e.token
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| {
                // The GET-with-Basic realm only: the password-grant test's
                // realm is asked for the same scope.
                s.path == "/token"
                    && s.query.contains("private%2Fheld")
                    && s.authorization
                        .as_deref()
                        .is_some_and(|a| a.starts_with("Basic "))
            })
            .count()
    };
    assert_eq!(
        pulled_digest(&e.proxy(HUB), "held.test/private/held:v1", None, false),
        e.held.digest
    );

    let url = format!("{}/v2/private/held/manifests/v1", e.proxy(OPEN));
    let mut replies = Vec::new();
    for _ in 0..5 {
        let r = get(&url, &[("host", "held.test"), ("accept", ACCEPT_ALL)]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.body, e.held.manifest);
        replies.push(r);
    }
    assert_eq!(
        scope_seen(),
        1,
        "the upstream token was not shared across requests"
    );
    let blob = get(
        &format!(
            "{}/v2/private/held/blobs/{}",
            e.proxy(OPEN),
            e.held.layers[0]
        ),
        &[("host", "held.test")],
    );
    assert_eq!(blob.status, 200, "{}", blob.text());
    assert_eq!(registry::sha256(&blob.body), e.held.layers[0]);

    // The token endpoint hands clients nothing of the route's.
    let t = get(
        &format!(
            "{}/v2/auth?scope=repository:private/held:pull",
            e.proxy(OPEN)
        ),
        &[("host", "held.test")],
    );
    assert_eq!(t.json()["token"], "registry-proxy-anonymous");
    let cdn = e.auth_fronts.cdn_seen.lock().unwrap().clone();
    assert!(
        !cdn.is_empty() && cdn.iter().all(|s| s.authorization.is_none()),
        "credentials reached the CDN: {cdn:?}"
    );
    let front = e.auth_fronts.front_seen.lock().unwrap().clone();
    let upstream_token = front
        .iter()
        .find_map(|s| s.authorization.clone().filter(|a| a.starts_with("Bearer ")))
        .expect("the upstream saw the proxy's token");
    assert!(front.iter().all(|s| {
        !s.authorization
            .as_deref()
            .unwrap_or_default()
            .starts_with("Basic")
    }));
    for r in replies.iter().chain([&blob, &t]) {
        let headers = format!("{:?}", r.headers);
        for secret in [
            token_server::PASSWORD,
            upstream_token.trim_start_matches("Bearer "),
        ] {
            assert!(
                !r.text().contains(secret) && !headers.contains(secret),
                "a response carried a secret"
            );
        }
    }
    assert_not_logged(token_server::PASSWORD);
    assert_not_logged(upstream_token.trim_start_matches("Bearer "));

    // A revoked cached token: the proxy re-authenticates on the 401, once.
    // This route's token: held-post.test keeps one for the same scope.
    let scope = "repository:private/held:pull";
    let kind = format!("token/http://{}@upstream1/", e.auth_fronts.redirecting);
    let slot = e.cache.keys().into_iter().find(|k| {
        k.starts_with(&kind)
            && e.cache.get(k).is_some_and(|v| {
                serde_json::from_slice::<serde_json::Value>(&v).unwrap()["for"] == scope
            })
    });
    let key = slot.expect("the upstream token is kept in a slot of the cache's store");
    let revoked = serde_json::json!({"for": scope, "token": "revoked", "expires": 99999999999u64});
    e.cache.set(&key, revoked.to_string().as_bytes());
    let before = scope_seen();
    let r = get(&url, &[("host", "held.test"), ("accept", ACCEPT_ALL)]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(scope_seen(), before + 1);
}

#[test]
fn the_proxys_own_users_log_in_and_are_refused_correctly() {
    let e = env();
    let (user, password) = support::PROXY_USER;
    let v2 = format!("{}/v2/", e.proxy(OPEN));
    let r = get(&v2, &[("host", "login.test")]);
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains(r#"service="registry-proxy""#)
    );
    assert_eq!(
        login_token(e, "login.test", "repository:test/single:pull", "wrong").status,
        401
    );
    assert_eq!(
        get(
            &format!(
                "{}/v2/auth?scope=repository:test/single:pull",
                e.proxy(OPEN)
            ),
            &[("host", "login.test")]
        )
        .status,
        401,
        "a token without credentials"
    );

    let t = login_token(
        e,
        "login.test",
        "repository:test/single:pull,push",
        password,
    );
    assert_eq!(t.status, 200, "{}", t.text());
    let token = t.json()["token"].as_str().unwrap().to_string();
    let claims = decode_claims(&token);
    assert_eq!(
        claims["access"][0]["actions"],
        serde_json::json!(["pull"]),
        "push was granted without the right"
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        get(&v2, &[("host", "login.test"), ("authorization", &bearer)]).status,
        200
    );
    let manifest = |name: &str, auth: &str| {
        get(
            &format!("{}/v2/{name}/manifests/v1", e.proxy(OPEN)),
            &[
                ("host", "login.test"),
                ("authorization", auth),
                ("accept", ACCEPT_ALL),
            ],
        )
    };
    let ok = manifest("test/single", &bearer);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.body, e.single.manifest);

    // Another repository than the token's.
    let other = manifest("test/multi", &bearer);
    assert_eq!(other.status, 401);
    assert!(
        other
            .header("www-authenticate")
            .unwrap()
            .contains(r#"scope="repository:test/multi:pull",error="insufficient_scope""#)
    );
    // Outside the user's rights: the token comes back empty-handed.
    let t = login_token(e, "login.test", "repository:private/secret:pull", password);
    let no_rights = format!("Bearer {}", t.json()["token"].as_str().unwrap());
    assert_eq!(manifest("private/secret", &no_rights).status, 401);
    // Tampered and expired tokens.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_payload = {
        use base64::Engine;
        let mut c = claims.clone();
        c["access"][0]["name"] = "private/secret".into();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string())
    };
    parts[1] = &forged_payload;
    assert_eq!(
        manifest("private/secret", &format!("Bearer {}", parts.join("."))).status,
        401
    );
    let mut expired: registry_proxy::auth::jwt::Claims =
        serde_json::from_value(claims.clone()).unwrap();
    expired.exp = 1;
    expired.nbf = 0;
    let expired = registry_proxy::auth::jwt::sign(&expired, support::SIGNING_KEY.as_bytes());
    assert_eq!(
        manifest("test/single", &format!("Bearer {expired}")).status,
        401
    );
    assert_eq!(
        manifest("test/single", "Bearer registry-proxy-anonymous").status,
        401
    );

    // docker login + pull as a client does it, through a path prefix.
    let creds = format!("{user}:{password}");
    assert_eq!(
        pulled_digest(
            &e.proxy(HUB),
            "login.test/test/single:v1",
            Some(&creds),
            false,
        ),
        e.single.digest
    );
    let (out, _) = skopeo_copy(
        &e.proxy(HUB),
        "login.test/test/single:v1",
        Some(&format!("{user}:nope")),
        false,
    );
    assert!(!out.status.success());
    let (out, _) = skopeo_copy(&e.proxy(HUB), "login.test/test/single:v1", None, false);
    assert!(!out.status.success());
    assert_not_logged(password);
}

fn decode_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn allow_and_deny_lists_refuse_before_any_upstream_call() {
    let e = env();
    let host = [("host", "filtered.test"), ("accept", ACCEPT_ALL)];
    let r = get(
        &format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN)),
        &host,
    );
    assert_eq!(r.status, 200);
    for path in [
        "/v2/test/evil/manifests/denied-tag",
        "/v2/library/alpine/manifests/denied-tag",
    ] {
        let r = get(&format!("{}{path}", e.proxy(OPEN)), &host);
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(error_code(&r), "DENIED");
        assert!(r.text().contains("not served"), "{}", r.text());
    }
    assert!(
        !e.fronts
            .front_seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.path.contains("denied-tag"))
    );
}

#[test]
fn admin_api_manages_routes() {
    let e = env();
    let api = format!("{}/_registry-proxy/routes", e.proxy(OPEN));
    let admin = format!("Bearer {}", support::ADMIN_TOKEN);
    let auth = [("authorization", admin.as_str())];
    assert_eq!(get(&api, &[]).status, 401);
    let wrong = get(&api, &[("authorization", "Bearer admin-s3cret-tokeN")]);
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("www-authenticate").is_some());

    let pull = |host: &str| {
        get(
            &format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN)),
            &[("host", host), ("accept", ACCEPT_ALL)],
        )
        .status
    };
    assert_eq!(pull("api.test"), 404);
    let body = format!(r#"{{"upstream":"http://{}"}}"#, e.open);
    let r = send("PUT", &format!("{api}/api.test"), &auth, &body);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        pull("api.test"),
        200,
        "a route added through the API is used by the next pull"
    );
    let r = get(&format!("{api}/api.test"), &auth);
    assert_eq!(r.json()["upstream"], format!("http://{}", e.open));
    let list = get(&api, &auth);
    assert_eq!(
        list.json()["routes"]["api.test"]["upstream"],
        format!("http://{}", e.open)
    );
    assert_eq!(
        send("PUT", &format!("{api}/api.test"), &auth, &body).status,
        200
    );

    let bad = send(
        "PUT",
        &format!("{api}/api.test"),
        &auth,
        r#"{"upstream":"ftp://x","allowed_hosts":["a/b"],"deny":["BAD"]}"#,
    );
    assert_eq!(bad.status, 400);
    let fields: Vec<String> = bad.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"]["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(fields, ["upstream", "allowed_hosts", "deny"]);
    let unknown = send(
        "PUT",
        &format!("{api}/api.test"),
        &auth,
        r#"{"upstream":"https://x.io","colour":"red"}"#,
    );
    assert_eq!(unknown.status, 400);
    assert!(unknown.text().contains("colour"), "{}", unknown.text());
    assert_eq!(
        pull("api.test"),
        200,
        "a refused update left the route alone"
    );
    assert_eq!(
        send("PUT", &format!("{api}/Bad%20Host"), &auth, &body).status,
        400
    );

    assert_eq!(
        send("DELETE", &format!("{api}/api.test"), &auth, "").status,
        204
    );
    assert_eq!(get(&format!("{api}/api.test"), &auth).status, 404);
    assert_eq!(pull("api.test"), 404);

    // Without the admin_token variable the API does not exist.
    let bare = support::spin::Instance::start(&e.app, "bare", &[]);
    let r = get(&format!("{}/_registry-proxy/routes", bare.url()), &auth);
    bare.stop();
    assert_eq!(r.status, 404);
}

#[test]
fn proxy_held_credentials_use_the_oauth2_password_grant_where_get_is_refused() {
    let e = env();
    let r = get(
        &format!("{}/v2/private/held/manifests/v1", e.proxy(OPEN)),
        &[("host", "held-post.test"), ("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.held.manifest);
    let seen = e.token.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| s.method == "POST"
            && s.form.contains("grant_type=password")
            && s.form.contains("private%2Fheld")),
        "no password grant: {seen:?}"
    );
    assert_not_logged(token_server::PASSWORD);
}
