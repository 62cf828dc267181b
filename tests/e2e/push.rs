//! Pushes through the proxy.

use super::common::*;
use support::{HUB, OPEN, env, registry};

fn skopeo_push(
    layout: &std::path::Path,
    proxy: &str,
    image: &str,
    creds: Option<&str>,
) -> std::process::Output {
    let src = format!("oci:{}:x", layout.display());
    let dst = format!("docker://{}/{image}", proxy.trim_start_matches("http://"));
    let mut args = vec![
        "--insecure-policy",
        "copy",
        "--dest-tls-verify=false",
        "--retry-times=0",
    ];
    if let Some(c) = creds {
        args.extend(["--dest-creds", c]);
    }
    args.extend([src.as_str(), dst.as_str()]);
    skopeo(&args)
}

/// Pushes pass through to the upstream, bodies streaming, upload locations
/// pointing back at the proxy; what a push replaces is not served stale.
#[test]
fn pushes_pass_through_and_replace_cached_tags() {
    let e = env();
    let (out, single) = skopeo_copy(&e.proxy(HUB), "registry-a.test/test/single:v1", None, false);
    assert_success(&out);
    let out = skopeo_push(
        &single,
        &e.proxy(HUB),
        "registry-a.test/pushed/image:v1",
        None,
    );
    assert_success(&out);
    let direct = get(
        &format!("http://{}/v2/pushed/image/manifests/v1", e.open),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(
        direct.header("docker-content-digest"),
        Some(e.single.digest.as_str())
    );
    let upstream = upstream_log("open", "pushed/image");
    assert!(
        upstream.iter().any(
            |l| l.starts_with("PATCH ") || l.starts_with("PUT /v2/pushed/image/blobs/uploads/")
        ),
        "{upstream:?}"
    );

    // The layer is cached from test/single: for pushed/image the upstream
    // only confirms it has it there (a HEAD), no bytes move.
    let layer = &e.single.layers[0];
    wait_cached(&e.cache, layer);
    let before = upstream_log("open", "pushed/image").len();
    let r = get(
        &format!(
            "{}/v2/registry-a.test/pushed/image/blobs/{layer}",
            e.proxy(HUB)
        ),
        &[],
    );
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    assert_eq!(registry::sha256(&r.body), *layer);
    let asked = upstream_log("open", "pushed/image")[before..].to_vec();
    assert!(asked.iter().all(|l| l.starts_with("HEAD ")), "{asked:?}");

    // Cached by tag through the proxy, then replaced through the proxy.
    let url = format!(
        "{}/v2/registry-a.test/pushed/image/manifests/v1",
        e.proxy(HUB)
    );
    let r = get(&url, &[("accept", ACCEPT_ALL)]);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(e.single.digest.as_str())
    );
    let (out, alpine) = skopeo_copy(&e.proxy(HUB), "alpine:latest", None, false);
    assert_success(&out);
    let out = skopeo_push(
        &alpine,
        &e.proxy(HUB),
        "registry-a.test/pushed/image:v1",
        None,
    );
    assert_success(&out);
    let r = get(&url, &[("accept", ACCEPT_ALL)]);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(e.alpine.digest.as_str()),
        "a stale tag after a push"
    );

    // The proxy's own users need the push right.
    let (user, password) = support::PROXY_USER;
    let out = skopeo_push(
        &single,
        &e.proxy(HUB),
        "login.test/test/pushed:v1",
        Some(&format!("{user}:{password}")),
    );
    assert!(
        !out.status.success(),
        "a user without the push right pushed"
    );
    let t = login_token(
        e,
        "login.test",
        "repository:test/pushed:pull,push",
        password,
    );
    let bearer = format!("Bearer {}", t.json()["token"].as_str().unwrap());
    let r = send(
        "POST",
        &format!("{}/v2/test/pushed/blobs/uploads/", e.proxy(OPEN)),
        &[("host", "login.test"), ("authorization", &bearer)],
        "",
    );
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope"),
        "{:?}",
        r.header("www-authenticate")
    );
}
