//! The component's variables and their defaults, as spin.toml declares
//! them. Spin applies the defaults itself; a runtime that does not
//! (`wasi:config` under `wasmtime serve`) gets them from here.

const DEFAULTS: &[(&str, &str)] = &[
    ("custom_domain", ""),
    ("default_upstream", "https://registry-1.docker.io"),
    ("public_url", ""),
    ("admin_token", ""),
    ("admin_path", "/_registry-proxy"),
    ("metrics_token", ""),
    ("metrics", "true"),
    ("require_login", "false"),
    ("token_signing_key", ""),
    ("upstream_timeout", "30"),
    ("cache_max_size", "10GiB"),
    ("max_detached_copies", "4"),
    ("trusted_proxies", ""),
    ("prefetch_time_limit", ""),
    ("blob_delivery", "stream"),
    ("body_limit", "10MiB"),
    ("kv_max_keys", ""),
    ("kv_max_value", "1MB"),
    ("blob_store", "files"),
    ("s3_endpoint", "https://s3-endpoint.invalid"),
    ("s3_region", ""),
    ("s3_bucket", ""),
    ("s3_access_key_id", ""),
    ("s3_secret_access_key", ""),
    ("s3_path_style", "false"),
    ("s3_prefix", ""),
    ("stores", "spin"),
    ("redis_address", "redis-address.invalid:6379"),
    ("redis_password", ""),
    ("upstream1_username", ""),
    ("upstream1_password", ""),
    ("upstream1_authorization", ""),
    ("upstream2_username", ""),
    ("upstream2_password", ""),
    ("upstream2_authorization", ""),
    ("upstream3_username", ""),
    ("upstream3_password", ""),
    ("upstream3_authorization", ""),
];

/// The default of a declared variable; `None` for a name the component
/// does not declare (Spin refuses those too).
pub fn default_of(name: &str) -> Option<&'static str> {
    DEFAULTS.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

/// What a hosted platform allows, for a limit whose variable cannot be
/// read: Fermyon Cloud's 1,024 keys and both platforms' 1 MB values.
pub fn hosted_limit_of(name: &str) -> Option<&'static str> {
    match name {
        "kv_max_keys" => Some("1024"),
        "kv_max_value" => Some("1MB"),
        _ => default_of(name),
    }
}

/// A size variable's value (`10GiB`), its declared default when unset or
/// empty. A value that is not a size is said, naming the variable, and the
/// default holds: the one place a size's default is written is `DEFAULTS`.
pub fn size(name: &str, value: Option<String>) -> u64 {
    typed(name, value, parse_size, "a size (like 10GiB)")
}

/// A whole number of seconds, as [`size`] reads sizes; zero is none.
pub fn seconds(name: &str, value: Option<String>) -> u64 {
    typed(
        name,
        value,
        |v| v.trim().parse().ok(),
        "a whole number of seconds",
    )
}

/// A whole number, as [`size`] reads sizes.
pub fn count(name: &str, value: Option<String>) -> u64 {
    typed(name, value, |v| v.trim().parse().ok(), "a whole number")
}

fn typed(
    name: &str,
    value: Option<String>,
    parse: impl Fn(&str) -> Option<u64>,
    what: &str,
) -> u64 {
    let default = || default_of(name).and_then(&parse).unwrap_or(0);
    match value.filter(|v| !v.trim().is_empty()) {
        None => default(),
        Some(v) => parse(&v).unwrap_or_else(|| {
            let fallback = default_of(name).unwrap_or_default();
            eprintln!("variable {name}: {v:?} is not {what}; its default {fallback:?} holds");
            default()
        }),
    }
}

/// A size such as `10GiB`, `500MiB`, `2GB` or plain bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

// spin.toml is read with a native test dependency.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// The table is spin.toml's, name for name and default for default.
    #[test]
    fn defaults_are_spin_tomls() {
        let manifest: toml::Value =
            toml::from_str(include_str!("../spin.toml")).expect("spin.toml parses");
        let app = &manifest["variables"];
        let component = manifest["component"]["registry-proxy"]["variables"]
            .as_table()
            .expect("the component's variables");
        let mut declared: Vec<(String, String)> = component
            .keys()
            .map(|name| {
                let default = app[name.as_str()]["default"].as_str().unwrap_or_default();
                (name.clone(), default.to_string())
            })
            .collect();
        let mut ours: Vec<(String, String)> = DEFAULTS
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_string()))
            .collect();
        declared.sort();
        ours.sort();
        assert_eq!(declared, ours);
        assert_eq!(default_of("admin_path"), Some("/_registry-proxy"));
        assert_eq!(default_of("undeclared"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10GiB"), Some(10 << 30));
        assert_eq!(size("cache_max_size", None), 10 << 30);
        assert_eq!(size("cache_max_size", Some(" ".into())), 10 << 30);
        assert_eq!(size("cache_max_size", Some("lots".into())), 10 << 30);
        assert_eq!(size("cache_max_size", Some("2MiB".into())), 2 << 20);
        assert_eq!(size("kv_max_value", None), 1_000_000);
        assert_eq!(size("kv_max_keys", None), 0);
        assert_eq!(seconds("upstream_timeout", Some("x".into())), 30);
        assert_eq!(seconds("prefetch_time_limit", None), 0);
        assert_eq!(parse_size(" 500 MiB "), Some(500 << 20));
        assert_eq!(parse_size("2GB"), Some(2_000_000_000));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("GiB"), None);
        assert_eq!(parse_size("1.5GiB"), None);
        assert_eq!(parse_size("99999999999TiB"), None);
    }
}
