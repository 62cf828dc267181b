//! Nobody fills the store through the blob cache: it keeps within
//! `cache_max_size` by evicting the oldest blobs, copies each blob once at a
//! time, and an unfinished copy leaves no chunk behind.

use super::common::*;
use super::support::http::Reply;
use super::support::{OPEN, env, registry, rt, spin};
use std::io::{Read, Write};

fn chunk_uploads(cache: &spin::SqliteStore, digest: &str) -> Vec<String> {
    let mut uploads: Vec<String> = cache
        .keys()
        .iter()
        .filter(|k| k.starts_with("cache/chunk/") && k.contains(digest))
        .filter_map(|k| k.rsplit('/').nth(1).map(str::to_string))
        .collect();
    uploads.sort();
    uploads.dedup();
    uploads
}

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
    }
    let cached = |d: &str| {
        cache
            .keys()
            .iter()
            .any(|k| k.starts_with("cache/blob/") && k.ends_with(d))
    };
    assert!(!cached(&blobs[0]), "the oldest blob stayed past the bound");
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

#[test]
fn an_abandoned_copy_leaves_no_chunks_and_frees_the_blob() {
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
    let mut left = chunk_uploads(&e.cache, &digest);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = chunk_uploads(&e.cache, &digest);
    }
    assert!(left.is_empty(), "an abandoned copy left chunks: {left:?}");
    // The next request copies it at once, and the one after hits.
    let url = format!("{}{path}", e.proxy(OPEN));
    assert_eq!(get(&url, &[]).header("x-cache"), Some("MISS"));
    assert_eq!(get(&url, &[]).header("x-cache"), Some("HIT"));
}

#[test]
fn concurrent_misses_make_one_copy() {
    let e = env();
    let digest = rt().block_on(registry::push_big_blob(
        e.open,
        "filling/crowd",
        61,
        32 << 20,
    ));
    let url = format!("{}/v2/filling/crowd/blobs/{digest}", e.proxy(OPEN));
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let pulls: Vec<_> = (0..4).map(|_| s.spawn(|| get(&url, &[]))).collect();
        pulls.into_iter().map(|p| p.join().unwrap()).collect()
    });
    for r in &replies {
        assert_eq!((r.status, r.body.len()), (200, 32 << 20));
    }
    assert_eq!(
        chunk_uploads(&e.cache, &digest).len(),
        1,
        "more than one copy was stored"
    );
    assert_eq!(get(&url, &[]).header("x-cache"), Some("HIT"));
}
