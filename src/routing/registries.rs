//! The public registries the proxy knows without configuration: Docker
//! Hub, GHCR, Quay, GCR, registry.k8s.io, ECR Public, MCR, Cloudsmith, each
//! with the hosts of its realm and blob CDN, served at
//! `<name>.<custom_domain>` and by name in paths and `ns=`.

/// A public registry the proxy knows: served at `<name>.<custom_domain>`.
pub struct Builtin {
    pub name: &'static str,
    pub upstream: &'static str,
    pub docker_hub: bool,
    /// Other host names of the same upstream, its realm and blob CDN hosts.
    pub hosts: &'static [&'static str],
}

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "docker",
        upstream: "https://registry-1.docker.io",
        docker_hub: true,
        hosts: &[
            "index.docker.io",
            "auth.docker.io",
            "production.cloudflare.docker.com",
            "*.r2.cloudflarestorage.com",
        ],
    },
    Builtin {
        name: "quay",
        upstream: "https://quay.io",
        docker_hub: false,
        hosts: &["*.quay.io", "quayio-production-s3.s3.amazonaws.com"],
    },
    Builtin {
        name: "gcr",
        upstream: "https://gcr.io",
        docker_hub: false,
        hosts: &["storage.googleapis.com", "*.pkg.dev"],
    },
    Builtin {
        name: "k8s-gcr",
        upstream: "https://k8s.gcr.io",
        docker_hub: false,
        hosts: &["storage.googleapis.com", "*.pkg.dev"],
    },
    Builtin {
        name: "k8s",
        upstream: "https://registry.k8s.io",
        docker_hub: false,
        hosts: &["*.pkg.dev", "*.amazonaws.com"],
    },
    Builtin {
        name: "ghcr",
        upstream: "https://ghcr.io",
        docker_hub: false,
        hosts: &["pkg-containers.githubusercontent.com"],
    },
    Builtin {
        name: "cloudsmith",
        upstream: "https://docker.cloudsmith.io",
        docker_hub: false,
        hosts: &["*.cloudsmith.io"],
    },
    Builtin {
        name: "ecr",
        upstream: "https://public.ecr.aws",
        docker_hub: false,
        hosts: &["*.cloudfront.net"],
    },
    Builtin {
        name: "mcr",
        upstream: "https://mcr.microsoft.com",
        docker_hub: false,
        hosts: &["*.data.mcr.microsoft.com"],
    },
];

/// Names clients use for Docker Hub's registry.
const DOCKER_HUB_ALIASES: &[&str] = &["docker.io", "index.docker.io", "registry.hub.docker.com"];

/// The built-in registry whose upstream is at `host` (Docker Hub's also by its
/// aliases, such as `docker.io`), whatever the case.
pub(crate) fn builtin_by_upstream_host(host: &str) -> Option<&'static Builtin> {
    let host = host.to_ascii_lowercase();
    BUILTINS.iter().find(|b| {
        b.upstream.strip_prefix("https://") == Some(host.as_str())
            || (b.docker_hub && DOCKER_HUB_ALIASES.contains(&host.as_str()))
    })
}

/// The built-in route for a registry host a client named (`ghcr.io`,
/// `docker.io`), for path-prefix and `ns=` requests.
pub fn builtin_for_registry(registry_host: &str) -> Option<&'static Builtin> {
    builtin_by_upstream_host(registry_host)
}

/// The built-in route for `<name>.<custom_domain>`, if any.
pub fn builtin_for_host(hostname: &str, custom_domain: &str) -> Option<&'static Builtin> {
    let custom_domain = custom_domain.trim_matches('.');
    if custom_domain.is_empty() {
        return None;
    }
    let name = hostname.strip_suffix(custom_domain)?.strip_suffix('.')?;
    BUILTINS.iter().find(|b| b.name == name)
}

/// The host names the built-in table serves under `custom_domain`.
pub fn builtin_hosts(custom_domain: &str) -> Vec<(String, &'static Builtin)> {
    let custom_domain = custom_domain.trim_matches('.');
    if custom_domain.is_empty() {
        return Vec::new();
    }
    BUILTINS
        .iter()
        .map(|b| (format!("{}.{custom_domain}", b.name), b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_by_host() {
        assert_eq!(
            builtin_for_registry("docker.io").unwrap().upstream,
            "https://registry-1.docker.io"
        );
        assert_eq!(
            builtin_for_registry("GHCR.io").unwrap().upstream,
            "https://ghcr.io"
        );
        assert_eq!(
            builtin_for_registry("registry.k8s.io").unwrap().upstream,
            "https://registry.k8s.io"
        );
        assert!(builtin_for_registry("evil.example").is_none());
    }

    #[test]
    fn builtin_table() {
        assert_eq!(
            builtin_for_host("ghcr.example.com", "example.com")
                .unwrap()
                .upstream,
            "https://ghcr.io"
        );
        assert_eq!(
            builtin_for_host("k8s-gcr.example.com", ".example.com.")
                .unwrap()
                .upstream,
            "https://k8s.gcr.io"
        );
        assert!(builtin_for_host("ghcr.example.com", "").is_none());
        assert!(builtin_for_host("xghcr.example.com", "example.com").is_none());
        assert!(builtin_for_host("example.com", "example.com").is_none());
        assert!(builtin_for_host("a.ghcr.example.com", "example.com").is_none());
        assert_eq!(builtin_hosts("example.com").len(), BUILTINS.len());
    }
}
