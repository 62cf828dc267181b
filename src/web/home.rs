//! The usage page served on `/`.

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

/// `routes`: (proxy host, upstream) pairs; `here` is the route serving the
/// requesting host, if any.
pub fn render_html(origin: &str, here: Option<&str>, routes: &[(String, String)]) -> String {
    let host = esc(registry_host(origin));
    let mut rows = String::new();
    for (h, up) in routes {
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td><code>docker pull {}/&lt;image&gt;</code></td></tr>\n",
            esc(h),
            esc(up),
            esc(h)
        ));
    }
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
<p>Docker Hub only; the mirror must be served over HTTPS at a domain root whose route is Docker Hub.</p>
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

    #[test]
    fn text_usage() {
        let t = render_text(
            "https://r.example.com",
            Some("https://registry-1.docker.io"),
        );
        assert!(t.contains("docker pull r.example.com/library/alpine"));
    }
}
