//! Where a browser asking for an image is sent: the upstream's own web page
//! for that repository, for the registries that have one.

use url::Url;

/// The image a browser asked for: `/library/alpine:3.20`, `/ghcr.io/o/i`,
/// or an API path such as `/v2/library/alpine/manifests/latest`.
pub fn image_name(path: &str) -> Option<String> {
    let name = match path.strip_prefix("/v2/") {
        Some(rest) => ["/manifests/", "/blobs/", "/referrers/", "/tags/list"]
            .iter()
            .filter_map(|m| rest.rfind(m).map(|i| &rest[..i]))
            .min_by_key(|n| n.len())
            .unwrap_or(rest),
        None => {
            let rest = path.trim_matches('/');
            let rest = rest.split_once('@').map_or(rest, |(n, _)| n);
            match rest.rsplit_once(':') {
                // A colon after the last '/' is a tag; before it, a port.
                Some((n, tag)) if !tag.contains('/') => n,
                _ => rest,
            }
        }
    };
    (!name.is_empty()).then(|| name.to_string())
}

/// The upstream's own web page for `upstream_name`; `None` for an upstream
/// that has none the proxy knows.
pub fn web_page(upstream: &Url, upstream_name: &str) -> Option<String> {
    let host = upstream.host_str()?.to_ascii_lowercase();
    Some(match host.as_str() {
        "registry-1.docker.io" | "index.docker.io" | "docker.io" | "registry.hub.docker.com" => {
            match upstream_name.strip_prefix("library/") {
                Some(official) => format!("https://hub.docker.com/_/{official}"),
                None => format!("https://hub.docker.com/r/{upstream_name}"),
            }
        }
        "quay.io" => format!("https://quay.io/repository/{upstream_name}"),
        "public.ecr.aws" => format!("https://gallery.ecr.aws/{upstream_name}"),
        "mcr.microsoft.com" => format!("https://mcr.microsoft.com/artifact/mar/{upstream_name}"),
        // These answer a browser at the image's own URL.
        h if h == "ghcr.io"
            || h == "gcr.io"
            || h.ends_with(".gcr.io")
            || h.ends_with("-docker.pkg.dev") =>
        {
            format!("https://{h}/{upstream_name}")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(up: &str, name: &str) -> Option<String> {
        web_page(&Url::parse(up).unwrap(), name)
    }

    #[test]
    fn image_names() {
        assert_eq!(
            image_name("/library/alpine:3.20").unwrap(),
            "library/alpine"
        );
        assert_eq!(image_name("/alpine").unwrap(), "alpine");
        assert_eq!(
            image_name("/localhost:5000/x:1").unwrap(),
            "localhost:5000/x"
        );
        assert_eq!(
            image_name("/ghcr.io/o/i@sha256:abc").unwrap(),
            "ghcr.io/o/i"
        );
        assert_eq!(
            image_name("/v2/library/alpine/manifests/latest").unwrap(),
            "library/alpine"
        );
        assert_eq!(image_name("/v2/a/tags/list").unwrap(), "a");
        assert_eq!(image_name("/"), None);
    }

    #[test]
    fn pages() {
        assert_eq!(
            page("https://registry-1.docker.io", "library/alpine").unwrap(),
            "https://hub.docker.com/_/alpine"
        );
        assert_eq!(
            page("https://registry-1.docker.io", "bitnami/redis").unwrap(),
            "https://hub.docker.com/r/bitnami/redis"
        );
        assert_eq!(
            page("https://ghcr.io", "o/i").unwrap(),
            "https://ghcr.io/o/i"
        );
        assert_eq!(
            page("https://quay.io", "a/b").unwrap(),
            "https://quay.io/repository/a/b"
        );
        assert_eq!(
            page("https://us-central1-docker.pkg.dev", "p/r/i").unwrap(),
            "https://us-central1-docker.pkg.dev/p/r/i"
        );
        assert_eq!(
            page("https://public.ecr.aws", "docker/library/x").unwrap(),
            "https://gallery.ecr.aws/docker/library/x"
        );
        assert_eq!(page("https://registry.k8s.io", "pause"), None);
        assert_eq!(page("http://127.0.0.1:5000", "x"), None);
    }
}
