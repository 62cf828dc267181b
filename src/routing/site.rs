//! Whether a host belongs to the same site as an upstream: the same
//! registrable domain (one label under a public suffix, by the public suffix
//! list, its private section included) or the same IP address and port.
//! Distribution's proxy trusts a token realm on its upstream's site; that is
//! what lets GitLab (`registry.gitlab.com` → `gitlab.com`) and Harbor work
//! with no configuration.

use url::{Host, Url};

/// How the tenants of a registry service the public suffix list does not
/// (yet) list are told apart: without this, every tenant of the service
/// would be one site, and one tenant's realm would get another's
/// credentials.
enum Tenants {
    /// One label under the suffix is one tenant (`myreg.azurecr.io`).
    Label,
    /// Every host under the suffix is a site of its own: AWS names tenants
    /// deep inside its hosts (`<account>.dkr.ecr.<region>.amazonaws.com`),
    /// so no shorter name is any one tenant's.
    Host,
}

const TENANT_SUFFIXES: &[(&str, Tenants)] = &[
    ("azurecr.io", Tenants::Label),
    ("azurecr.cn", Tenants::Label),
    ("azurecr.us", Tenants::Label),
    ("jfrog.io", Tenants::Label),
    ("amazonaws.com", Tenants::Host),
    ("amazonaws.com.cn", Tenants::Host),
];

/// `url` is on `upstream`'s site. An IP address has no registrable domain,
/// and another port on it may be another service (or another user's), so
/// there only the same address and port is the same site.
pub fn same_site(url: &Url, upstream: &Url) -> bool {
    match (url.host(), upstream.host()) {
        (Some(Host::Domain(a)), Some(Host::Domain(b))) => match (site(a), site(b)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
        (Some(a @ (Host::Ipv4(_) | Host::Ipv6(_))), Some(b)) => {
            a == b && url.port_or_known_default() == upstream.port_or_known_default()
        }
        _ => false,
    }
}

/// The site of `host`, lowercased: the longer (more specific) of its
/// registrable domain and its tenant under a [`TENANT_SUFFIXES`] entry.
/// None for a bare public suffix (`co.uk`, `github.io`, `azurecr.io`),
/// which is no one's site.
fn site(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let listed = psl::domain_str(&host)?;
    match tenant_suffix(&host) {
        None => Some(listed.to_string()),
        Some((_, "")) => None,
        Some((tenant, _)) if tenant.len() > listed.len() => Some(tenant.to_string()),
        Some(_) => Some(listed.to_string()),
    }
}

/// `host`'s tenant under a multi-tenant suffix, and what is left of the
/// host above the suffix (empty: the suffix itself).
fn tenant_suffix(host: &str) -> Option<(&str, &str)> {
    TENANT_SUFFIXES.iter().find_map(|(suffix, tenants)| {
        let above = match host.strip_suffix(suffix) {
            Some("") => "",
            Some(above) => above.strip_suffix('.')?,
            None => return None,
        };
        let tenant = match tenants {
            Tenants::Host => host,
            Tenants::Label => {
                let label = above.rsplit('.').next().unwrap_or_default();
                &host[above.len() - label.len()..]
            }
        };
        Some((tenant, above))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(a: &str, b: &str) -> bool {
        let url = |h: &str| Url::parse(&format!("http://{h}/")).unwrap();
        same_site(&url(a), &url(b))
    }

    #[test]
    fn registrable_domains() {
        assert!(site("gitlab.com", "registry.gitlab.com"));
        assert!(site("auth.docker.io", "registry-1.docker.io"));
        assert!(site("harbor.corp.example.com", "auth.example.com"));
        assert!(!site("evil.com", "registry.gitlab.com"));
        assert!(!site("gitlab.com.evil.com", "registry.gitlab.com"));
        // Different owners under one public suffix.
        assert!(!site("alice.github.io", "bob.github.io"));
        assert!(!site("github.io", "bob.github.io"));
    }

    /// Finding 1a: tenants of one registry service are different sites.
    #[test]
    fn tenants_of_one_service_are_different_sites() {
        assert!(!site("other.azurecr.io", "myreg.azurecr.io"));
        assert!(!site("azurecr.io", "myreg.azurecr.io"));
        assert!(site("myreg.azurecr.io", "MyReg.azurecr.io."));
        assert!(site("x.myreg.azurecr.io", "myreg.azurecr.io"));
        assert!(!site("y.jfrog.io", "x.jfrog.io"));
        let ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
        assert!(site(ecr, ecr));
        for other in [
            "210987654321.dkr.ecr.eu-west-1.amazonaws.com",
            "evil.s3.amazonaws.com",
            "evil.execute-api.eu-west-1.amazonaws.com",
            "ecr.eu-west-1.amazonaws.com",
            "amazonaws.com",
        ] {
            assert!(!site(other, ecr), "{other}");
        }
        assert!(!site(
            "1.dkr.ecr.cn-north-1.amazonaws.com.cn",
            "2.dkr.ecr.cn-north-1.amazonaws.com.cn"
        ));
        // A name that only ends like a tenant suffix is not under it.
        assert!(site("auth.notazurecr.io", "registry.notazurecr.io"));
    }

    /// Finding 1b: on an IP address only the same port is the same site.
    #[test]
    fn ip_addresses() {
        assert!(site("127.0.0.1", "127.0.0.1"));
        assert!(site("127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(!site("127.0.0.1:5080", "127.0.0.1:5000"));
        assert!(!site("127.0.0.1", "127.0.0.1:5000"));
        assert!(!site("127.0.0.3", "127.0.0.1"));
        assert!(site("[::1]", "[::1]"));
        assert!(!site("[::1]:1", "[::1]:2"));
        assert!(!site("127.0.0.1", "localhost"));
    }
}
