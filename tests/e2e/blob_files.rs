//! Blob files (blob_store = files, the default) under real Spin: the
//! README's `spin up` writes them into the app's `blobs/`; without its
//! mount flags the directory is a read-only copy, which the proxy says once
//! and keeps blobs in the cache store instead; and instances that share
//! Redis but not a directory never send each other to a file they lack.

use super::common::*;
use sha2::{Digest as _, Sha256};
use std::time::Duration;
use support::{env, paced, registry, rt, spin};

#[test]
fn without_the_mount_flags_blobs_go_to_the_cache_store_and_the_page_says_why() {
    let e = env();
    let digest = rt().block_on(registry::push_big_blob(
        e.open,
        "files/readonly",
        801,
        3 << 20,
    ));
    let app = spin::derive_app(&e.dir.join("read-only-blobs"), &spin::Store::Sqlite, true);
    let upstream = format!("http://{}", e.open);
    let variables = [
        ("default_upstream", upstream.as_str()),
        ("admin_token", support::ADMIN_TOKEN),
    ];
    let proxy = spin::Instance::start_read_only_blobs(&app, "read-only", &variables);
    let url = format!("{}/v2/files/readonly/blobs/{digest}", proxy.url());
    let first = get(&url, &[]);
    assert_eq!((first.status, first.header("x-cache")), (200, Some("MISS")));
    let cache = spin::SqliteStore::of(&app, "cache");
    wait_cached(&cache, &digest);
    let second = get(&url, &[]);
    assert_eq!(
        (second.status, second.header("x-cache")),
        (200, Some("HIT"))
    );
    assert_eq!(registry::sha256(&second.body), digest);
    let chunks = cache
        .keys()
        .iter()
        .filter(|k| k.starts_with("cache/chunk/") && k.contains(&digest))
        .count();
    assert_eq!(chunks, 3, "1 MiB chunks in the cache store");
    assert!(cache.blob_file_uploads(&digest).is_empty());
    assert!(
        std::fs::read_dir(app.join("blobs"))
            .unwrap()
            .next()
            .is_none(),
        "the app's blobs/ was written"
    );

    let log = proxy.component_log();
    assert_eq!(
        log.matches("blob files: /blobs is not writable").count(),
        1,
        "{log}"
    );
    let admin = format!("Bearer {}", support::ADMIN_TOKEN);
    let page = get(
        &format!("{}/_registry-proxy", proxy.url()),
        &[("authorization", &admin)],
    );
    assert!(
        page.text().contains("Blob files are off"),
        "{}",
        page.text()
    );
    proxy.stop();
}

#[test]
fn instances_sharing_redis_but_not_a_directory_never_serve_each_others_files() {
    let e = env();
    let size: u64 = 6 << 20;
    let digest = rt().block_on(registry::push_big_blob(e.open, "files/apart", 802, size));
    let front = rt().block_on(paced::start(e.open, 4 << 20));
    let dir = e.dir.join("files-apart");
    let (_redis, port) = support::redis::start(&dir);
    let address = format!("127.0.0.1:{port}");
    let upstream = format!("http://{}", front.addr);
    let variables = [
        ("default_upstream", upstream.as_str()),
        ("stores", "redis"),
        ("redis_address", address.as_str()),
    ];
    // Two machines: each app its own blobs/, one Redis for the index.
    let a_app = spin::derive_app(&dir.join("a"), &spin::Store::Sqlite, true);
    let b_app = spin::derive_app(&dir.join("b"), &spin::Store::Sqlite, true);
    let a = spin::Instance::start(&a_app, "a", &variables);
    let b = spin::Instance::start(&b_app, "b", &variables);
    let path = format!("/v2/files/apart/blobs/{digest}");

    // b asks while a copies: it cannot read a's parts, so it does not follow.
    let a_url = format!("{}{path}", a.url());
    let leader = std::thread::spawn(move || get(&a_url, &[]));
    std::thread::sleep(Duration::from_millis(400));
    let during = get(&format!("{}{path}", b.url()), &[]);
    assert_eq!(during.status, 200);
    assert_ne!(during.header("x-cache"), Some("COALESCED"));
    assert_eq!(format!("sha256:{:x}", Sha256::digest(&during.body)), digest);
    let led = leader.join().unwrap();
    // Nor did it wait on the copy to find no file at its end.
    let logged = b.access_log();
    assert!(
        logged.iter().all(|l| l["cache"] != "coalesced"),
        "{logged:?}"
    );
    assert_eq!(registry::sha256(&led.body), digest);

    // Once a's copy is in the shared index, b still answers whole and
    // right, never from a's entry (it has no such file); a hits its own.
    std::thread::sleep(Duration::from_millis(800));
    let on_a = get(&format!("{}{path}", a.url()), &[]);
    assert_eq!((on_a.status, on_a.header("x-cache")), (200, Some("HIT")));
    let on_b = get(&format!("{}{path}", b.url()), &[]);
    assert_eq!(on_b.status, 200, "{}", on_b.text());
    assert_ne!(on_b.header("x-cache"), Some("HIT"));
    assert_eq!(registry::sha256(&on_b.body), digest);
    let log = b.component_log();
    assert!(!log.contains("cannot be read"), "{log}");
    a.stop();
    b.stop();
}
