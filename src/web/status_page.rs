//! The operator's status page at the admin path: routes, cache size, the hit
//! ratio of the last hour as an inline SVG chart, recent upstream errors;
//! and the sign-in form in front of it. Self-contained HTML: no scripts, no
//! external fonts or styles.

use crate::telemetry::stats::Stats;
use crate::web::home::esc;

/// The cookie that keeps a sign-in to the page: a signed session value
/// with its expiry (`status.rs`), never the admin token itself.
pub const COOKIE: &str = "registry_proxy_admin";

pub struct RecentError {
    pub time: u64,
    pub upstream: String,
    pub route: Option<String>,
    pub error: String,
}

/// One minute of cache lookups.
#[derive(Clone, Copy, Default)]
pub struct Minute {
    pub lookups: u64,
    pub hits: u64,
}

pub struct Status {
    pub admin_path: String,
    /// Stored routes: name, and upstream or why the route is invalid.
    pub routes: Vec<(String, String)>,
    pub cache_bytes: u64,
    pub cache_max: u64,
    pub totals: Stats,
    /// The last hour, oldest first.
    pub minutes: Vec<Minute>,
    /// Newest first.
    pub errors: Vec<RecentError>,
    pub now: u64,
    /// Each store, and why it does not answer when it does not.
    pub stores: Vec<(&'static str, Result<(), String>)>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left}code{background:#f4f4f4;border-radius:4px}.bar{fill:#2a7}.none{fill:#ddd}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n{body}</body></html>\n",
        esc(title)
    )
}

/// The sign-in form; `message` says why it is shown again.
pub fn sign_in(admin_path: &str, message: Option<&str>) -> String {
    let message = message
        .map(|m| format!("<p id=\"message\"><strong>{}</strong></p>\n", esc(m)))
        .unwrap_or_default();
    page(
        "registry-proxy: sign in",
        &format!(
            "<h1>registry-proxy</h1>\n{message}<form method=\"post\" action=\"{}/login\">\n<label>Admin token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label>\n<button type=\"submit\">Sign in</button>\n</form>\n",
            esc(admin_path)
        ),
    )
}

pub fn render(s: &Status) -> String {
    let mut routes = String::new();
    for (name, upstream) in &s.routes {
        routes.push_str(&format!(
            "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>\n",
            esc(name),
            esc(upstream)
        ));
    }
    let lookups = s.totals.hits + s.totals.misses + s.totals.revalidated + s.totals.stale;
    let served = lookups + s.totals.coalesced;
    let ratio = percent(served - s.totals.misses, served);
    let body = format!(
        "<h1>registry-proxy</h1>\n<form method=\"post\" action=\"{path}/logout\"><button type=\"submit\">Sign out</button></form>\n\
         <h2>Stores</h2>\n{}\n\
         <h2>Cache</h2>\n<p id=\"cache\">{} of {} in cached blobs; {} hits, {} misses, {} revalidated, {} stale, {} coalesced, {} bypassed while the cache store was away (hit ratio {ratio}).</p>\n\
         <h2>Hit ratio, last hour</h2>\n{}\n\
         <h2>Routes</h2>\n<table id=\"routes\"><tr><th>route</th><th>upstream</th></tr>\n{routes}</table>\n\
         <h2>Recent upstream errors</h2>\n{}",
        stores(&s.stores),
        size(s.cache_bytes),
        size(s.cache_max),
        s.totals.hits,
        s.totals.misses,
        s.totals.revalidated,
        s.totals.stale,
        s.totals.coalesced,
        s.totals.bypassed,
        chart(&s.minutes),
        errors(&s.errors, s.now),
        path = esc(&s.admin_path),
    );
    page("registry-proxy: status", &body)
}

