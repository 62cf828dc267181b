//! What operators read at the admin path: the status page for a person
//! (signed in with the admin token, then kept signed in by a session cookie
//! signed with a key derived from it) and `/metrics` for Prometheus (the
//! admin token or the metrics token).

use crate::auth::client_address;
use crate::auth::throttle;
use crate::cache::blob_storage::files;
use crate::cache::bound::{self, TOTAL_KEY};
use crate::host::{Body, Headers, Host, Request, Response};
use crate::oci::error::{ErrorCode, RegistryError};
use crate::telemetry::metrics;
use crate::telemetry::stats;
use crate::web::operations::authorized;
use crate::web::status_page::{self, COOKIE, Minute, RecentError, RepositoryRow, Status};
use session::{SESSION_SECS, new_session};

const FORM_LIMIT: usize = 4096;

mod routes;
mod session;
#[cfg(test)]
mod tests;
pub mod warm;

fn html<S>(status: u16, body: String) -> Response<S> {
    Response {
        status,
        headers: html_headers(),
        body: Body::Bytes(body.into_bytes()),
    }
}

/// The headers of every page here, whole or streamed.
fn html_headers() -> Headers {
    let mut headers = Headers::default();
    headers.push("content-type", "text/html; charset=utf-8");
    headers.push("cache-control", "no-store");
    // Nothing on the page runs or loads from elsewhere, nor may it be framed.
    headers.push(
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    );
    headers
}

/// A 303 to the page.
fn back_to_page<S>(prefix: &str) -> Response<S> {
    let mut headers = Headers::default();
    headers.push("location", format!("{prefix}/"));
    headers.push("cache-control", "no-store");
    Response {
        status: 303,
        headers,
        body: Body::Empty,
    }
}

/// To the page, with the cookie set to `value` (empty: removed).
fn to_page<S>(prefix: &str, origin: &str, value: &str) -> Response<S> {
    let secure = if origin.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    // The browser drops the cookie when the session ends, or at once.
    let age = if value.is_empty() { 0 } else { SESSION_SECS };
    let mut to_page = back_to_page(prefix);
    to_page.headers.push(
        "set-cookie",
        format!(
            "{COOKIE}={value}; Path={prefix}; HttpOnly; SameSite=Strict{secure}; Max-Age={age}"
        ),
    );
    to_page
}

/// The page for a holder of the admin token (header or cookie), else the
/// sign-in form.
pub fn page<H: Host>(
    host: &H,
    req: &Request<H::Stream>,
    prefix: &str,
    token: &str,
) -> Response<H::Stream> {
    let bearer = req.headers.get("authorization");
    let cookie_ok = session::signed_in(&req.headers, token);
    // A bearer token is a guess like the form's, and counted the same way.
    let bearer_ok = || match bearer {
        Some(_) => throttle::checked(host, &req.headers, || authorized(bearer, token)),
        None => Ok(false),
    };
    let signed_in = match cookie_ok {
        true => Ok(true),
        false => bearer_ok(),
    };
    match signed_in {
        Ok(true) => {}
        Ok(false) => return html(200, status_page::sign_in(prefix, None)),
        Err(e) => return html(e.status, status_page::sign_in(prefix, Some(&e.message))),
    }
    html(200, status_page::render(&gather(host, prefix)))
}

/// The sign-in form's post: the token, checked like a login (and counted
/// against the same per-client bound).
pub async fn sign_in<H: Host>(
    host: &H,
    req: Request<H::Stream>,
    prefix: &str,
    origin: &str,
    token: &str,
) -> Result<Response<H::Stream>, RegistryError> {
    // Before the throttle: another site's page posting here is not the
    // visitor's failed login, and must not lock them out either.
    if let Some(refused) = refuse_cross_site(&req.headers, prefix, origin, "sign-in") {
        return Ok(refused);
    }
    // A person at the form reads the refusal there, not as registry JSON.
    let attempt = match throttle::attempt(host, &client_address::client(host, &req.headers)) {
        Ok(attempt) => attempt,
        Err(e) => {
            return Ok(html(
                e.status,
                status_page::sign_in(prefix, Some(&e.message)),
            ));
        }
    };
    let form = host.read_body(req.body, FORM_LIMIT).await.map_err(|e| {
        RegistryError::new(400, ErrorCode::Unsupported, format!("sign-in form: {e}"))
    })?;
    let given = url::form_urlencoded::parse(&form)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !authorized(Some(&format!("Bearer {given}")), token) {
        return Ok(html(
            403,
            status_page::sign_in(prefix, Some("That is not the admin token.")),
        ));
    }
    attempt.passed();
    let nonce = [crate::random_u64(), crate::random_u64()];
    Ok(to_page(
        prefix,
        origin,
        &new_session(token, crate::now(), nonce),
    ))
}

