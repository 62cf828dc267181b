//! A follower through another route to the same upstream (finding 7 of
//! the third review): two routes share a partition, one with a larger
//! `chunk_size`. A request through it follows a copy made through the
//! other, in a bucket, and reads the rest after the copy committed (its
//! parts then gone): it must find the copy's parts by the copy's part
//! size, not its own route's.

use super::common::*;
use super::objects::{garage, s3_variables, start};
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::time::Duration;
use support::{env, paced, registry, rt, spin};

#[test]
fn a_follower_through_a_route_of_another_chunk_size_gets_the_copys_bytes() {
    let e = env();
    let size: u64 = 24 << 20;
    let digest = rt().block_on(registry::push_big_blob(e.open, "routes/two", 707, size));
    let front = rt().block_on(paced::start(e.open, 8 << 20));
    let app = spin::derive_app(&e.dir.join("two-routes-app"), &spin::Store::Sqlite, true);
    let mut vars = s3_variables(garage(), 0, "two-routes/");
    vars.push(("default_upstream", format!("http://{}", front.addr)));
    let proxy = start(&app, "two-routes", &vars);
    let route = format!(
        r#"{{"upstream":"http://{}","cache":{{"chunk_size":8388608}}}}"#,
        front.addr
    );
    spin::SqliteStore::of(&app, "default").set("route/big-parts.test", route.as_bytes());
    let cache = spin::SqliteStore::of(&app, "cache");
    let path = format!("/v2/routes/two/blobs/{digest}");
    // The copy, through the default route (5 MiB parts in a bucket).
    let url = format!("{}{path}", proxy.url());
    let leader = std::thread::spawn(move || get(&url, &[]));
    settles("the copy taking its lease", || {
        cache.keys().iter().any(|k| k.starts_with("cache/lease/"))
    });
    std::thread::sleep(Duration::from_millis(500));
    let addr = proxy.url().trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: big-parts.test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut first = vec![0u8; 1 << 20];
    conn.read_exact(&mut first).unwrap();
    let head_end = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&first[..head_end]).to_lowercase();
    assert!(head.contains("x-cache: coalesced"), "{head}");
    wait_cached(&cache, &digest);
    let mut body = first[head_end..].to_vec();
    conn.read_to_end(&mut body).unwrap();
    assert_eq!(body.len() as u64, size);
    assert_eq!(format!("sha256:{:x}", Sha256::digest(&body)), digest);
    let led = leader.join().unwrap();
    assert_eq!(format!("sha256:{:x}", Sha256::digest(&led.body)), digest);
    proxy.stop();
}
