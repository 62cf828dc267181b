//! The request handler, top-down: the request's endpoint, its route, whose
//! credentials go upstream, then the service that answers it. It knows
//! nothing of Spin; see [`crate::host::Host`].

use crate::auth::access::{Decided, UpstreamAuth, admissible, login_applies, upstream_auth};
use crate::auth::{scope, token, token_request};
use crate::cache::{blob_redirect, blob_store, manifest_store};
use crate::host::notes::Outcome;
use crate::host::{Body, Host, Request, Response};
use crate::oci::endpoint::{Endpoint, PathError};
use crate::oci::error::{ErrorCode, RegistryError};
use crate::relay::{self, upstream_redirect};
use crate::routing::blob_delivery::BlobDelivery;
use crate::routing::host_header;
use crate::routing::naming::split_registry_host;
use crate::routing::origin::proxy_origin;
use crate::routing::target::{self, Incoming, Naming, Target};
use crate::telemetry::stats;
use crate::web::{admin_api, pages};

/// Longest request path accepted (distribution's names are at most 255
/// bytes; tags and digests add little).
const PATH_LIMIT: usize = 2048;

/// Answers one request: the status page, admin API and pages under their
/// paths, the token endpoint, and the registry API by its endpoint, its
/// route, whose credentials go upstream, then the service that answers.
pub(crate) async fn serve<H: Host>(
    host: &H,
    req: Request<H::Stream>,
) -> Result<Response<H::Stream>, RegistryError> {
    let incoming = incoming(host, &req)?;
    let admin_prefix = crate::web::operations::prefix(host.settings().admin_path.clone());
    if let Some(rest) = req
        .path
        .strip_prefix(admin_prefix.as_str())
        .filter(|r| r.is_empty() || r.starts_with('/'))
    {
        let rest = rest.to_string();
        stats::note_request(host, "admin", None);
        return admin_api::handle(host, req, &rest, &admin_prefix, &incoming).await;
    }
    if req.path == "/" {
        stats::note_request(host, "page", None);
        let route = target::for_host(host, &incoming.hosts)?.map(|(_, r)| r);
        return Ok(pages::home_page(
            host,
            &incoming.origin,
            route.as_ref(),
            &req.headers,
        ));
    }
    api(host, &incoming, req).await
}

/// Where the request came in: its Host, checked, and the proxy's origin.
fn incoming<H: Host>(host: &H, req: &Request<H::Stream>) -> Result<Incoming, RegistryError> {
    let hosts = req
        .headers
        .get("host")
        .and_then(host_header::host_candidates)
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
        host.settings().public_url.as_deref(),
        req.headers.get("x-forwarded-proto"),
        req.headers.get("spin-full-url"),
        &hosts[0],
    );
    Ok(Incoming { origin, hosts })
}

/// A registry API request: endpoint, then route, then whose credentials,
/// then the service that answers it.
async fn api<H: Host>(
    host: &H,
    incoming: &Incoming,
    req: Request<H::Stream>,
) -> Result<Response<H::Stream>, RegistryError> {
    let ns = query_param(req.query.as_deref(), "ns");
    let browser = req
        .headers
        .get_all("accept")
        .any(|a| a.contains("text/html"));
    // A registry host before the name (`/v2/ghcr.io/owner/image/...`) picks
    // the upstream and is not part of the upstream's name.
    let (registry, path) = match req.path.strip_prefix("/v2/").and_then(split_registry_host) {
        Some((registry, rest)) => (Some(registry), format!("/v2/{rest}")),
        None => (None, req.path.clone()),
    };
    let endpoint = match Endpoint::parse(&path) {
        Err(PathError::NotApi) if browser => {
            return pages::browser_redirect(host, &incoming.hosts, &req.path);
        }
        parsed => parsed.map_err(path_error)?,
    };
    stats::note_request(host, endpoint.kind(), endpoint.name().map(|n| n.as_str()));
    if browser && endpoint.name().is_some() {
        return pages::browser_redirect(host, &incoming.hosts, &req.path);
    }
    if matches!(endpoint, Endpoint::Auth) {
        return token_request(host, incoming, req).await;
    }
    let named = match (registry, &ns) {
        (Some(r), _) => Some((r, Naming::InName)),
        (None, Some(ns)) => Some((ns.clone(), Naming::Beside)),
        (None, None) => None,
    };
    let target = match target::for_request(host, &incoming.hosts, named) {
        // A host with no route still answers every client's first request:
        // its pulls may name their registry in the path or with `ns=`.
        Err(e) if e.status == 404 && matches!(endpoint, Endpoint::Base) => {
            let realm = format!("{}/v2/auth", incoming.origin);
            return relay::base_answer(&realm, req.headers.get("authorization").is_some());
        }
        found => found?,
    };
    stats::note_route(host, &target.name);
    admissible(&endpoint, &target, &req.method)?;
    let auth = match upstream_auth(host, incoming, &target, &endpoint, &req)? {
        Decided::Auth(auth) => auth,
        Decided::Answer(answer) => return Ok(answer),
    };
    let mut resp = service(host, incoming, &target, &endpoint, req, &auth).await?;
    // The distribution spec's proxying: say which namespace answered, as
    // the proxy read it (never the client's raw text).
    if let (Some(_), Some(namespace)) = (ns, &target.namespace) {
        resp.headers.push("oci-namespace", namespace.as_str());
    }
    Ok(resp)
}

