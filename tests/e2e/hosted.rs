//! Hosted platforms' limits (issue 17): with `blob_delivery = "redirect"` a
//! blob GET is answered with the upstream's redirect to its CDN, which the
//! client fetches without the proxy; a blob the upstream serves itself
//! streams under the body limit and is refused, naming it, over it.

use super::common::*;
use support::{AUTH, HUB, OPEN, env, registry, rt, spin, token_server};

const LIMIT: u64 = 4 << 20;

fn hosted_route(name: &str, route: serde_json::Value) {
    env()
        .store
        .set(&format!("route/{name}"), route.to_string().as_bytes());
}

fn through_cdn(e: &support::Env) -> serde_json::Value {
    serde_json::json!({
        "upstream": format!("http://{}", e.fronts.redirecting),
        "allowed_hosts": [format!("127.0.0.2:{}", e.fronts.cdn.port())],
        "blob_delivery": "redirect",
        "cache": {"manifests": false},
    })
}

#[test]
fn blob_gets_are_answered_with_the_upstreams_redirect() {
    let e = env();
    hosted_route("hosted.test", through_cdn(e));
    let layer = &e.single.layers[0];
    let url = format!("{}/v2/test/single/blobs/{layer}", e.proxy(OPEN));
    let r = get(&url, &[("host", "hosted.test")]);
    assert_eq!(r.status, 307, "{}", r.text());
    let location = r.header("location").unwrap().to_string();
    assert!(
        location.starts_with(&format!("http://127.0.0.2:{}/cdn/", e.fronts.cdn.port()))
            && location.contains("signature="),
        "{location}"
    );
    assert_eq!(r.header("docker-content-digest"), Some(layer.as_str()));
    let fetched = get(&location, &[]);
    assert_eq!(registry::sha256(&fetched.body), *layer);

    // A whole pull: the bytes come from the CDN, not through the proxy.
    let cdn_before = e.fronts.cdn_seen.lock().unwrap().len();
    assert_eq!(
        pulled_digest(&e.proxy(HUB), "hosted.test/test/single:v1", None, false),
        e.single.digest
    );
    assert!(e.fronts.cdn_seen.lock().unwrap().len() > cdn_before);
    let log = e.proxies[HUB].access_log();
    assert!(
        log.iter()
            .filter(|l| l["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/v2/hosted.test/")))
            .filter(|l| l["endpoint"] == "blob" && l["method"] == "GET")
            .all(|l| l["bytes"].as_u64().unwrap_or(0) <= LIMIT),
        "the proxy sent a blob body itself"
    );
}

#[test]
fn a_redirect_for_a_route_with_credentials_carries_none() {
    let e = env();
    hosted_route(
        "hosted-held.test",
        serde_json::json!({
            "upstream": format!("http://{}", e.auth_fronts.redirecting),
            "credentials": "upstream1",
            "allowed_hosts": [e.token.addr.to_string(), format!("127.0.0.2:{}", e.auth_fronts.cdn.port())],
            "blob_delivery": "redirect",
            "cache": {"manifests": false, "blobs": false},
        }),
    );
    let layer = &e.held.layers[0];
    let r = get(
        &format!("{}/v2/private/held/blobs/{layer}", e.proxy(OPEN)),
        &[("host", "hosted-held.test")],
    );
    assert_eq!(r.status, 307, "{}", r.text());
    let location = r.header("location").unwrap();
    for secret in [token_server::PASSWORD, token_server::USER, "Bearer"] {
        assert!(!location.contains(secret), "{location}");
    }
    assert_eq!(registry::sha256(&get(location, &[]).body), *layer);
}

