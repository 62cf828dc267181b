//! The S3 backend's settings, from Spin variables: each missing or wrong
//! one is named in the error, at the first request that needs it.

use crate::host::Host;
use url::Url;

/// A bucket's place and the keys to it.
pub struct S3Config {
    pub endpoint: Url,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub path_style: bool,
    /// Put before every object key, so one bucket can hold other things.
    pub prefix: String,
}

impl S3Config {
    /// The settings from the `s3_*` variables; `Err` names the first one missing or wrong.
    pub fn read<H: Host>(host: &H) -> Result<Self, String> {
        let required = |name: &str| {
            host.setting(name)
                .map_err(|e| format!("{name} cannot be read: {e}"))?
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("blob_store is s3, but {name} is not set"))
        };
        let endpoint = endpoint(&required("s3_endpoint")?)?;
        let path_style = match host.variable("s3_path_style").as_deref().map(str::trim) {
            None | Some("" | "false") => false,
            Some("true") => true,
            Some(other) => return Err(format!("s3_path_style is {other:?}: true or false")),
        };
        let prefix = host.variable("s3_prefix").unwrap_or_default();
        if prefix.starts_with('/') || prefix.contains("..") {
            return Err(format!(
                "s3_prefix {prefix:?} must not start with / or hold .."
            ));
        }
        Ok(Self {
            endpoint,
            region: required("s3_region")?,
            bucket: required("s3_bucket")?,
            access_key_id: required("s3_access_key_id")?,
            secret_access_key: required("s3_secret_access_key")?,
            path_style,
            prefix,
        })
    }
}

/// An origin: `http(s)://host[:port]`, nothing after it. spin.toml's
/// default names a host that never resolves (`.invalid`), which counts as
/// unset.
fn endpoint(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("s3_endpoint {value:?} is not a URL: {e}"))?;
    let origin_only = url.path() == "/" && url.query().is_none() && url.username().is_empty();
    if !matches!(url.scheme(), "http" | "https") || !origin_only {
        return Err(format!(
            "s3_endpoint {value:?} must be an origin such as https://s3.eu-west-1.amazonaws.com"
        ));
    }
    if url.host_str().is_none_or(|h| h.ends_with(".invalid")) {
        return Err("blob_store is s3, but s3_endpoint is not set".to_string());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::{Answer, MemoryHost};

    fn host(vars: &[(&str, &str)]) -> MemoryHost {
        let host = MemoryHost::new(|_| Answer {
            status: 404,
            headers: vec![],
            body: vec![],
        });
        for (k, v) in vars {
            host.set_variable(k, v);
        }
        host
    }

    const ALL: [(&str, &str); 6] = [
        ("s3_endpoint", "http://127.0.0.1:3991"),
        ("s3_region", "garage"),
        ("s3_bucket", "blobs"),
        ("s3_access_key_id", "GK1"),
        ("s3_secret_access_key", "secret"),
        ("s3_path_style", "true"),
    ];

    #[test]
    fn every_missing_or_wrong_setting_is_named() {
        let config = S3Config::read(&host(&ALL)).unwrap();
        assert!(config.path_style);
        for (name, _) in &ALL[..5] {
            let mut vars = ALL.to_vec();
            vars.retain(|(n, _)| n != name);
            let err = S3Config::read(&host(&vars)).err().unwrap();
            assert!(err.contains(name), "{err}");
        }
        for (name, bad) in [
            ("s3_endpoint", "127.0.0.1:3991"),
            ("s3_endpoint", "https://s3.example.com/bucket"),
            ("s3_endpoint", "https://s3-endpoint.invalid"),
            ("s3_path_style", "yes"),
            ("s3_prefix", "../x"),
        ] {
            let mut vars = ALL.to_vec();
            vars.push((name, bad));
            let err = S3Config::read(&host(&vars)).err().unwrap();
            assert!(err.contains(name), "{name}={bad}: {err}");
        }
    }

    #[test]
    fn an_unreadable_secret_is_an_error_not_unset() {
        let h = host(&ALL);
        h.fail_variable("s3_secret_access_key");
        let err = S3Config::read(&h).err().unwrap();
        assert!(err.contains("s3_secret_access_key cannot be read"), "{err}");
    }
}
