//! The operator's status page at the admin path: version and stores, routes
//! with their request counts, cache size and cached repositories, the hit
//! ratio of the last hour as an inline SVG chart, recent upstream errors,
//! the form that warms the cache and the pins; and the sign-in form in
//! front of it. Self-contained HTML: no scripts, no
//! external fonts or styles.

mod chart;
mod tables;
pub mod warm;

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
    /// When the minute began, Unix seconds: the chart names it in UTC.
    pub at: u64,
    pub lookups: u64,
    pub hits: u64,
}

/// A route the proxy has, or has answered requests for.
pub struct RouteRow {
    /// A stored host, a built-in host or registry name, or `default`.
    pub name: String,
    /// Where it goes, or why it does not (an invalid stored route).
    pub upstream: String,
    /// `stored`, `built-in`, `default`, or what else the name is now.
    pub kind: &'static str,
    /// Requests answered for it, every endpoint and status summed.
    pub requests: u64,
}

/// A repository in the cache.
pub struct RepositoryRow {
    pub name: String,
    pub tags: Vec<String>,
    pub bytes: u64,
    /// Unix seconds; `None` when nothing read it since it was cached.
    pub last_read: Option<u64>,
    pub pinned: bool,
}

pub struct Status {
    pub admin_path: String,
    /// The proxy's version, so an operator knows which build answers.
    pub version: &'static str,
    /// The `default_upstream` variable; empty when there is none.
    pub default_upstream: String,
    /// Stored routes, then those only the counters know, busiest first.
    pub routes: Vec<RouteRow>,
    pub cache_bytes: u64,
    pub cache_max: u64,
    /// Shown in the order given (the caller sorts them, biggest first).
    pub repositories: Vec<RepositoryRow>,
    /// By id.
    pub pins: Vec<warm::PinRow>,
    pub totals: Stats,
    /// The last hour, oldest first.
    pub minutes: Vec<Minute>,
    /// Newest first.
    pub errors: Vec<RecentError>,
    pub now: u64,
    /// The `stores` variable: where routes, cache and counters live (spin
    /// or redis).
    pub store_kind: String,
    /// The `blob_store` variable: where blobs live (files, kv or s3).
    pub blob_store: String,
    /// Why blob files are off, where `files` found its directory unusable
    /// (blobs are then in the cache store).
    pub blob_files_off: Option<String>,
    /// Each store, and why it does not answer when it does not.
    pub stores: Vec<(&'static str, Result<(), String>)>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left}td.n{text-align:right}code{background:#f4f4f4;border-radius:4px}.bar{fill:#2a7}.none{fill:#eee}.grid{stroke:#ccc}.axis{font-size:11px;fill:#555}.note{color:#555;font-size:.9rem}#warm label{margin-right:1rem}#walk{display:grid;grid-template-columns:repeat(3,auto) 1fr;gap:.1rem 1rem;align-items:baseline}.row{display:contents}.meter{grid-column:1/-1;order:-1;margin:.5rem 0}p.meter:not(:last-of-type){display:none}.meter span{display:block}.meter label{display:inline-grid;grid-template-columns:5rem 14rem;align-items:center;width:22rem}progress{width:14rem;margin:0 .5rem}.failed{color:#b00}";

/// A page up to its body's first element: the streamed prefetch page
/// goes on from there.
fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(title)
    )
}

fn page(title: &str, body: &str) -> String {
    format!("{}{body}</body></html>\n", head(title))
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

/// The status page for a signed-in admin: stores, routes, cache figures, the
/// hit-ratio chart, cached repositories and recent upstream errors.
pub fn render(s: &Status) -> String {
    let body = format!(
        "<h1>registry-proxy</h1>\n<p id=\"version\">Version {}</p>\n\
         <form method=\"post\" action=\"{}/logout\"><button type=\"submit\">Sign out</button></form>\n\
         <h2>Stores</h2>\n{}\
         <h2>Routes</h2>\n{}\
         <h2>Cache</h2>\n{}\
         <h2>Hit ratio, last hour</h2>\n{}\
         <h2>Cached repositories</h2>\n{}\
         <h2>Warm the cache</h2>\n{}\
         <h2>Pins</h2>\n{}\
         <h2>Recent upstream errors</h2>\n{}",
        esc(s.version),
        esc(&s.admin_path),
        stores(s),
        tables::routes(&s.routes, &s.default_upstream),
        cache(s),
        chart::chart(&s.minutes),
        tables::repositories(&s.repositories, s.now),
        warm::form(&s.admin_path),
        warm::pins(&s.pins, &s.admin_path, s.now),
        tables::errors(&s.errors, s.now),
    );
    page("registry-proxy: status", &body)
}

/// Which stores the proxy uses, then a list item a store: up, or down with
/// why.
fn stores(s: &Status) -> String {
    let items: String = s
        .stores
        .iter()
        .map(|(name, state)| match state {
            Ok(()) => format!("<li id=\"store-{name}\">{name}: up</li>"),
            Err(e) => format!(
                "<li id=\"store-{name}\">{name}: <strong>down</strong> ({})</li>",
                esc(e)
            ),
        })
        .collect();
    format!(
        "<p id=\"store-kinds\">Routes, cache and counters in <code>{}</code> stores (variable <code>stores</code>); blobs in <code>{}</code> (variable <code>blob_store</code>).</p>\n<ul id=\"stores\">{items}</ul>\n",
        esc(&s.store_kind),
        esc(&s.blob_store)
    ) + files_off(s).as_str()
}

/// Says that `blob_store = files` could not be obeyed, and why.
fn files_off(s: &Status) -> String {
    s.blob_files_off.as_ref().map_or(String::new(), |why| {
        format!(
            "<p id=\"blob-files-off\"><strong>Blob files are off</strong>: {}. Blobs are kept in the cache store instead.</p>\n",
            esc(why)
        )
    })
}

fn cache(s: &Status) -> String {
    let t = &s.totals;
    let lookups = t.hits + t.misses + t.revalidated + t.stale;
    let served = lookups + t.coalesced;
    format!(
        "<p id=\"cache\">{} of {} in cached blobs; {} hits, {} misses, {} revalidated, {} stale, {} coalesced, {} bypassed while the cache store was away (hit ratio {}).</p>\n",
        size(s.cache_bytes),
        size(s.cache_max),
        t.hits,
        t.misses,
        t.revalidated,
        t.stale,
        t.coalesced,
        t.bypassed,
        percent(served - t.misses, served),
    )
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
