//! Where the two shared cores go during a crowd: CPU seconds per kind of
//! process, read from /proc before and after. On this machine the clients,
//! the registry, Spin, Redis and Garage share the cores, so a crowd's wall
//! time is bounded below by the CPU it costs them all.

use std::collections::BTreeMap;

/// Cumulative CPU seconds (user + system) by kind of process.
#[derive(Clone, Default)]
pub struct Usage(pub BTreeMap<&'static str, f64>);

/// The kinds measured, by the start of the command name; the benchmark's
/// own process (the clients) is `clients`.
const KINDS: [(&str, &str); 4] = [
    ("spin", "spin"),
    ("redis-server", "redis"),
    ("garage", "garage"),
    ("docker-registr", "registry"),
];

/// Clock ticks a second: Linux reports 100 to user space on every
/// architecture it runs this benchmark on.
const TICKS: f64 = 100.0;

impl Usage {
    pub fn now() -> Self {
        let me = std::process::id().to_string();
        let mut usage = Self::default();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return usage;
        };
        for entry in procs.flatten() {
            let pid = entry.file_name().to_string_lossy().to_string();
            let Some((comm, ticks)) = stat(&pid) else {
                continue;
            };
            let kind = if pid == me {
                Some("clients")
            } else {
                KINDS
                    .iter()
                    .find(|(prefix, _)| comm.starts_with(prefix))
                    .map(|(_, kind)| *kind)
            };
            if let Some(kind) = kind {
                *usage.0.entry(kind).or_default() += ticks / TICKS;
            }
        }
        usage
    }

    /// What was spent since `earlier`, by processes alive at both.
    pub fn since(&self, earlier: &Usage) -> Usage {
        let spent = self
            .0
            .iter()
            .map(|(k, v)| (*k, (v - earlier.0.get(k).unwrap_or(&0.0)).max(0.0)))
            .collect();
        Usage(spent)
    }
}

/// A process's command name and its user + system ticks.
fn stat(pid: &str) -> Option<(String, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let comm = text.get(text.find('(')? + 1..text.rfind(')')?)?.to_string();
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split(' ').collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((comm, user + system))
}

/// `kind median …` over runs, in a fixed order, kinds no run used left out.
pub fn table(runs: &[Usage]) -> String {
    let kinds = ["clients", "registry", "spin", "redis", "garage"];
    kinds
        .iter()
        .filter_map(|kind| {
            let mut xs: Vec<f64> = runs.iter().filter_map(|u| u.0.get(kind).copied()).collect();
            if xs.iter().all(|x| *x < 0.05) {
                return None;
            }
            xs.sort_by(f64::total_cmp);
            Some(format!("{kind} {:.1}", xs[xs.len() / 2]))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