#[test]
fn a_blob_served_without_a_redirect_streams_under_the_limit_and_is_refused_over_it() {
    let e = env();
    hosted_route(
        "hosted-direct.test",
        serde_json::json!({"upstream": format!("http://{}", e.open), "blob_delivery": "redirect"}),
    );
    let small = &e.single.layers[0];
    let host = [("host", "hosted-direct.test")];
    let url = |repo: &str, d: &str| format!("{}/v2/{repo}/blobs/{d}", e.proxy(OPEN));
    let r = get(&url("test/single", small), &host);
    assert_eq!(r.status, 200);
    assert_eq!(registry::sha256(&r.body), *small);

    let big = rt().block_on(registry::push_big_blob(
        e.open,
        "hosted/big",
        171,
        2 * LIMIT,
    ));
    let r = get(&url("hosted/big", &big), &host);
    assert_eq!(r.status, 501, "{}", r.text());
    assert_eq!(error_code(&r), "UNSUPPORTED");
    assert!(r.text().contains("body_limit") && r.text().contains(&LIMIT.to_string()));
}

#[test]
fn redirects_to_hosts_the_route_may_not_reach_are_refused() {
    let e = env();
    hosted_route("hosted.test", through_cdn(e));
    let manifest = get(
        &format!("{}/v2/test/evil/manifests/v1", e.proxy(OPEN)),
        &[("host", "hosted.test"), ("accept", ACCEPT_ALL)],
    );
    let layer = manifest.json()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let r = get(
        &format!("{}/v2/test/evil/blobs/{layer}", e.proxy(OPEN)),
        &[("host", "hosted.test")],
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(error_code(&r), "DENIED");
    assert!(r.text().contains("127.0.0.3"));
}

/// The app-wide default: a route that says nothing gets `blob_delivery`.
#[test]
fn the_blob_delivery_variable_sets_the_default() {
    let e = env();
    let proxy = spin::Instance::start(
        &e.app,
        "redirecting-by-default",
        &[("default_upstream", ""), ("blob_delivery", "redirect")],
    );
    let mut route = through_cdn(e);
    route.as_object_mut().unwrap().remove("blob_delivery");
    hosted_route(&proxy.addr.to_string(), route);
    let layer = &e.single.layers[0];
    let r = get(
        &format!("{}/v2/test/single/blobs/{layer}", proxy.url()),
        &[],
    );
    proxy.stop();
    assert_eq!(r.status, 307, "{}", r.text());
}

/// An image whose one layer is `size` bytes of seeded noise; the layer's
/// digest.
async fn push_big_image(e: &support::Env, repo: &str, size: u64) -> String {
    let layer = registry::push_big_blob(e.open, repo, 181, size).await;
    let config =
        r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = registry::push_blob(e.open, repo, config.as_bytes()).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": registry::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": size}],
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    registry::push_manifest(e.open, repo, "v1", registry::OCI_MANIFEST, &bytes).await;
    layer
}

/// The hosted profile end to end: redirects for blobs, a 10 MiB body
/// limit and a key budget; a layer well over the limit pulls through, the
/// bytes coming from the CDN, and many pulls leave the store in budget.
#[test]
fn the_hosted_profile_pulls_big_layers_within_body_and_store_limits() {
    const KEYS: usize = 24;
    const VALUE: usize = 16 << 10;
    let e = env();
    let app = spin::derive_app(&e.dir.join("hosted-app"), &spin::Store::Sqlite, true);
    let proxy = spin::Instance::start(
        &app,
        "hosted",
        &[
            ("default_upstream", ""),
            ("blob_delivery", "redirect"),
            ("body_limit", "10MiB"),
            ("kv_max_keys", &KEYS.to_string()),
            ("kv_max_value", &VALUE.to_string()),
        ],
    );
    let store = |label| spin::SqliteStore::of(&app, label);
    let mut route = through_cdn(e);
    route.as_object_mut().unwrap().remove("cache");
    store("default").set(
        &format!("route/{}", proxy.addr),
        route.to_string().as_bytes(),
    );

    let layer = rt().block_on(push_big_image(e, "hosted/layer", 24 << 20));
    let cdn_before = e.fronts.cdn_seen.lock().unwrap().len();
    // skopeo compresses the noise layer into its OCI layout (a new digest):
    // the pull working, with the layer from the CDN, is what counts here.
    let (out, _) = skopeo_copy(&proxy.url(), "hosted/layer:v1", None, false);
    assert_success(&out);
    let cdn = e.fronts.cdn_seen.lock().unwrap()[cdn_before..].to_vec();
    assert!(
        cdn.iter()
            .any(|s| s.method == "GET" && s.path.ends_with(&layer)),
        "the layer did not come from the CDN: {cdn:?}"
    );

    // Many pulls of many images: the store stays within its budget.
    for i in 0..12 {
        let repo = format!("hosted/many{i}");
        rt().block_on(registry::push_image(e.open, &repo, "v1", &repo, "amd64"));
        pulled_digest(&proxy.url(), &format!("{repo}:v1"), None, false);
    }
    let cache = store("cache");
    let keys = cache.keys();
    assert!(keys.len() <= KEYS, "{} keys: {keys:?}", keys.len());
    assert!(
        !keys.iter().any(|k| k.starts_with("cache/chunk/")),
        "blob chunks stored"
    );
    let largest = keys
        .iter()
        .filter_map(|k| cache.get(k))
        .map(|v| v.len())
        .max();
    assert!(largest.unwrap_or(0) <= VALUE);

    // No answer over the body limit, none near the time limit.
    let log = proxy.access_log();
    assert!(log.len() > 12 * 3, "{} requests", log.len());
    for line in &log {
        assert!(line["bytes"].as_u64().unwrap_or(0) <= 10 << 20, "{line}");
        assert!(
            line["duration_ms"].as_f64().unwrap_or(0.0) < 10_000.0,
            "{line}"
        );
    }
    proxy.stop();
}

