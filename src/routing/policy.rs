//! Which hosts a route may reach, and how upstream redirects are followed.
//! Token realms and `Location` headers come from upstreams and are untrusted:
//! every host they name is checked here before the proxy contacts it.

use std::fmt;
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Exact(String),
    /// `*.example.com`: any subdomain, not `example.com` itself.
    Subdomain(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortMatch {
    /// No port in the pattern: the scheme's default port only.
    Default,
    Any,
    Exact(u16),
}

/// One allowed host: `host`, `host:port`, `host:*`, `*.domain` (as in Spin's
/// `allowed_outbound_hosts`, without the scheme).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Only patterns made from a URL name a scheme; the others admit the
    /// upstream's, so an http redirect or realm cannot downgrade an https
    /// route to cleartext.
    scheme: Option<String>,
    host: HostMatch,
    port: PortMatch,
}

impl HostPattern {
    /// One pattern as a route lists it (no scheme), its host lowercased; `Err` says
    /// what is wrong.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("invalid host pattern {pattern:?}: {why}"));
        let (host, port) = match pattern.rsplit_once(':') {
            Some((h, "*")) => (h, PortMatch::Any),
            Some((h, p)) => match p.parse::<u16>() {
                Ok(p) => (h, PortMatch::Exact(p)),
                Err(_) => return bad("port must be a number or '*'"),
            },
            None => (pattern, PortMatch::Default),
        };
        let host = host.to_ascii_lowercase();
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, host),
        };
        let label_ok =
            |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if name.is_empty() || !name.split('.').all(label_ok) {
            return bad("expected a host name or IPv4 address, optionally prefixed by '*.'");
        }
        let host = if wildcard {
            HostMatch::Subdomain(name)
        } else {
            HostMatch::Exact(name)
        };
        Ok(Self {
            scheme: None,
            host,
            port,
        })
    }

    /// The pattern that admits exactly this URL's scheme, host and port.
    pub fn for_url(url: &Url) -> Option<Self> {
        let host = url.host_str()?.to_ascii_lowercase();
        let port = match url.port() {
            Some(p) => PortMatch::Exact(p),
            None => PortMatch::Default,
        };
        Some(Self {
            scheme: Some(url.scheme().to_string()),
            host: HostMatch::Exact(host),
            port,
        })
    }

    /// Without a scheme of its own, the pattern admits `upstream_scheme`
    /// and https.
    fn allows(&self, url: &Url, upstream_scheme: &str) -> bool {
        let scheme_ok = match &self.scheme {
            Some(s) => url.scheme() == s,
            None => url.scheme() == upstream_scheme || url.scheme() == "https",
        };
        if !scheme_ok {
            return false;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostMatch::Exact(h) => *h == host,
            HostMatch::Subdomain(d) => host
                .strip_suffix(d.as_str())
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        };
        let port_ok = match self.port {
            PortMatch::Any => true,
            PortMatch::Default => url.port().is_none(),
            PortMatch::Exact(p) => url.port_or_known_default() == Some(p),
        };
        host_ok && port_ok
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.scheme {
            write!(f, "{s}://")?;
        }
        match &self.host {
            HostMatch::Exact(h) => f.write_str(h)?,
            HostMatch::Subdomain(d) => write!(f, "*.{d}")?,
        }
        match self.port {
            PortMatch::Default => Ok(()),
            PortMatch::Any => f.write_str(":*"),
            PortMatch::Exact(p) => write!(f, ":{p}"),
        }
    }
}

/// The hosts one route may reach: its upstream's site (`site.rs`) plus the
/// realm and blob CDN hosts it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    upstream: Url,
    patterns: Vec<HostPattern>,
}

impl AllowedHosts {
    /// The hosts a route on `upstream` may reach. Patterns without a scheme
    /// admit the upstream's scheme or https: never a downgrade to cleartext.
    pub fn new(upstream: &Url, patterns: Vec<HostPattern>) -> Self {
        Self {
            upstream: upstream.clone(),
            patterns,
        }
    }

