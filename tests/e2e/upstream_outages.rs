//! An upstream that hangs, under real Spin: what is cached answers at
//! once, a tag that may be served stale waits 5 s at most, and what is not
//! cached gets a 502 OCI error once `upstream_timeout` has passed.

use super::common::*;
use super::outages::{BOUND, timed};
use std::time::Duration;
use support::registry::{self, Pushed};
use support::{env, rt, spin};

/// A registry of the test's own (it can be stopped) with `v1` and `v2`
/// pushed, and an instance relaying it with `upstream_timeout = 8`; a
/// stored route `short.test` to it has a `tag_ttl` of a second.
fn on_a_registry_of_its_own(dir: &std::path::Path) -> (spin::Instance, Pushed, Pushed) {
    std::fs::create_dir_all(dir).unwrap();
    let upstream = rt().block_on(registry::start(dir, "hung", ""));
    let (repo, seed) = (REPO, format!("hung-upstream-{}", rand_suffix()));
    let cached = rt().block_on(registry::push_image(upstream, repo, "v1", &seed, "amd64"));
    let never = rt().block_on(registry::push_image(upstream, repo, "v2", &seed, "arm64"));
    let app = spin::derive_app(&dir.join("app"), &spin::Store::Sqlite, true);
    let short =
        serde_json::json!({"upstream": format!("http://{upstream}"), "cache": {"tag_ttl": 1}});
    spin::SqliteStore::of(&app, "default").set("route/short.test", short.to_string().as_bytes());
    let default_upstream = format!("http://{upstream}");
    let variables = [
        ("default_upstream", default_upstream.as_str()),
        ("upstream_timeout", "8"),
    ];
    let proxy = spin::Instance::start(&app, "hung-upstream", &variables);
    (proxy, cached, never)
}

const REPO: &str = "outage/hung-upstream";

/// An upstream that hangs: what is cached answers at once, what is not
/// gets a 502 OCI error after `upstream_timeout`, and nothing waits longer.
/// A tag past its `tag_ttl` waits 5 s for its revalidation at most, and is
/// then served stale.
#[test]
fn an_upstream_that_hangs_costs_upstream_timeout_and_the_cache_answers_meanwhile() {
    let dir = env().dir.join("hung-upstream");
    let (proxy, cached, never) = on_a_registry_of_its_own(&dir);
    let accept = [("accept", ACCEPT_ALL)];
    let url = |what: &str| format!("{}/v2/{REPO}/{what}", proxy.url());
    let by_digest = url(&format!("manifests/{}", cached.digest));
    let (tag, layer) = (
        url("manifests/v1"),
        url(&format!("blobs/{}", cached.layers[0])),
    );
    for what in [&tag, &by_digest, &layer] {
        get(what, &accept);
        assert_eq!(get(what, &accept).header("x-cache"), Some("HIT"), "{what}");
    }
    let short = [("accept", ACCEPT_ALL), ("host", "short.test")];
    // The same upstream and account: the same partition, cached above (a
    // hit, or revalidated if a second has passed).
    assert_eq!(get(&tag, &short).status, 200);
    std::thread::sleep(Duration::from_millis(1100));

    // A tag within its `tag_ttl`, a manifest by digest and a layer.
    registry::pause(&dir, "hung", true);
    for what in [&tag, &by_digest, &layer] {
        let (r, took) = timed(what, &accept);
        assert_eq!(
            (r.status, r.header("x-cache")),
            (200, Some("HIT")),
            "{what}"
        );
        assert!(took < Duration::from_millis(500), "{what} took {took:?}");
    }
    let stale_tag = tag.clone();
    let stale = std::thread::spawn(move || {
        timed(
            &stale_tag,
            &[("accept", ACCEPT_ALL), ("host", "short.test")],
        )
    });
    let (r, took) = timed(&url(&format!("manifests/{}", never.digest)), &accept);
    let (stale, stale_took) = stale.join().unwrap();
    registry::pause(&dir, "hung", false);
    assert_eq!(
        (stale.status, stale.header("x-cache")),
        (200, Some("STALE"))
    );
    assert_eq!(stale.body, cached.manifest);
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(error_code(&r), "UNKNOWN");
    let within = |secs| Duration::from_secs(secs)..Duration::from_secs(secs) + BOUND;
    assert!(
        within(8).contains(&took),
        "the uncached manifest took {took:?}"
    );
    assert!(
        within(5).contains(&stale_took),
        "the stale tag took {stale_took:?}"
    );
    eprintln!(
        "outages: with the upstream hung, an uncached manifest took {took:?}, a stale tag {stale_took:?}"
    );
    proxy.stop();
    registry::stop(&dir, "hung");
}
