//! Whether a host belongs to the same site as an upstream: the same
//! registrable domain (one label under a public suffix, by the public suffix
//! list) or the same IP address. Distribution's proxy trusts a token realm
//! on its upstream's site; that is what lets GitLab (`registry.gitlab.com`
//! → `gitlab.com`) and Harbor work with no configuration.

use url::Host;

pub fn same_site(host: &Host<&str>, upstream: &Host<&str>) -> bool {
    match (host, upstream) {
        (Host::Domain(a), Host::Domain(b)) => match (registrable(a), registrable(b)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
        (Host::Ipv4(a), Host::Ipv4(b)) => a == b,
        (Host::Ipv6(a), Host::Ipv6(b)) => a == b,
        _ => false,
    }
}

/// The registrable domain of `host`, lowercased; none for a bare public
/// suffix (`co.uk`, `github.io`), which is no one's site.
fn registrable(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&host).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(a: &str, b: &str) -> bool {
        let url = |h: &str| url::Url::parse(&format!("http://{h}/")).unwrap();
        let (a, b) = (url(a), url(b));
        same_site(&a.host().unwrap(), &b.host().unwrap())
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

    #[test]
    fn ip_addresses() {
        assert!(site("127.0.0.1", "127.0.0.1"));
        assert!(!site("127.0.0.3", "127.0.0.1"));
        assert!(site("[::1]", "[::1]"));
        assert!(!site("127.0.0.1", "localhost"));
    }
}
