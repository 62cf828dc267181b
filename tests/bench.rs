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
//! for working on that section without the other nine minutes
//! (`GARAGE_NODES=3`: against a three-node cluster, replication 3);
//! `BENCH=soak` the ten-minute soak alone, into target/benchmarks-soak.md
//! (`SOAK_SECS` sets another length); `BENCH=fill` the cold GETs that fill
//! the cache alone, full-sized, into target/benchmarks-fill.md.
//!
//! What it starts and talks to comes from `support` (tests/support); its
//! own parts are in tests/bench/.

/// The component target has nothing to benchmark.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use bench::{plan::Plan, run};
    let mode = std::env::var("BENCH").unwrap_or_default();
    let plan = Plan::new(matches!(
        mode.as_str(),
        "full" | "objects" | "soak" | "fill"
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let (report, out) = match mode.as_str() {
        "objects" => (
            rt.block_on(run::objects_only(&plan)),
            root.join("target/benchmarks-objects.md"),
        ),
        "soak" => (
            rt.block_on(run::soak_only(&plan)),
            root.join("target/benchmarks-soak.md"),
        ),
        "fill" => (
            rt.block_on(run::fill_only(&plan)),
            root.join("target/benchmarks-fill.md"),
        ),
        "full" => (
            rt.block_on(run::every_section(&plan)),
            root.join("docs/benchmarks.md"),
        ),
        _ => (
            rt.block_on(run::every_section(&plan)),
            root.join("target/benchmarks-smoke.md"),
        ),
    };
    println!("{report}");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, report).unwrap();
    eprintln!("bench: wrote {}", out.display());
}

/// The benchmark's parts, each a file in tests/bench/.
#[cfg(not(target_arch = "wasm32"))]
mod bench {
    /// Where the shared cores go during a crowd.
    pub mod cpu;
    /// Cold GETs with the cache on Redis, two instances sharing it.
    pub mod crowd;
    /// Medians with their range, and ratios of medians.
    pub mod figures;
    /// One cold GET of a layer on each path: filling the cache.
    pub mod fill;
    /// Manifest latency and requests per second, and their percentiles.
    pub mod latency;
    /// What the benchmark reads from an instance's access log.
    pub mod logged;
    /// Blobs in a Garage bucket.
    pub mod objects;
    /// The run's sizes and images.
    pub mod plan;
    /// The big image prefetched into an empty cache, against a direct pull.
    pub mod prefetch;
    /// registry-proxy under Spin, with its memory, and distribution's proxy.
    pub mod proxy_process;
    /// Timed pulls on each path, and the pushes before them.
    pub mod pulls;
    /// The figures as docs/benchmarks.md's markdown, with the machine.
    pub mod report;
    /// Every section in turn, the objects alone, the soak alone.
    pub mod run;
    /// 32 clients over two instances for minutes.
    pub mod soak;
    /// The targets, met or missed.
    pub mod targets;
}
