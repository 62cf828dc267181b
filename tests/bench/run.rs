//! The benchmark's three runs: every section in turn into one report (smoke
//! or full), the object-storage section alone, and the soak alone.

use super::figures::ratio;
use super::plan::{BIG, MANY, Plan};
use super::prefetch::{self, Prefetches};
use super::pulls::{Pulls, push};
use super::{crowd, fill, latency, objects, report, soak, targets};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::{garage, registry, watched};

/// Every section, measured in turn against one upstream, then reported
/// (the soak last, as it is measured last).
pub async fn every_section(plan: &Plan) -> String {
    let dir = watched::work_dir("registry-proxy-bench-");
    let upstream = registry::start(&dir, "upstream", "").await;
    let big_digest = push(upstream, BIG, &[plan.big_layer], 11).await;
    let many_layers = vec![plan.small_layer; plan.small_layers];
    push(upstream, MANY, &many_layers, 100).await;

    let pulls = Pulls::measure(plan, upstream, &dir).await;
    let filled = fill::measure(plan, upstream, &dir).await;
    let (on_redis, on_spin_kv) = crowds(plan, upstream, &dir).await;
    let object_sizes = (plan.big_layer.min(256 << 20), plan.crowd_blob());
    let in_bucket = in_bucket(plan, upstream, &dir, object_sizes).await;
    let latency = latency::measure(upstream, &dir, plan, &big_digest).await;
    let prefetches = Prefetches::measure(plan, upstream, &dir).await;

    let mut out = report::heading(plan);
    out.push_str(&report::big_pulls(&pulls, plan));
    out.push_str(&fill::section(&filled));
    out.push_str(&report::manifests(&latency, &big_digest, plan));
    out.push_str(&report::many_pulls(&pulls, plan));
    out.push_str(&report::memory(&pulls, plan));
    out.push_str(&prefetch::section(&prefetches, plan));
    let ways = [&on_redis, &on_spin_kv];
    out.push_str(&report::crowd(ways, plan.big_layer, plan.crowd_blob()));
    let key_value = (
        ratio(&pulls.big_cold[2], &pulls.big_cold[0]),
        ratio(&pulls.big_warm[2], &pulls.big_warm[0]),
    );
    out.push_str(&objects::section(&in_bucket, object_sizes, key_value));
    out.push_str(&soaked(plan, upstream, &dir).await);
    out.push_str(&targets::section(&pulls, &latency, &on_redis));
    registry::stop(&dir, "upstream");
    // Gigabytes of layers and caches: not left for the next run to find.
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Only the object-storage section (`BENCH=objects`), without the
/// key-value default's figures it compares with.
pub async fn objects_only(plan: &Plan) -> String {
    let dir = watched::work_dir("registry-proxy-bench-");
    let upstream = registry::start(&dir, "upstream", "").await;
    let sizes = (256 << 20, 256 << 20);
    let figures = in_bucket(plan, upstream, &dir, sizes).await;
    objects::section(&figures, sizes, (f64::NAN, f64::NAN))
}

/// Only what fills the cache (`BENCH=fill`): the cold GETs, and the
/// prefetch of the big image.
pub async fn fill_only(plan: &Plan) -> String {
    let dir = watched::work_dir("registry-proxy-bench-");
    let upstream = registry::start(&dir, "upstream", "").await;
    push(upstream, BIG, &[plan.big_layer], 11).await;
    let mut report = fill::section(&fill::measure(plan, upstream, &dir).await);
    let prefetches = Prefetches::measure(plan, upstream, &dir).await;
    report.push_str(&prefetch::section(&prefetches, plan));
    registry::stop(&dir, "upstream");
    let _ = std::fs::remove_dir_all(&dir);
    report
}

/// The soak alone; a failed pull fails a smoke-sized run.
pub async fn soak_only(plan: &Plan) -> String {
    let dir = watched::work_dir("registry-proxy-bench-");
    let upstream = registry::start(&dir, "upstream", "").await;
    let report = soaked(plan, upstream, &dir).await;
    registry::stop(&dir, "upstream");
    report
}

/// Both ways to Redis in turn, each repetition on fresh blobs: `stores =
/// redis`, then Spin's key-value store.
async fn crowds(plan: &Plan, upstream: SocketAddr, dir: &Path) -> (crowd::Figures, crowd::Figures) {
    let (mut on_redis, mut on_spin_kv) = (crowd::Figures::default(), crowd::Figures::default());
    for rep in 0..plan.repetitions as u64 {
        let sizes = (plan.big_layer, plan.crowd_blob());
        let way = crowd::Way::Outbound;
        crowd::measure(upstream, dir, sizes, 500 + 4 * rep, way, &mut on_redis).await;
        let way = crowd::Way::SpinKeyValue;
        crowd::measure(upstream, dir, sizes, 502 + 4 * rep, way, &mut on_spin_kv).await;
    }
    (on_redis, on_spin_kv)
}

/// The object-storage repetitions against one Garage node, or as many as
/// `GARAGE_NODES` says (each holding every object: what a write costs on
/// a replicated bucket).
async fn in_bucket(
    plan: &Plan,
    upstream: SocketAddr,
    dir: &Path,
    sizes: (u64, u64),
) -> objects::Figures {
    let nodes = std::env::var("GARAGE_NODES").map_or(1, |n| {
        n.parse()
            .unwrap_or_else(|_| panic!("GARAGE_NODES is {n:?}: a number of nodes"))
    });
    let garage = garage::Garage::start(&dir.join("garage"), nodes);
    let mut figures = objects::Figures {
        garage_nodes: nodes,
        ..Default::default()
    };
    for rep in 0..plan.repetitions {
        let seed = 700 + 2 * rep as u64;
        objects::measure(upstream, dir, &garage, sizes, seed, &mut figures).await;
    }
    for node in &garage.nodes {
        node.stop();
    }
    figures
}

/// The soak, `plan.soak` long unless `SOAK_SECS` says otherwise.
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
