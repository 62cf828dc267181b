//! Routes: which upstream registry serves a request, chosen by the request's
//! host. Stored routes live in the key-value store as JSON under
//! `route/<host>`; `registries.rs` covers the public registries.

use crate::oci::error::FieldError;
use crate::oci::reference::RepositoryName;
use crate::routing::blob_delivery::BlobDelivery;
use crate::routing::cache_settings::CacheSettings;
use crate::routing::naming::NameMapping;
use crate::routing::pattern::RepositoryPattern;
use crate::routing::policy::{AllowedHosts, HostPattern};
use serde::{Deserialize, Serialize};
use std::fmt;
use url::Url;

/// Key-value layout: one key per proxy host, e.g. `route/docker.example.com`
/// or `route/localhost:3000`.
pub const KEY_PREFIX: &str = "route/";

/// The key-value key of the route stored for proxy host `host` (`route/<host>`).
pub fn key_for(host: &str) -> String {
    format!("{KEY_PREFIX}{host}")
}

/// A stored route's host, and the route or why it is invalid.
pub type StoredRoute = (String, Result<Route, RouteError>);

/// Every stored route.
pub fn stored_routes(kv: &dyn crate::host::Kv) -> Result<Vec<StoredRoute>, String> {
    let mut routes = Vec::new();
    for key in kv.keys()?.iter().filter(|k| k.starts_with(KEY_PREFIX)) {
        if let Some(bytes) = kv.get(key)? {
            let route = RouteConfig::from_json(&bytes).and_then(|c| c.resolve());
            routes.push((key[KEY_PREFIX.len()..].to_string(), route));
        }
    }
    Ok(routes)
}

/// The JSON schema of a stored route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Base URL of the upstream registry, e.g. `https://ghcr.io`.
    pub upstream: String,
    /// Docker Hub adds `library/` to single-component names. Inferred from
    /// the upstream host when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_hub: Option<bool>,
    /// Hosts besides the upstream this route may reach: its token realm and
    /// blob CDN hosts (`host`, `host:port`, `host:*`, `*.domain`). Known
    /// upstreams get their usual hosts without listing them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// Prepended to every repository name upstream: with `my-project`, a
    /// client's `foo` is the upstream's `my-project/foo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_prefix: Option<String>,
    /// Send browsers asking for an image to the upstream's web page for it
    /// (default on; turn off for private upstreams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_redirects: Option<bool>,
    /// The Spin variables holding this route's upstream credentials:
    /// `<credentials>_username` and `<credentials>_password`, or
    /// `<credentials>_authorization` (a whole `Authorization` value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    /// Whether pushes and deletes may use those credentials (off: they pull
    /// only). Even then only for the proxy's own users with the right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_for_writes: Option<bool>,
    /// Repository patterns served (all when empty) and refused; `deny` wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Only the proxy's own users may pull through this route (also turned
    /// on for every route by the `require_login` variable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_login: Option<bool>,
    /// Pull-through cache switches; absent: the defaults (on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSettings>,
    /// `stream` or `redirect`; absent: the `blob_delivery` variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_delivery: Option<BlobDelivery>,
}

/// A validated route, ready to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub upstream: Url,
    pub docker_hub: bool,
    pub allowed: AllowedHosts,
    pub repository_prefix: Option<RepositoryName>,
    pub browser_redirects: bool,
    pub credentials: Option<String>,
    pub credentials_for_writes: bool,
    pub allow: Vec<RepositoryPattern>,
    pub deny: Vec<RepositoryPattern>,
    pub require_login: bool,
    pub cache: CacheSettings,
    pub blob_delivery: Option<BlobDelivery>,
}

impl Route {
    /// How names map for this route, reached through `registry_host` when
    /// the client named the registry in the path.
    pub fn mapping(&self, registry_host: Option<String>) -> NameMapping {
        NameMapping {
            registry_host,
            repository_prefix: self.repository_prefix.as_ref().map(|p| p.to_string()),
            docker_hub: self.docker_hub,
        }
    }

    /// Whether the allow/deny lists let a repository through. A repository
    /// has two names, the client's (without a registry host) and the
    /// upstream's (Docker Hub's `library/`, the route's prefix): a pattern
    /// matching either applies, so `deny: ["library/x"]` also stops `x`.
    pub fn serves(&self, client: &str, upstream: &str) -> bool {
        let matches = |p: &RepositoryPattern| p.matches(client) || p.matches(upstream);
        let allowed = self.allow.is_empty() || self.allow.iter().any(matches);
        allowed && !self.deny.iter().any(matches)
    }
}

/// Everything wrong with a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError(pub Vec<FieldError>);

