//! Pulls as a client does them, timed: one big layer and an image of many
//! small ones, straight from the registry, through registry-proxy (with its
//! cache off, streaming only, and caching) and through distribution's own
//! proxy; and the pushes that put the images upstream.

use super::plan::{BIG, MANY, Plan};
use super::proxy_process::{Distribution, ProxyProcess};
use sha2::{Digest as _, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::http;
use support::registry::{self, OCI_MANIFEST};

/// The big layer's paths, in the order of [`Pulls::big_cold`].
pub const BIG_PATHS: [&str; 4] = [
    "direct",
    "registry-proxy, cache off (streaming)",
    "registry-proxy",
    "distribution proxy",
];
/// The many-layer image's paths, in the order of [`Pulls::many_cold`].
pub const MANY_PATHS: [&str; 3] = ["direct", "registry-proxy", "distribution proxy"];

/// What the pulls came to, one entry a repetition.
#[derive(Default)]
pub struct Pulls {
    /// The big layer, cold, in MiB/s, for each of [`BIG_PATHS`].
    pub big_cold: [Vec<f64>; 4],
    /// The big layer, warm, in MiB/s.
    pub big_warm: [Vec<f64>; 4],
    /// The many-layer image, cold, in seconds, for each of [`MANY_PATHS`].
    pub many_cold: [Vec<f64>; 3],
    /// The many-layer image, warm, in seconds.
    pub many_warm: [Vec<f64>; 3],
    /// Upstream GETs of the last cold and warm many-layer pulls (none
    /// counted for direct).
    pub many_gets: [(usize, usize); 3],
    /// Peak RSS of `spin up`, MiB, cache off.
    pub streaming_rss: Vec<f64>,
    /// Peak RSS of `spin up`, MiB, caching.
    pub caching_rss: Vec<f64>,
    /// Peak component linear memory, MiB, cache off.
    pub streaming_component: Vec<f64>,
    /// Peak component linear memory, MiB, caching.
    pub caching_component: Vec<f64>,
}

impl Pulls {
    /// Each path in turn, `plan.repetitions` times.
    pub async fn measure(plan: &Plan, upstream: SocketAddr, dir: &Path) -> Pulls {
        let mut pulls = Pulls::default();
        for rep in 0..plan.repetitions {
            pulls.direct(plan, upstream).await;
            pulls.streaming(plan, upstream, dir).await;
            pulls.caching(plan, upstream, dir).await;
            pulls.distribution(plan, upstream, dir, rep).await;
        }
        pulls
    }

    /// Straight from the registry: cold and warm are the same thing.
    async fn direct(&mut self, plan: &Plan, upstream: SocketAddr) {
        let d = pull(upstream, BIG).await;
        self.big_cold[0].push(mib_per_s(plan.big_layer, d));
        let d = pull(upstream, BIG).await;
        self.big_warm[0].push(mib_per_s(plan.big_layer, d));
        self.many_cold[0].push(pull(upstream, MANY).await.as_secs_f64());
        self.many_warm[0].push(pull(upstream, MANY).await.as_secs_f64());
    }

    /// registry-proxy without its cache: every pull streams through.
    async fn streaming(&mut self, plan: &Plan, upstream: SocketAddr, dir: &Path) {
        let host = ProxyProcess::start(upstream, dir, false);
        let d = pull(host.addr, BIG).await;
        self.big_cold[1].push(mib_per_s(plan.big_layer, d));
        let d = pull(host.addr, BIG).await;
        self.big_warm[1].push(mib_per_s(plan.big_layer, d));
        host.settle(6);
        self.streaming_rss.push(host.peak_rss_mib());
        self.streaming_component.push(host.component_peak_mib());
    }

    /// registry-proxy, with an empty cache each repetition.
    async fn caching(&mut self, plan: &Plan, upstream: SocketAddr, dir: &Path) {
        let host = ProxyProcess::start(upstream, dir, true);
        let d = pull(host.addr, BIG).await;
        self.big_cold[2].push(mib_per_s(plan.big_layer, d));
        // Warm means cached: the copies' digests are checked after the answers.
        host.settle(3);
        self.caching_component.push(host.component_peak_mib());
        let d = pull(host.addr, BIG).await;
        self.big_warm[2].push(mib_per_s(plan.big_layer, d));
        self.caching_rss.push(host.peak_rss_mib());
        let settle = || host.settle(6 + 2 + plan.small_layers);
        self.many_gets[1] = self.many(1, host.addr, dir, settle).await;
    }

    /// distribution's proxy mode, with fresh storage each repetition.
    async fn distribution(&mut self, plan: &Plan, upstream: SocketAddr, dir: &Path, rep: usize) {
        let peer = Distribution::start(upstream, dir, rep).await;
        let d = pull(peer.addr, BIG).await;
        self.big_cold[3].push(mib_per_s(plan.big_layer, d));
        let d = pull(peer.addr, BIG).await;
        self.big_warm[3].push(mib_per_s(plan.big_layer, d));
        self.many_gets[2] = self.many(2, peer.addr, dir, || {}).await;
        peer.stop();
    }

    /// The many-layer image through `addr`, cold, `settle`, then warm: the
    /// upstream GETs of each.
    async fn many(
        &mut self,
        path: usize,
        addr: SocketAddr,
        dir: &Path,
        settle: impl Fn(),
    ) -> (usize, usize) {
        let before = upstream_requests(dir);
        self.many_cold[path].push(pull(addr, MANY).await.as_secs_f64());
        settle();
        let middle = upstream_requests(dir);
        self.many_warm[path].push(pull(addr, MANY).await.as_secs_f64());
        let after = upstream_requests(dir);
        (gets(&middle[before.len()..]), gets(&after[middle.len()..]))
    }
}

/// The upstream's requests for the many-layer image so far. The registry
/// logs a request when it finished: the log is given a moment.
fn upstream_requests(dir: &Path) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(300));
    registry::access_log(dir, "upstream", MANY)
}

