//! The figures as the markdown of docs/benchmarks.md: the heading with the
//! machine, and a section for each kind of pull.

use super::crowd;
use super::figures::{fmt_spread, ratio};
use super::latency::Latency;
use super::plan::{BIG, Plan};
use super::pulls::{BIG_PATHS, MANY_PATHS, Pulls};
use support::spin;

/// The title, the run's kind and size, and the machine.
pub fn heading(plan: &Plan) -> String {
    format!(
        "# Benchmarks\n\n{} run, {} repetition(s), medians with (min–max). Machine: {}.\n\n",
        if plan.full { "Full" } else { "Smoke" },
        plan.repetitions,
        machine()
    )
}

/// The big layer's throughput on each path, cold and warm.
pub fn big_pulls(pulls: &Pulls, plan: &Plan) -> String {
    let (cold, warm) = (&pulls.big_cold, &pulls.big_warm);
    let mut out = format!(
        "## Pull of one {} MiB layer (MiB/s)\n\n| path | cold | ratio to direct | warm | ratio to direct |\n| --- | --- | --- | --- | --- |\n",
        plan.big_layer >> 20
    );
    for (i, name) in BIG_PATHS.iter().enumerate() {
        out.push_str(&format!(
            "| {} | {} | {:.2} | {} | {:.2} |\n",
            name,
            fmt_spread(cold[i].clone(), 0),
            ratio(&cold[i], &cold[0]),
            fmt_spread(warm[i].clone(), 0),
            ratio(&warm[i], &warm[0]),
        ));
    }
    out
}

/// Manifest latency and requests per second, by tag and by `digest`.
pub fn manifests(latency: &Latency, digest: &str, plan: &Plan) -> String {
    let mut out = format!(
        "\n## Manifest requests (`{BIG}`, by tag and by digest `{}`)\n\nLatency in ms as p50 / p99, over {} requests on kept-alive connections; through a warm proxy (tags answered from the cache within the TTL).\n\nThe cache-off rows go through a proxy whose route caches nothing, so every request is relayed upstream; the counters-off rows through a warm proxy with `metrics = \"false\"` (no counter increments after each answer), beside the rows above it, for what counting costs.\n\n| request | concurrency | direct | registry-proxy | direct req/s | registry-proxy req/s | added p50 (ms) |\n| --- | --- | --- | --- | --- | --- | --- |\n",
        &digest[..19],
        plan.latency_requests
    );
    for row in &latency.rows {
        out.push_str(row);
        out.push('\n');
    }
    out
}

/// The many-layer image on each path: times and upstream GETs.
pub fn many_pulls(pulls: &Pulls, plan: &Plan) -> String {
    let mut out = format!(
        "\n## Pull of a {}-layer image ({} KiB layers)\n\n| path | cold (s) | warm (s) | upstream GETs cold | upstream GETs warm |\n| --- | --- | --- | --- | --- |\n",
        plan.small_layers,
        plan.small_layer >> 10
    );
    for (i, name) in MANY_PATHS.iter().enumerate() {
        let (cold_gets, warm_gets) = if i == 0 {
            ("–".to_string(), "–".to_string())
        } else {
            let (cold, warm) = pulls.many_gets[i];
            (cold.to_string(), warm.to_string())
        };
        out.push_str(&format!(
            "| {} | {} | {} | {cold_gets} | {warm_gets} |\n",
            name,
            fmt_spread(pulls.many_cold[i].clone(), 3),
            fmt_spread(pulls.many_warm[i].clone(), 3)
        ));
    }
    out
}

/// The `spin up` processes' and the component's memory during the big pulls.
pub fn memory(pulls: &Pulls, plan: &Plan) -> String {
    format!(
        "\n## Memory during the {} MiB pulls through registry-proxy\n\n| proxy process peak RSS, streaming (MiB) | proxy process peak RSS, caching (MiB) | component peak linear memory, streaming (MiB) | component peak linear memory, caching (MiB) |\n| --- | --- | --- | --- |\n| {} | {} | {} | {} |\n\nPeak RSS is that of the `spin up` process group (the CLI and its HTTP trigger process); the SQLite store is a file outside it.\n",
        plan.big_layer >> 20,
        fmt_spread(pulls.streaming_rss.clone(), 1),
        fmt_spread(pulls.caching_rss.clone(), 1),
        fmt_spread(pulls.streaming_component.clone(), 1),
        fmt_spread(pulls.caching_component.clone(), 1)
    )
}

/// Cold GETs with the cache on Redis, each way to it.
pub fn crowd(ways: [&crowd::Figures; 2], single: u64, crowd_size: u64) -> String {
    let secs = |xs: &Vec<f64>| fmt_spread(xs.clone(), 2);
    let mut out = String::from(
        "\n## Cold GETs with the cache on Redis, two instances sharing it\n\n\
         Each way to Redis in turn, on fresh blobs: `stores = redis` (the proxy's own connection per request, docs/deployment.md's multi-instance setup) and Spin's key-value store on Redis (runtime-config.toml's Redis tables).\n\n\
         | GET | way to Redis | direct (s) | registry-proxy (s) | upstream blob GETs through the proxy |\n| --- | --- | --- | --- | --- |\n",
    );
    for (f, way) in ways.iter().zip(["`stores = redis`", "Spin key-value"]) {
        out.push_str(&format!(
            "| one {} MiB blob, one client | {way} | {} | {} | – |\n\
             | one {} MiB blob, {} clients at once, split over the two instances | {way} | {} | {} | {:?} |\n\
             | a warm manifest by digest, p50 of {} (ms) | {way} | – | {} | – |\n",
            single >> 20,
            secs(&f.single_direct),
            secs(&f.single_proxied),
            crowd_size >> 20,
            crowd::CLIENTS,
            secs(&f.crowd_direct),
            secs(&f.crowd_proxied),
            f.crowd_upstream_gets,
            crowd::MANIFEST_GETS,
            secs(&f.manifest_p50_ms),
        ));
    }
    let [a, b] = ways;
    out.push_str(&format!(
        "\nComponent peak linear memory {:.1} MiB; `spin up` peak RSS {:.0} MiB per instance.\n",
        a.component_mib.max(b.component_mib),
        a.rss_mib.max(b.rss_mib),
    ));
    out
}

/// Cores, CPU, memory and kernel, and the versions of the registry and Spin.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = mem
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map(|m| m.trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let registry_version = version_of(std::path::Path::new("docker-registry"));
    let spin_version = version_of(&spin::binary());
    format!(
        "{} cores, {model}, {total} memory, Linux {}; upstream and peer: {registry_version}; registry-proxy under {spin_version} with the project's spin.toml and runtime-config.toml (SQLite store)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim()
    )
}

/// What `program --version` prints, or nothing.
fn version_of(program: &std::path::Path) -> String {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