impl RouteError {
    fn one(field: &str, message: impl Into<String>) -> Self {
        Self(vec![FieldError {
            field: field.to_string(),
            message: message.into(),
        }])
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

impl RouteConfig {
    /// A route to `upstream` with every other field unset, so their defaults apply.
    pub fn new(upstream: &str) -> Self {
        Self {
            upstream: upstream.to_string(),
            docker_hub: None,
            allowed_hosts: Vec::new(),
            repository_prefix: None,
            browser_redirects: None,
            credentials: None,
            credentials_for_writes: None,
            allow: Vec::new(),
            deny: Vec::new(),
            require_login: None,
            cache: None,
            blob_delivery: None,
        }
    }

    /// A route's JSON as written, not yet checked; `Err` is one error on `(body)`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RouteError> {
        serde_json::from_slice(bytes)
            .map_err(|e| RouteError::one("(body)", format!("invalid route JSON: {e}")))
    }

    /// The route this describes, checked; `Err` lists every invalid field at once,
    /// each with why.
    pub fn resolve(&self) -> Result<Route, RouteError> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.to_string(),
                message,
            })
        };
        let upstream = upstream_origin(&self.upstream)
            .map_err(|e| fail("upstream", e))
            .ok();
        let known = upstream
            .as_ref()
            .and_then(|u| u.host_str())
            .and_then(crate::routing::registries::builtin_by_upstream_host);
        let patterns = self.host_patterns(upstream.as_ref(), known, |e| fail("allowed_hosts", e));
        let repository_prefix = self.repository_prefix.as_ref().and_then(|p| {
            match RepositoryName::parse(p.trim_matches('/')) {
                Ok(n) => Some(n),
                Err(e) => {
                    fail("repository_prefix", e.to_string());
                    None
                }
            }
        });
        if let Some(c) = &self.credentials
            && !spin_variable_prefix(c)
        {
            fail(
                "credentials",
                format!(
                    "{c:?} must name Spin variables: lowercase words of letters and digits joined by '_', each starting with a letter"
                ),
            );
        }
        let allow = repository_patterns(&self.allow, |e| fail("allow", e));
        let deny = repository_patterns(&self.deny, |e| fail("deny", e));
        let cache = self.cache.clone().unwrap_or_default();
        if let Err(e) = cache.validate() {
            fail("cache", e);
        }
        match upstream {
            Some(upstream) if errors.is_empty() => Ok(Route {
                docker_hub: self
                    .docker_hub
                    .unwrap_or_else(|| known.is_some_and(|b| b.docker_hub)),
                allowed: AllowedHosts::new(&upstream, patterns),
                upstream,
                repository_prefix,
                browser_redirects: self.browser_redirects.unwrap_or(true),
                credentials: self.credentials.clone(),
                credentials_for_writes: self.credentials_for_writes.unwrap_or(false),
                allow,
                deny,
                require_login: self.require_login.unwrap_or(false),
                cache,
                blob_delivery: self.blob_delivery,
            }),
            _ => Err(RouteError(errors)),
        }
    }

    /// The hosts the route may reach: its upstream, a built-in registry's
    /// realm and CDN hosts, and its `allowed_hosts`.
    fn host_patterns(
        &self,
        upstream: Option<&Url>,
        known: Option<&crate::routing::registries::Builtin>,
        mut fail: impl FnMut(String),
    ) -> Vec<HostPattern> {
        let mut patterns: Vec<HostPattern> = upstream
            .iter()
            .filter_map(|u| HostPattern::for_url(u))
            .collect();
        let builtin = known.iter().flat_map(|b| b.hosts.iter()).copied();
        for h in builtin.chain(self.allowed_hosts.iter().map(String::as_str)) {
            match HostPattern::parse(h) {
                Ok(p) => patterns.push(p),
                Err(e) => fail(e),
            }
        }
        patterns
    }
}

/// An upstream must be an http(s) origin: no path, query or credentials.
fn upstream_origin(text: &str) -> Result<Url, String> {
    match Url::parse(text) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.username().is_empty()
                && u.password().is_none()
                && u.path() == "/"
                && u.query().is_none()
                && u.fragment().is_none() =>
        {
            Ok(u)
        }
        _ => Err(format!(
            "{text:?} must be an http(s) origin such as https://ghcr.io, with no path, query or credentials"
        )),
    }
}

/// Whether `<name>_username` and the like are Spin variable names: words of
/// lowercase letters and digits joined by '_', each starting with a letter.
pub(crate) fn spin_variable_prefix(name: &str) -> bool {
    name.split('_').all(|word| {
        word.starts_with(|c: char| c.is_ascii_lowercase())
            && word
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

fn repository_patterns(sources: &[String], mut fail: impl FnMut(String)) -> Vec<RepositoryPattern> {
    sources
        .iter()
        .filter_map(|p| RepositoryPattern::parse(p).map_err(&mut fail).ok())
        .collect()
}

#[cfg(test)]
mod tests;
