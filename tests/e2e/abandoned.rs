//! What clients that hang up can make the proxy fetch (finding 1 of the
//! third review): 24 clients each ask for a different cold 8 MiB blob
//! through an upstream that sends 1 MiB/s, and hang up after 0.3 s. Only
//! `max_detached_copies` of their copies go on; the others stop at once,
//! abort their uploads and keep nothing, and the proxy answers meanwhile.

use super::common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use support::{env, paced, registry, rt, spin};

const CLIENTS: u64 = 24;
const SIZE: u64 = 8 << 20;

#[test]
fn copies_whose_clients_hung_up_stop_past_the_detached_bound() {
    let e = env();
    let front = rt().block_on(paced::start(e.open, 1 << 20));
    let digests: Vec<String> = (0..CLIENTS)
        .map(|n| {
            rt().block_on(registry::push_big_blob(
                e.open,
                "abandoned/x",
                900 + n,
                SIZE,
            ))
        })
        .collect();
    let app = spin::derive_app(&e.dir.join("abandoned-app"), &spin::Store::Sqlite, true);
    let proxy = spin::Instance::start(
        &app,
        "abandoned",
        &[("default_upstream", &format!("http://{}", front.addr))],
    );
    let cache = spin::SqliteStore::of(&app, "cache");
    let addr = proxy.url().trim_start_matches("http://").to_string();
    let clients: Vec<_> = digests
        .iter()
        .map(|digest| {
            let (addr, path) = (addr.clone(), format!("/v2/abandoned/x/blobs/{digest}"));
            std::thread::spawn(move || read_then_hang_up(&addr, &path, Duration::from_millis(300)))
        })
        .collect();
    for c in clients {
        let read = c.join().unwrap();
        let head = String::from_utf8_lossy(&read[..read.len().min(200)]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
    }
    std::thread::sleep(Duration::from_secs(2));
    let sending = front.sending();
    let asked = Instant::now();
    let v2 = get(&format!("{}/v2/", proxy.url()), &[]);
    let took = asked.elapsed();
    eprintln!("abandoned: {sending} upstream GETs 2 s after their clients left; /v2/ in {took:?}");
    assert!(
        sending <= 4,
        "{sending} upstream GETs still run 2 s after their clients left"
    );
    // The proxy's own challenge, or the upstream's answer: answered at all.
    assert!(v2.status == 200 || v2.status == 401, "{}", v2.status);
    assert!(took < Duration::from_secs(1), "/v2/ took {took:?}");
    // The detached ones commit; the stopped ones left nothing.
    settles("the detached copies ending", || {
        front.sending() == 0 && !cache.keys().iter().any(|k| k.starts_with("cache/lease/"))
    });
    let kept: Vec<&String> = digests
        .iter()
        .filter(|d| {
            cache
                .keys()
                .iter()
                .any(|k| k.starts_with("cache/blob/") && k.ends_with(*d))
        })
        .collect();
    assert!(kept.len() <= 4, "{} blobs kept", kept.len());
    for digest in digests.iter().filter(|d| !kept.contains(d)) {
        assert!(
            chunk_uploads(&cache, digest).is_empty(),
            "{digest} left chunks"
        );
    }
    assert!(
        proxy
            .component_log()
            .contains("a copy no client reads stopped"),
        "{}",
        proxy.component_log()
    );
    proxy.stop();
}

/// Asks for `path`, reads what comes for `reading` from the answer's first
/// bytes (10 s at most before them), then hangs up; what it read.
fn read_then_hang_up(addr: &str, path: &str, reading: Duration) -> Vec<u8> {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let asked = Instant::now();
    let mut started: Option<Instant> = None;
    let mut read = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    while started.map_or(asked.elapsed() < Duration::from_secs(10), |s| {
        s.elapsed() < reading
    }) {
        if started.is_none() && !read.is_empty() {
            started = Some(Instant::now());
        }
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => read.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
    }
    read
}
