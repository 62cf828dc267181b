//! What operators see of the proxy: the counters' keys in the stats store,
//! their Prometheus text exposition, and the JSON access log line.
//!
//! A counter's key is its metric name and label values joined by `|`, so a
//! scrape lists the store once and needs no schema. Label values come from
//! routes, endpoint kinds and status classes, never from what a client
//! typed, so the series stay few.

use std::collections::BTreeMap;
use std::fmt::Write as _;

const SEPARATOR: char = '|';
/// Every exported counter's key starts with this.
pub const PREFIX: &str = "m|";

/// A metric: its name, help text and label names, in key order.
pub struct Metric {
    pub name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

pub const REQUESTS: Metric = Metric {
    name: "registry_proxy_requests_total",
    help: "Requests answered, by route, endpoint kind and status class.",
    labels: &["route", "endpoint", "status"],
};
pub const CACHE: Metric = Metric {
    name: "registry_proxy_cache_total",
    help: "Cache outcomes: hit, miss, revalidated, stale, coalesced (a miss served by following another request's copy), bypass (the cache store away: relayed).",
    labels: &["outcome"],
};
pub const UPSTREAM: Metric = Metric {
    name: "registry_proxy_upstream_requests_total",
    help: "Requests to upstreams, by upstream and result (ok, or error: unreachable or 5xx).",
    labels: &["upstream", "result"],
};
pub const UPSTREAM_MICROS: Metric = Metric {
    name: "registry_proxy_upstream_duration_microseconds_total",
    help: "Time upstreams took to answer (until the response head), summed; divide by registry_proxy_upstream_requests_total.",
    labels: &["upstream"],
};
pub const BYTES: Metric = Metric {
    name: "registry_proxy_served_bytes_total",
    help: "Body bytes served, by where they came from (cache or upstream).",
    labels: &["source"],
};

pub const TOKENS: Metric = Metric {
    name: "registry_proxy_token_requests_total",
    help: "Token requests, by how they were answered (login, relayed, kept, anonymous; route_credentials: the proxy's own for a route) and status class.",
    labels: &["answer", "status"],
};

const ALL: [&Metric; 6] = [
    &REQUESTS,
    &CACHE,
    &UPSTREAM,
    &UPSTREAM_MICROS,
    &BYTES,
    &TOKENS,
];

/// The counter key of `metric` with these label values (as many as it has
/// labels). Values are cut to 100 characters and lose the separator.
pub fn key(metric: &Metric, values: &[&str]) -> String {
    debug_assert_eq!(values.len(), metric.labels.len());
    let mut key = format!("{PREFIX}{}", metric.name);
    for v in values {
        key.push(SEPARATOR);
        key.extend(v.chars().filter(|c| *c != SEPARATOR).take(100));
    }
    key
}

/// The label values of a key [`key`] made for `metric`; `None` for a key
/// of another metric, or with another number of labels.
pub fn labels<'a>(metric: &Metric, key: &'a str) -> Option<Vec<&'a str>> {
    let rest = key.strip_prefix(PREFIX)?.strip_prefix(metric.name)?;
    let values: Vec<&str> = rest.strip_prefix(SEPARATOR)?.split(SEPARATOR).collect();
    (values.len() == metric.labels.len()).then_some(values)
}

/// A gauge of whether each store answers, 1 or 0, read at the scrape.
pub fn stores_up(stores: &[(&str, Result<(), String>)]) -> String {
    let mut out = String::from(
        "# HELP registry_proxy_store_up Whether the store answers (1) or is away (0): routes, cache, counters.\n# TYPE registry_proxy_store_up gauge\n",
    );
    for (name, state) in stores {
        let _ = writeln!(
            out,
            "registry_proxy_store_up{{store=\"{name}\"}} {}",
            u8::from(state.is_ok())
        );
    }
    out
}

/// Prometheus text format (version 0.0.4) of the counters, given as key and
/// value; keys of unknown metrics are left out.
pub fn exposition(counters: &[(String, i64)]) -> String {
    let mut series: BTreeMap<&str, Vec<(Vec<&str>, i64)>> = BTreeMap::new();
    for (k, v) in counters {
        let Some(rest) = k.strip_prefix(PREFIX) else {
            continue;
        };
        let mut parts = rest.split(SEPARATOR);
        let name = parts.next().unwrap_or_default();
        if let Some(m) = ALL.iter().find(|m| m.name == name) {
            let values: Vec<&str> = parts.collect();
            if values.len() == m.labels.len() {
                series.entry(m.name).or_default().push((values, *v));
            }
        }
    }
    let mut out = String::new();
    for m in ALL {
        let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
        let _ = writeln!(out, "# TYPE {} counter", m.name);
        for (values, v) in series.get(m.name).into_iter().flatten() {
            let labels: Vec<String> = m
                .labels
                .iter()
                .zip(values)
                .map(|(l, v)| format!("{l}=\"{}\"", escape(v)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {v}", m.name, labels.join(","));
        }
    }
    out
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `2026-11-23T16:58:31.250Z` for milliseconds since the Unix epoch.
pub fn rfc3339(unix_millis: u64) -> String {
    let (secs, millis) = (unix_millis / 1000, unix_millis % 1000);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Howard Hinnant's days-to-date, for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_their_labels_and_render_as_series() {
        let k = key(&REQUESTS, &["ghcr.io", "manifest", "2xx"]);
        assert_eq!(k, "m|registry_proxy_requests_total|ghcr.io|manifest|2xx");
        assert_eq!(
            key(&CACHE, &["a|b"]),
            "m|registry_proxy_cache_total|ab",
            "the separator never reaches a key"
        );
        let text = exposition(&[
            (k, 3),
            (key(&CACHE, &["hit"]), 7),
            ("m|unknown_metric|x".into(), 1),
            ("stats/hits".into(), 9),
            (key(&BYTES, &["cache"]), 1 << 40),
        ]);
        assert!(text.contains(
            "registry_proxy_requests_total{route=\"ghcr.io\",endpoint=\"manifest\",status=\"2xx\"} 3\n"
        ));
        assert!(text.contains("registry_proxy_cache_total{outcome=\"hit\"} 7\n"));
        assert!(
            text.contains("registry_proxy_served_bytes_total{source=\"cache\"} 1099511627776\n")
        );
        assert!(text.contains("# TYPE registry_proxy_upstream_requests_total counter\n"));
        assert!(!text.contains("unknown_metric") && !text.contains(" 9\n"));
    }

    #[test]
    fn labels_read_back_what_key_wrote() {
        let k = key(&REQUESTS, &["default", "blob", "2xx"]);
        assert_eq!(labels(&REQUESTS, &k), Some(vec!["default", "blob", "2xx"]));
        assert_eq!(labels(&CACHE, &k), None);
        // A metric whose name starts like another's is another metric.
        let longer = format!("{PREFIX}{}_x|a|b|c", REQUESTS.name);
        assert_eq!(labels(&REQUESTS, &longer), None);
        assert_eq!(labels(&REQUESTS, &key(&CACHE, &["hit"])), None);
    }

    #[test]
    fn label_values_are_escaped() {
        let text = exposition(&[(key(&UPSTREAM, &["a\"b\\c\nd", "ok"]), 1)]);
        assert!(text.contains(r#"upstream="a\"b\\c\nd""#), "{text}");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_795_453_111_250), "2026-11-23T16:58:31.250Z");
    }
}
