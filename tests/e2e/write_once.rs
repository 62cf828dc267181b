//! A cold copy into a bucket writes each byte once: one multipart upload of
//! the blob's own key, whose parts the bucket shows nobody until the digest
//! was checked and the upload completed. (Parts written as objects of
//! their own and then copied into the blob wrote every byte twice, on
//! every replica.) Garage logs each request it takes; the test counts them.

use super::common::*;
use super::objects::{garage, s3_variables, start};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use support::{env, paced, registry, rt, spin};

const PREFIX: &str = "write-once/";

/// Garage's log lines of requests for keys under [`PREFIX`] with `method`.
fn requests(method: &str) -> Vec<String> {
    let log = garage().log(0);
    let mark = format!(" {method} /{}/{PREFIX}", support::garage::BUCKET);
    log.lines()
        .filter(|l| l.contains(&mark))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_cold_copy_writes_each_part_once_and_shows_nothing_before_its_check() {
    let e = env();
    let g = garage();
    // Four parts of 5 MiB and a short one, sent over three seconds.
    let size: u64 = (24 << 20) + 12345;
    let digest = rt().block_on(registry::push_big_blob(e.open, "write/once", 811, size));
    let front = rt().block_on(paced::start(e.open, 8 << 20));
    let app = spin::derive_app(&e.dir.join("write-once-app"), &spin::Store::Sqlite, true);
    let mut vars = s3_variables(g, 0, PREFIX);
    vars.push(("default_upstream", format!("http://{}", front.addr)));
    let proxy = start(&app, "write-once", &vars);
    let url = format!("{}/v2/write/once/blobs/{digest}", proxy.url());
    let done = AtomicBool::new(false);
    let seen = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut seen = std::collections::BTreeSet::new();
            while !done.load(SeqCst) {
                let keys = g.keys(0, PREFIX);
                // Listed while the upstream still sent: before any check.
                if front.sending() > 0 {
                    seen.extend(keys.into_iter().map(|(key, _)| key));
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            seen
        });
        let r = get(&url, &[]);
        done.store(true, SeqCst);
        assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
        assert_eq!(registry::sha256(&r.body), digest);
        watcher.join().unwrap()
    });
    // While the upstream sent, the copy stored parts: none of it showed.
    assert!(seen.is_empty(), "objects during the copy: {seen:?}");
    settles("the blob in the bucket", || g.keys(0, PREFIX).len() == 1);
    let stored = g.keys(0, PREFIX);
    assert!(
        stored[0].0.starts_with(&format!("{PREFIX}blobs/")),
        "{stored:?}"
    );
    assert_eq!(stored[0].1, size);
    // One PUT of each part's bytes, and nothing else written.
    let puts = requests("PUT");
    assert_eq!(puts.len(), 5, "{puts:#?}");
    for (n, put) in puts.iter().enumerate() {
        assert!(put.contains(&format!("partNumber={}", n + 1)), "{put}");
        assert!(!put.contains("x-amz-copy-source"), "{put}");
    }
    // The start and the completion of the multipart upload.
    assert_eq!(requests("POST").len(), 2, "{:#?}", requests("POST"));
    assert!(requests("DELETE").is_empty());
    let r = get(&url, &[]);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    proxy.stop();
}

/// Under a key budget (the hosted profile) nothing stages the parts for
/// followers, and the bucket shows none before the blob is complete: a
/// crowd still costs one upstream GET, its followers waiting for the blob.
#[test]
fn a_crowd_without_a_stage_waits_for_the_blob_and_fetches_once() {
    let e = env();
    let size: u64 = 16 << 20;
    let digest = rt().block_on(registry::push_big_blob(e.open, "write/crowd", 812, size));
    let front = rt().block_on(paced::start(e.open, 8 << 20));
    let app = spin::derive_app(&e.dir.join("write-crowd-app"), &spin::Store::Sqlite, true);
    let mut vars = s3_variables(garage(), 0, "write-crowd/");
    vars.push(("default_upstream", format!("http://{}", front.addr)));
    vars.push(("kv_max_keys", "1000".into()));
    let proxy = start(&app, "write-crowd", &vars);
    let replies = super::filling::crowd(&[proxy.url()], "write/crowd", &digest, size as usize, 6);
    let coalesced = replies
        .iter()
        .filter(|r| r.header("x-cache") == Some("COALESCED"))
        .count();
    assert!(coalesced >= 1, "nobody followed the copy");
    assert_eq!(super::filling::upstream_blob_gets(&digest), 1);
    proxy.stop();
}
