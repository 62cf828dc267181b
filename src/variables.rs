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
}
