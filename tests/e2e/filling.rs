//! Nobody fills the store through the blob cache: it keeps within
//! `cache_max_size` by evicting the oldest blobs, copies each blob once at a
//! time, and an unfinished copy leaves no chunk behind.

use super::common::*;
use std::io::{Read, Write};
use support::http::Reply;
use support::{OPEN, env, registry, rt, spin};

#[test]
fn the_cache_keeps_within_its_bound_oldest_first() {
    let e = env();
    let dir = e.dir.join("bounded-app");
    let app = spin::derive_app(&dir, &spin::Store::Sqlite, true);
    let proxy = spin::Instance::start(
        &app,
        "bounded",
        &[
            ("default_upstream", &format!("http://{}", e.open)),
            ("cache_max_size", "1MiB"),
        ],
    );
    let cache = spin::SqliteStore::of(&app, "cache");
    let blobs: Vec<String> = (0..3)
        .map(|i| {
            rt().block_on(registry::push_big_blob(
                e.open,
                "bounded/x",
                40 + i,
                400 << 10,
            ))
        })
        .collect();
    for digest in &blobs {
        let r = get(&format!("{}/v2/bounded/x/blobs/{digest}", proxy.url()), &[]);
        assert_eq!((r.status, r.body.len()), (200, 400 << 10));
        wait_cached(&cache, digest);
    }
    let cached = |d: &str| {
        cache
            .keys()
            .iter()
            .any(|k| k.starts_with("cache/blob/") && k.ends_with(d))
    };
    // The last commit evicts the oldest.
    settles("evicting the oldest blob", || !cached(&blobs[0]));
    assert!(cached(&blobs[1]) && cached(&blobs[2]));
    assert!(
        chunk_uploads(&cache, &blobs[0]).is_empty(),
        "its chunks stayed"
    );
    // Evicted, it is fetched and cached again.
    let r = get(
        &format!("{}/v2/bounded/x/blobs/{}", proxy.url(), blobs[0]),
        &[],
    );
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    proxy.stop();
}

/// A client that hangs up does not stop the copy it started: the copy
/// goes on at the upstream's pace and commits, so the next request hits.
#[test]
fn a_copy_goes_on_when_its_client_hangs_up() {
    let e = env();
    let digest = rt().block_on(registry::push_big_blob(
        e.open,
        "filling/abandoned",
        51,
        32 << 20,
    ));
    let path = format!("/v2/filling/abandoned/blobs/{digest}");
    // Read the head of the answer, then hang up.
    let mut conn = std::net::TcpStream::connect(e.proxies[OPEN].addr).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n",
        e.proxies[OPEN].addr
    )
    .unwrap();
    let mut head = vec![0u8; 2 << 20];
    conn.read_exact(&mut head).unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200"));
    drop(conn);
    wait_cached(&e.cache, &digest);
    let url = format!("{}{path}", e.proxy(OPEN));
    assert_eq!(get(&url, &[]).header("x-cache"), Some("HIT"));
    assert_eq!(upstream_blob_gets(&digest), 1);
    assert_eq!(chunk_uploads(&e.cache, &digest).len(), 1);
}

/// A first client reading at about 2 MB/s sets the pace of neither the
/// copy nor the request that follows it: that one gets the whole blob at
/// the upstream's speed, and the blob is cached while the slow one reads.
#[test]
fn a_slow_first_client_holds_back_neither_the_copy_nor_its_followers() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let e = env();
    let size = 64 << 20;
    let digest = rt().block_on(registry::push_big_blob(e.open, "filling/slow", 101, size));
    let path = format!("/v2/filling/slow/blobs/{digest}");
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut conn = std::net::TcpStream::connect(e.proxies[OPEN].addr).unwrap();
            let addr = e.proxies[OPEN].addr;
            write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
            let mut piece = vec![0u8; 64 << 10];
            while !done.load(SeqCst) && conn.read(&mut piece).is_ok_and(|n| n > 0) {
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        let started = std::time::Instant::now();
        let r = get(&format!("{}{path}", e.proxy(OPEN)), &[]);
        let took = started.elapsed();
        let whole = r.status == 200 && registry::sha256(&r.body) == digest;
        done.store(true, SeqCst);
        assert!(whole, "the follower got {} bytes", r.body.len());
        assert!(
            took.as_secs() < 15,
            "the follower took {took:?}, at the slow client's pace"
        );
        wait_cached(&e.cache, &digest);
    });
    assert_eq!(upstream_blob_gets(&digest), 1);
}

/// Blob GETs the open registry saw for `digest`.
pub(super) fn upstream_blob_gets(digest: &str) -> usize {
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = std::fs::read_to_string(env().dir.join("open.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("\"GET /v2/") && l.contains(&format!("/blobs/{digest}")))
        .count()
}

/// `n` concurrent GETs of one cold blob, spread over `proxies`: every
/// client gets the right bytes.
pub(super) fn crowd(
    proxies: &[String],
    repo: &str,
    digest: &str,
    size: usize,
    n: usize,
) -> Vec<Reply> {
    let replies: Vec<Result<Reply, String>> = std::thread::scope(|s| {
        let pulls: Vec<_> = (0..n)
            .map(|i| {
                let url = format!("{}/v2/{repo}/blobs/{digest}", proxies[i % proxies.len()]);
                s.spawn(move || try_get(&url, &[]))
            })
            .collect();
        pulls.into_iter().map(|p| p.join().unwrap()).collect()
    });
    let failed: Vec<&String> = replies.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {n} failed: {failed:?}",
        failed.len()
    );
    let replies: Vec<Reply> = replies.into_iter().map(Result::unwrap).collect();
    for r in &replies {
        assert_eq!(
            (r.status, r.body.len()),
            (200, size),
            "{:?}",
            r.header("x-cache")
        );
        let got = format!(
            "sha256:{:x}",
            <sha2::Sha256 as sha2::Digest>::digest(&r.body)
        );
        assert_eq!(got, digest);
    }
    replies
}