/// A 403 for a sign-in, sign-out or other form (`what`) another site's page posted
/// (login CSRF, a page guessing tokens from its visitors' browsers, or one
/// signing the admin out), told by the headers
/// browsers add: `Sec-Fetch-Site` other than `same-origin` / `none` (typed
/// or bookmarked), or an `Origin` that is not the proxy's own. Clients that
/// send neither (curl) are not browsers on another site's page.
fn refuse_cross_site<S>(
    headers: &Headers,
    prefix: &str,
    origin: &str,
    what: &str,
) -> Option<Response<S>> {
    let fetch_site = headers.get("sec-fetch-site").map(str::trim);
    let sent_origin = headers.get("origin").map(str::trim);
    let foreign_fetch = fetch_site
        .is_some_and(|s| !s.eq_ignore_ascii_case("same-origin") && !s.eq_ignore_ascii_case("none"));
    let foreign_origin = sent_origin.is_some_and(|o| !same_origin(o, origin));
    if !(foreign_fetch || foreign_origin) {
        return None;
    }
    // Behind a TLS front that sends no X-Forwarded-Proto, the proxy's own
    // page looks foreign too: the log says which origins differed.
    eprintln!(
        "status page {what} refused as cross-site: Sec-Fetch-Site {fetch_site:?}, \
         Origin {sent_origin:?}, the proxy's origin {origin:?} (variable public_url)"
    );
    let message =
        format!("This {what} was not sent from this proxy's own page; use the form here.");
    Some(html(403, status_page::sign_in(prefix, Some(&message))))
}

/// The same host: behind a TLS front that says nothing of its scheme, the
/// proxy sees http where the browser saw https, and another port on the
/// same host is the same site for cookies anyway.
fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin().is_tuple() && a.host_str() == b.host_str(),
        _ => false,
    }
}

/// A 303 back to the status page that removes the session cookie; a 403
/// for another site's page, checked as a sign-in is.
pub fn sign_out<S>(headers: &Headers, prefix: &str, origin: &str) -> Response<S> {
    match refuse_cross_site(headers, prefix, origin, "sign-out") {
        Some(refused) => refused,
        None => to_page(prefix, origin, ""),
    }
}