    /// Whether the route may contact `url`: http(s), no downgrade from the upstream's
    /// scheme, and on the upstream's site or a listed host.
    pub fn allows(&self, url: &Url) -> bool {
        let scheme = self.upstream.scheme();
        let same_site = crate::routing::site::same_site(url, &self.upstream);
        matches!(url.scheme(), "http" | "https")
            && (url.scheme() == scheme || url.scheme() == "https")
            && (same_site || self.patterns.iter().any(|p| p.allows(url, scheme)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The target host is not in the route's allowed hosts.
    HostNotAllowed(String),
    BadLocation(String),
    TooManyRedirects,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::HostNotAllowed(h) => write!(
                f,
                "upstream pointed at {h}, which this route does not allow"
            ),
            PolicyError::BadLocation(l) => write!(f, "upstream sent an unusable Location {l:?}"),
            PolicyError::TooManyRedirects => f.write_str("upstream redirected too many times"),
        }
    }
}

/// Checks that a URL an upstream gave us (a token realm) may be contacted.
pub fn check_target(url: &Url, allowed: &AllowedHosts) -> Result<(), PolicyError> {
    if allowed.allows(url) {
        Ok(())
    } else {
        Err(PolicyError::HostNotAllowed(origin_of(url)))
    }
}

pub const MAX_REDIRECTS: usize = 5;

/// Where one redirect goes, and whether the client's credentials go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub url: Url,
    /// Only to the origin the credentials were meant for: a CDN or storage
    /// host never sees the registry token.
    pub send_authorization: bool,
}

/// Resolves a `Location` (relative ones against `current`) and applies the
/// route's allow-list. `credential_origin` is where the client's credentials
/// were first sent (the upstream, or its token realm).
pub fn follow_redirect(
    current: &Url,
    location: &str,
    credential_origin: &url::Origin,
    allowed: &AllowedHosts,
    hops: usize,
) -> Result<Redirect, PolicyError> {
    if hops >= MAX_REDIRECTS {
        return Err(PolicyError::TooManyRedirects);
    }
    let url = current
        .join(location)
        .map_err(|_| PolicyError::BadLocation(location.chars().take(200).collect()))?;
    check_target(&url, allowed)?;
    let send_authorization = url.origin() == *credential_origin;
    Ok(Redirect {
        url,
        send_authorization,
    })
}

