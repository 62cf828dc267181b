//! Prefetch: the big image put into an empty cache through
//! `POST <admin_path>/cache/prefetch`, against a client's pull of it straight
//! from the registry (every blob hashed, as clients do), side by side each
//! repetition; then the same prefetch again, with everything cached.

use super::figures::{fmt_spread, ratio};
use super::plan::{BIG, Plan};
use super::proxy_process::ProxyProcess;
use super::pulls::pull;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::http;

const ADMIN_TOKEN: &str = "bench-admin";

/// Seconds of each, one entry a repetition.
#[derive(Default)]
pub struct Prefetches {
    pub direct: Vec<f64>,
    pub cold: Vec<f64>,
    pub warm: Vec<f64>,
    /// Peak RSS of `spin up`, MiB.
    pub rss: Vec<f64>,
}

impl Prefetches {
    pub async fn measure(plan: &Plan, upstream: SocketAddr, dir: &Path) -> Self {
        let mut figures = Prefetches::default();
        for _ in 0..plan.repetitions {
            figures.direct.push(pull(upstream, BIG).await.as_secs_f64());
            let vars = [("admin_token", ADMIN_TOKEN)];
            let proxy = ProxyProcess::start_with(upstream, dir, true, &vars);
            figures
                .cold
                .push(prefetch(proxy.addr, "cached").await.as_secs_f64());
            figures
                .warm
                .push(prefetch(proxy.addr, "already").await.as_secs_f64());
            figures.rss.push(proxy.peak_rss_mib());
        }
        figures
    }
}

/// One prefetch of the big image, timed until its summary line, which
/// must say it is complete and that its blob was `outcome`.
async fn prefetch(proxy: SocketAddr, outcome: &str) -> Duration {
    let started = Instant::now();
    let r = http::send(
        "POST",
        &format!("http://{proxy}/_registry-proxy/cache/prefetch"),
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        format!(r#"{{"image": "{BIG}:latest"}}"#),
    )
    .await;
    let took = started.elapsed();
    let text = r.text();
    let summary: serde_json::Value =
        serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap_or_default();
    assert_eq!(summary["complete"], true, "prefetch: {text}");
    let blobs = text.lines().filter(|l| l.contains(r#""kind":"blob""#));
    assert!(
        blobs.clone().count() > 0 && blobs.clone().all(|l| l.contains(outcome)),
        "{text}"
    );
    took
}

pub fn section(f: &Prefetches, plan: &Plan) -> String {
    format!(
        "\n## Prefetch of the {} MiB image\n\n`POST <admin_path>/cache/prefetch` into an empty cache, timed until its summary line (the copy committed, its digest checked), against a pull of the same image straight from the registry with every blob hashed; then the same prefetch again, all of it cached.\n\n| what | seconds | ratio to direct |\n| --- | --- | --- |\n| direct pull | {} | 1.00 |\n| cold prefetch | {} | {:.2} |\n| warm prefetch (no upstream GET) | {} | {:.3} |\n\nPeak RSS of `spin up` over both: {} MiB.\n",
        plan.big_layer >> 20,
        fmt_spread(f.direct.clone(), 3),
        fmt_spread(f.cold.clone(), 3),
        ratio(&f.cold, &f.direct),
        fmt_spread(f.warm.clone(), 3),
        ratio(&f.warm, &f.direct),
        fmt_spread(f.rss.clone(), 0),
    )
}
