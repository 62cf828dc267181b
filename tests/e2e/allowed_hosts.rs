//! Redirects and host policy (issue 2): redirected blobs drop `Authorization`,
//! and realms, redirects and upstreams outside the allowed hosts are refused.

use super::common::*;
use support::{OPEN, REDIRECTING, env, registry};

#[test]
fn redirected_blobs_keep_method_and_range_and_drop_authorization() {
    let e = env();
    let layer = &e.single.layers[1];
    let url = format!("{}/v2/test/single/blobs/{layer}", e.proxy(REDIRECTING));
    let full = get(&url, &[("authorization", "Bearer client-token")]);
    assert_eq!(full.status, 200, "{}", full.text());
    assert_eq!(registry::sha256(&full.body), *layer);
    let part = get(
        &url,
        &[
            ("authorization", "Bearer client-token"),
            ("range", "bytes=5-14"),
        ],
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, full.body[5..15]);
    let head = send(
        "HEAD",
        &url,
        &[("authorization", "Bearer client-token")],
        "",
    );
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(full.body.len().to_string().as_str())
    );

    let cdn: Vec<_> = e
        .fronts
        .cdn_seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path.ends_with(layer.as_str()))
        .cloned()
        .collect();
    assert!(
        cdn.iter().all(|s| s.authorization.is_none()),
        "credentials reached the CDN: {cdn:?}"
    );
    assert!(
        cdn.iter().any(|s| s.range.as_deref() == Some("bytes=5-14")),
        "{cdn:?}"
    );
    assert!(cdn.iter().any(|s| s.method == "HEAD"), "{cdn:?}");
    let front = e.fronts.front_seen.lock().unwrap().clone();
    assert!(front.iter().any(|s| s.path.ends_with(layer.as_str())
        && s.authorization.as_deref() == Some("Bearer client-token")));
}

#[test]
fn realm_and_redirect_outside_allowed_hosts_are_refused() {
    let e = env();
    let evil_layer = {
        let r = get(
            &format!("{}/v2/test/evil/manifests/v1", e.proxy(REDIRECTING)),
            &[("accept", ACCEPT_ALL)],
        );
        assert_eq!(r.status, 200);
        r.json()["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let r = get(
        &format!("{}/v2/test/evil/blobs/{evil_layer}", e.proxy(REDIRECTING)),
        &[],
    );
    assert_eq!(r.status, 502);
    assert_eq!(error_code(&r), "DENIED");
    assert!(r.text().contains("127.0.0.3"), "{}", r.text());

    e.store.set(
        "route/bad-realm.test",
        format!(r#"{{"upstream":"http://{}"}}"#, e.fronts.bad_realm).as_bytes(),
    );
    let r = get(
        &format!("{}/v2/auth?scope=repository:a:pull", e.proxy(OPEN)),
        &[("host", "bad-realm.test")],
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(error_code(&r), "DENIED");
    assert!(
        !e.token
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.query.contains("elsewhere")),
        "the forbidden realm was contacted"
    );
}

#[test]
fn spin_refuses_hosts_outside_allowed_outbound_hosts() {
    let e = env();
    e.store.set(
        "route/outside.test",
        br#"{"upstream":"http://127.0.0.5:9"}"#,
    );
    let r = get(
        &format!("{}/v2/a/manifests/b", e.proxy(OPEN)),
        &[("host", "outside.test")],
    );
    assert_eq!(r.status, 502);
    assert_eq!(error_code(&r), "DENIED");
    assert!(
        e.proxies.iter().any(|p| p
            .runtime_log()
            .contains("disallowed destination 'http://127.0.0.5")),
        "Spin itself refused the host"
    );
}
