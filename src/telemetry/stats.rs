//! What a request did, noted as it goes and counted once its answer is out:
//! the counters behind `/metrics`, the status page and the cache figures.
//!
//! Counting is a few atomic increments in the `stats` store after the
//! answer (in memory by default, Redis when instances share it): under Spin
//! a file store write is a SQLite commit, which no client should wait for,
//! and a read-modify-write would lose counts between instances.

use crate::host::Host;
use crate::host::notes::{Notes, Outcome, TokenAnswer, UpstreamCall};
use crate::telemetry::metrics::{self, BYTES, CACHE, REQUESTS, TOKENS, UPSTREAM, UPSTREAM_MICROS};
use crate::telemetry::reads;

/// Notes a cache outcome of the request, counted once the answer is out.
pub fn record<H: Host>(host: &H, outcome: Outcome) {
    host.tally().0.borrow_mut().outcomes.push(outcome);
}

/// The outcome a request's last one turned into (a hit whose bucket was
/// away, relayed): counted instead of it.
pub fn record_instead<H: Host>(host: &H, outcome: Outcome) {
    let mut notes = host.tally().0.borrow_mut();
    notes.outcomes.pop();
    notes.outcomes.push(outcome);
}

/// Notes the route serving the request, its counters' `route` label.
pub fn note_route<H: Host>(host: &H, route: &str) {
    host.tally().0.borrow_mut().route = Some(route.to_string());
}

/// Notes the request's endpoint kind and repository, for its counters and log line.
pub fn note_request<H: Host>(host: &H, endpoint: &'static str, repository: Option<&str>) {
    let mut notes = host.tally().0.borrow_mut();
    notes.endpoint = Some(endpoint);
    notes.repository = repository.map(str::to_string);
}

/// Notes one upstream call: counted with its time, and kept for the status page
/// if it failed.
pub fn note_upstream<H: Host>(host: &H, call: UpstreamCall) {
    host.tally().0.borrow_mut().upstream.push(call);
}

/// How the client's token request is being answered; a later note (the
/// relay failed, a placeholder went out instead) replaces an earlier one.
pub fn note_token<H: Host>(host: &H, answer: TokenAnswer) {
    host.tally().0.borrow_mut().token = Some(answer);
}

/// A token the proxy fetched for a route's credentials, and the realm's status.
pub fn note_route_token<H: Host>(host: &H, status: u16) {
    host.tally().0.borrow_mut().route_tokens.push(status);
}

/// A cached repository read, `<scope>/<name>`: noted once the answer is
/// out if the answer came from the cache or was kept in it (its last
/// outcome says so). A relayed answer that kept nothing, such as a `HEAD`
/// by digest, records no outcome and notes no read: its repository is not
/// cached, and any client could otherwise add a note per name it makes up.
pub fn note_read<H: Host>(host: &H, repository: &str) {
    let mut notes = host.tally().0.borrow_mut();
    if notes.outcomes.last().is_some_and(|o| *o != Outcome::Bypass) {
        notes.read = Some(repository.to_string());
    }
}

/// Where the answer's body came from, for the bytes counter.
pub fn source(notes: &Notes) -> Option<&'static str> {
    match notes.outcomes.last() {
        Some(o) if o.served_cached() => Some("cache"),
        _ if !notes.upstream.is_empty() => Some("upstream"),
        _ => None,
    }
}

/// Recent upstream failures kept for the status page, oldest overwritten.
pub const RECENT_ERRORS: i64 = 20;
const ERRORS_NEXT: &str = "errors|next";
/// Minutes of hit ratio kept for the status page.
pub const RATIO_MINUTES: u64 = 60;

/// The counters key of recent upstream failure `n`, wrapping at [`RECENT_ERRORS`].
pub fn error_key(n: i64) -> String {
    format!("errors|{}", n.rem_euclid(RECENT_ERRORS))
}

/// The counters key of `minute`'s cache `lookups` or `hits`, for the hit-ratio chart.
pub fn ratio_key(minute: u64, what: &str) -> String {
    format!("ratio|{minute}|{what}")
}

