//! How repository names travel between the client and the upstream: a
//! registry host the client put in front (`ghcr.io/owner/image` through one
//! proxy host), a route's repository prefix (`foo` → `my-project/foo`), and
//! Docker Hub's `library/`.

use crate::oci::reference::RepositoryName;

/// Splits `ghcr.io/owner/image` into the registry host and the rest, by
/// Docker's rule: a first component holding `.` or `:`, or `localhost`, is
/// a registry host. Returns the host lowercased.
pub fn split_registry_host(name: &str) -> Option<(String, &str)> {
    let (first, rest) = name.split_once('/')?;
    let host_like = first.contains('.') || first.contains(':') || first == "localhost";
    if !host_like || rest.is_empty() {
        return None;
    }
    let (host, port) = match first.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (first, None),
    };
    let host_ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    (host_ok && port_ok).then(|| (first.to_ascii_lowercase(), rest))
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameMapping {
    /// The registry host clients write before names and the upstream never sees.
    pub registry_host: Option<String>,
    /// The route's prefix, added to names upstream.
    pub repository_prefix: Option<String>,
    pub docker_hub: bool,
}

impl NameMapping {
    /// The upstream's name for a client name (without its registry host).
    pub fn to_upstream(&self, name: &RepositoryName) -> Option<RepositoryName> {
        match &self.repository_prefix {
            Some(p) => RepositoryName::parse(&format!("{p}/{name}")).ok(),
            None if self.docker_hub => Some(name.with_docker_hub_namespace()),
            None => Some(name.clone()),
        }
    }

    /// The client's name for an upstream name, for anything the upstream
    /// echoes back (challenge scopes, links, tag lists). `None` when the name
    /// lies outside the route's prefix.
    pub fn to_client(&self, upstream: &str) -> Option<String> {
        let name = match &self.repository_prefix {
            Some(p) => upstream.strip_prefix(p.as_str())?.strip_prefix('/')?,
            None => upstream,
        };
        Some(self.full_name(name))
    }

    /// A client name as the client writes it: with the registry host it
    /// named before it, if any.
    pub fn full_name(&self, name: &str) -> String {
        match &self.registry_host {
            Some(h) => format!("{h}/{name}"),
            None => name.to_string(),
        }
    }

    /// Whether clients and the upstream spell names differently, beyond
    /// `library/` (which clients accept either way).
    pub fn renames(&self) -> bool {
        self.registry_host.is_some() || self.repository_prefix.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    #[test]
    fn registry_hosts_by_dockers_rule() {
        assert_eq!(
            split_registry_host("ghcr.io/owner/image"),
            Some(("ghcr.io".to_string(), "owner/image"))
        );
        assert_eq!(
            split_registry_host("localhost:5000/x"),
            Some(("localhost:5000".to_string(), "x"))
        );
        assert_eq!(
            split_registry_host("localhost/x"),
            Some(("localhost".to_string(), "x"))
        );
        assert_eq!(
            split_registry_host("Registry.K8s.IO/pause"),
            Some(("registry.k8s.io".to_string(), "pause"))
        );
        assert_eq!(
            split_registry_host("127.0.0.1:5000/a/b"),
            Some(("127.0.0.1:5000".to_string(), "a/b"))
        );
        for plain in [
            "alpine",
            "bitnami/redis",
            "library/alpine",
            "ghcr.io",
            "ghcr.io/",
            "a:b:c/x",
            "x:99999/y",
            ".x/y",
            "a..b/c",
            "a_b.c/d",
        ] {
            assert_eq!(split_registry_host(plain), None, "{plain}");
        }
    }

    #[test]
    fn mappings() {
        let hub = NameMapping {
            docker_hub: true,
            ..Default::default()
        };
        assert_eq!(
            hub.to_upstream(&n("alpine")).unwrap().as_str(),
            "library/alpine"
        );
        assert_eq!(hub.to_client("library/alpine").unwrap(), "library/alpine");
        assert!(!hub.renames());

        let prefixed = NameMapping {
            repository_prefix: Some("my-project/repo".into()),
            docker_hub: true,
            ..Default::default()
        };
        assert_eq!(
            prefixed.to_upstream(&n("foo")).unwrap().as_str(),
            "my-project/repo/foo"
        );
        assert_eq!(prefixed.to_client("my-project/repo/foo").unwrap(), "foo");
        assert_eq!(prefixed.to_client("other/foo"), None);
        assert_eq!(prefixed.to_client("my-project/repofoo"), None);

        let via = NameMapping {
            registry_host: Some("ghcr.io".into()),
            ..Default::default()
        };
        assert_eq!(
            via.to_upstream(&n("owner/image")).unwrap().as_str(),
            "owner/image"
        );
        assert_eq!(via.to_client("owner/image").unwrap(), "ghcr.io/owner/image");
        assert!(via.renames());
    }
}
