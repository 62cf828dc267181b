//! A store that goes away and comes back, under real Spin: with the stores
//! in Redis (`stores = redis`), Redis killed during pulls answers every
//! request within the bound, pulls go on from the upstream, and the cache
//! fills again within seconds of Redis's return.

use super::common::*;
use std::time::{Duration, Instant};
use support::watched::Watched;
use support::{env, registry, rt, spin};

/// The bound on a request while a store is away.
pub const BOUND: Duration = Duration::from_secs(2);

/// A GET and how long it took.
pub fn timed(url: &str, headers: &[(&str, &str)]) -> (support::http::Reply, Duration) {
    let started = Instant::now();
    let reply = get(url, headers);
    (reply, started.elapsed())
}

/// How long after `since` a GET of `url` first answers with `X-Cache:
/// outcome`: the store is used again. Fails past the 5 s.
pub fn used_again(url: &str, headers: &[(&str, &str)], outcome: &str, since: Instant) -> Duration {
    let mut seen = None;
    while since.elapsed() < Duration::from_secs(5) && seen.as_deref() != Some(outcome) {
        seen = get(url, headers).header("x-cache").map(String::from);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        seen.as_deref(),
        Some(outcome),
        "{url}: not used again within 5 s"
    );
    since.elapsed()
}

/// An instance with its stores in a Redis of its own (`stores = redis`) at
/// `host` (an IP address, or a name for Spin's outbound Redis), relaying
/// the open registry; the Redis and its port.
fn on_redis(dir: &std::path::Path, name: &str, host: &str) -> (spin::Instance, Watched, u16) {
    let (redis, port) = support::redis::start(&dir.join("redis"));
    let app = spin::derive_app(&dir.join("app"), &spin::Store::Sqlite, true);
    let upstream = format!("http://{}", env().open);
    let address = format!("{host}:{port}");
    let variables = [
        ("default_upstream", upstream.as_str()),
        ("stores", "redis"),
        ("redis_address", address.as_str()),
        ("admin_token", support::ADMIN_TOKEN),
    ];
    (spin::Instance::start(&app, name, &variables), redis, port)
}

#[test]
fn redis_killed_and_back_costs_a_bounded_wait_and_the_cache_fills_again() {
    let e = env();
    let dir = e.dir.join("outages");
    let (proxy, redis, port) = on_redis(&dir, "outages", "127.0.0.1");
    let seed = format!("outage-{}", rand_suffix());
    let cached = rt().block_on(registry::push_image(
        e.open,
        "outage/cached",
        "v1",
        &seed,
        "amd64",
    ));
    let seed = format!("outage-never-{}", rand_suffix());
    let never = rt().block_on(registry::push_image(
        e.open,
        "outage/never",
        "v1",
        &seed,
        "amd64",
    ));
    let accept = [("accept", ACCEPT_ALL)];
    let manifest = format!("{}/v2/outage/cached/manifests/v1", proxy.url());
    let blob = format!(
        "{}/v2/outage/cached/blobs/{}",
        proxy.url(),
        cached.layers[0]
    );
    for url in [&manifest, &blob] {
        assert_eq!(get(url, &accept).header("x-cache"), Some("MISS"), "{url}");
    }
    settles("the blob is cached", || {
        get(&blob, &accept).header("x-cache") == Some("HIT")
    });

    redis.stop();
    let home = format!("{}/", proxy.url());
    let base = format!("{}/v2/", proxy.url());
    let mut slowest = Duration::ZERO;
    for url in [&home, &base, &manifest, &blob] {
        let (r, took) = timed(url, &accept);
        assert!(took < BOUND, "{url} took {took:?} with Redis away");
        assert!(r.status == 200 || r.status == 401, "{url}: {}", r.status);
        slowest = slowest.max(took);
    }
    eprintln!("outages: the slowest answer with Redis away took {slowest:?}");
    let (r, _) = timed(&blob, &accept);
    assert_eq!(r.header("x-cache"), Some("BYPASS"));
    assert_eq!(
        r.body.len() as u64,
        r.header("content-length").unwrap().parse::<u64>().unwrap()
    );
    // A pull of what was never cached, and one of what was, go on.
    let proxy_host = proxy.url();
    assert_eq!(
        pulled_digest(&proxy_host, "outage/never:v1", None, false),
        never.digest
    );
    assert_eq!(
        pulled_digest(&proxy_host, "outage/cached:v1", None, false),
        cached.digest
    );

    // The status page and the metrics say which store is away.
    let admin = format!("Bearer {}", support::ADMIN_TOKEN);
    let (metrics, took) = timed(
        &format!("{}/_registry-proxy/metrics", proxy.url()),
        &[("authorization", admin.as_str())],
    );
    assert!(took < BOUND);
    let text = metrics.text();
    assert!(
        text.contains("registry_proxy_store_up{store=\"cache\"} 0"),
        "{text}"
    );

    // Back on the same port: within 5 s the cache is used again.
    let _back = support::redis::start_on(&dir.join("redis"), port);
    let returned = Instant::now();
    let never_blob = format!("{}/v2/outage/never/blobs/{}", proxy.url(), never.layers[0]);
    let took = used_again(&never_blob, &accept, "MISS", returned);
    eprintln!("outages: the cache was used again {took:?} after Redis returned");
    settles("what Redis lost is cached again", || {
        get(&never_blob, &accept).header("x-cache") == Some("HIT")
    });
    let text = get(
        &format!("{}/_registry-proxy/metrics", proxy.url()),
        &[("authorization", admin.as_str())],
    )
    .text();
    assert!(
        text.contains("registry_proxy_store_up{store=\"cache\"} 1"),
        "{text}"
    );
    proxy.stop();
}

