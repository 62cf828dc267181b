//! The proxy's side of the token flow: upstream challenges rewritten so
//! clients come back to the proxy for tokens, and the upstream realm the proxy
//! discovers and remembers.

use crate::auth::scope;
use crate::auth::www_authenticate::{self, Challenge};
use crate::host::Host;
use crate::oci::error::{ErrorCode, RegistryError};
use crate::routing::naming::NameMapping;
use crate::routing::route::Route;
use crate::upstream::fetch::get;
use serde::{Deserialize, Serialize};

/// Rewrites an upstream `WWW-Authenticate` value: Bearer challenges get the
/// proxy's realm and the client's repository names in `scope` (keeping
/// `service` and `error`); Basic and other schemes pass unchanged, since the
/// client's credentials are forwarded as they are. An unparseable value
/// becomes a plain Bearer challenge.
pub fn rewrite_for_proxy(
    upstream_header: Option<&str>,
    proxy_realm: &str,
    mapping: &NameMapping,
) -> String {
    let mut challenges = upstream_header
        .and_then(|h| www_authenticate::parse(h).ok())
        .unwrap_or_else(|| vec![Challenge::new("Bearer")]);
    for c in challenges.iter_mut().filter(|c| c.is_bearer()) {
        c.set_param("realm", proxy_realm);
        if let Some(scope) = c
            .param("scope")
            .map(|s| scope::rewrite_for_client(s, mapping))
        {
            c.set_param("scope", &scope);
        }
    }
    www_authenticate::render(&challenges)
}

/// What an upstream's `/v2/` challenge says about its token service, kept in
/// the key-value store so tokens do not cost an extra round trip each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamRealm {
    /// `None`: the upstream serves without tokens.
    pub realm: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    /// The upstream challenges with Basic only: credentials go with each request.
    #[serde(default)]
    pub basic: bool,
    /// Unix seconds after which it is discovered again.
    pub expires: u64,
}

/// The token the proxy's realm hands out for an upstream that needs none.
/// The proxy challenges every client on `/v2/` (it cannot know which
/// registry a path-prefix pull will name), so clients of open upstreams
/// come for a token too; this one is never sent upstream.
pub const ANONYMOUS_TOKEN: &str = "registry-proxy-anonymous";

/// The service the proxy names in its own challenges.
pub const PROXY_SERVICE: &str = "registry-proxy";

/// How long a discovered realm is trusted.
pub const REALM_TTL_SECS: u64 = 3600;

/// The key-value key an upstream's discovered [`UpstreamRealm`] is kept under.
pub fn realm_key(upstream_origin: &str) -> String {
    format!("challenge/{upstream_origin}")
}

impl UpstreamRealm {
    /// An upstream that serves without tokens, trusted for [`REALM_TTL_SECS`] from `now`.
    pub fn anonymous(now: u64) -> Self {
        Self {
            realm: None,
            service: None,
            basic: false,
            expires: now + REALM_TTL_SECS,
        }
    }

    /// The Bearer challenge's realm and service, or the Basic scheme, from
    /// an upstream's `WWW-Authenticate`.
    pub fn from_header(header: &str, now: u64) -> Option<Self> {
        let challenges = www_authenticate::parse(header).ok()?;
        let Some(bearer) = challenges.iter().find(|c| c.is_bearer()) else {
            return challenges.iter().any(|c| c.is_basic()).then(|| Self {
                basic: true,
                ..Self::anonymous(now)
            });
        };
        Some(Self {
            realm: Some(bearer.param("realm")?.to_string()),
            service: bearer.param("service").map(str::to_string),
            basic: false,
            expires: now + REALM_TTL_SECS,
        })
    }
}

/// The upstream's realm and service, from the key-value store or, when
/// absent or stale, from the upstream's `/v2/` challenge.
pub async fn discover<H: Host>(host: &H, route: &Route) -> Result<UpstreamRealm, RegistryError> {
    let now = crate::now();
    let key = realm_key(&route.upstream.origin().ascii_serialization());
    if let Ok(Some(bytes)) = host.cache().get(&key)
        && let Ok(r) = serde_json::from_slice::<UpstreamRealm>(&bytes)
        && r.expires > now
    {
        return Ok(r);
    }
    let url = route
        .upstream
        .join("/v2/")
        .expect("a fixed path joins any http(s) URL");
    let resp = get(host, route, url, None).await?;
    let realm = match resp.status {
        200..=299 => UpstreamRealm::anonymous(now),
        401 => resp
            .headers
            .get("www-authenticate")
            .and_then(|h| UpstreamRealm::from_header(h, now))
            .ok_or_else(|| {
                RegistryError::new(
                    404,
                    ErrorCode::Unsupported,
                    "the upstream registry has no Bearer token realm",
                )
            })?,
        s => {
            return Err(RegistryError::bad_gateway(format!(
                "upstream /v2/ answered {s}"
            )));
        }
    };
    if let Ok(json) = serde_json::to_vec(&realm)
        && let Err(e) = host.cache().set(&key, &json)
    {
        eprintln!("key-value: cannot store {key}: {e}");
    }
    Ok(realm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_realm_replaced_scope_kept() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull",error="insufficient_scope""#;
        assert_eq!(
            rewrite_for_proxy(
                Some(h),
                "https://p.example/v2/auth",
                &NameMapping::default()
            ),
            r#"Bearer realm="https://p.example/v2/auth",service="registry.docker.io",scope="repository:library/alpine:pull",error="insufficient_scope""#
        );
        let via = NameMapping {
            registry_host: Some("docker.io".into()),
            docker_hub: true,
            ..Default::default()
        };
        assert_eq!(
            rewrite_for_proxy(Some(h), "https://p.example/v2/auth?ns=docker.io", &via),
            r#"Bearer realm="https://p.example/v2/auth?ns=docker.io",service="registry.docker.io",scope="repository:docker.io/library/alpine:pull",error="insufficient_scope""#
        );
    }

    #[test]
    fn basic_kept_and_garbage_replaced() {
        assert_eq!(
            rewrite_for_proxy(
                Some(r#"Basic realm="Registry""#),
                "x",
                &NameMapping::default()
            ),
            r#"Basic realm="Registry""#
        );
        assert_eq!(
            rewrite_for_proxy(Some("\"\""), "http://p/v2/auth", &NameMapping::default()),
            r#"Bearer realm="http://p/v2/auth""#
        );
        assert_eq!(
            rewrite_for_proxy(None, "http://p/v2/auth", &NameMapping::default()),
            r#"Bearer realm="http://p/v2/auth""#
        );
    }

    #[test]
    fn realm_discovery() {
        let r = UpstreamRealm::from_header(
            r#"Bearer realm="https://gcr.io/v2/token", service=gcr.io"#,
            10,
        )
        .unwrap();
        assert_eq!(r.realm.as_deref(), Some("https://gcr.io/v2/token"));
        assert_eq!(r.service.as_deref(), Some("gcr.io"));
        assert_eq!(r.expires, 10 + REALM_TTL_SECS);
        assert!(
            UpstreamRealm::from_header(r#"Basic realm="x""#, 0)
                .unwrap()
                .basic
        );
        assert!(UpstreamRealm::from_header(r#"Negotiate"#, 0).is_none());
        assert!(UpstreamRealm::from_header(r#"Bearer service="x""#, 0).is_none());
    }
}
