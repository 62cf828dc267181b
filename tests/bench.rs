//! Benchmark: pulls straight from the registry, through registry-proxy (the
//! built component under real Spin, `spin up` with the project's own
//! spin.toml and runtime-config.toml and its SQLite store) and
//! through distribution's own pull-through cache (`proxy.remoteurl`), side
//! by side in one run, all on 127.0.0.1.
//!
//! `cargo test --test bench` runs a smoke-sized version (CI checks it
//! completes); `BENCH=full cargo test --test bench` (scripts/bench.sh) runs
//! the full one and writes docs/benchmarks.md. `BENCH=objects` runs only
//! the object-storage section, full-sized, into target/benchmarks-objects.md:
//! for working on that section without the other nine minutes;
//! `BENCH=soak` the ten-minute soak alone, into target/benchmarks-soak.md
//! (`SOAK_SECS` sets another length).

#[cfg(not(target_arch = "wasm32"))]
#[path = "bench/cpu.rs"]
mod cpu;
#[cfg(not(target_arch = "wasm32"))]
#[path = "bench/crowd.rs"]
mod crowd;
#[cfg(not(target_arch = "wasm32"))]
#[path = "bench/figures.rs"]
mod figures;
#[cfg(not(target_arch = "wasm32"))]
#[path = "bench/logged.rs"]
mod logged;
#[cfg(not(target_arch = "wasm32"))]
#[path = "bench/objects.rs"]
mod objects;
#[cfg(not(target_arch = "wasm32"))]
#[path = "bench/soak.rs"]
mod soak;

#[cfg(not(target_arch = "wasm32"))]
use support::{garage, http, redis, registry, spin, watched};

/// The component target has nothing to benchmark.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    bench::main();
}

#[cfg(not(target_arch = "wasm32"))]
mod bench {
    use super::figures::{fmt_spread, spread};
    use super::{crowd, garage, http, logged, objects, registry, soak, spin, watched};
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;
    use sha2::{Digest as _, Sha256};
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    /// The sizes of one run.
    struct Plan {
        full: bool,
        big_layer: u64,
        small_layers: usize,
        small_layer: u64,
        repetitions: usize,
        latency_requests: usize,
        /// The soak's length, and how often it samples memory.
        soak: (Duration, Duration),
    }

    impl Plan {
        fn new(full: bool) -> Self {
            if full {
                Plan {
                    full,
                    big_layer: 1 << 30,
                    small_layers: 20,
                    small_layer: 256 << 10,
                    repetitions: 3,
                    latency_requests: 2000,
                    soak: (Duration::from_secs(600), Duration::from_secs(30)),
                }
            } else {
                Plan {
                    full,
                    big_layer: 16 << 20,
                    small_layers: 20,
                    small_layer: 16 << 10,
                    repetitions: 1,
                    latency_requests: 64,
                    soak: (Duration::from_secs(20), Duration::from_secs(5)),
                }
            }
        }
    }

