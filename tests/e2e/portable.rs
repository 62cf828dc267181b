//! The portable build under plain `wasmtime serve` (issue 14): skopeo pulls
//! through a host route, path prefixes, a token-auth registry and Docker Hub
//! naming; hosts no route allows are never contacted, with no runtime
//! allow-list to stop them; the cache turns itself off.

use super::common::*;
use std::net::{SocketAddr, TcpListener};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::wasmtime::Serve;
use support::{ADMIN_TOKEN, env, fronts, registry, rt, token_server};

struct Portable {
    serve: Serve,
    /// Fronts whose realm and one redirect name 127.0.0.3, where `watcher`
    /// counts every connection.
    fronts: fronts::Fronts,
    contacted: &'static AtomicUsize,
}

/// Accepts and counts connections on `addr` (port 0: any).
fn watch(addr: &str, count: &'static AtomicUsize) -> SocketAddr {
    let listener = TcpListener::bind(addr).unwrap();
    let bound = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for _ in listener.incoming() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    bound
}

fn portable() -> &'static Portable {
    static P: OnceLock<Portable> = OnceLock::new();
    P.get_or_init(|| {
        let e = env();
        static CONTACTED: AtomicUsize = AtomicUsize::new(0);
        let realm = watch("127.0.0.3:0", &CONTACTED);
        let fronts = rt().block_on(fronts::start(e.open, e.open, &realm.to_string()));
        // The evil image's blobs redirect to 127.0.0.3 on the CDN's port.
        watch(&format!("127.0.0.3:{}", fronts.cdn.port()), &CONTACTED);
        let addr: SocketAddr = format!("127.0.0.1:{}", registry::free_port())
            .parse()
            .unwrap();
        let (open, auth) = (format!("http://{}", e.open), format!("http://{}", e.auth));
        let token_host = e.token.addr.to_string();
        let json = |v: serde_json::Value| v.to_string();
        let presets = [
            (
                format!("route/{addr}"),
                json(serde_json::json!({"upstream": open, "docker_hub": true})),
            ),
            (
                "route/registry-a.test".into(),
                json(serde_json::json!({"upstream": open})),
            ),
            (
                "route/registry-b.test".into(),
                json(serde_json::json!({"upstream": auth, "allowed_hosts": [token_host]})),
            ),
            (
                "route/bad-realm.test".into(),
                json(serde_json::json!({"upstream": format!("http://{}", fronts.bad_realm)})),
            ),
            (
                "route/evil.test".into(),
                json(serde_json::json!({
                    "upstream": format!("http://{}", fronts.redirecting),
                    "allowed_hosts": [format!("127.0.0.2:{}", fronts.cdn.port())],
                })),
            ),
        ];
        let config = [
            ("default_upstream", ""),
            ("upstream_timeout", "3"),
            ("admin_token", ADMIN_TOKEN),
        ];
        let serve = Serve::start(&e.dir, addr, &config, &presets);
        Portable {
            serve,
            fronts,
            contacted: &CONTACTED,
        }
    })
}

#[test]
fn wasmtime_serve_pulls_through_a_host_route_with_docker_hub_naming() {
    let (e, p) = (env(), portable());
    let url = p.serve.url();
    assert_eq!(
        pulled_digest(&url, "test/single:v1", None, false),
        e.single.digest
    );
    // `alpine` is Docker Hub's `library/alpine`.
    assert_eq!(
        pulled_digest(&url, "alpine:latest", None, false),
        e.alpine.digest
    );
}

#[test]
fn wasmtime_serve_pulls_through_path_prefixes_and_token_auth() {
    let (e, p) = (env(), portable());
    let url = p.serve.url();
    assert_eq!(
        pulled_digest(&url, "registry-a.test/test/multi:v1", None, true),
        e.multi.digest
    );
    let creds = format!("{}:{}", token_server::USER, token_server::PASSWORD);
    assert_eq!(
        pulled_digest(
            &url,
            "registry-b.test/private/secret:v1",
            Some(&creds),
            false
        ),
        e.private.digest
    );
    // Without credentials the token-auth registry stays closed.
    let (out, _) = skopeo_copy(&url, "registry-b.test/private/secret:v1", None, false);
    assert!(!out.status.success());
}

/// wasmtime serve has no `allowed_outbound_hosts`: the component's own
/// check is all that keeps a realm or a redirect from reaching a host.
#[test]
fn wasmtime_serve_never_contacts_a_host_no_route_allows() {
    let p = portable();
    let r = get(
        &format!("{}/v2/auth?scope=repository:a:pull", p.serve.url()),
        &[("host", "bad-realm.test")],
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(error_code(&r), "DENIED");
    assert!(r.text().contains("127.0.0.3"), "{}", r.text());

    let manifest = get(
        &format!("{}/v2/test/evil/manifests/v1", p.serve.url()),
        &[("host", "evil.test"), ("accept", ACCEPT_ALL)],
    );
    assert_eq!(manifest.status, 200, "{}", manifest.text());
    let layer = manifest.json()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let r = get(
        &format!("{}/v2/test/evil/blobs/{layer}", p.serve.url()),
        &[("host", "evil.test")],
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(error_code(&r), "DENIED");
    assert!(r.text().contains("127.0.0.3"), "{}", r.text());
    assert!(
        p.fronts
            .front_seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.path.ends_with(&layer)),
        "the upstream was never asked for the redirecting blob"
    );
    assert_eq!(
        p.contacted.load(Ordering::SeqCst),
        0,
        "127.0.0.3 was contacted"
    );
}

/// Every request's store is a fresh copy of the presets there: nothing is
/// cached, every answer is relayed, and nothing fails for it.
#[test]
fn wasmtime_serve_relays_with_the_cache_off() {
    let (e, p) = (env(), portable());
    let url = format!("{}/v2/test/single/manifests/v5", p.serve.url());
    let upstream = || {
        count(
            &upstream_log("open", "test/single"),
            "GET /v2/test/single/manifests/v5",
        )
    };
    let before = upstream();
    for _ in 0..2 {
        let r = get(&url, &[("accept", ACCEPT_ALL)]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.body, e.single.manifest);
        assert_eq!(r.header("x-cache"), None);
    }
    assert_eq!(upstream() - before, 2);
    assert!(
        !p.serve.log().contains("key-value store"),
        "{}",
        p.serve.log()
    );
}

/// Routes come from the presets; a change through the API would vanish
/// with the request, so it is refused.
#[test]
fn wasmtime_serve_lists_preset_routes_and_refuses_changes() {
    let p = portable();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let routes = format!("{}/_registry-proxy/routes", p.serve.url());
    let r = get(&routes, &[("authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", r.text());
    let listed = r.json()["routes"].as_object().unwrap().clone();
    let mut names: Vec<&str> = listed.keys().map(String::as_str).collect();
    names.sort();
    let own = p.serve.addr.to_string();
    assert_eq!(
        names,
        [
            own.as_str(),
            "bad-realm.test",
            "evil.test",
            "registry-a.test",
            "registry-b.test"
        ]
    );
    assert_eq!(
        listed["registry-a.test"]["upstream"],
        format!("http://{}", env().open)
    );

    let r = send(
        "PUT",
        &format!("{routes}/new.test"),
        &[("authorization", &auth)],
        r#"{"upstream":"https://ghcr.io"}"#,
    );
    assert_eq!(r.status, 501, "{}", r.text());
    assert_eq!(error_code(&r), "UNSUPPORTED");
    assert!(r.text().contains("preset"), "{}", r.text());
}
