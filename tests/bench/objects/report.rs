//! The object-storage section of the report: each figure beside its
//! baseline and target, and where the CPU went.

use super::Figures;
use crate::bench::cpu;
use crate::bench::figures::{fmt_spread, median};

/// A measure, registry-proxy's figure, its baseline and that baseline's
/// figure, the ratio, and the target.
type Row = (
    &'static str,
    String,
    &'static str,
    String,
    String,
    &'static str,
);

/// The object-storage section: each figure beside its baseline and target.
pub fn section(f: &Figures, sizes: (u64, u64), key_value: (f64, f64)) -> String {
    let (size, crowd_size) = sizes;
    let mut out = format!(
        "\n## Blobs in S3-compatible object storage (Garage 2.5, {} on loopback)\n\nOne {} MiB blob (the crowd: {} MiB), medians over the repetitions with (min–max); every client hashes what it reads, on both sides. On this machine Garage sets the pace, so the proxy is measured against the bucket's own PUT and GET of the same bytes by presigned URL.\n\n| measure | registry-proxy | baseline | baseline figure | ratio | target |\n| --- | --- | --- | --- | --- | --- |\n",
        match f.garage_nodes {
            1 => "one node".to_string(),
            n => format!("{n} nodes, replication {n}"),
        },
        size >> 20,
        crowd_size >> 20
    );
    let rows = blob_rows(f).into_iter().chain(other_rows(f, key_value));
    for (name, proxy, base, base_figure, ratio, target) in rows {
        out.push_str(&format!(
            "| {name} | {proxy} | {base} | {base_figure} | {ratio} | {target} |\n"
        ));
    }
    out.push_str(&format!(
        "\nCPU seconds spent, medians, by kind of process (two cores: a wall of W s offers 2W):\n- the bucket's own PUT and GET of the blob: {};\n- one cold copy through the proxy, its check and completion included: {};\n- the crowd through the proxy: {};\n- the crowd straight from the registry: {}.\n",
        cpu::table(&f.baseline_cpu),
        cpu::table(&f.cold_cpu),
        cpu::table(&f.crowd_cpu_proxied),
        cpu::table(&f.crowd_cpu_direct)
    ));
    out
}

/// One blob, warm by redirect and streamed, and cold.
fn blob_rows(f: &Figures) -> Vec<Row> {
    let cold_base: Vec<f64> = f
        .relay
        .iter()
        .zip(&f.bucket_put)
        .map(|(r, p)| r.max(*p))
        .collect();
    vec![
        (
            "warm pull by redirect (s)",
            fmt_spread(f.warm_redirect.clone(), 3),
            "a GET of the same presigned URL",
            fmt_spread(f.presigned_get.clone(), 3),
            format!(
                "{:.2}×",
                median(&f.warm_redirect) / median(&f.presigned_get)
            ),
            "≤ 1.05×",
        ),
        (
            "the `307` itself, kept-alive, p50 (ms)",
            fmt_spread(f.redirect_p50_ms.clone(), 2),
            "–",
            "–".into(),
            "–".into(),
            "≤ 2 ms",
        ),
        (
            "warm blob streamed from the bucket (s)",
            fmt_spread(f.warm_stream.clone(), 3),
            "the bucket's own GET",
            fmt_spread(f.bucket_get.clone(), 3),
            format!("{:.2}×", median(&f.warm_stream) / median(&f.bucket_get)),
            "≤ 1.35×",
        ),
        (
            "cold, S3 (s)",
            fmt_spread(f.cold.clone(), 3),
            "the larger of the cache-off relay and the bucket's own PUT",
            format!(
                "{} (relay {}, PUT {})",
                fmt_spread(cold_base.clone(), 3),
                fmt_spread(f.relay.clone(), 3),
                fmt_spread(f.bucket_put.clone(), 3)
            ),
            format!("{:.2}×", median(&f.cold) / median(&cold_base)),
            "≤ 1.25×",
        ),
    ]
}

/// The crowd, bytes stored, memory, and the key-value default beside them.
fn other_rows(f: &Figures, key_value: (f64, f64)) -> Vec<Row> {
    let gets: Vec<f64> = f.crowd_upstream_gets.iter().map(|&g| g as f64).collect();
    vec![
        (
            "16 clients, 2 instances, cold, S3: wall (s)",
            fmt_spread(f.crowd_proxied.clone(), 3),
            "16 clients straight from the registry",
            fmt_spread(f.crowd_direct.clone(), 3),
            format!(
                "{:.2}×; upstream GETs {}",
                median(&f.crowd_proxied) / median(&f.crowd_direct),
                fmt_spread(gets, 0)
            ),
            "≤ 1.5×, 1 GET",
        ),
        (
            "bytes stored per blob byte",
            fmt_spread(f.stored_per_byte.clone(), 3),
            "–",
            "–".into(),
            "–".into(),
            "≤ 1.01",
        ),
        (
            "component peak linear memory (MiB)",
            format!("{:.1}", f.component_mib),
            "–",
            "–".into(),
            format!("process peak RSS {:.1} MiB", f.rss_mib),
            "≤ 16 MiB",
        ),
        (
            "key-value default, 1 layer: cold / warm, ratio to direct",
            format!("{:.2}× / {:.2}×", key_value.0, key_value.1),
            "direct (table above)",
            "–".into(),
            "–".into(),
            "cold 0.16–0.26×, warm within 5%",
        ),
    ]
}
