//! The request handler: route, then serve the distribution API endpoint by
//! relaying it upstream. It knows nothing of Spin; see [`host::Host`].

pub mod host;
mod token;
mod upstream;

use crate::api::{Endpoint, PathError};
use crate::challenge::rewrite_for_proxy;
use crate::error::{ErrorCode, RegistryError};
use crate::home;
use crate::origin::proxy_origin;
use crate::route::{self, Route, RouteConfig};
use host::{Body, Headers, Host, Request, Response};
use std::collections::BTreeMap;
use url::Url;

/// Longest request path accepted (distribution's names are at most 255
/// bytes; tags and digests add little).
const PATH_LIMIT: usize = 2048;

/// Request headers relayed upstream on API calls.
const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "range",
    "if-none-match",
    "if-match",
    "if-modified-since",
    "user-agent",
];

/// Response headers relayed to clients, as the upstream sent them.
const FORWARDED_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "docker-content-digest",
    "docker-distribution-api-version",
    "etag",
    "last-modified",
    "cache-control",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "docker-ratelimit-source",
    "oci-filters-applied",
];

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub async fn handle<H: Host>(host: &H, req: Request<H::Stream>) -> Response<H::Stream> {
    let method = req.method.clone();
    let path: String = req.path.chars().take(200).collect();
    let response = match serve(host, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    // Paths only: queries and headers may carry credentials.
    eprintln!("{method} {path} -> {}", response.status);
    response
}

/// Everything a handler needs to know about where the request came in.
struct Incoming {
    origin: String,
    hosts: Vec<String>,
}

async fn serve<H: Host>(
    host: &H,
    req: Request<H::Stream>,
) -> Result<Response<H::Stream>, RegistryError> {
    let hosts = req
        .headers
        .get("host")
        .and_then(route::host_candidates)
        .ok_or_else(|| {
            RegistryError::new(
                400,
                ErrorCode::Unsupported,
                "missing or invalid Host header",
            )
        })?;
    if req.path.len() > PATH_LIMIT {
        return Err(RegistryError::new(
            414,
            ErrorCode::NameInvalid,
            "request path too long",
        ));
    }
    let origin = proxy_origin(
        host.variable("public_url").as_deref(),
        req.headers.get("x-forwarded-proto"),
        req.headers.get("spin-full-url"),
        &hosts[0],
    );
    let incoming = Incoming { origin, hosts };
    let route = find_route(host, &incoming.hosts)?;

    if req.path == "/" {
        return Ok(home_page(host, &incoming, route.as_ref(), &req.headers));
    }
    let endpoint = Endpoint::parse(&req.path).map_err(path_error)?;
    let Some(route) = route else {
        return Err(no_route(host, &incoming));
    };
    match endpoint {
        Endpoint::Auth => token::handle(host, &route, req).await,
        Endpoint::BlobUpload { .. } => Err(RegistryError::new(
            405,
            ErrorCode::Unsupported,
            "this proxy serves pulls only",
        )),
        endpoint => {
            if !matches!(req.method.as_str(), "GET" | "HEAD") {
                return Err(RegistryError::new(
                    405,
                    ErrorCode::Unsupported,
                    format!("{} is not supported here", req.method),
                ));
            }
            relay(host, &route, &incoming, &endpoint, &req).await
        }
    }
}

fn path_error(e: PathError) -> RegistryError {
    match e {
        PathError::NotApi => RegistryError::new(
            404,
            ErrorCode::NameUnknown,
            "not a registry API path; see / for usage",
        ),
        PathError::UnknownEndpoint => {
            RegistryError::new(404, ErrorCode::Unsupported, "unknown registry API endpoint")
        }
        PathError::Name(m) => RegistryError::new(400, ErrorCode::NameInvalid, m),
        PathError::Reference(m) if m.starts_with("invalid digest") => {
            RegistryError::new(400, ErrorCode::DigestInvalid, m)
        }
        PathError::Reference(m) => RegistryError::new(400, ErrorCode::TagInvalid, m),
        PathError::Digest(m) => RegistryError::new(400, ErrorCode::DigestInvalid, m),
    }
}

/// Stored route for `host:port`, then `host`; then the built-in table under
/// `custom_domain`; then `default_upstream`. A stored value that is not a
/// valid route is an error naming its key, not a fallthrough.
fn find_route<H: Host>(host: &H, hosts: &[String]) -> Result<Option<Route>, RegistryError> {
    let bad = |key: &str, e: &dyn std::fmt::Display| {
        eprintln!("route {key}: {e}");
        RegistryError::new(
            500,
            ErrorCode::Unknown,
            format!("route {key} in the key-value store is invalid: {e}"),
        )
    };
    for h in hosts {
        let key = route::key_for(h);
        match host.kv_get(&key) {
            Ok(Some(bytes)) => {
                let config = RouteConfig::from_json(&bytes).map_err(|e| bad(&key, &e))?;
                return config.resolve().map(Some).map_err(|e| bad(&key, &e));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(RegistryError::new(
                    500,
                    ErrorCode::Unknown,
                    format!("key-value store: {e}"),
                ));
            }
        }
    }
    let custom_domain = host.variable("custom_domain").unwrap_or_default();
    let builtin = hosts
        .iter()
        .find_map(|h| route::builtin_for_host(h, &custom_domain));
    let config = builtin.or_else(|| {
        host.variable("default_upstream")
            .filter(|u| !u.trim().is_empty())
            .map(|u| RouteConfig::new(u.trim()))
    });
    match config {
        Some(c) => c.resolve().map(Some).map_err(|e| bad("(variables)", &e)),
        None => Ok(None),
    }
}

/// Every configured route, host → upstream, for the 404 and the home page.
fn route_table<H: Host>(host: &H) -> BTreeMap<String, String> {
    let mut table = BTreeMap::new();
    for (h, c) in route::builtin_hosts(&host.variable("custom_domain").unwrap_or_default()) {
        table.insert(h, c.upstream);
    }
    if let Some(u) = host
        .variable("default_upstream")
        .filter(|u| !u.trim().is_empty())
    {
        table.insert("*".to_string(), u.trim().to_string());
    }
    let keys = host.kv_keys().unwrap_or_default();
    for key in keys.iter().filter(|k| k.starts_with(route::KEY_PREFIX)) {
        let upstream = match host.kv_get(key) {
            Ok(Some(bytes)) => RouteConfig::from_json(&bytes)
                .map_or_else(|e| format!("(invalid: {e})"), |c| c.upstream),
            _ => continue,
        };
        table.insert(key[route::KEY_PREFIX.len()..].to_string(), upstream);
    }
    table
}

fn no_route<H: Host>(host: &H, incoming: &Incoming) -> RegistryError {
    RegistryError::new(
        404,
        ErrorCode::NameUnknown,
        format!("no route for host {}", incoming.hosts[0]),
    )
    .with_routes(route_table(host))
}

fn home_page<H: Host>(
    host: &H,
    incoming: &Incoming,
    route: Option<&Route>,
    headers: &Headers,
) -> Response<H::Stream> {
    let here = route.map(|r| r.upstream.origin().ascii_serialization());
    let browser = headers.get_all("accept").any(|a| a.contains("text/html"));
    let (content_type, body) = if browser {
        let routes: Vec<(String, String)> = route_table(host).into_iter().collect();
        (
            "text/html; charset=utf-8",
            home::render_html(&incoming.origin, here.as_deref(), &routes),
        )
    } else {
        (
            "text/plain; charset=utf-8",
            home::render_text(&incoming.origin, here.as_deref()),
        )
    };
    let mut h = Headers::default();
    h.push("content-type", content_type);
    Response {
        status: 200,
        headers: h,
        body: Body::Bytes(body.into_bytes()),
    }
}

/// Relays a read of the API upstream and its answer back, body unread.
async fn relay<H: Host>(
    host: &H,
    route: &Route,
    incoming: &Incoming,
    endpoint: &Endpoint,
    req: &Request<H::Stream>,
) -> Result<Response<H::Stream>, RegistryError> {
    let upstream_name = endpoint.name().map(|n| {
        if route.docker_hub {
            n.with_docker_hub_namespace()
        } else {
            n.clone()
        }
    });
    let mut url = route
        .upstream
        .join(&endpoint.upstream_path(upstream_name.as_ref()))
        .map_err(|e| RegistryError::new(400, ErrorCode::NameInvalid, e.to_string()))?;
    // The query (tag-list `n`/`last`, referrers `artifactType`) goes as is.
    url.set_query(req.query.as_deref().filter(|q| !q.is_empty()));
    let mut headers = Headers::default();
    for name in FORWARDED_REQUEST_HEADERS {
        let values: Vec<&str> = req.headers.get_all(name).collect();
        if !values.is_empty() {
            headers.push(name, values.join(", "));
        }
    }
    let authorization = req.headers.get("authorization");
    let resp = upstream::fetch(
        host,
        route,
        &req.method,
        url,
        headers,
        authorization,
        Body::Empty,
    )
    .await?;

    let mut out = Headers::default();
    for name in FORWARDED_RESPONSE_HEADERS {
        if let Some(v) = resp.headers.get(name) {
            out.push(name, v);
        }
    }
    if let Some(link) = resp.headers.get("link") {
        let client_name = endpoint.name().map(|n| n.as_str());
        out.push(
            "link",
            rewrite_link(
                link,
                &route.upstream,
                upstream_name.as_ref().map(|n| n.as_str()),
                client_name,
            ),
        );
    }
    if resp.status == 401 {
        let realm = format!("{}/v2/auth", incoming.origin);
        out.push(
            "www-authenticate",
            rewrite_for_proxy(resp.headers.get("www-authenticate"), &realm),
        );
    }
    if matches!(endpoint, Endpoint::Base) && out.get("docker-distribution-api-version").is_none() {
        out.push("docker-distribution-api-version", "registry/2.0");
    }
    Ok(Response {
        status: resp.status,
        headers: out,
        body: resp.body,
    })
}

/// Pagination links point back at the proxy: absolute upstream URLs become
/// paths, and the upstream's name for the repository (`library/alpine`)
/// becomes the client's (`alpine`).
fn rewrite_link(
    link: &str,
    upstream: &Url,
    upstream_name: Option<&str>,
    client_name: Option<&str>,
) -> String {
    link.split(',')
        .map(|part| {
            let part = part.trim();
            let Some((target, rest)) = part.strip_prefix('<').and_then(|p| p.split_once('>'))
            else {
                return part.to_string();
            };
            let mut target = match Url::parse(target) {
                Ok(u) if u.origin() == upstream.origin() => {
                    u[url::Position::BeforePath..].to_string()
                }
                _ => target.to_string(),
            };
            if let (Some(up), Some(client)) = (upstream_name, client_name)
                && up != client
                && let Some(tail) = target.strip_prefix(&format!("/v2/{up}/"))
            {
                target = format!("/v2/{client}/{tail}");
            }
            format!("<{target}>{rest}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn error_response<S>(e: &RegistryError) -> Response<S> {
    let mut headers = Headers::default();
    headers.push("content-type", "application/json");
    Response {
        status: e.status,
        headers,
        body: Body::Bytes(e.to_json().to_string().into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_rewriting() {
        let up = Url::parse("https://registry-1.docker.io").unwrap();
        assert_eq!(
            rewrite_link(
                r#"</v2/library/alpine/tags/list?last=3.1&n=2>; rel="next""#,
                &up,
                Some("library/alpine"),
                Some("alpine")
            ),
            r#"</v2/alpine/tags/list?last=3.1&n=2>; rel="next""#
        );
        assert_eq!(
            rewrite_link(
                r#"<https://registry-1.docker.io/v2/x/tags/list?n=1>; rel="next""#,
                &up,
                Some("x"),
                Some("x")
            ),
            r#"</v2/x/tags/list?n=1>; rel="next""#
        );
        assert_eq!(
            rewrite_link(
                r#"<https://other.example/v2/x>; rel="next""#,
                &up,
                Some("x"),
                Some("x")
            ),
            r#"<https://other.example/v2/x>; rel="next""#
        );
    }
}