/// Anonymous clients share the upstream's anonymous token while it lasts:
/// a warm pull costs no token request upstream.
#[test]
fn anonymous_tokens_are_asked_for_once_while_they_last() {
    let e = env();
    let scope = "repository:test/single:pull";
    let url = format!(
        "{}/v2/auth?service=registry-proxy&scope={scope}",
        e.proxy(AUTH)
    );
    let asked = || {
        e.token
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.authorization.is_none() && s.query.contains("test%2Fsingle"))
            .count()
    };
    let before = asked();
    let first = get(&url, &[]);
    let second = get(&url, &[]);
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.json()["token"], second.json()["token"]);
    assert_eq!(asked() - before, 1, "the upstream was asked twice");
    let token = format!("Bearer {}", second.json()["token"].as_str().unwrap());
    let r = get(
        &format!("{}/v2/test/single/manifests/v1", e.proxy(AUTH)),
        &[("authorization", &token), ("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // With credentials, the client's own request goes upstream every time.
    let basic = basic_auth(token_server::USER, token_server::PASSWORD);
    let seen = e.token.seen.lock().unwrap().len();
    get(&url, &[("authorization", &basic)]);
    assert_eq!(e.token.seen.lock().unwrap().len(), seen + 1);
}

/// The app pushed as an OCI artifact (`spin registry push`) and run from
/// it (`spin up -f`) serves pulls, with the project's runtime config (the
/// tests' copy of the app: loopback upstreams allowed).
#[test]
fn the_app_as_an_oci_artifact_serves_pulls() {
    let e = env();
    let reference = format!("{}/apps/registry-proxy:0.1.0", e.open);
    let spin = spin::binary();
    let push = std::process::Command::new(&spin)
        .args(["registry", "push", "--insecure", "--from"])
        .arg(e.app.join("spin.toml"))
        .arg(&reference)
        .output()
        .expect("spin registry push");
    assert_success(&push);
    let dir = e.dir.join("artifact");
    std::fs::create_dir_all(&dir).unwrap();
    let runtime_config = e.app.join("runtime-config.toml");
    std::fs::copy(&runtime_config, dir.join("runtime-config.toml")).unwrap();
    let addr = format!("127.0.0.1:{}", registry::free_port());
    let upstream = format!("default_upstream=http://{}", e.open);
    let args = [
        "up",
        "-f",
        &reference,
        "--insecure",
        "--runtime-config-file",
        "runtime-config.toml",
        "--listen",
        &addr,
        "--variable",
        &upstream,
    ];
    let process =
        support::watched::spawn(spin.to_str().unwrap(), &args, &dir, &dir.join("spin.log"));
    settles("spin up -f serving", || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    let digest = pulled_digest(&format!("http://{addr}"), "test/single:v1", None, false);
    process.stop();
    assert_eq!(digest, e.single.digest);
}
