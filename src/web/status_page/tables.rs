//! The page's tables: routes, cached repositories, recent upstream errors.

use super::{RecentError, RepositoryRow, RouteRow, size};
use crate::web::home::esc;

/// The default upstream first, since it answers every host no other route
/// does; then every route with its upstream and request count.
pub fn routes(rows: &[RouteRow], default_upstream: &str) -> String {
    let default = match default_upstream {
        "" => "none (variable <code>default_upstream</code> is empty: hosts without a route are refused)".to_string(),
        u => format!("<code>{}</code>", esc(u)),
    };
    let mut out = format!("<p id=\"default-upstream\">Default upstream: {default}</p>\n");
    if rows.is_empty() {
        out.push_str("<p id=\"routes\">No routes stored, and no requests routed yet.</p>\n");
        return out;
    }
    out.push_str(
        "<table id=\"routes\"><tr><th>route</th><th>kind</th><th>upstream</th><th>requests</th></tr>\n",
    );
    for r in rows {
        out.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td></tr>\n",
            esc(&r.name),
            esc(r.kind),
            esc(&r.upstream),
            r.requests
        ));
    }
    out.push_str("</table>\n");
    out
}

/// In the order given: the caller knows which order matters (biggest first).
pub fn repositories(rows: &[RepositoryRow], now: u64) -> String {
    if rows.is_empty() {
        return "<p id=\"repositories\">Nothing cached yet.</p>\n".to_string();
    }
    let mut out = String::from(
        "<table id=\"repositories\"><tr><th>repository</th><th>tags</th><th>size</th><th>last read</th><th>pinned</th></tr>\n",
    );
    for r in rows {
        let tags: Vec<String> = r
            .tags
            .iter()
            .map(|t| format!("<code>{}</code>", esc(t)))
            .collect();
        let read = match r.last_read {
            Some(t) => format!("{} min ago", now.saturating_sub(t) / 60),
            None => "never".to_string(),
        };
        out.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"n\">{}</td><td>{read}</td><td>{}</td></tr>\n",
            esc(&r.name),
            tags.join(", "),
            size(r.bytes),
            if r.pinned { "pinned" } else { "" }
        ));
    }
    out.push_str("</table>\n");
    out
}

/// The recent upstream errors as a table, each with its age at `now`; "None." if none.
pub fn errors(list: &[RecentError], now: u64) -> String {
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
