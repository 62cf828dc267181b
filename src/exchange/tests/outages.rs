//! A store that is away: the cache is passed by, the routes that need no
//! store still answer, and the ones that do are asked again later; an
//! upstream that gives no answer is named in words.

use super::{DOCKER, Upstream, ask, digest, read, request, x_cache};
use crate::exchange::{finish, handle, log_line};
use crate::host::{Failure, Kv};
use crate::telemetry::stats;
use futures::executor::block_on;

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

/// An upstream that gives no answer, asked for a tag: the 502's message,
/// the access log line and the status page's recent error, each in words.
fn no_answer(upstream: &str, failure: Failure) -> (String, String, String) {
    let (host, _, _) = Upstream::new().host();
    host.set_variable("default_upstream", upstream);
    host.upstream_away(Some(failure));
    let (answer, exchange) = block_on(handle(&host, request("GET", TAG, &[])));
    assert_eq!(answer.status, 502);
    let body = block_on(read(answer.body));
    let log = log_line(&host, &exchange, None);
    finish(&host, exchange, None);
    let recent = host.counters.get(&stats::error_key(1)).unwrap().unwrap();
    let recent: serde_json::Value = serde_json::from_slice(&recent).unwrap();
    let message = String::from_utf8_lossy(&body).into_owned();
    (message, log, recent["error"].as_str().unwrap().to_string())
}

#[test]
fn a_refused_upstream_is_named_in_words_in_all_three_places() {
    let (message, log, recent) = no_answer("http://127.0.0.1:1", Failure::Refused);
    let words = "127.0.0.1:1 refused the connection";
    assert!(
        message.contains(&format!("upstream unreachable: {words}")),
        "{message}"
    );
    assert!(
        log.contains(&format!("\"upstream_error\":\"{words}\"")),
        "{log}"
    );
    assert_eq!(recent, words);
}

#[test]
fn an_unresolvable_upstream_is_named_in_words_in_all_three_places() {
    let why = Some("address not available".to_string());
    let (message, log, recent) =
        no_answer("https://registry-1.docker.io", Failure::NotResolved(why));
    let words = "could not resolve registry-1.docker.io (address not available)";
    assert!(message.contains(words), "{message}");
    assert!(log.contains(words), "{log}");
    assert_eq!(recent, words);
    for text in [&message, &log, &recent] {
        assert!(
            !text.contains("Failed") && !text.contains("Some("),
            "{text}"
        );
    }
}
