//! Cold blob GETs with the cache on Redis, where two Spin instances share
//! it: one client, then a crowd of 16 split over both instances, each side
//! by side with the same GETs straight from the registry.

use super::{http, logged, redis, registry, spin};
use sha2::{Digest as _, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

pub const CLIENTS: usize = 16;

/// One repetition's figures.
#[derive(Default)]
pub struct Figures {
    pub single_direct: Vec<f64>,
    pub single_proxied: Vec<f64>,
    pub crowd_direct: Vec<f64>,
    pub crowd_proxied: Vec<f64>,
    pub crowd_upstream_gets: Vec<usize>,
    pub component_mib: f64,
    pub rss_mib: f64,
}

/// GETs `digest` from each address at once, checks every body, and
/// returns the wall time for all of them.
pub async fn all_at_once(addrs: &[SocketAddr], repo: &str, digest: &str) -> Duration {
    let started = Instant::now();
    let gets = addrs.iter().map(|addr| async move {
        let mut hasher = Sha256::new();
        let url = format!("http://{addr}/v2/{repo}/blobs/{digest}");
        let sink = |c: &[u8]| hasher.update(c);
        let r = http::send_with("GET", &url, &[], http::full(""), sink, false)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(r.status, 200, "{url}");
        assert_eq!(format!("sha256:{:x}", hasher.finalize()), digest, "{url}");
    });
    futures::future::join_all(gets).await;
    started.elapsed()
}

pub fn blob_gets(dir: &Path, repo: &str, digest: &str) -> usize {
    std::thread::sleep(Duration::from_millis(300));
    registry::access_log(dir, "upstream", repo)
        .iter()
        .filter(|l| l.starts_with("GET ") && l.ends_with(digest))
        .count()
}

/// One repetition: fresh blobs (cold everywhere), a fresh Redis and two
/// instances on it.
pub async fn measure(
    upstream: SocketAddr,
    dir: &Path,
    sizes: (u64, u64),
    seed: u64,
    into: &mut Figures,
) {
    let (single_size, crowd_size) = sizes;
    let repo = "bench/crowd";
    let single = registry::push_big_blob(upstream, repo, seed, single_size).await;
    let crowd = registry::push_big_blob(upstream, repo, seed + 1, crowd_size).await;
    let run = dir.join(format!("redis-{seed}"));
    let (server, port) = redis::start(&run);
    let app = spin::derive_app(&run.join("app"), &spin::Store::Redis(port), true);
    let route = format!("http://{upstream}");
    let vars = [("default_upstream", route.as_str())];
    let instances = [
        spin::Instance::start(&app, "a", &vars),
        spin::Instance::start(&app, "b", &vars),
    ];

    let secs = |d: Duration| d.as_secs_f64();
    into.single_direct
        .push(secs(all_at_once(&[upstream], repo, &single).await));
    let one = [instances[0].addr];
    into.single_proxied
        .push(secs(all_at_once(&one, repo, &single).await));

    let direct: Vec<SocketAddr> = vec![upstream; CLIENTS];
    into.crowd_direct
        .push(secs(all_at_once(&direct, repo, &crowd).await));
    let before = blob_gets(dir, repo, &crowd);
    let split: Vec<SocketAddr> = (0..CLIENTS).map(|i| instances[i % 2].addr).collect();
    into.crowd_proxied
        .push(secs(all_at_once(&split, repo, &crowd).await));
    into.crowd_upstream_gets
        .push(blob_gets(dir, repo, &crowd) - before);

    // The copies' checks run after the answers: their memory too.
    logged::wait_for_requests(&instances[0], 1 + CLIENTS / 2);
    logged::wait_for_requests(&instances[1], CLIENTS / 2);
    for i in &instances {
        into.component_mib = into.component_mib.max(logged::peak_memory_mib(i));
        into.rss_mib = into.rss_mib.max(i.peak_rss_mib());
        i.stop();
    }
    server.stop();
}
