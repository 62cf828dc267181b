//! The page's route table: the stored routes, and every other route the
//! counters saw requests for (a built-in registry, `default`), so a proxy
//! that routes by built-in names or the default upstream alone still shows
//! where its requests went.

use crate::host::Host;
use crate::routing::registries;
use crate::routing::route;
use crate::telemetry::metrics::{self, REQUESTS};
use crate::web::status_page::RouteRow;
use std::collections::BTreeMap;

/// What `stats::flush` counts a request under when no route answered it
/// (the home page, the admin path): no route to show.
const NO_ROUTE: &str = "none";

/// Stored routes and the routes seen in the counters, busiest first.
pub fn rows<H: Host>(host: &H, default_upstream: &str) -> Vec<RouteRow> {
    let mut requests = requests_by_route(host);
    let mut rows: Vec<RouteRow> = stored(host)
        .into_iter()
        .map(|(name, upstream)| RouteRow {
            requests: requests.remove(&name).unwrap_or(0),
            kind: "stored",
            name,
            upstream,
        })
        .collect();
    requests.remove(NO_ROUTE);
    let custom_domain = host.settings().custom_domain.clone();
    for (name, n) in requests {
        let (kind, upstream) = seen(&name, default_upstream, &custom_domain, &rows);
        rows.push(RouteRow {
            name,
            upstream,
            kind,
            requests: n,
        });
    }
    // Stable: equally busy routes stay in name order.
    rows.sort_by_key(|r| std::cmp::Reverse(r.requests));
    rows
}

/// Requests per route name, summed over endpoint and status class. Read by
/// adding 0, as every counter is, whatever its store's encoding.
fn requests_by_route<H: Host>(host: &H) -> BTreeMap<String, u64> {
    let counters = host.counters();
    let keys = counters.keys().unwrap_or_else(|e| {
        eprintln!("status page: the counters cannot be listed: {e}");
        Vec::new()
    });
    let mut by_route = BTreeMap::new();
    for k in keys {
        let Some(route) = metrics::labels(&REQUESTS, &k).map(|l| l[0].to_string()) else {
            continue;
        };
        let n = counters.increment(&k, 0).map_or(0, |v| v.max(0) as u64);
        *by_route.entry(route).or_insert(0) += n;
    }
    by_route
}

/// What a route name from the counters is now, and its upstream: the same
/// order `routing::target` resolves names in.
fn seen(
    name: &str,
    default_upstream: &str,
    custom_domain: &str,
    stored: &[RouteRow],
) -> (&'static str, String) {
    if name == "default" {
        let upstream = match default_upstream {
            "" => "none (default_upstream is empty now)".to_string(),
            u => u.to_string(),
        };
        return ("default", upstream);
    }
    let builtin = registries::builtin_for_registry(name)
        .or_else(|| registries::builtin_for_host(name, custom_domain));
    if let Some(b) = builtin {
        return ("built-in", b.upstream.to_string());
    }
    // A registry named in the path whose upstream a stored route has.
    let by_upstream = stored.iter().find(|r| {
        url::Url::parse(&r.upstream).is_ok_and(|u| {
            u[url::Position::BeforeHost..url::Position::AfterPort].eq_ignore_ascii_case(name)
        })
    });
    match by_upstream {
        Some(r) => ("stored upstream", r.upstream.clone()),
        // Counters outlive routes: one deleted since, or a built-in
        // host under a custom_domain changed since.
        None => ("no longer routed", "–".to_string()),
    }
}

/// Every stored route with its upstream, or why it does not validate; in
/// name order.
fn stored<H: Host>(host: &H) -> Vec<(String, String)> {
    let mut routes: Vec<(String, String)> = route::stored_routes(host.kv().as_ref())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, route)| match route {
            Ok(r) => (name, r.upstream.to_string()),
            Err(e) => (name, format!("invalid: {e}")),
        })
        .collect();
    routes.sort();
    routes
}