/// `scheme://host[:port]`, for messages: never the path or query, which may
/// carry signed tokens.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// As a route builds them: the upstream first, then its listed hosts.
    fn allowed(upstream_url: &str, p: &[&str]) -> AllowedHosts {
        let listed = p.iter().map(|p| HostPattern::parse(p).unwrap());
        let patterns =
            std::iter::once(HostPattern::for_url(&u(upstream_url)).unwrap()).chain(listed);
        AllowedHosts::new(&u(upstream_url), patterns.collect())
    }

    #[test]
    fn patterns() {
        // An upstream on another site: only the listed hosts.
        let a = allowed(
            "https://registry.upstream.example",
            &["auth.docker.io", "*.r2.cloudflarestorage.com"],
        );
        assert!(a.allows(&u("https://auth.docker.io/token")));
        assert!(!a.allows(&u("https://auth.docker.io:8443/token")));
        assert!(!a.allows(&u("https://evil-auth.docker.io/")));
        assert!(a.allows(&u(
            "https://docker-images-prod.abc.r2.cloudflarestorage.com/x"
        )));
        assert!(!a.allows(&u("https://r2.cloudflarestorage.com/x")));
        assert!(!a.allows(&u("https://xr2.cloudflarestorage.com/x")));
        assert!(!a.allows(&u("ftp://auth.docker.io/")));
        assert!(!a.allows(&u("file:///etc/passwd")));
        let a = allowed("http://127.0.0.1:5000", &["127.0.0.2:6000", "localhost:*"]);
        assert!(a.allows(&u("http://127.0.0.1:5000/v2/")));
        assert!(!a.allows(&u("http://127.0.0.2:5001/v2/")));
        assert!(a.allows(&u("http://127.0.0.2:6000/token")));
        assert!(a.allows(&u("http://localhost:1234/")));
    }

    #[test]
    fn the_upstreams_site_is_allowed() {
        let a = allowed("https://registry.gitlab.com", &[]);
        assert!(a.allows(&u("https://gitlab.com/jwt/auth")));
        assert!(!a.allows(&u("http://gitlab.com/jwt/auth")), "no downgrade");
        assert!(!a.allows(&u("https://gitlab.com.evil.io/jwt/auth")));
        // Tenants of one registry service are not one site (finding 1a).
        let a = allowed("https://myreg.azurecr.io", &[]);
        assert!(a.allows(&u("https://myreg.azurecr.io/oauth2/token")));
        assert!(!a.allows(&u("https://other.azurecr.io/oauth2/token")));
        let a = allowed("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", &[]);
        assert!(!a.allows(&u("https://evil.s3.amazonaws.com/x")));
        assert!(!a.allows(&u("https://9.dkr.ecr.eu-west-1.amazonaws.com/")));
        // On an IP address, only the upstream's own port (finding 1b): a
        // token service on another port is listed in allowed_hosts.
        let a = allowed("http://127.0.0.1:5001", &[]);
        assert!(a.allows(&u("http://127.0.0.1:5001/token")));
        assert!(!a.allows(&u("http://127.0.0.1:5080/token")));
        assert!(!a.allows(&u("http://127.0.0.3:5001/token")));
        let a = allowed("http://127.0.0.1:5001", &["127.0.0.1:5080"]);
        assert!(a.allows(&u("http://127.0.0.1:5080/token")));
    }

    #[test]
    fn no_scheme_downgrade() {
        let a = allowed(
            "https://registry.example.com",
            &["cdn.example.com", "*.s3.example.com:*"],
        );
        assert!(a.allows(&u("https://cdn.example.com/blob")));
        assert!(!a.allows(&u("http://cdn.example.com/blob")));
        assert!(!a.allows(&u("http://cdn.example.com:443/blob")));
        assert!(a.allows(&u("https://b.s3.example.com:8443/x")));
        assert!(!a.allows(&u("http://b.s3.example.com:8080/x")));
        // The upstream's own pattern admits only its own scheme.
        assert!(!a.allows(&u("http://registry.example.com/v2/")));
        let cur = u("https://registry.example.com/v2/x/blobs/sha256:0");
        let up = cur.origin();
        assert_eq!(
            follow_redirect(&cur, "http://cdn.example.com/blob", &up, &a, 0),
            Err(PolicyError::HostNotAllowed("http://cdn.example.com".into()))
        );
        // An http upstream (a local registry) keeps its http hosts; https
        // is an upgrade, never refused.
        let a = allowed("http://127.0.0.1:5000", &["cdn.example.com"]);
        assert!(a.allows(&u("http://cdn.example.com/blob")));
        assert!(a.allows(&u("https://cdn.example.com/blob")));
    }

    #[test]
    fn bad_patterns() {
        for p in [
            "", "*", "a/b", "*.*.x", "a:b", "a..b", "http://x", "x:99999",
        ] {
            assert!(HostPattern::parse(p).is_err(), "{p}");
        }
        assert_eq!(
            HostPattern::parse("*.Example.com:*").unwrap().to_string(),
            "*.example.com:*"
        );
    }

    #[test]
    fn redirects() {
        let up = u("https://registry-1.docker.io").origin();
        let a = allowed("https://registry-1.docker.io", &["*.cloudflare.docker.com"]);
        let cur = u("https://registry-1.docker.io/v2/library/alpine/blobs/sha256:x");
        let r = follow_redirect(
            &cur,
            "https://production.cloudflare.docker.com/blob?sig=1",
            &up,
            &a,
            0,
        )
        .unwrap();
        assert!(!r.send_authorization);
        let r = follow_redirect(&cur, "/v2/library/alpine/blobs/other", &up, &a, 0).unwrap();
        assert_eq!(
            r.url.as_str(),
            "https://registry-1.docker.io/v2/library/alpine/blobs/other"
        );
        assert!(r.send_authorization);
        // An explicit default port is the same origin.
        let r = follow_redirect(&cur, "https://registry-1.docker.io:443/x", &up, &a, 0).unwrap();
        assert!(r.send_authorization);
        assert_eq!(
            follow_redirect(&cur, "https://evil.example/x", &up, &a, 0),
            Err(PolicyError::HostNotAllowed("https://evil.example".into()))
        );
        assert_eq!(
            follow_redirect(&cur, "/x", &up, &a, MAX_REDIRECTS),
            Err(PolicyError::TooManyRedirects)
        );
        assert!(follow_redirect(&cur, "http://[::1", &up, &a, 0).is_err());
    }
}