#[test]
fn concurrent_misses_make_one_copy_and_one_upstream_fetch() {
    let e = env();
    let digest = rt().block_on(registry::push_big_blob(
        e.open,
        "filling/crowd",
        61,
        32 << 20,
    ));
    let replies = crowd(&[e.proxy(OPEN)], "filling/crowd", &digest, 32 << 20, 8);
    let followers = replies
        .iter()
        .filter(|r| r.header("x-cache") == Some("COALESCED"))
        .count();
    assert!(followers >= 1, "no request followed the copy");
    assert_eq!(
        upstream_blob_gets(&digest),
        1,
        "the crowd fetched more than once"
    );
    assert_eq!(
        chunk_uploads(&e.cache, &digest).len(),
        1,
        "more than one copy was stored"
    );
    let url = format!("{}/v2/filling/crowd/blobs/{digest}", e.proxy(OPEN));
    wait_cached(&e.cache, &digest);
    assert_eq!(get(&url, &[]).header("x-cache"), Some("HIT"));
}

#[test]
fn a_crowd_over_two_instances_sharing_redis_fetches_once() {
    let e = env();
    let dir = e.dir.join("crowd");
    let (redis, port) = support::redis::start(&dir);
    let app = spin::derive_app(&dir.join("app"), &spin::Store::Redis(port), true);
    let upstream = format!("http://{}", e.open);
    let vars = [("default_upstream", upstream.as_str())];
    let instances = [
        spin::Instance::start(&app, "a", &vars),
        spin::Instance::start(&app, "b", &vars),
    ];
    let digest = rt().block_on(registry::push_big_blob(
        e.open,
        "filling/redis",
        71,
        64 << 20,
    ));
    let urls: Vec<String> = instances.iter().map(spin::Instance::url).collect();
    crowd(&urls, "filling/redis", &digest, 64 << 20, 16);
    let gets = upstream_blob_gets(&digest);
    for i in &instances {
        i.stop();
    }
    redis.stop();
    assert_eq!(gets, 1, "16 clients on two instances fetched {gets} times");
}

#[test]
fn followers_of_a_corrupt_copy_fail_too_and_nothing_is_cached() {
    use std::sync::atomic::Ordering::SeqCst;
    let e = env();
    let _turn = FRONT_BLOBS.lock().unwrap_or_else(|p| p.into_inner());
    let digest = rt().block_on(registry::push_big_blob(
        e.open,
        "filling/corrupt",
        81,
        16 << 20,
    ));
    let url = format!("{}/v2/filling/corrupt/blobs/{digest}", e.proxy(OPEN));
    let host = [("host", "corrupt.test")];
    e.corrupting.corrupt.store(true, SeqCst);
    let replies: Vec<_> = std::thread::scope(|s| {
        let pulls: Vec<_> = (0..4).map(|_| s.spawn(|| try_get(&url, &host))).collect();
        pulls.into_iter().map(|p| p.join().unwrap()).collect()
    });
    e.corrupting.corrupt.store(false, SeqCst);
    for r in &replies {
        let good = r.as_ref().is_ok_and(|r| {
            r.status == 200 && r.body.len() == 16 << 20 && {
                format!(
                    "sha256:{:x}",
                    <sha2::Sha256 as sha2::Digest>::digest(&r.body)
                ) == digest
            }
        });
        assert!(!good, "a client got the blob from a corrupt copy");
    }
    settles("removing a corrupt copy's chunks", || {
        chunk_uploads(&e.cache, &digest).is_empty()
    });
}

#[test]
fn followers_of_a_killed_leader_fail_cleanly_and_the_next_request_succeeds() {
    let e = env();
    let digest = rt().block_on(registry::push_big_blob(
        e.open,
        "filling/killed",
        91,
        64 << 20,
    ));
    let path = format!("/v2/filling/killed/blobs/{digest}");
    let leader = spin::Instance::start(&e.app, "leader", &[("default_upstream", "")]);
    e.store.set(
        &format!("route/{}", leader.addr),
        serde_json::json!({"upstream": format!("http://{}", e.open)})
            .to_string()
            .as_bytes(),
    );
    // The leader's client reads a little, then stops reading.
    let mut conn = std::net::TcpStream::connect(leader.addr).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", leader.addr).unwrap();
    let mut head = vec![0u8; 2 << 20];
    conn.read_exact(&mut head).unwrap();
    let url = format!("{}{path}", e.proxy(OPEN));
    let follower = std::thread::spawn(move || try_get(&url, &[]));
    std::thread::sleep(std::time::Duration::from_millis(500));
    leader.stop();
    let followed = follower.join().unwrap();
    let whole = followed
        .as_ref()
        .is_ok_and(|r| r.status == 200 && r.body.len() == 64 << 20);
    assert!(
        !whole || followed.as_ref().unwrap().header("x-cache") != Some("COALESCED"),
        "a follower finished a copy whose leader was killed"
    );
    let r = get(&format!("{}{path}", e.proxy(OPEN)), &[]);
    assert_eq!((r.status, r.body.len()), (200, 64 << 20));
    let got = format!(
        "sha256:{:x}",
        <sha2::Sha256 as sha2::Digest>::digest(&r.body)
    );
    assert_eq!(got, digest);
}