/// The token endpoint, for the registry the realm or the scopes name.
async fn token_request<H: Host>(
    host: &H,
    incoming: &Incoming,
    req: Request<H::Stream>,
) -> Result<Response<H::Stream>, RegistryError> {
    let params = token_request::TokenParams::read(host, req).await?;
    // Scopes may carry the registry in their names whether or not the
    // realm names it too, so they are read as named in the name.
    let registry = match params.namespace.clone() {
        Some(ns) => Some(ns),
        None => scope::registry_host(&params.scopes)
            .map_err(|m| RegistryError::new(400, ErrorCode::Denied, m))?,
    };
    let named = registry.map(|r| (r, Naming::InName));
    let target = target::for_request(host, &incoming.hosts, named)?;
    stats::note_route(host, &target.name);
    let login = login_applies(host, incoming, &target)?;
    token::handle(host, &target, params, login).await
}

/// The service that answers: a write relayed (and what it replaced
/// forgotten), the manifest or blob cache, or the plain relay.
async fn service<H: Host>(
    host: &H,
    incoming: &Incoming,
    target: &Target,
    endpoint: &Endpoint,
    mut req: Request<H::Stream>,
    auth: &UpstreamAuth,
) -> Result<Response<H::Stream>, RegistryError> {
    // A push's body streams upstream as it arrives.
    let body = std::mem::replace(&mut req.body, Body::Empty);
    let call = relay::Call::new(host, target, &incoming.origin, endpoint, &req, auth)?;
    let cache = &target.route.cache;
    let method = req.method.as_str();
    let cacheable = match endpoint {
        Endpoint::Manifest { .. } => cache.manifests,
        Endpoint::Blob { .. } => cache.blobs,
        _ => false,
    };
    let bypass = cacheable && host.store_persists() && bypassed(host, method);
    let caching = host.store_persists() && !bypass;
    // Whether the blob storage is there is the blob cache's own question.
    let blob_caching = caching && cache.blobs;
    let mut resp = match (endpoint, &call.upstream_name) {
        _ if !matches!(method, "GET" | "HEAD") => write(&call, body).await?,
        (Endpoint::Blob { digest, .. }, _)
            if method == "GET" && upstream_redirect::mode(&call) == BlobDelivery::Redirect =>
        {
            let cached = match blob_caching {
                true => blob_redirect::answer(&call, digest).await?,
                false => None,
            };
            match cached {
                Some(answer) => answer,
                None => upstream_redirect::redirect(&call, digest).await?,
            }
        }
        (Endpoint::Manifest { reference, .. }, Some(repo)) if caching && cache.manifests => {
            manifest_store::get(&call, repo, reference).await?
        }
        (Endpoint::Blob { digest, .. }, _) if blob_caching => {
            blob_store::get(&call, digest).await?
        }
        _ => call.relay().await?,
    };
    // Whichever store was away (the cache's, the bucket), the answer says so.
    let passed_by = host.tally().0.borrow().outcomes.last() == Some(&Outcome::Bypass);
    if passed_by && resp.headers.get("x-cache").is_none() {
        resp.headers.push("x-cache", "BYPASS");
    }
    Ok(resp)
}

/// A write relayed, its body streaming upstream as it arrives; what it
/// replaced or deleted is not served from the cache again.
async fn write<H: Host>(
    call: &relay::Call<'_, H>,
    body: Body<H::Stream>,
) -> Result<Response<H::Stream>, RegistryError> {
    let resp = call.relay_write(body).await?;
    if (200..300).contains(&resp.status) {
        match (call.endpoint, &call.upstream_name) {
            (Endpoint::Manifest { reference, .. }, Some(repo)) => {
                manifest_store::forget(call, repo, reference)
            }
            (Endpoint::Blob { digest, .. }, _) if call.req.method == "DELETE" => {
                blob_store::forget(call, digest)
            }
            _ => {}
        }
    }
    Ok(resp)
}

/// Whether a read the cache would answer goes past it, because the cache
/// store is away: the upstream answers, and nothing is cached or counted
/// against the store's bound. Writes never touch the cache store first.
fn bypassed<H: Host>(host: &H, method: &str) -> bool {
    if !matches!(method, "GET" | "HEAD") {
        return false;
    }
    match host.cache().reachable() {
        Ok(()) => false,
        Err(e) => {
            eprintln!("cache store away, relaying from the upstream: {e}");
            stats::record(host, Outcome::Bypass);
            true
        }
    }
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
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
        // No manifest can have a tag outside the grammar: unknown, as
        // distribution answers and the OCI conformance tests expect.
        PathError::Reference(m) => RegistryError::new(404, ErrorCode::ManifestUnknown, m),
        PathError::Digest(m) => RegistryError::new(400, ErrorCode::DigestInvalid, m),
    }
}

/// The JSON error answer for `e`, with its `WWW-Authenticate` challenge if any.
pub(crate) fn error_response<S>(e: &RegistryError) -> Response<S> {
    let mut response = Response::json(e.status, e.to_json().to_string().into_bytes());
    if let Some(c) = &e.challenge {
        response.headers.push("www-authenticate", c.clone());
    }
    response
}
