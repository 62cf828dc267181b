//! The soak: two instances sharing Redis (`stores = redis`, docs/deployment.md's
//! multi-instance set-up), 32 clients pulling images at once for minutes,
//! with new images pushed as it runs so cached and uncached pulls mix.
//! Every pull checks every digest, as a real client does; the Spin
//! processes' resident memory is sampled as it goes. Spin runs with the
//! environment docs/deployment.md advises for a busy instance.

use sha2::{Digest as _, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{http, redis, registry, spin};

pub const CLIENTS: usize = 32;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// What a soak came to.
pub struct Soak {
    pub length: Duration,
    pub pulls: usize,
    pub failed: usize,
    /// Failures that were a body not matching its digest.
    pub wrong_digests: usize,
    pub images: usize,
    /// (seconds into the soak, resident MiB of each instance's processes).
    pub rss: Vec<(u64, Vec<f64>)>,
    /// The first failures, as they were told.
    pub failures: Vec<String>,
}

/// Runs a soak of `length`, sampling memory every `every`.
pub async fn run(upstream: SocketAddr, dir: &Path, length: Duration, every: Duration) -> Soak {
    let (_redis, port) = redis::start(&dir.join("redis"));
    let instances = instances(upstream, dir, port);
    let addrs: Vec<SocketAddr> = instances.iter().map(|i| i.addr).collect();
    let pool = Arc::new(Mutex::new(Vec::new()));
    for n in 0..8 {
        let image = push(upstream, n).await;
        pool.lock().unwrap().push(image);
    }
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (pool, counts, addrs) = (pool.clone(), counts.clone(), addrs.clone());
            tokio::spawn(client(c, pool, counts, addrs, started + length))
        })
        .collect();
    let sample = || {
        let mib = instances.iter().map(|i| i.rss_mib(spin::Rss::Now));
        (started.elapsed().as_secs(), mib.collect())
    };
    let mut rss = Vec::new();
    let mut pushed: u64 = 8;
    while started.elapsed() < length {
        let next = started.elapsed() + every;
        rss.push(sample());
        // A new image now and then: pulls of it are cold.
        let image = push(upstream, pushed).await;
        pool.lock().unwrap().push(image);
        pushed += 1;
        tokio::time::sleep(next.saturating_sub(started.elapsed())).await;
    }
    futures::future::join_all(clients).await;
    rss.push(sample());
    for i in &instances {
        i.stop();
    }
    let failures = counts.failures.lock().unwrap().clone();
    Soak {
        length: started.elapsed(),
        pulls: counts.pulls.load(Ordering::SeqCst),
        failed: counts.failed.load(Ordering::SeqCst),
        wrong_digests: counts.wrong.load(Ordering::SeqCst),
        images: pushed as usize,
        rss,
        failures,
    }
}

/// Two instances sharing the Redis at `port` (`stores = redis`), run as
/// docs/deployment.md advises for a busy Spin.
fn instances(upstream: SocketAddr, dir: &Path, port: u16) -> [spin::Instance; 2] {
    let route = format!("http://{upstream}");
    let address = format!("127.0.0.1:{port}");
    let vars = [
        ("default_upstream", route.as_str()),
        ("stores", "redis"),
        ("redis_address", address.as_str()),
    ];
    let app = spin::derive_app(&dir.join("app"), &spin::Store::Sqlite, true);
    // As docs/deployment.md runs a busy Spin: as it comes, its
    // resident memory kept growing (594 -> 762 MiB from the first minute to
    // the tenth of this soak), in glibc's arenas and the wasm memory slots
    // wasmtime keeps resident.
    let env = [
        ("MALLOC_ARENA_MAX", "2"),
        ("SPIN_WASMTIME_LINEAR_MEMORY_KEEP_RESIDENT", "0"),
    ];
    [
        spin::Instance::start_with(&app, "a", &vars, &env),
        spin::Instance::start_with(&app, "b", &vars, &env),
    ]
}

/// Client `c`: pulls images from the pool in turn, from each instance in
/// turn, until `until`.
async fn client(
    c: usize,
    pool: Arc<Mutex<Vec<String>>>,
    counts: Arc<Counts>,
    addrs: Vec<SocketAddr>,
    until: Instant,
) {
    let mut turn = c;
    while Instant::now() < until {
        let image = {
            let pool = pool.lock().unwrap();
            pool[(turn * 7 + c) % pool.len()].clone()
        };
        let result = pull(addrs[turn % addrs.len()], &image).await;
        counts.add(result);
        turn += 1;
    }
}