    const BIG: &str = "bench/big";
    const MANY: &str = "bench/many";
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    pub fn main() {
        let mode = std::env::var("BENCH").unwrap_or_default();
        let plan = Plan::new(matches!(mode.as_str(), "full" | "objects" | "soak"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let (report, out) = match mode.as_str() {
            "objects" => (
                rt.block_on(objects_only(&plan)),
                root.join("target/benchmarks-objects.md"),
            ),
            "soak" => (
                rt.block_on(soak_only(&plan)),
                root.join("target/benchmarks-soak.md"),
            ),
            "full" => (rt.block_on(run(&plan)), root.join("docs/benchmarks.md")),
            _ => (
                rt.block_on(run(&plan)),
                root.join("target/benchmarks-smoke.md"),
            ),
        };
        println!("{report}");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&out, report).unwrap();
        eprintln!("bench: wrote {}", out.display());
    }

    /// registry-proxy under real Spin with the project's own manifest and
    /// runtime config (a fresh SQLite store each time), routing its own
    /// address to the upstream.
    struct HostProcess {
        spin: spin::Instance,
        addr: SocketAddr,
    }

    impl HostProcess {
        fn start(upstream: SocketAddr, dir: &Path, cache: bool) -> Self {
            Self::start_with(upstream, dir, cache, &[])
        }

        fn start_with(
            upstream: SocketAddr,
            dir: &Path,
            cache: bool,
            variables: &[(&str, &str)],
        ) -> Self {
            let app = dir.join(format!("app-{}", registry::free_port()));
            let app = spin::derive_app(&app, &spin::Store::Sqlite, true);
            let upstream = format!("http://{upstream}");
            let mut vars = vec![("default_upstream", upstream.as_str())];
            vars.extend_from_slice(variables);
            let spin = spin::Instance::start(&app, "bench", &vars);
            if !cache {
                let route = serde_json::json!({
                    "upstream": upstream,
                    "cache": {"manifests": false, "blobs": false},
                });
                spin::SqliteStore::of(&app, "default").set(
                    &format!("route/{}", spin.addr),
                    route.to_string().as_bytes(),
                );
            }
            let addr = spin.addr;
            HostProcess { spin, addr }
        }

        /// Peak resident memory of the Spin processes, in MiB.
        fn peak_rss_mib(&self) -> f64 {
            self.spin.rss_mib(spin::Rss::Peak)
        }

        /// Waits until every request so far is done, its copies checked.
        fn settle(&self, requests: usize) {
            logged::wait_for_requests(&self.spin, requests);
        }

        /// Peak linear memory of any component instance so far, in MiB (the
        /// component logs it after each answer).
        fn component_peak_mib(&self) -> f64 {
            logged::peak_memory_mib(&self.spin)
        }
    }

    impl Drop for HostProcess {
        fn drop(&mut self) {
            self.spin.stop();
        }
    }

    /// A pull as a client does it: the manifest, then every blob (three at a
    /// time, like Docker), each checked against its digest.
    async fn pull(registry: SocketAddr, repository: &str) -> Duration {
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
            let fetches = batch.into_iter().map(|d| async move {
                let mut hasher = Sha256::new();
                let url = format!("http://{registry}/v2/{repository}/blobs/{d}");
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
                assert_eq!(format!("sha256:{:x}", hasher.finalize()), d, "{url}");
            });
            futures::future::join_all(fetches).await;
        }
        started.elapsed()
    }

