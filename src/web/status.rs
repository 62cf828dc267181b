//! What operators read at the admin path: the status page for a person
//! (signed in with the admin token, kept in a cookie) and `/metrics` for
//! Prometheus (the admin token or the metrics token).

use crate::auth::throttle;
use crate::cache::budget as cache_budget;
use crate::cache::eviction::TOTAL_KEY;
use crate::host::{Body, Headers, Host, Request, Response};
use crate::oci::error::{ErrorCode, RegistryError};
use crate::routing::route::{self, RouteConfig};
use crate::telemetry::metrics;
use crate::telemetry::stats;
use crate::web::admin::{authorized, cookie_token};
use crate::web::status_page::{self, COOKIE, Minute, RecentError, Status};

const FORM_LIMIT: usize = 4096;

fn html<S>(status: u16, body: String) -> Response<S> {
    let mut headers = Headers::default();
    headers.push("content-type", "text/html; charset=utf-8");
    headers.push("cache-control", "no-store");
    // Nothing on the page runs or loads from elsewhere, nor may it be framed.
    headers.push(
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    );
    Response {
        status,
        headers,
        body: Body::Bytes(body.into_bytes()),
    }
}

/// To the page, with the cookie set to `value` (empty: removed).
fn to_page<S>(prefix: &str, origin: &str, value: &str) -> Response<S> {
    let secure = if origin.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let age = if value.is_empty() { "; Max-Age=0" } else { "" };
    let mut headers = Headers::default();
    headers.push("location", format!("{prefix}/"));
    headers.push(
        "set-cookie",
        format!("{COOKIE}={value}; Path={prefix}; HttpOnly; SameSite=Strict{secure}{age}"),
    );
    headers.push("cache-control", "no-store");
    Response {
        status: 303,
        headers,
        body: Body::Empty,
    }
}

/// The page for a holder of the admin token (header or cookie), else the
/// sign-in form.
pub fn page<H: Host>(
    host: &H,
    req: &Request<H::Stream>,
    prefix: &str,
    token: &str,
) -> Response<H::Stream> {
    let cookie = cookie_token(req.headers.get_all("cookie"), COOKIE);
    let bearer = req.headers.get("authorization");
    let cookie_ok = cookie.is_some_and(|c| authorized(Some(&format!("Bearer {c}")), token));
    if !(cookie_ok || authorized(bearer, token)) {
        return html(200, status_page::sign_in(prefix, None));
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
    let client = throttle::client_of(&req.headers);
    // A person at the form reads the refusal there, not as registry JSON.
    if let Err(e) = throttle::check(host, client.as_deref()) {
        return Ok(html(
            e.status,
            status_page::sign_in(prefix, Some(&e.message)),
        ));
    }
    let form = host.read_body(req.body, FORM_LIMIT).await.map_err(|e| {
        RegistryError::new(400, ErrorCode::Unsupported, format!("sign-in form: {e}"))
    })?;
    let given = url::form_urlencoded::parse(&form)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !authorized(Some(&format!("Bearer {given}")), token) {
        throttle::failed(host, client.as_deref());
        return Ok(html(
            403,
            status_page::sign_in(prefix, Some("That is not the admin token.")),
        ));
    }
    Ok(to_page(prefix, origin, &given))
}

pub fn sign_out<S>(prefix: &str, origin: &str) -> Response<S> {
    to_page(prefix, origin, "")
}

/// Prometheus text format, for the admin token or the metrics token.
pub fn metrics<H: Host>(
    host: &H,
    req: &Request<H::Stream>,
) -> Result<Response<H::Stream>, RegistryError> {
    let tokens = ["admin_token", "metrics_token"].map(|v| host.variable(v).unwrap_or_default());
    let bearer = req.headers.get("authorization");
    let allowed = tokens
        .iter()
        .any(|t| !t.is_empty() && authorized(bearer, t));
    if !allowed {
        return Err(RegistryError::new(
            401,
            ErrorCode::Unauthorized,
            "metrics need the metrics or admin token",
        )
        .with_challenge(r#"Bearer realm="registry-proxy metrics""#.to_string()));
    }
    let counters = host.counters();
    let keys = counters.keys().map_err(|e| {
        RegistryError::new(500, ErrorCode::Unknown, format!("key-value store: {e}"))
    })?;
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
        body: Body::Bytes(metrics::exposition(&values).into_bytes()),
    })
}

fn gather<H: Host>(host: &H, prefix: &str) -> Status {
    let counters = host.counters();
    let read = |k: &str| counters.increment(k, 0).map_or(0, |v| v.max(0) as u64);
    let now = crate::now();
    let minute = now / 60;
    let minutes = (0..stats::RATIO_MINUTES)
        .rev()
        .map(|ago| Minute {
            lookups: read(&stats::ratio_key(minute - ago, "lookups")),
            hits: read(&stats::ratio_key(minute - ago, "hits")),
        })
        .collect();
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
    Status {
        admin_path: prefix.to_string(),
        routes: stored_routes(host),
        cache_bytes: host
            .cache()
            .increment(TOTAL_KEY, 0)
            .map_or(0, |v| v.max(0) as u64),
        cache_max: cache_budget::max_size(host),
        totals: stats::load(host),
        minutes,
        errors,
        now,
    }
}

/// Every stored route with its upstream, or why it does not validate.
fn stored_routes<H: Host>(host: &H) -> Vec<(String, String)> {
    let mut routes: Vec<(String, String)> = host
        .kv_keys()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| {
            let name = k.strip_prefix(route::KEY_PREFIX)?.to_string();
            let bytes = host.kv_get(&k).ok()??;
            let upstream = match RouteConfig::from_json(&bytes).and_then(|c| c.resolve()) {
                Ok(r) => r.upstream.to_string(),
                Err(e) => format!("invalid: {e}"),
            };
            Some((name, upstream))
        })
        .collect();
    routes.sort();
    routes
}