#[derive(Default)]
struct Counts {
    pulls: AtomicUsize,
    failed: AtomicUsize,
    wrong: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Counts {
    fn add(&self, result: Result<(), Failure>) {
        self.pulls.fetch_add(1, Ordering::SeqCst);
        let Err(failure) = result else {
            return;
        };
        self.failed.fetch_add(1, Ordering::SeqCst);
        let told = match failure {
            Failure::WrongDigest(t) => {
                self.wrong.fetch_add(1, Ordering::SeqCst);
                t
            }
            Failure::Other(t) => t,
        };
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 10 {
            failures.push(told);
        }
    }
}

enum Failure {
    WrongDigest(String),
    Other(String),
}

/// Image `n`: a config and three layers of its own (64 KiB to 4 MiB).
async fn push(upstream: SocketAddr, n: u64) -> String {
    let repo = format!("soak/app-{n}");
    let seed = 7_000 + n * 10;
    let mut layers = Vec::new();
    for (i, size) in [64u64 << 10, 1 << 20, 4 << 20].into_iter().enumerate() {
        let d = registry::push_big_blob(upstream, &repo, seed + i as u64, size).await;
        layers.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": size}));
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "soak": n}).to_string();
    let config_digest = registry::push_blob(upstream, &repo, config.as_bytes()).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers,
    }))
    .unwrap();
    registry::push_manifest(upstream, &repo, "v1", OCI_MANIFEST, &manifest).await;
    repo
}

/// A pull as a client does it: the manifest, then its blobs, each body
/// checked against its digest.
async fn pull(proxy: SocketAddr, repo: &str) -> Result<(), Failure> {
    let url = format!("http://{proxy}/v2/{repo}/manifests/v1");
    let m = http::send_with(
        "GET",
        &url,
        &[("accept", OCI_MANIFEST)],
        http::full(""),
        |_| {},
        true,
    )
    .await
    .map_err(|e| Failure::Other(format!("{url}: {e}")))?;
    if m.status != 200 {
        return Err(Failure::Other(format!("{url}: {}", m.status)));
    }
    let m = m.json();
    let mut digests = vec![
        m["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ];
    for l in m["layers"].as_array().into_iter().flatten() {
        digests.push(l["digest"].as_str().unwrap_or_default().to_string());
    }
    let gets = digests.into_iter().map(|d| async move {
        let url = format!("http://{proxy}/v2/{repo}/blobs/{d}");
        let mut hasher = Sha256::new();
        let r = http::send_with(
            "GET",
            &url,
            &[],
            http::full(""),
            |c| hasher.update(c),
            false,
        )
        .await
        .map_err(|e| Failure::Other(format!("{url}: {e}")))?;
        if r.status != 200 {
            return Err(Failure::Other(format!("{url}: {}", r.status)));
        }
        let got = format!("sha256:{:x}", hasher.finalize());
        match got == d {
            true => Ok(()),
            false => Err(Failure::WrongDigest(format!("{url}: the body is {got}"))),
        }
    });
    futures::future::join_all(gets).await.into_iter().collect()
}

/// The soak's section of the report.
pub fn section(s: &Soak) -> String {
    let mut out = format!(
        "\n## Soak: {} clients over two instances on Redis\n\n\
         {:.0} s, {} images (a new one every sample), every digest checked by every client.\n\n\
         | pulls | failed | wrong digests |\n| --- | --- | --- |\n| {} | {} | {} |\n\n\
         Resident memory of each instance's Spin processes (MiB):\n\n\
         | s | instance a | instance b |\n| --- | --- | --- |\n",
        CLIENTS,
        s.length.as_secs_f64(),
        s.images,
        s.pulls,
        s.failed,
        s.wrong_digests,
    );
    for (at, mib) in &s.rss {
        let cell = |i: usize| mib.get(i).map_or("–".into(), |m| format!("{m:.0}"));
        out.push_str(&format!("| {at} | {} | {} |\n", cell(0), cell(1)));
    }
    if !s.failures.is_empty() {
        out.push_str(&format!("\nFirst failures: {:?}\n", s.failures));
    }
    out
}