/// Adds the request's notes to the counters; run after the answer is out.
pub fn flush<H: Host>(host: &H, status: u16, bytes: u64) {
    if !host.settings().metrics {
        return;
    }
    let notes = host.tally().0.take();
    let counters = host.counters();
    let add = |key: String, n: i64| {
        if let Err(e) = counters.increment(&key, n) {
            eprintln!("counter {key} not updated: {e}");
        }
    };
    let class = format!("{}xx", status / 100);
    let route = notes.route.as_deref().unwrap_or("none");
    let endpoint = notes.endpoint.unwrap_or("other");
    add(metrics::key(&REQUESTS, &[route, endpoint, &class]), 1);
    for o in &notes.outcomes {
        add(metrics::key(&CACHE, &[o.name()]), 1);
    }
    for call in &notes.upstream {
        let result = if call.failed() { "error" } else { "ok" };
        add(metrics::key(&UPSTREAM, &[&call.upstream, result]), 1);
        let micros = i64::try_from(call.micros).unwrap_or(i64::MAX);
        add(metrics::key(&UPSTREAM_MICROS, &[&call.upstream]), micros);
    }
    let token = |answer: TokenAnswer, status: u16| {
        let class = format!("{}xx", status / 100);
        add(metrics::key(&TOKENS, &[answer.name(), &class]), 1);
    };
    if let Some(answer) = notes.token {
        token(answer, status);
    }
    for realm_status in &notes.route_tokens {
        token(TokenAnswer::RouteCredentials, *realm_status);
    }
    if let Some(source) = source(&notes).filter(|_| bytes > 0) {
        add(metrics::key(&BYTES, &[source]), bytes as i64);
    }
    if let Some(last) = notes.outcomes.last() {
        count_minute(host, last.served_cached());
    }
    remember_errors(host, &notes);
    if let Some(repository) = &notes.read
        && let Err(e) = reads::note(counters.as_ref(), repository, crate::now())
    {
        eprintln!("the read of {repository} not noted: {e}");
    }
}

/// This minute's cache lookups and hits; the first lookup of a minute drops
/// the minute that falls out of the chart.
fn count_minute<H: Host>(host: &H, hit: bool) {
    let counters = host.counters();
    let minute = crate::now() / 60;
    if counters.increment(&ratio_key(minute, "lookups"), 1) == Ok(1) {
        let old = minute.saturating_sub(RATIO_MINUTES);
        for what in ["lookups", "hits"] {
            let _ = counters.delete(&ratio_key(old, what));
        }
    }
    if hit {
        let _ = counters.increment(&ratio_key(minute, "hits"), 1);
    }
}

fn remember_errors<H: Host>(host: &H, notes: &Notes) {
    let counters = host.counters();
    for call in notes.upstream.iter().filter(|c| c.failed()) {
        let Ok(n) = counters.increment(ERRORS_NEXT, 1) else {
            continue;
        };
        let what = match &call.result {
            Ok(status) => format!("status {status}"),
            Err(why) => why.chars().take(200).collect(),
        };
        let entry = serde_json::json!({
            "time": crate::now(),
            "upstream": call.upstream,
            "route": notes.route,
            "error": what,
        });
        let _ = counters.set(&error_key(n), entry.to_string().as_bytes());
    }
}

/// Hit and miss counts, for the admin API and the status page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub revalidated: u64,
    pub stale: u64,
    pub coalesced: u64,
    pub bypassed: u64,
}

/// The cache outcome totals from the counters; one that cannot be read counts 0.
pub fn load<H: Host>(host: &H) -> Stats {
    // Adding 0 reads a counter whatever its store's number encoding.
    let read = |o: Outcome| {
        host.counters()
            .increment(&metrics::key(&CACHE, &[o.name()]), 0)
            .map_or(0, |n| u64::try_from(n).unwrap_or(0))
    };
    let [hits, misses, revalidated, stale, coalesced, bypassed] = Outcome::ALL.map(read);
    Stats {
        hits,
        misses,
        revalidated,
        stale,
        coalesced,
        bypassed,
    }
}