    /// The targets, met or not, and what limits the misses.
    fn targets(
        cold: &[Vec<f64>; 4],
        warm: &[Vec<f64>; 4],
        latency: &Latency,
        component: &[f64],
        cached_component: &[f64],
        many: &[(usize, usize); 3],
        on_redis: &crowd::Figures,
    ) -> String {
        let med = |xs: &Vec<f64>| spread(xs.clone()).0;
        let mark = |ok: bool| if ok { "met" } else { "missed" };
        let cold_ratio = med(&cold[2]) / med(&cold[0]);
        let stream_ratio = med(&cold[1]) / med(&cold[0]);
        let warm_ratio = med(&warm[2]) / med(&warm[0]);
        let memory = component
            .iter()
            .chain(cached_component)
            .cloned()
            .fold(on_redis.component_mib, f64::max);
        let redis_ratio = med(&on_redis.single_direct) / med(&on_redis.single_proxied);
        let crowd_ratio = med(&on_redis.crowd_proxied) / med(&on_redis.crowd_direct);
        let max_gets = on_redis.crowd_upstream_gets.iter().max().copied();
        let mut out = String::from("\n## Targets\n\n| target | result | |\n| --- | --- | --- |\n");
        let mut row = |target: &str, result: String, met: bool| {
            out.push_str(&format!("| {target} | {result} | {} |\n", mark(met)));
        };
        row(
            "cold pull ≥ 0.8× direct (SQLite store)",
            format!("{cold_ratio:.2}× caching, {stream_ratio:.2}× streaming only"),
            cold_ratio >= 0.8,
        );
        row(
            "cold pull ≥ 0.8× direct (cache on Redis)",
            format!("{redis_ratio:.2}×"),
            redis_ratio >= 0.8,
        );
        row(
            "16 concurrent cold GETs over two instances sharing Redis: exactly 1 upstream GET",
            format!("{:?}", on_redis.crowd_upstream_gets),
            max_gets == Some(1) && on_redis.crowd_upstream_gets.iter().all(|&n| n == 1),
        );
        row(
            "… and their wall time ≤ 1.25× that of 16 GETs straight from the registry",
            format!("{crowd_ratio:.2}×"),
            crowd_ratio <= 1.25,
        );
        let versus_peer = med(&warm[2]) / med(&warm[3]);
        row(
            "warm pull ≥ 1.0× direct and ahead of distribution's proxy",
            format!("{warm_ratio:.2}× direct, {versus_peer:.2}× distribution"),
            warm_ratio >= 1.0 && versus_peer > 1.0,
        );
        row(
            "warm manifest HEAD/GET, one kept-alive connection: p50 ≤ direct + 0.3 ms",
            format!("at most {:+.2} ms", latency.cached_added),
            latency.cached_added <= 0.3,
        );
        row(
            "warm manifest HEAD/GET, 32 connections: req/s ≥ direct",
            format!("at least {:.2}× direct", latency.cached_rps_ratio),
            latency.cached_rps_ratio >= 1.0,
        );
        row(
            "cache-off relay, one connection: p50 ≤ direct + 1 ms",
            format!("at most {:+.2} ms", latency.relay_added),
            latency.relay_added <= 1.0,
        );
        row(
            "warm layer GET ≥ 0.95× direct",
            format!("{warm_ratio:.2}×"),
            warm_ratio >= 0.95,
        );
        row(
            "component memory ≤ 16 MiB, independent of layer size",
            format!("at most {memory:.1} MiB"),
            memory <= 16.0,
        );
        row(
            "zero upstream GETs on a warm pull",
            many[1].1.to_string(),
            many[1].1 == 0,
        );
        if cold_ratio < 0.8 {
            out.push_str(
                "\nWhat limits a cold caching pull, measured by hand on a 256 MiB layer (0.12–0.16 s direct) under Spin 4.0.2: \
                 the relay alone (cache off) takes 0.28–0.37 s, the copy with neither hash nor store writes 0.33–0.40 s. \
                 SHA-256 in WebAssembly runs at about 200 MiB/s (no SHA instructions): checked on the way, it added 1.3 s, so the digest is now \
                 checked after the answer, over the chunks read back. Store writes: Redis adds about 0.3 s; SQLite about 0.8 s with four \
                 1 MiB chunks to a commit (1.1 s with one: each commit syncs the file). Before these changes: 2.5–3.0 s on SQLite, 1.9 s on Redis. \
                 The relay itself stays under 0.8× here, so no caching pull can reach it under Spin on this machine.\n",
            );
        }
        out
    }