#[test]
fn an_upstream_that_resets_mid_blob_fails_the_client_and_leaves_nothing() {
    let e = env();
    let image = rt().block_on(registry::push_image(
        e.open,
        "outage/reset",
        "v1",
        &format!("outage-reset-{}", rand_suffix()),
        "amd64",
    ));
    let layer = &image.layers[0];
    let url = format!("{}/v2/outage/reset/blobs/{layer}", e.proxy(support::OPEN));
    let host = [("host", "corrupt.test")];
    let _turn = FRONT_BLOBS.lock().unwrap_or_else(|p| p.into_inner());
    let cut = &e.corrupting.cut;
    cut.store(true, std::sync::atomic::Ordering::SeqCst);
    let cut_short = try_get(&url, &host);
    cut.store(false, std::sync::atomic::Ordering::SeqCst);
    let whole = cut_short
        .as_ref()
        .is_ok_and(|r| r.status == 200 && registry::sha256(&r.body) == *layer);
    assert!(!whole, "a blob cut short upstream reached the client whole");
    settles("removing the cut copy's chunks", || {
        chunk_uploads(&e.cache, layer).is_empty()
    });
    let r = get(&url, &host);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    assert_eq!(registry::sha256(&r.body), *layer);
}

#[test]
fn a_copy_whose_instance_was_killed_is_taken_over_and_the_first_get_is_whole() {
    let e = env();
    let dir = e.dir.join("killed-copy");
    let app = spin::derive_app(&dir.join("app"), &spin::Store::Sqlite, true);
    let upstream = format!("http://{}", e.corrupting.addr);
    let variables = [("default_upstream", upstream.as_str())];
    let seed = format!("killed-copy-{}", rand_suffix());
    let image = rt().block_on(registry::push_image(
        e.open,
        "outage/killed",
        "v1",
        &seed,
        "amd64",
    ));
    let layer = image.layers[0].clone();
    let cache = spin::SqliteStore::of(&app, "cache");
    let leases = || {
        cache
            .keys()
            .into_iter()
            .filter(|k| k.starts_with("cache/lease/") && k.ends_with(&layer))
            .count()
    };
    let _turn = FRONT_BLOBS.lock().unwrap_or_else(|p| p.into_inner());
    let stall = e.corrupting.stall.clone();
    stall.store(true, std::sync::atomic::Ordering::SeqCst);
    let first = spin::Instance::start(&app, "first", &variables);
    let url = format!("{}/v2/outage/killed/blobs/{layer}", first.url());
    let client = std::thread::spawn(move || try_get(&url, &[]));
    settles("the copy holds the blob's lease", || leases() == 1);
    // SIGKILL: the copy's lease stays behind, live for its whole expiry.
    first.stop();
    let _ = client.join();
    stall.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(leases(), 1, "the killed copy's lease is still there");

    let second = spin::Instance::start(&app, "second", &variables);
    let url = format!("{}/v2/outage/killed/blobs/{layer}", second.url());
    let started = Instant::now();
    let r = get(&url, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(registry::sha256(&r.body), layer, "the first GET is whole");
    assert_eq!(r.header("x-cache"), Some("MISS"), "copied in its place");
    eprintln!(
        "outages: the first GET after the restart took {:?}",
        started.elapsed()
    );
    settles("the blob is cached", || {
        get(&url, &[]).header("x-cache") == Some("HIT")
    });
    second.stop();
}

#[test]
fn a_redis_that_hangs_costs_a_bounded_wait_and_is_used_again_once_it_answers() {
    hang_redis("127.0.0.1");
}

/// Spin's outbound Redis cannot be timed out: the requests of the hang's
/// first 2 s wait for Redis, and every later one takes it as away.
#[test]
fn a_redis_named_by_host_name_that_hangs_holds_only_the_first_requests() {
    hang_redis("localhost");
}

/// Redis stopped (`SIGSTOP`) with a blob cached and one not, then resumed.
fn hang_redis(host: &str) {
    let e = env();
    let name = format!("hung-{host}");
    let (proxy, redis, _) = on_redis(&e.dir.join(&name), &name, host);
    let seed = format!("hung-{}", rand_suffix());
    let repo = format!("outage/{name}");
    let image = rt().block_on(registry::push_image(e.open, &repo, "v1", &seed, "amd64"));
    let accept = [("accept", ACCEPT_ALL)];
    let manifest = format!("{}/v2/{repo}/manifests/v1", proxy.url());
    let blob = |n: usize| format!("{}/v2/{repo}/blobs/{}", proxy.url(), image.layers[n]);
    assert_eq!(get(&blob(0), &accept).header("x-cache"), Some("MISS"));
    settles("the blob is cached", || {
        get(&blob(0), &accept).header("x-cache") == Some("HIT")
    });

    // SIGSTOP: Redis holds its connections and answers nothing. Over a
    // socket the first request waits out its call's deadline and is served
    // from the upstream; through Spin it waits until Redis answers.
    redis.pause();
    let url = manifest.clone();
    let first = std::thread::spawn(move || timed(&url, &[("accept", ACCEPT_ALL)]));
    let first = match host.parse::<std::net::IpAddr>() {
        Ok(_) => {
            let (r, took) = first.join().unwrap();
            assert_eq!(r.status, 200, "the first request with Redis hung");
            assert!(
                took < BOUND,
                "the first request took {took:?} with Redis hung"
            );
            eprintln!("outages: the first request with Redis hung took {took:?}");
            None
        }
        Err(_) => {
            std::thread::sleep(BOUND + Duration::from_millis(500));
            Some(first)
        }
    };
    let home = format!("{}/", proxy.url());
    let base = format!("{}/v2/", proxy.url());
    let mut slowest = Duration::ZERO;
    for url in [&home, &base, &manifest, &blob(0), &blob(1)].repeat(3) {
        let (r, took) = timed(url, &accept);
        assert!(took < BOUND, "{url} took {took:?} with Redis hung");
        assert!(r.status == 200 || r.status == 401, "{url}: {}", r.status);
        slowest = slowest.max(took);
    }
    eprintln!("outages: {host}: the slowest later answer with Redis hung took {slowest:?}");
    let (r, _) = timed(&blob(1), &accept);
    assert_eq!(r.header("x-cache"), Some("BYPASS"));
    assert_eq!(registry::sha256(&r.body), image.layers[1]);

    // SIGCONT: a request still waiting gets its answer, and within 5 s the
    // cache is used again.
    redis.resume();
    let resumed = Instant::now();
    if let Some(first) = first {
        let (r, took) = first.join().unwrap();
        assert_eq!(r.status, 200, "the request that waited on Redis");
        eprintln!("outages: {host}: the request caught by the hang took {took:?}");
    }
    let took = used_again(&blob(1), &accept, "MISS", resumed);
    eprintln!("outages: {host}: Redis was used again {took:?} after it went on");
    proxy.stop();
}