/// Prometheus text format, for the admin token or the metrics token.
pub fn metrics<H: Host>(
    host: &H,
    req: &Request<H::Stream>,
) -> Result<Response<H::Stream>, RegistryError> {
    let tokens = ["admin_token", "metrics_token"].map(|v| host.variable(v).unwrap_or_default());
    let bearer = req.headers.get("authorization");
    let allowed = bearer.is_some()
        && throttle::checked(host, &req.headers, || {
            tokens
                .iter()
                .any(|t| !t.is_empty() && authorized(bearer, t))
        })?;
    if !allowed {
        return Err(RegistryError::new(
            401,
            ErrorCode::Unauthorized,
            "metrics need the metrics or admin token",
        )
        .with_challenge(r#"Bearer realm="registry-proxy metrics""#.to_string()));
    }
    let counters = host.counters();
    // The stores' state is news even when the counters' store is away.
    let keys = counters.keys().unwrap_or_else(|e| {
        eprintln!("metrics: the counters cannot be read: {e}");
        Vec::new()
    });
    let values: Vec<(String, i64)> = keys
        .into_iter()
        .filter(|k| k.starts_with(metrics::PREFIX))
        .filter_map(|k| counters.increment(&k, 0).ok().map(|v| (k, v)))
        .collect();
    let mut headers = Headers::default();
    headers.push("content-type", "text/plain; version=0.0.4; charset=utf-8");
    headers.push("cache-control", "no-store");
    Ok(Response {
        status: 200,
        headers,
        body: Body::Bytes(
            format!(
                "{}{}",
                metrics::exposition(&values),
                metrics::stores_up(&stores(host))
            )
            .into_bytes(),
        ),
    })
}

/// The cached repositories as the page lists them, gathered at most a
/// minute ago; none when the cache store cannot be listed (the store
/// lines say why).
fn repositories<H: Host>(host: &H) -> Vec<RepositoryRow> {
    let found = crate::cache::repositories::listed(host).unwrap_or_else(|e| {
        eprintln!("status page: cannot list the cache: {e}");
        Vec::new()
    });
    found
        .into_iter()
        .map(|r| RepositoryRow {
            name: format!("{}/{}", r.upstream, r.name),
            tags: r.tags.into_iter().collect(),
            bytes: r.bytes,
            last_read: r.last_read,
            pinned: r.pinned,
        })
        .collect()
}

fn gather<H: Host>(host: &H, prefix: &str) -> Status {
    let now = crate::now();
    let default_upstream = variable(host, "default_upstream", "");
    Status {
        admin_path: prefix.to_string(),
        version: env!("CARGO_PKG_VERSION"),
        routes: routes::rows(host, &default_upstream),
        default_upstream,
        cache_bytes: host
            .cache()
            .increment(TOTAL_KEY, 0)
            .map_or(0, |v| v.max(0) as u64),
        cache_max: bound::max_size(host),
        repositories: repositories(host),
        pins: warm::pins(host),
        totals: stats::load(host),
        minutes: minutes(host, now),
        errors: recent_errors(host),
        now,
        // Unset or empty means the same as the defaults the runtime reads.
        store_kind: variable(host, "stores", "spin"),
        blob_store: variable(host, "blob_store", "files"),
        blob_files_off: blob_files_off(host),
        stores: stores(host),
    }
}

/// Why `blob_store = files` fell back to the cache store, once a request
/// found out.
fn blob_files_off<H: Host>(host: &H) -> Option<String> {
    let choice = variable(host, "blob_store", "files");
    let verdict = files::verdict(host.health().as_ref());
    verdict.filter(|_| choice == "files")?.err()
}

/// A variable, trimmed; `fallback` when it is unset or empty.
fn variable<H: Host>(host: &H, name: &str, fallback: &str) -> String {
    host.variable(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| fallback.to_string())
}

/// The chart's hour, oldest minute first.
fn minutes<H: Host>(host: &H, now: u64) -> Vec<Minute> {
    let counters = host.counters();
    let read = |k: &str| counters.increment(k, 0).map_or(0, |v| v.max(0) as u64);
    let minute = now / 60;
    (0..stats::RATIO_MINUTES)
        .rev()
        .map(|ago| Minute {
            at: (minute - ago) * 60,
            lookups: read(&stats::ratio_key(minute - ago, "lookups")),
            hits: read(&stats::ratio_key(minute - ago, "hits")),
        })
        .collect()
}

/// The upstream failures kept, newest first.
fn recent_errors<H: Host>(host: &H) -> Vec<RecentError> {
    let counters = host.counters();
    let mut errors: Vec<RecentError> = (0..stats::RECENT_ERRORS)
        .filter_map(|n| counters.get(&stats::error_key(n)).ok().flatten())
        .filter_map(|v| serde_json::from_slice::<serde_json::Value>(&v).ok())
        .map(|v| RecentError {
            time: v["time"].as_u64().unwrap_or_default(),
            upstream: v["upstream"].as_str().unwrap_or_default().to_string(),
            route: v["route"].as_str().map(str::to_string),
            error: v["error"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.time));
    errors
}

/// Each store by what it holds, and whether it answers.
fn stores<H: Host>(host: &H) -> Vec<(&'static str, Result<(), String>)> {
    vec![
        ("routes", host.kv().reachable()),
        ("cache", host.cache().reachable()),
        ("counters", host.counters().reachable()),
    ]
}