fn gets(log: &[String]) -> usize {
    log.iter().filter(|l| l.starts_with("GET ")).count()
}

/// A pull as a client does it: the manifest, then every blob (three at a
/// time, like Docker), each checked against its digest.
pub async fn pull(registry: SocketAddr, repository: &str) -> Duration {
    let started = Instant::now();
    let manifest = http::get(
        &format!("http://{registry}/v2/{repository}/manifests/latest"),
        &[("accept", OCI_MANIFEST)],
    )
    .await;
    assert_eq!(
        manifest.status,
        200,
        "manifest from {registry}: {}",
        manifest.text()
    );
    let m = manifest.json();
    let mut digests = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    digests.extend(
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string()),
    );
    let mut pending = digests.into_iter();
    loop {
        let batch: Vec<String> = pending.by_ref().take(3).collect();
        if batch.is_empty() {
            break;
        }
        let fetches = batch
            .into_iter()
            .map(|d| checked_blob(registry, repository, d));
        futures::future::join_all(fetches).await;
    }
    started.elapsed()
}

/// GETs one blob and checks it against its digest.
pub async fn checked_blob(registry: SocketAddr, repository: &str, digest: String) {
    let mut hasher = Sha256::new();
    let url = format!("http://{registry}/v2/{repository}/blobs/{digest}");
    let r = http::send_with(
        "GET",
        &url,
        &[],
        http::full(""),
        |c| hasher.update(c),
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{url}");
    assert_eq!(format!("sha256:{:x}", hasher.finalize()), digest, "{url}");
}

/// Pushes one image: a config and the given layers (seeded pseudo-random
/// bytes); the manifest's digest.
pub async fn push(upstream: SocketAddr, repository: &str, layers: &[u64], seed: u64) -> String {
    let mut descriptors = Vec::new();
    for (i, size) in layers.iter().enumerate() {
        let d = registry::push_big_blob(upstream, repository, seed + i as u64, *size).await;
        descriptors.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": size}));
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).to_string();
    let config_digest = registry::push_blob(upstream, repository, config.as_bytes()).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descriptors,
    }))
    .unwrap();
    registry::push_manifest(upstream, repository, "latest", OCI_MANIFEST, &manifest).await
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}
