//! The cache's logic on the in-memory host: revalidation asks with `HEAD`,
//! a crowd makes one copy, and what one account or client fetched never
//! answers another.

use super::{Upstream, answer, digest, read, request, x_cache};
use crate::exchange::handle;
use crate::host::memory::MemoryHost;
use crate::host::{Kv, Response};
use futures::executor::block_on;
use serde_json::json;

/// `GET path` at `at` (a Host header) with `headers`: the answer and its body.
fn ask_at(
    host: &MemoryHost,
    at: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Response<()>, Vec<u8>) {
    let mut req = request("GET", path, headers);
    req.headers.0.retain(|(n, _)| n != "host");
    req.headers.push("host", at);
    answer(host, req)
}

fn route(host: &MemoryHost, at: &str, route: serde_json::Value) {
    host.kv
        .set(&format!("route/{at}"), route.to_string().as_bytes())
        .unwrap();
}

#[test]
fn a_tag_past_its_ttl_is_revalidated_with_head_not_fetched_again() {
    let (host, index, _) = Upstream::new().host();
    route(
        &host,
        "stale.test",
        json!({"upstream": "http://upstream.test", "cache": {"tag_ttl": 0}}),
    );
    let tag = "/v2/library/app/manifests/v1";
    let accept = [("accept", super::DOCKER)];
    let (first, _) = ask_at(&host, "stale.test", tag, &accept);
    let (second, body) = ask_at(&host, "stale.test", tag, &accept);
    assert_eq!(
        (x_cache(&first), x_cache(&second)),
        (Some("MISS"), Some("REVALIDATED"))
    );
    assert_eq!(digest(&body), index);
    assert_eq!(host.sent_count("GET", "/manifests/"), 1);
    assert_eq!(host.sent_count("HEAD", "/manifests/"), 1);
}

#[test]
fn a_crowd_on_one_blob_makes_one_upstream_copy() {
    let (host, _, blob) = Upstream::new().host();
    let path = format!("/v2/library/app/blobs/{blob}");
    let crowd: Vec<MemoryHost> = (0..4).map(|_| host.next_request()).collect();
    let answers = block_on(futures::future::join_all(crowd.iter().map(|h| async {
        let (response, _) = handle(h, request("GET", &path, &[])).await;
        let (body, ()) = futures::future::join(read(response.body), h.settle()).await;
        (
            response.status,
            response.headers.get("x-cache").map(str::to_string),
            body,
        )
    })));
    for (status, cache, body) in &answers {
        assert_eq!((*status, digest(body)), (200, blob.clone()), "{cache:?}");
    }
    assert_eq!(
        host.sent_count("GET", "/blobs/"),
        1,
        "{answers:?}",
        answers = answers.iter().map(|a| a.1.clone()).collect::<Vec<_>>()
    );
}

#[test]
fn what_a_routes_account_fetched_never_answers_another_route() {
    let (host, _, blob) = Upstream::new().host();
    host.set_variable("upstream1_username", "robot");
    host.set_variable("upstream1_password", "s3cret");
    route(
        &host,
        "account.test",
        json!({"upstream": "http://upstream.test", "credentials": "upstream1"}),
    );
    route(
        &host,
        "open.test",
        json!({"upstream": "http://upstream.test"}),
    );
    let path = format!("/v2/library/app/blobs/{blob}");
    let (first, _) = ask_at(&host, "account.test", &path, &[]);
    let (again, _) = ask_at(&host, "account.test", &path, &[]);
    let (other, _) = ask_at(&host, "open.test", &path, &[]);
    assert_eq!(
        (x_cache(&first), x_cache(&again), x_cache(&other)),
        (Some("MISS"), Some("HIT"), Some("MISS"))
    );
    assert_eq!(host.sent_count("GET", "/blobs/"), 2);
}

#[test]
fn what_a_clients_credentials_fetched_is_never_served_to_anyone_else() {
    let (host, _, _) = Upstream::new().host();
    let tag = "/v2/library/app/manifests/v1";
    let own = [
        ("accept", super::DOCKER),
        ("authorization", "Basic dXNlcjpwYXNz"),
    ];
    let anonymous = [("accept", super::DOCKER)];
    let (first, _) = ask_at(&host, "proxy.test", tag, &own);
    assert_eq!(x_cache(&first), Some("MISS"));
    // The same client again: its access checked upstream with a HEAD first.
    let (again, _) = ask_at(&host, "proxy.test", tag, &own);
    assert_eq!(x_cache(&again), Some("HIT"));
    assert_eq!(host.sent_count("HEAD", "/manifests/"), 1);
    let authorization = host
        .upstream
        .sent
        .borrow()
        .last()
        .unwrap()
        .headers
        .get("authorization")
        .map(str::to_string);
    assert_eq!(authorization.as_deref(), Some("Basic dXNlcjpwYXNz"));
    let (stranger, _) = ask_at(&host, "proxy.test", tag, &anonymous);
    assert_ne!(
        x_cache(&stranger),
        Some("HIT"),
        "a private manifest went to an anonymous client"
    );
    assert_eq!(host.sent_count("GET", "/manifests/"), 2);
}

#[test]
fn a_copy_whose_instance_died_is_taken_over_once_its_lease_stops_beating() {
    use crate::cache::layout::Scope;
    use crate::cache::lease::{GONE_AFTER, Lease};
    let (host, _, blob) = Upstream::new().host();
    let scope = Scope::of(&url::Url::parse("http://upstream.test").unwrap(), None);
    // Another instance's copy, described and then silent: its instance died.
    let mut dead = Lease::new(crate::now(), "dead-copy", "library/app", false);
    dead.size = Some(100_000);
    dead.media_type = Some("application/octet-stream".into());
    host.cache
        .set(&scope.lease_key(&blob), &dead.to_bytes())
        .unwrap();
    let started = crate::now_millis();
    let path = format!("/v2/library/app/blobs/{blob}");
    let (r, body) = ask_at(&host, "proxy.test", &path, &[]);
    assert_eq!((r.status, x_cache(&r)), (200, Some("MISS")));
    assert_eq!(digest(&body), blob);
    let waited = crate::now_millis() - started;
    assert!(
        waited >= GONE_AFTER.as_millis() as u64,
        "taken over after {waited} ms"
    );
    assert!(
        waited < 15_000,
        "waited for the lease's expiry: {waited} ms"
    );
    let (again, _) = ask_at(&host, "proxy.test", &path, &[]);
    assert_eq!(x_cache(&again), Some("HIT"));
    assert_eq!(host.sent_count("GET", "/blobs/"), 1);
}
