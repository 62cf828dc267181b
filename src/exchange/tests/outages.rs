//! A store that is away: the cache is passed by, the routes that need no
//! store still answer, and the ones that do are asked again later.

use super::{DOCKER, Upstream, ask, digest, x_cache};

const TAG: &str = "/v2/library/app/manifests/v1";

#[test]
fn a_cache_store_that_is_away_is_passed_by_and_keeps_nothing() {
    let (host, index, blob) = Upstream::new().host();
    host.cache.go_away(true);
    let (tag, body) = ask(&host, "GET", TAG, &[("accept", DOCKER)]);
    assert_eq!((tag.status, x_cache(&tag)), (200, Some("BYPASS")));
    assert_eq!(digest(&body), index);
    let path = format!("/v2/library/app/blobs/{blob}");
    let (got, body) = ask(&host, "GET", &path, &[]);
    assert_eq!((got.status, x_cache(&got)), (200, Some("BYPASS")));
    assert_eq!(digest(&body), blob);

    // Back: nothing was kept meanwhile, and the cache fills again.
    host.cache.go_away(false);
    let (again, _) = ask(&host, "GET", TAG, &[("accept", DOCKER)]);
    let (hit, _) = ask(&host, "GET", TAG, &[("accept", DOCKER)]);
    assert_eq!(
        (x_cache(&again), x_cache(&hit)),
        (Some("MISS"), Some("HIT"))
    );
    assert_eq!(host.sent_count("GET", "/manifests/"), 2);
}

#[test]
fn with_the_routes_store_away_the_default_upstream_still_routes() {
    let (host, index, _) = Upstream::new().host();
    host.kv.go_away(true);
    let (tag, body) = ask(&host, "GET", TAG, &[("accept", DOCKER)]);
    assert_eq!(tag.status, 200);
    assert_eq!(digest(&body), index);
}

#[test]
fn a_host_seen_with_a_stored_route_waits_for_the_routes_store() {
    let (host, _, _) = Upstream::new().host();
    host.set_variable("default_upstream", "");
    let route = br#"{"upstream":"http://upstream.test","deny":["library/app"]}"#;
    crate::host::Kv::set(host.kv.as_ref(), "route/proxy.test", route).unwrap();
    let (denied, _) = ask(&host, "GET", TAG, &[("accept", DOCKER)]);
    assert_eq!(denied.status, 403);

    // Its deny list cannot be read now: no route stands in for it.
    host.set_variable("default_upstream", "http://upstream.test");
    host.kv.go_away(true);
    let (later, body) = ask(&host, "GET", TAG, &[("accept", DOCKER)]);
    assert_eq!(later.status, 503);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("routes store"), "{text}");
    assert_eq!(host.sent_count("GET", "/manifests/"), 0);
}

#[test]
fn with_no_route_that_needs_no_store_the_answer_is_a_503_naming_it() {
    let (host, _, _) = Upstream::new().host();
    host.set_variable("default_upstream", "");
    host.kv.go_away(true);
    let (answer, body) = ask(&host, "GET", TAG, &[("accept", DOCKER)]);
    assert_eq!(answer.status, 503);
    assert!(String::from_utf8_lossy(&body).contains("routes store"));
}
