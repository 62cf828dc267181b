//! Hit and miss counts, kept in the key-value store for the admin API.

use super::host::Host;
use crate::cache::{STATS_KEY, Stats};

#[derive(Clone, Copy)]
pub enum Outcome {
    Hit,
    Miss,
    Revalidated,
    Stale,
}

/// Counts one outcome. Instances may race and lose a count: these are
/// figures for people, not for billing.
pub fn record<H: Host>(host: &H, outcome: Outcome) {
    let mut stats: Stats = host
        .kv_get(STATS_KEY)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default();
    let n = match outcome {
        Outcome::Hit => &mut stats.hits,
        Outcome::Miss => &mut stats.misses,
        Outcome::Revalidated => &mut stats.revalidated,
        Outcome::Stale => &mut stats.stale,
    };
    *n += 1;
    if let Ok(v) = serde_json::to_vec(&stats) {
        let _ = host.kv_set(STATS_KEY, &v);
    }
}

pub fn load<H: Host>(host: &H) -> Stats {
    host.kv_get(STATS_KEY)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default()
}