/// A list item a store: up, or down with why.
fn stores(stores: &[(&str, Result<(), String>)]) -> String {
    let items: String = stores
        .iter()
        .map(|(name, state)| match state {
            Ok(()) => format!("<li id=\"store-{name}\">{name}: up</li>"),
            Err(e) => format!(
                "<li id=\"store-{name}\">{name}: <strong>down</strong> ({})</li>",
                esc(e)
            ),
        })
        .collect();
    format!("<ul id=\"stores\">{items}</ul>")
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".to_string()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// One bar a minute, as tall as its hit ratio; grey where nothing was
/// looked up.
fn chart(minutes: &[Minute]) -> String {
    const W: usize = 8;
    const H: f64 = 80.0;
    let mut bars = String::new();
    for (i, m) in minutes.iter().enumerate() {
        let x = i * W;
        let ago = minutes.len() - 1 - i;
        if m.lookups == 0 {
            bars.push_str(&format!(
                "<rect class=\"none\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"2\"><title>{ago} min ago: no lookups</title></rect>",
                H - 2.0,
                W - 1
            ));
            continue;
        }
        let h = (H * m.hits.min(m.lookups) as f64 / m.lookups as f64).max(1.0);
        bars.push_str(&format!(
            "<rect class=\"bar\" x=\"{x}\" y=\"{:.1}\" width=\"{}\" height=\"{h:.1}\"><title>{ago} min ago: {} of {} lookups hit</title></rect>",
            H - h,
            W - 1,
            m.hits,
            m.lookups
        ));
    }
    format!(
        "<svg id=\"ratio\" role=\"img\" aria-label=\"cache hit ratio per minute\" width=\"{}\" height=\"{H}\" viewBox=\"0 0 {} {H}\">{bars}</svg>",
        minutes.len() * W,
        minutes.len() * W
    )
}

fn errors(list: &[RecentError], now: u64) -> String {
    if list.is_empty() {
        return "<p id=\"errors\">None.</p>\n".to_string();
    }
    let mut rows = String::new();
    for e in list {
        rows.push_str(&format!(
            "<tr><td>{}s ago</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>\n",
            now.saturating_sub(e.time),
            esc(e.route.as_deref().unwrap_or("–")),
            esc(&e.upstream),
            esc(&e.error)
        ));
    }
    format!(
        "<table id=\"errors\"><tr><th>when</th><th>route</th><th>upstream</th><th>error</th></tr>\n{rows}</table>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        Status {
            admin_path: "/_registry-proxy".into(),
            routes: vec![("ghcr.example.com".into(), "https://ghcr.io/".into())],
            cache_bytes: 3 << 20,
            cache_max: 10 << 30,
            totals: Stats {
                hits: 3,
                misses: 1,
                revalidated: 0,
                stale: 0,
                coalesced: 0,
                bypassed: 0,
            },
            stores: vec![("routes", Ok(())), ("cache", Err("refused".into()))],
            minutes: vec![
                Minute::default(),
                Minute {
                    lookups: 4,
                    hits: 3,
                },
            ],
            errors: vec![RecentError {
                time: 90,
                upstream: "<b>quay.io</b>".into(),
                route: Some("quay.example.com".into()),
                error: "status 503".into(),
            }],
            now: 100,
        }
    }

    #[test]
    fn the_page_shows_routes_cache_chart_and_errors() {
        let html = render(&status());
        assert!(
            html.contains("<code>ghcr.example.com</code></td><td><code>https://ghcr.io/</code>")
        );
        assert!(html.contains("3.0 MiB of 10.0 GiB"), "{html}");
        assert!(html.contains("hit ratio 75%"));
        assert!(html.contains("0 min ago: 3 of 4 lookups hit"));
        assert!(html.contains("1 min ago: no lookups"));
        assert!(html.contains("10s ago") && html.contains("&lt;b&gt;quay.io&lt;/b&gt;"));
        assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("<link"));
    }

    #[test]
    fn sign_in_posts_the_token_and_escapes_its_message() {
        let html = sign_in("/admin", Some("<wrong>"));
        assert!(html.contains("action=\"/admin/login\""));
        assert!(html.contains("type=\"password\" name=\"token\""));
        assert!(html.contains("&lt;wrong&gt;"));
    }
}
