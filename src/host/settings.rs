//! The component's plain settings, typed, from its variables: one value a
//! request (the wasi:http host reads it once; the in-memory host anew, as
//! its tests change variables), each default written once (spin.toml's, in
//! `variables::DEFAULTS`), and a value that does not parse logged naming
//! its variable. Security settings (`require_login`, the tokens) are not
//! here: those must be read to be obeyed ([`super::Host::setting`]).

use crate::variables::{count, seconds, size};
use std::time::Duration;

/// A hosted platform's requests end at 30 s: a prefetch there starts no
/// new object after this many seconds.
const HOSTED_PREFETCH_SECS: u64 = 25;
/// Elsewhere, unless `prefetch_time_limit` says otherwise: a prefetch
/// from an upstream that answers slowly or lists more than it should
/// ends on its own, saying what is left for another call; ten minutes is
/// several gigabytes on most links.
const DEFAULT_PREFETCH_SECS: u64 = 600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Hosts `<name>.<custom_domain>` get the built-in routes; empty: none.
    pub custom_domain: String,
    /// The upstream of hosts with no route; none: they are refused.
    pub default_upstream: Option<String>,
    /// The proxy's public origin, when `Host` and `X-Forwarded-Proto` do not tell it.
    pub public_url: Option<String>,
    /// Where the admin API lives, as the variable says (checked where used).
    pub admin_path: Option<String>,
    /// Whether counters are kept after each answer.
    pub metrics: bool,
    pub cache_max_size: u64,
    /// With `blob_delivery = redirect`: the largest blob streamed.
    pub body_limit: u64,
    pub upstream_timeout: Duration,
    /// `stream` or `redirect`, as the variable says (parsed where used).
    pub blob_delivery: String,
    /// Seconds a prefetch starts new objects for.
    pub prefetch_time_limit: u64,
    /// The cache store's key budget (`kv_max_keys`): the hosted profile.
    pub kv_max_keys: u64,
    /// Copies whose clients have all gone that go on, unfollowed, at once.
    pub max_detached_copies: u64,
}

impl Settings {
    /// From the variables, as `variable` reads them (unset or empty: the default).
    pub fn read(variable: impl Fn(&str) -> Option<String>) -> Self {
        let text = |name: &str| {
            variable(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let size_of = |name: &str| size(name, variable(name));
        let kv_max_keys = size_of("kv_max_keys");
        let prefetch = seconds("prefetch_time_limit", variable("prefetch_time_limit"));
        // Unset on a hosted platform (a key budget): its own time limit.
        let prefetch_time_limit = match (prefetch, kv_max_keys) {
            (0, 0) => DEFAULT_PREFETCH_SECS,
            (0, _) => HOSTED_PREFETCH_SECS,
            (s, _) => s,
        };
        let timeout = Some(seconds("upstream_timeout", variable("upstream_timeout")))
            .filter(|&s| s > 0)
            .unwrap_or_else(|| seconds("upstream_timeout", None));
        Self {
            custom_domain: text("custom_domain").unwrap_or_default(),
            default_upstream: text("default_upstream"),
            public_url: text("public_url"),
            admin_path: variable("admin_path"),
            metrics: text("metrics").as_deref() != Some("false"),
            cache_max_size: size_of("cache_max_size"),
            body_limit: size_of("body_limit"),
            upstream_timeout: Duration::from_secs(timeout),
            blob_delivery: text("blob_delivery").unwrap_or_default(),
            prefetch_time_limit,
            kv_max_keys,
            max_detached_copies: count("max_detached_copies", variable("max_detached_copies")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Settings {
        Settings::read(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
                .or_else(|| crate::variables::default_of(name).map(String::from))
        })
    }

    #[test]
    fn defaults_are_spin_tomls_and_bad_values_keep_them() {
        let s = read(&[]);
        assert_eq!((s.cache_max_size, s.body_limit), (10 << 30, 10 << 20));
        assert_eq!(s.upstream_timeout, Duration::from_secs(30));
        assert_eq!((s.prefetch_time_limit, s.metrics), (600, true));
        assert_eq!(
            s.default_upstream.as_deref(),
            Some("https://registry-1.docker.io")
        );
        let s = read(&[
            ("cache_max_size", "lots"),
            ("upstream_timeout", "0"),
            ("default_upstream", " "),
        ]);
        assert_eq!(
            (s.cache_max_size, s.upstream_timeout.as_secs()),
            (10 << 30, 30)
        );
        assert_eq!(s.default_upstream, None);
    }

    #[test]
    fn a_key_budget_brings_the_hosted_prefetch_limit_unless_one_is_set() {
        assert_eq!(read(&[("kv_max_keys", "1024")]).prefetch_time_limit, 25);
        let set = read(&[("kv_max_keys", "1024"), ("prefetch_time_limit", "10")]);
        assert_eq!(set.prefetch_time_limit, 10);
        assert_eq!(read(&[("prefetch_time_limit", "5")]).prefetch_time_limit, 5);
        assert!(!read(&[("metrics", "false")]).metrics);
    }
}
