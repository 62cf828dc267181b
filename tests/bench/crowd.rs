//! Cold blob GETs with the cache on Redis, where two Spin instances share
//! it: one client, then a crowd of 16 split over both instances, each side
//! by side with the same GETs straight from the registry; and warm manifest
//! GETs, which show what a store call costs. Both ways to Redis: Spin's
//! key-value store, and the proxy's own connections (`stores = redis`).

use super::logged;
use sha2::{Digest as _, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{http, redis, registry, spin};

pub const CLIENTS: usize = 16;

/// How the instances reach Redis.
#[derive(Clone, Copy)]
pub enum Way {
    /// runtime-config.toml's Redis tables: Spin's key-value store.
    SpinKeyValue,
    /// `stores = redis`: Spin's outbound Redis, a connection per request.
    Outbound,
}

/// Sequential warm GETs of one manifest by digest, for their p50.
pub const MANIFEST_GETS: usize = 100;

/// One repetition's figures.
#[derive(Default)]
pub struct Figures {
    pub single_direct: Vec<f64>,
    pub single_proxied: Vec<f64>,
    pub crowd_direct: Vec<f64>,
    pub crowd_proxied: Vec<f64>,
    pub crowd_upstream_gets: Vec<usize>,
    /// p50 of a warm manifest GET by digest, ms.
    pub manifest_p50_ms: Vec<f64>,
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
    way: Way,
    into: &mut Figures,
) {
    let (single_size, crowd_size) = sizes;
    let repo = "bench/crowd";
    let single = registry::push_big_blob(upstream, repo, seed, single_size).await;
    let crowd = registry::push_big_blob(upstream, repo, seed + 1, crowd_size).await;
    let run = dir.join(format!("redis-{seed}"));
    let (server, port) = redis::start(&run);
    let instances = instances(upstream, &run, port, way);

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
    into.manifest_p50_ms
        .push(manifest_p50(upstream, instances[0].addr, seed).await);
    for i in &instances {
        into.component_mib = into.component_mib.max(logged::peak_memory_mib(i));
        into.rss_mib = into.rss_mib.max(i.rss_mib(spin::Rss::Peak));
        i.stop();
    }
    server.stop();
}

/// Two instances of one app in `run`, on the Redis at `port`, reaching it `way`.
fn instances(upstream: SocketAddr, run: &Path, port: u16, way: Way) -> [spin::Instance; 2] {
    let route = format!("http://{upstream}");
    let address = format!("127.0.0.1:{port}");
    let (store, vars) = match way {
        Way::SpinKeyValue => (
            spin::Store::Redis(port),
            vec![("default_upstream", route.as_str())],
        ),
        Way::Outbound => (
            spin::Store::Sqlite,
            vec![
                ("default_upstream", route.as_str()),
                ("stores", "redis"),
                ("redis_address", address.as_str()),
            ],
        ),
    };
    let app = spin::derive_app(&run.join("app"), &store, true);
    [
        spin::Instance::start(&app, "a", &vars),
        spin::Instance::start(&app, "b", &vars),
    ]
}

/// The p50 of warm GETs of one manifest by digest through `proxy`, in ms.
async fn manifest_p50(upstream: SocketAddr, proxy: SocketAddr, seed: u64) -> f64 {
    let image = registry::push_image(
        upstream,
        "bench/warm",
        "v1",
        &format!("warm-{seed}"),
        "amd64",
    )
    .await;
    let url = format!("http://{proxy}/v2/bench/warm/manifests/{}", image.digest);
    let accept = [("accept", "application/vnd.oci.image.manifest.v1+json")];
    assert_eq!(http::get(&url, &accept).await.status, 200, "{url}");
    let mut times = Vec::with_capacity(MANIFEST_GETS);
    for _ in 0..MANIFEST_GETS {
        let started = Instant::now();
        let r = http::get(&url, &accept).await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.header("x-cache"), Some("HIT"), "{url}");
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
