//! Refusals (issue 2): bad names, references, methods and hosts refused before
//! any upstream call, a malformed route named by its key, an unreachable
//! upstream named in words.

use super::common::*;
use support::{OPEN, REDIRECTING, env, registry};

#[test]
fn unreachable_upstream_and_catalog() {
    let e = env();
    let closed = registry::free_port();
    e.store.set(
        "route/closed.test",
        format!(r#"{{"upstream":"http://127.0.0.1:{closed}"}}"#).as_bytes(),
    );
    let r = get(
        &format!("{}/v2/a/manifests/b", e.proxy(OPEN)),
        &[("host", "closed.test")],
    );
    assert_eq!(r.status, 502);
    assert_eq!(error_code(&r), "UNKNOWN");
    // In words naming the host and port, the same in the access log.
    let words = format!("127.0.0.1:{closed} refused the connection");
    let message = format!("upstream unreachable: {words}");
    assert!(r.text().contains(&message), "{}", r.text());
    let logged = format!("\"upstream_error\":\"{words}\"");
    let log_has_it = || e.component_logs().contains(&logged);
    for _ in 0..50 {
        if log_has_it() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(log_has_it(), "{logged} not in the access log");

    let r = get(&format!("{}/v2/_catalog?n=100", e.proxy(OPEN)), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let repos = r.json()["repositories"].clone();
    assert!(
        repos.as_array().unwrap().iter().any(|x| x == "test/single"),
        "{repos}"
    );
}

#[test]
fn bad_names_and_references_are_refused_before_any_upstream_call() {
    let e = env();
    let cases = [
        ("/v2/Test/single/manifests/v1", 400, "NAME_INVALID"),
        ("/v2/test/../single/manifests/v1", 400, "NAME_INVALID"),
        ("/v2/test//single/manifests/v1", 400, "NAME_INVALID"),
        ("/v2/test/%2e%2e/manifests/v1", 400, "NAME_INVALID"),
        // Outside the tag grammar: no such manifest, as distribution and
        // the OCI conformance tests have it.
        ("/v2/test/single/manifests/.bad", 404, "MANIFEST_UNKNOWN"),
        (
            "/v2/test/single/manifests/.INVALID_MANIFEST_NAME",
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "/v2/test/single/manifests/sha256:abc",
            400,
            "DIGEST_INVALID",
        ),
        ("/v2/test/single/blobs/latest", 400, "DIGEST_INVALID"),
        ("/v2/test/single/nothing/x", 404, "UNSUPPORTED"),
    ];
    for (path, status, code) in cases {
        let r = get(&format!("{}{path}", e.proxy(REDIRECTING)), &[]);
        assert_eq!(
            (r.status, error_code(&r)),
            (status, code.to_string()),
            "{path}: {}",
            r.text()
        );
    }
    let long = format!("/v2/{}/manifests/v1", "a/".repeat(2000));
    assert_eq!(get(&format!("{}{long}", e.proxy(OPEN)), &[]).status, 414);
    let front = e.fronts.front_seen.lock().unwrap();
    assert!(!front.iter().any(|s| s.path.contains("Test")
        || s.path.contains("..")
        || s.path.contains("INVALID")
        || s.path.contains("nothing")));
    drop(front);
    let r = send(
        "PATCH",
        &format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN)),
        &[],
        "",
    );
    assert_eq!((r.status, error_code(&r).as_str()), (405, "UNSUPPORTED"));
    // Spin itself drops a request whose Host is no authority at all
    // ("bad host"); these reach the component, which refuses them.
    for bad in ["bad_host", "x:notaport"] {
        let r = get(&format!("{}/v2/", e.proxy(OPEN)), &[("host", bad)]);
        assert_eq!(r.status, 400, "{bad}");
    }
}

#[test]
fn malformed_route_is_a_clear_error_naming_its_key() {
    let e = env();
    e.store.set("route/broken.test", b"{not json");
    let r = get(
        &format!("{}/v2/", e.proxy(OPEN)),
        &[("host", "broken.test")],
    );
    assert_eq!(r.status, 500);
    assert!(r.text().contains("route/broken.test"), "{}", r.text());
    e.store
        .set("route/broken2.test", br#"{"upstream":"ftp://x"}"#);
    let r = get(
        &format!("{}/v2/", e.proxy(OPEN)),
        &[("host", "broken2.test")],
    );
    assert_eq!(r.status, 500);
    assert!(r.text().contains("route/broken2.test"), "{}", r.text());
}
