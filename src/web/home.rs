//! The usage page served on `/`.

use crate::routing::target::ANY_OTHER_HOST;

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The registry host as clients write it in image references (no scheme).
fn registry_host(origin: &str) -> &str {
    origin.split_once("://").map_or(origin, |(_, h)| h)
}

/// One row of the routes table. The default upstream's row says in words
/// which hosts it serves, and pulls through this host when this host is one.
fn route_row(host: &str, here: Option<&str>, route_host: &str, upstream: &str) -> String {
    let (route_host, example_host) = if route_host == ANY_OTHER_HOST {
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        let example = match here {
            Some(here) if same(here, upstream) => host.to_string(),
            _ => "&lt;another host name&gt;".to_string(),
        };
        ("any other host name".to_string(), example)
    } else {
        (format!("<code>{}</code>", esc(route_host)), esc(route_host))
    };
    format!(
        "<tr><td>{route_host}</td><td><code>{}</code></td><td><code>docker pull {example_host}/&lt;image&gt;</code></td></tr>\n",
        esc(upstream)
    )
}

/// `routes`: (proxy host, upstream) pairs; `here` is the route serving the
/// requesting host, if any.
pub fn render_html(origin: &str, here: Option<&str>, routes: &[(String, String)]) -> String {
    let host = esc(registry_host(origin));
    let rows: String = routes
        .iter()
        .map(|(h, up)| route_row(&host, here, h, up))
        .collect();
    let here = match here {
        Some(up) => format!("<p>This host proxies <code>{}</code>.</p>", esc(up)),
        None => "<p>This host has no route; use one of the hosts below.</p>".to_string(),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>registry-proxy</title>
<style>body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}pre,code{{background:#f4f4f4;border-radius:4px}}pre{{padding:.75rem;overflow:auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:.3rem .6rem;text-align:left}}</style>
</head><body>
<h1>registry-proxy</h1>
<p>An OCI / Docker registry proxy. Pull images through <code>{host}</code>.</p>
{here}
<h2>docker / podman / nerdctl</h2>
<pre>docker pull {host}/library/alpine:latest
podman pull {host}/library/alpine:latest</pre>
<h2>Any configured registry through this one host</h2>
<p>Put the registry before the image name:</p>
<pre>docker pull {host}/ghcr.io/OWNER/IMAGE:TAG
docker pull {host}/quay.io/ORG/IMAGE:TAG
docker pull {host}/registry.k8s.io/pause:3.10
docker pull {host}/docker.io/library/alpine</pre>
<h2>Docker daemon mirror (<code>/etc/docker/daemon.json</code>)</h2>
<p>Docker mirrors Docker Hub only, and asks the mirror's root, so the mirror is a host name whose route (or the default upstream) is Docker Hub. Docker speaks the scheme the URL names: an <code>http://</code> mirror is reached in plain HTTP, with no certificate to check, so keep it to this machine or a network you trust; an <code>https://</code> mirror needs a certificate Docker trusts, or its host in <code>insecure-registries</code> (where 127.0.0.0/8 and ::1 are by default).</p>
<pre>{{
  "registry-mirrors": ["{origin_esc}"]
}}</pre>
<h2>containerd (<code>/etc/containerd/certs.d/docker.io/hosts.toml</code>)</h2>
<p>containerd says which registry it wants (<code>?ns=docker.io</code>), so the same host serves a <code>certs.d/&lt;registry&gt;/hosts.toml</code> for every configured registry.</p>
<pre>server = "https://registry-1.docker.io"

[host."{origin_esc}"]
  capabilities = ["pull", "resolve"]</pre>
<h2>Routes</h2>
<table><tr><th>host</th><th>upstream</th><th>example</th></tr>
{rows}</table>
</body></html>
"#,
        origin_esc = esc(origin),
    )
}

/// The plain-text home page: what this host proxies (`here`), and `docker pull`
/// examples.
pub fn render_text(origin: &str, here: Option<&str>) -> String {
    let host = registry_host(origin);
    let here = here.map_or_else(
        || "no route for this host".to_string(),
        |u| format!("proxies {u}"),
    );
    format!(
        "registry-proxy at {origin} ({here})\n\n  docker pull {host}/library/alpine:latest\n  docker pull {host}/ghcr.io/OWNER/IMAGE:TAG\n\nOpen {origin}/ in a browser for mirror and containerd set-up.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_it_embeds() {
        let html = render_html(
            "http://<x>",
            Some("https://a\"b"),
            &[("h<1>".into(), "u&2".into())],
        );
        assert!(!html.contains("<x>"));
        assert!(html.contains("&lt;x&gt;"));
        assert!(html.contains("a&quot;b"));
        assert!(html.contains("h&lt;1&gt;"));
        assert!(html.contains("u&amp;2"));
        assert!(html.contains("registry-mirrors"));
        assert!(html.contains("hosts.toml"));
    }

    /// What the page says can be copied: the mirror paragraph fits its
    /// `http://` example, and the default upstream's row names its hosts
    /// in words with a pull a person can run.
    #[test]
    fn says_what_a_person_can_copy() {
        let hub = "https://registry-1.docker.io";
        let routes = [
            (ANY_OTHER_HOST.to_string(), hub.to_string()),
            (
                "ghcr.example.com".to_string(),
                "https://ghcr.io".to_string(),
            ),
        ];
        let html = render_html("http://127.0.0.1:3000", Some(hub), &routes);
        assert!(html.contains(r#""registry-mirrors": ["http://127.0.0.1:3000"]"#));
        assert!(!html.contains("must be served over HTTPS"));
        assert!(html.contains("<code>http://</code> mirror is reached in plain HTTP"));
        assert!(html.contains("<code>insecure-registries</code>"));
        assert!(!html.contains("<code>*</code>") && !html.contains("docker pull */"));
        assert!(html.contains(
            "<tr><td>any other host name</td><td><code>https://registry-1.docker.io</code></td>\
             <td><code>docker pull 127.0.0.1:3000/&lt;image&gt;</code></td></tr>"
        ));
        assert!(html.contains("<code>docker pull ghcr.example.com/&lt;image&gt;</code>"));
        // A host with a route of its own cannot show the default's pull.
        let html = render_html("http://ghcr.example.com", Some("https://ghcr.io"), &routes);
        assert!(html.contains("<code>docker pull &lt;another host name&gt;/&lt;image&gt;</code>"));
    }

    #[test]
    fn text_usage() {
        let t = render_text(
            "https://r.example.com",
            Some("https://registry-1.docker.io"),
        );
        assert!(t.contains("docker pull r.example.com/library/alpine"));
    }
}
