//! Filling the cache: one cold GET of a layer on each path, side by side
//! each repetition, every client checking the digest: straight from the
//! registry, through registry-proxy with its cache off (the relay alone),
//! caching into blob files (the README's `spin up`), caching into Spin's
//! key-value store (`blob_store = kv`, where no writable directory is),
//! and through distribution's proxy (its filesystem driver); then the
//! warm GET of the blob files. CPU seconds by process for the cold copy
//! into files, its digest check included.

use super::cpu::{self, Usage};
use super::figures::{fmt_spread, ratio};
use super::plan::Plan;
use super::proxy_process::{Distribution, ProxyProcess};
use super::pulls::checked_blob;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;
use support::registry;

/// The paths, in the order of [`Layer::cold`].
const PATHS: [&str; 5] = [
    "direct",
    "registry-proxy, cache off (the relay)",
    "registry-proxy, blob files (README `spin up`)",
    "registry-proxy, `blob_store = kv` (Spin's SQLite)",
    "distribution proxy (filesystem)",
];

/// One layer size's figures, one entry a repetition.
#[derive(Default)]
pub struct Layer {
    pub size: u64,
    /// Cold GET, MiB/s, for each of [`PATHS`].
    pub cold: [Vec<f64>; 5],
    /// Warm GET, MiB/s: direct, and the blob files.
    pub warm: [Vec<f64>; 2],
    /// CPU seconds of the cold copy into files, by process.
    pub cpu: Vec<Usage>,
    /// Peak component linear memory of the files instance, MiB.
    pub component: Vec<f64>,
}

/// The sizes measured: 200 MiB and 1 GiB in full, the smoke's big layer.
pub fn sizes(plan: &Plan) -> Vec<u64> {
    match plan.full {
        true => vec![200 << 20, 1 << 30],
        false => vec![plan.big_layer],
    }
}

pub async fn measure(plan: &Plan, upstream: SocketAddr, dir: &Path) -> Vec<Layer> {
    let mut layers = Vec::new();
    for (i, size) in sizes(plan).into_iter().enumerate() {
        let mut layer = Layer {
            size,
            ..Layer::default()
        };
        for rep in 0..plan.repetitions {
            // A blob of its own each repetition: every proxy starts cold.
            let seed = 900 + 10 * i as u64 + rep as u64;
            let repo = format!("fill/r{i}-{rep}");
            let digest = registry::push_big_blob(upstream, &repo, seed, size).await;
            layer.repetition(upstream, dir, &repo, &digest, rep).await;
        }
        layers.push(layer);
    }
    layers
}

impl Layer {
    async fn repetition(
        &mut self,
        upstream: SocketAddr,
        dir: &Path,
        repo: &str,
        digest: &str,
        rep: usize,
    ) {
        let size = self.size;
        self.cold[0].push(get(upstream, repo, digest, size).await);
        self.warm[0].push(get(upstream, repo, digest, size).await);
        let relay = ProxyProcess::start(upstream, dir, false);
        self.cold[1].push(get(relay.addr, repo, digest, size).await);
        drop(relay);
        let files = ProxyProcess::start(upstream, dir, true);
        let before = Usage::now();
        self.cold[2].push(get(files.addr, repo, digest, size).await);
        files.settle(1);
        self.cpu.push(Usage::now().since(&before));
        self.warm[1].push(get(files.addr, repo, digest, size).await);
        self.component.push(files.component_peak_mib());
        drop(files);
        let kv = ProxyProcess::start_with(upstream, dir, true, &[("blob_store", "kv")]);
        self.cold[3].push(get(kv.addr, repo, digest, size).await);
        drop(kv);
        let peer = Distribution::start(upstream, dir, 100 + rep).await;
        self.cold[4].push(get(peer.addr, repo, digest, size).await);
        peer.stop();
    }
}

/// One GET of `digest` in `repo` through `addr`, its digest checked as a
/// client does; MiB/s.
async fn get(addr: SocketAddr, repo: &str, digest: &str, size: u64) -> f64 {
    let started = Instant::now();
    checked_blob(addr, repo, digest.to_string()).await;
    size as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
}

/// The section of docs/benchmarks.md.
pub fn section(layers: &[Layer]) -> String {
    let mut out = String::from(
        "\n## Filling the cache: one cold GET of a layer\n\nEach repetition a new blob, every path in turn, each client checking the digest. MiB/s; ratios of medians.\n\n| layer | path | cold | to direct | to the relay |\n| --- | --- | --- | --- | --- |\n",
    );
    for layer in layers {
        for (i, name) in PATHS.iter().enumerate() {
            out.push_str(&format!(
                "| {} MiB | {name} | {} | {:.2} | {:.2} |\n",
                layer.size >> 20,
                fmt_spread(layer.cold[i].clone(), 0),
                ratio(&layer.cold[i], &layer.cold[0]),
                ratio(&layer.cold[i], &layer.cold[1]),
            ));
        }
    }
    out.push_str("\n| layer | warm GET, direct | warm GET, blob files | files to direct | CPU s of the cold copy into files | component peak (MiB) |\n| --- | --- | --- | --- | --- | --- |\n");
    for layer in layers {
        out.push_str(&format!(
            "| {} MiB | {} | {} | {:.2} | {} | {} |\n",
            layer.size >> 20,
            fmt_spread(layer.warm[0].clone(), 0),
            fmt_spread(layer.warm[1].clone(), 0),
            ratio(&layer.warm[1], &layer.warm[0]),
            cpu::table(&layer.cpu),
            fmt_spread(layer.component.clone(), 1),
        ));
    }
    out
}