    fn crowd_section(ways: [&crowd::Figures; 2], single: u64, crowd_size: u64) -> String {
        let secs = |xs: &Vec<f64>| fmt_spread(xs.clone(), 2);
        let mut out = String::from(
            "\n## Cold GETs with the cache on Redis, two instances sharing it\n\n\
             Each way to Redis in turn, on fresh blobs: `stores = redis` (the proxy's own connection per request, the README's multi-instance setup) and Spin's key-value store on Redis (runtime-config.toml's Redis tables).\n\n\
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

    /// Manifest requests direct and through registry-proxy, side by side.
    struct Latency {
        rows: Vec<String>,
        /// Largest added p50 of a warm proxy on one connection (ms).
        cached_added: f64,
        /// Smallest req/s ratio to direct of a warm proxy at 32 connections.
        cached_rps_ratio: f64,
        /// Largest added p50 of the cache-off relay on one connection (ms).
        relay_added: f64,
    }

    /// HEAD and GET by tag and by digest, at 1 and 32 connections, through a
    /// warm proxy; GET by tag on one connection through the cache-off relay;
    /// and GET by tag through a warm proxy that counts nothing (`metrics`
    /// off), for what counting costs.
    async fn manifest_latency(
        upstream: SocketAddr,
        dir: &Path,
        plan: &Plan,
        digest: &str,
    ) -> Latency {
        let cached = HostProcess::start(upstream, dir, true);
        let relay = HostProcess::start(upstream, dir, false);
        let uncounted = HostProcess::start_with(upstream, dir, true, &[("metrics", "false")]);
        pull(cached.addr, BIG).await;
        pull(uncounted.addr, BIG).await;
        let mut out = Latency {
            rows: Vec::new(),
            cached_added: f64::MIN,
            cached_rps_ratio: f64::MAX,
            relay_added: f64::MIN,
        };
        let cases = [
            ("HEAD", "latest"),
            ("GET", "latest"),
            ("HEAD", digest),
            ("GET", digest),
        ];
        let mut runs: Vec<(&str, &str, &HostProcess, usize)> = Vec::new();
        for (method, reference) in cases {
            runs.push((method, reference, &cached, 1));
            runs.push((method, reference, &cached, 32));
        }
        runs.push(("GET", "latest", &relay, 1));
        runs.push(("GET", "latest", &uncounted, 1));
        runs.push(("GET", "latest", &uncounted, 32));
        for (method, reference, host, concurrency) in runs {
            let path = format!("/v2/{BIG}/manifests/{reference}");
            let by = if reference == "latest" {
                "tag"
            } else {
                "digest"
            };
            let n = plan.latency_requests.max(concurrency);
            let (direct, direct_rps) = latency(upstream, method, &path, concurrency, n).await;
            let (proxied, proxied_rps) = latency(host.addr, method, &path, concurrency, n).await;
            let added = percentile(&proxied, 0.5) - percentile(&direct, 0.5);
            let kind = if std::ptr::eq(host, &relay) {
                ", cache off"
            } else if std::ptr::eq(host, &uncounted) {
                ", counters off"
            } else {
                ""
            };
            match (kind, concurrency) {
                (", cache off", _) => out.relay_added = out.relay_added.max(added),
                ("", 1) => out.cached_added = out.cached_added.max(added),
                ("", _) => {
                    out.cached_rps_ratio = out.cached_rps_ratio.min(proxied_rps / direct_rps)
                }
                _ => {}
            }
            out.rows.push(format!(
                "| {method} by {by}{kind} | {concurrency} | {:.2} / {:.2} | {:.2} / {:.2} | {direct_rps:.0} | {proxied_rps:.0} | {added:+.2} |",
                percentile(&direct, 0.5),
                percentile(&direct, 0.99),
                percentile(&proxied, 0.5),
                percentile(&proxied, 0.99),
            ));
        }
        out
    }

    /// Median, min and max.
    /// `n` requests over `concurrency` kept-alive connections: latencies in ms
    /// and requests per second.
    async fn latency(
        addr: SocketAddr,
        method: &str,
        path: &str,
        concurrency: usize,
        n: usize,
    ) -> (Vec<f64>, f64) {
        let started = Instant::now();
        let workers = (0..concurrency).map(|_| {
            let (method, path) = (method.to_string(), path.to_string());
            async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                let mut times = Vec::new();
                for _ in 0..n / concurrency {
                    let req = hyper::Request::builder()
                        .method(method.as_str())
                        .uri(path.as_str())
                        .header("host", addr.to_string())
                        .header("accept", OCI_MANIFEST)
                        .body(http::full(Bytes::new()))
                        .unwrap();
                    let t = Instant::now();
                    sender.ready().await.unwrap();
                    let resp = sender.send_request(req).await.unwrap();
                    assert_eq!(resp.status(), 200, "{method} {path}");
                    resp.into_body().collect().await.unwrap();
                    times.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                times
            }
        });
        let times: Vec<f64> = futures::future::join_all(workers)
            .await
            .into_iter()
            .flatten()
            .collect();
        let rps = times.len() as f64 / started.elapsed().as_secs_f64();
        (times, rps)
    }

    fn percentile(xs: &[f64], p: f64) -> f64 {
        let mut v = xs.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }

    /// Pushes one image: a config and the given layers (seeded pseudo-random bytes).
    async fn push(upstream: SocketAddr, repository: &str, layers: &[u64], seed: u64) -> String {
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
        let registry_version = std::process::Command::new("docker-registry")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let spin_version = std::process::Command::new(spin::binary())
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        format!(
            "{} cores, {model}, {total} memory, Linux {}; upstream and peer: {registry_version}; registry-proxy under {spin_version} with the project's spin.toml and runtime-config.toml (SQLite store)",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel.trim()
        )
    }

    /// The object-storage repetitions against one Garage node.
    async fn in_bucket(
        plan: &Plan,
        upstream: SocketAddr,
        dir: &Path,
        sizes: (u64, u64),
    ) -> objects::Figures {
        let garage = garage::Garage::start(&dir.join("garage"), 1);
        let mut figures = objects::Figures::default();
        for rep in 0..plan.repetitions {
            let seed = 700 + 2 * rep as u64;
            objects::measure(upstream, dir, &garage, sizes, seed, &mut figures).await;
        }
        for node in &garage.nodes {
            node.stop();
        }
        figures
    }

    /// Only the object-storage section (`BENCH=objects`), without the
    /// key-value default's figures it compares with.
    async fn objects_only(plan: &Plan) -> String {
        let dir = watched::work_dir("registry-proxy-bench-");
        let upstream = registry::start(&dir, "upstream", "").await;
        let sizes = (256 << 20, 256 << 20);
        let figures = in_bucket(plan, upstream, &dir, sizes).await;
        objects::section(&figures, sizes, (f64::NAN, f64::NAN))
    }

    /// The soak alone; a failed pull fails a smoke-sized run.
    async fn soak_only(plan: &Plan) -> String {
        let dir = watched::work_dir("registry-proxy-bench-");
        let upstream = registry::start(&dir, "upstream", "").await;
        let report = soaked(plan, upstream, &dir).await;
        registry::stop(&dir, "upstream");
        report
    }

    async fn soaked(plan: &Plan, upstream: SocketAddr, dir: &Path) -> String {
        let (mut length, every) = plan.soak;
        // SOAK_SECS shortens (or lengthens) it, for comparing settings.
        if let Some(secs) = std::env::var("SOAK_SECS").ok().and_then(|s| s.parse().ok()) {
            length = Duration::from_secs(secs);
        }
        let s = soak::run(upstream, &dir.join("soak"), length, every).await;
        let report = soak::section(&s);
        if !plan.full {
            assert!(s.failed == 0 && s.pulls > 0, "{report}");
        }
        report
    }

    async fn run(plan: &Plan) -> String {
        let dir = watched::work_dir("registry-proxy-bench-");
        let upstream = registry::start(&dir, "upstream", "").await;
        let big_digest = push(upstream, BIG, &[plan.big_layer], 11).await;
        let many_layers = vec![plan.small_layer; plan.small_layers];
        push(upstream, MANY, &many_layers, 100).await;
        let big_bytes = plan.big_layer;

        // direct, registry-proxy streaming only, registry-proxy caching, distribution proxy
        let mut rows_cold: [Vec<f64>; 4] = Default::default();
        let mut rows_warm: [Vec<f64>; 4] = Default::default();
        let mut many_cold: [Vec<f64>; 3] = Default::default();
        let mut many_warm: [Vec<f64>; 3] = Default::default();
        let mut many_requests = [(0usize, 0usize); 3];
        let (mut rss, mut cached_rss) = (Vec::new(), Vec::new());
        let (mut component, mut cached_component) = (Vec::new(), Vec::new());
        // The registry logs a request when it finished: give the log a moment.
        let upstream_requests = |repo: &str| {
            std::thread::sleep(Duration::from_millis(300));
            registry::access_log(&dir, "upstream", repo)
        };
        let gets = |log: &[String]| log.iter().filter(|l| l.starts_with("GET ")).count();

        for rep in 0..plan.repetitions {
            // Straight from the registry: cold and warm are the same thing.
            let d = pull(upstream, BIG).await;
            rows_cold[0].push(mib_per_s(big_bytes, d));
            rows_warm[0].push(mib_per_s(big_bytes, pull(upstream, BIG).await));
            many_cold[0].push(pull(upstream, MANY).await.as_secs_f64());
            many_warm[0].push(pull(upstream, MANY).await.as_secs_f64());

            // registry-proxy without its cache: every pull streams through.
            let host = HostProcess::start(upstream, &dir, false);
            rows_cold[1].push(mib_per_s(big_bytes, pull(host.addr, BIG).await));
            rows_warm[1].push(mib_per_s(big_bytes, pull(host.addr, BIG).await));
            host.settle(6);
            rss.push(host.peak_rss_mib());
            component.push(host.component_peak_mib());
            drop(host);

            // registry-proxy, with an empty cache each repetition.
            let host = HostProcess::start(upstream, &dir, true);
            rows_cold[2].push(mib_per_s(big_bytes, pull(host.addr, BIG).await));
            // Warm means cached: the copies' digests are checked after the answers.
            host.settle(3);
            cached_component.push(host.component_peak_mib());
            rows_warm[2].push(mib_per_s(big_bytes, pull(host.addr, BIG).await));
            cached_rss.push(host.peak_rss_mib());
            let before = upstream_requests(MANY);
            many_cold[1].push(pull(host.addr, MANY).await.as_secs_f64());
            host.settle(6 + 2 + plan.small_layers);
            let middle = upstream_requests(MANY);
            many_warm[1].push(pull(host.addr, MANY).await.as_secs_f64());
            let after = upstream_requests(MANY);
            many_requests[1] = (gets(&middle[before.len()..]), gets(&after[middle.len()..]));
            drop(host);

            // distribution's proxy mode, with fresh storage each repetition.
            let peer_dir = dir.join(format!("peer-{rep}"));
            std::fs::create_dir_all(&peer_dir).unwrap();
            let peer = registry::start(
                &peer_dir,
                "peer",
                &format!("proxy:\n  remoteurl: http://{upstream}\n"),
            )
            .await;
            rows_cold[3].push(mib_per_s(big_bytes, pull(peer, BIG).await));
            rows_warm[3].push(mib_per_s(big_bytes, pull(peer, BIG).await));
            let before = upstream_requests(MANY);
            many_cold[2].push(pull(peer, MANY).await.as_secs_f64());
            let middle = upstream_requests(MANY);
            many_warm[2].push(pull(peer, MANY).await.as_secs_f64());
            let after = upstream_requests(MANY);
            many_requests[2] = (gets(&middle[before.len()..]), gets(&after[middle.len()..]));
            registry::stop(&peer_dir, "peer");
        }

        // Both ways to Redis in turn, each repetition on fresh blobs.
        let (mut on_redis, mut on_spin_kv) = (crowd::Figures::default(), crowd::Figures::default());
        let crowd_size = if plan.full { 256 << 20 } else { plan.big_layer };
        for rep in 0..plan.repetitions as u64 {
            let sizes = (plan.big_layer, crowd_size);
            let way = crowd::Way::Outbound;
            crowd::measure(upstream, &dir, sizes, 500 + 4 * rep, way, &mut on_redis).await;
            let way = crowd::Way::SpinKeyValue;
            crowd::measure(upstream, &dir, sizes, 502 + 4 * rep, way, &mut on_spin_kv).await;
        }

        let object_sizes = (plan.big_layer.min(256 << 20), crowd_size);
        let in_bucket = in_bucket(plan, upstream, &dir, object_sizes).await;

        let latency = manifest_latency(upstream, &dir, plan, &big_digest).await;
        let big_digest_manifest = big_digest;

        let ratio = |xs: &[f64], base: &[f64]| spread(xs.to_vec()).0 / spread(base.to_vec()).0;
        let names = [
            "direct",
            "registry-proxy, cache off (streaming)",
            "registry-proxy",
            "distribution proxy",
        ];
        let many_names = ["direct", "registry-proxy", "distribution proxy"];
        let mut out = String::new();
        out.push_str(&format!(
            "# Benchmarks\n\n{} run, {} repetition(s), medians with (min–max). Machine: {}.\n\n",
            if plan.full { "Full" } else { "Smoke" },
            plan.repetitions,
            machine()
        ));
        out.push_str(&format!("## Pull of one {} MiB layer (MiB/s)\n\n| path | cold | ratio to direct | warm | ratio to direct |\n| --- | --- | --- | --- | --- |\n", big_bytes >> 20));
        for i in 0..4 {
            out.push_str(&format!(
                "| {} | {} | {:.2} | {} | {:.2} |\n",
                names[i],
                fmt_spread(rows_cold[i].clone(), 0),
                ratio(&rows_cold[i], &rows_cold[0]),
                fmt_spread(rows_warm[i].clone(), 0),
                ratio(&rows_warm[i], &rows_warm[0]),
            ));
        }
        out.push_str(&format!(
            "\n## Manifest requests (`{BIG}`, by tag and by digest `{}`)\n\nLatency in ms as p50 / p99, over {} requests on kept-alive connections; through a warm proxy (tags answered from the cache within the TTL).\n\nThe cache-off rows go through a proxy whose route caches nothing, so every request is relayed upstream; the counters-off rows through a warm proxy with `metrics = \"false\"` (no counter increments after each answer), beside the rows above it, for what counting costs.\n\n| request | concurrency | direct | registry-proxy | direct req/s | registry-proxy req/s | added p50 (ms) |\n| --- | --- | --- | --- | --- | --- | --- |\n",
            &big_digest_manifest[..19],
            plan.latency_requests
        ));
        for row in &latency.rows {
            out.push_str(row);
            out.push('\n');
        }
        out.push_str(&format!(
            "\n## Pull of a {}-layer image ({} KiB layers)\n\n| path | cold (s) | warm (s) | upstream GETs cold | upstream GETs warm |\n| --- | --- | --- | --- | --- |\n",
            plan.small_layers,
            plan.small_layer >> 10
        ));
        for i in 0..3 {
            let (cold_gets, warm_gets) = if i == 0 {
                ("–".to_string(), "–".to_string())
            } else {
                (
                    many_requests[i].0.to_string(),
                    many_requests[i].1.to_string(),
                )
            };
            out.push_str(&format!(
                "| {} | {} | {} | {cold_gets} | {warm_gets} |\n",
                many_names[i],
                fmt_spread(many_cold[i].clone(), 3),
                fmt_spread(many_warm[i].clone(), 3)
            ));
        }
        out.push_str(&format!(
            "\n## Memory during the {} MiB pulls through registry-proxy\n\n| proxy process peak RSS, streaming (MiB) | proxy process peak RSS, caching (MiB) | component peak linear memory, streaming (MiB) | component peak linear memory, caching (MiB) |\n| --- | --- | --- | --- |\n| {} | {} | {} | {} |\n\nPeak RSS is that of the `spin up` process group (the CLI and its HTTP trigger process); the SQLite store is a file outside it.\n",
            big_bytes >> 20,
            fmt_spread(rss, 1),
            fmt_spread(cached_rss, 1),
            fmt_spread(component.clone(), 1),
            fmt_spread(cached_component.clone(), 1)
        ));
        out.push_str(&crowd_section(
            [&on_redis, &on_spin_kv],
            plan.big_layer,
            crowd_size,
        ));
        let key_value = (
            ratio(&rows_cold[2], &rows_cold[0]),
            ratio(&rows_warm[2], &rows_warm[0]),
        );
        out.push_str(&objects::section(&in_bucket, object_sizes, key_value));
        out.push_str(&soaked(plan, upstream, &dir).await);
        out.push_str(&targets(
            &rows_cold,
            &rows_warm,
            &latency,
            &component,
            &cached_component,
            &many_requests,
            &on_redis,
        ));
        registry::stop(&dir, "upstream");
        // Gigabytes of layers and caches: not left for the next run to find.
        let _ = std::fs::remove_dir_all(&dir);
        out
    }
}
