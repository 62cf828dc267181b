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
    host: HostMatch,
    port: PortMatch,
}

impl HostPattern {
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
        Ok(Self { host, port })
    }

    /// The pattern that admits exactly this URL's host and port.
    pub fn for_url(url: &Url) -> Option<Self> {
        let host = url.host_str()?.to_ascii_lowercase();
        let port = match url.port() {
            Some(p) => PortMatch::Exact(p),
            None => PortMatch::Default,
        };
        Some(Self {
            host: HostMatch::Exact(host),
            port,
        })
    }

    fn allows(&self, url: &Url) -> bool {
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

/// The hosts one route may reach: its upstream plus the realm and blob CDN
/// hosts it lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts(Vec<HostPattern>);

impl AllowedHosts {
    pub fn new(patterns: Vec<HostPattern>) -> Self {
        Self(patterns)
    }

    pub fn allows(&self, url: &Url) -> bool {
        matches!(url.scheme(), "http" | "https") && self.0.iter().any(|p| p.allows(url))
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

    fn allowed(p: &[&str]) -> AllowedHosts {
        AllowedHosts::new(p.iter().map(|p| HostPattern::parse(p).unwrap()).collect())
    }

    #[test]
    fn patterns() {
        let a = allowed(&[
            "auth.docker.io",
            "*.r2.cloudflarestorage.com",
            "127.0.0.1:5000",
            "localhost:*",
        ]);
        assert!(a.allows(&u("https://auth.docker.io/token")));
        assert!(!a.allows(&u("https://auth.docker.io:8443/token")));
        assert!(!a.allows(&u("https://evil-auth.docker.io/")));
        assert!(a.allows(&u(
            "https://docker-images-prod.abc.r2.cloudflarestorage.com/x"
        )));
        assert!(!a.allows(&u("https://r2.cloudflarestorage.com/x")));
        assert!(!a.allows(&u("https://xr2.cloudflarestorage.com/x")));
        assert!(a.allows(&u("http://127.0.0.1:5000/v2/")));
        assert!(!a.allows(&u("http://127.0.0.1:5001/v2/")));
        assert!(a.allows(&u("http://localhost:1234/")));
        assert!(!a.allows(&u("ftp://auth.docker.io/")));
        assert!(!a.allows(&u("file:///etc/passwd")));
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
        let a = allowed(&["registry-1.docker.io", "*.cloudflare.docker.com"]);
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
