//! The admin path: the management API over the key-value store (every call
//! carries the admin token as a Bearer token), the status page and metrics.
//! Off (404) unless the `admin_token` variable is set; metrics also answer
//! to the `metrics_token` variable.

use crate::auth::throttle;
use crate::cache::{repositories, upkeep};
use crate::host::{Body, Headers, Host, Request, Response};
use crate::oci::error::{ErrorCode, RegistryError};
use crate::routing::route::{self, RouteConfig};
use crate::routing::target::Incoming;
use crate::web::operations::{self, Operation, OperationError};
use crate::web::{prefetch, status};

const BODY_LIMIT: usize = 64 * 1024;

fn not_found() -> RegistryError {
    RegistryError::new(404, ErrorCode::NameUnknown, "not found")
}

fn kv_error(e: String) -> RegistryError {
    RegistryError::new(500, ErrorCode::Unknown, format!("key-value store: {e}"))
}

/// Everything under the admin path: the status page and its sign-in,
/// metrics, and the management API. `prefix` is the admin path itself.
pub async fn handle<H: Host>(
    host: &H,
    req: Request<H::Stream>,
    path: &str,
    prefix: &str,
    incoming: &Incoming,
) -> Result<Response<H::Stream>, RegistryError> {
    let origin = incoming.origin.as_str();
    let token = host.variable("admin_token").filter(|t| !t.is_empty());
    let metrics_token = host.variable("metrics_token").filter(|t| !t.is_empty());
    let op = match (
        token.is_some() || metrics_token.is_some(),
        operations::parse(&req.method, path),
    ) {
        (false, _) => return Err(not_found()),
        (true, parsed) => parsed.map_err(operation_error)?,
    };
    match (op, token) {
        (Operation::Metrics, _) => status::metrics(host, &req),
        // Off unless the admin token is set.
        (_, None) => Err(not_found()),
        (Operation::StatusPage, Some(t)) => Ok(status::page(host, &req, prefix, &t)),
        (Operation::SignIn, Some(t)) => status::sign_in(host, req, prefix, origin, &t).await,
        (Operation::SignOut, Some(_)) => Ok(status::sign_out(&req.headers, prefix, origin)),
        (Operation::PagePrefetch, Some(t)) => {
            Ok(status::warm::prefetch(host, req, prefix, incoming, &t).await)
        }
        (Operation::PageUnpin, Some(t)) => {
            Ok(status::warm::unpin(host, req, prefix, origin, &t).await)
        }
        (op, Some(t)) => api(host, req, op, &t, incoming).await,
    }
}

fn operation_error(e: OperationError) -> RegistryError {
    match e {
        OperationError::NotFound => not_found(),
        OperationError::MethodNotAllowed => {
            RegistryError::new(405, ErrorCode::Unsupported, "method not allowed here")
        }
        OperationError::BadSegment(h) => RegistryError::new(
            400,
            ErrorCode::NameInvalid,
            format!("{h:?} is not a host name"),
        ),
    }
}

/// The management API: every call carries the admin token.
async fn api<H: Host>(
    host: &H,
    req: Request<H::Stream>,
    op: Operation,
    token: &str,
    incoming: &Incoming,
) -> Result<Response<H::Stream>, RegistryError> {
    let bearer = req.headers.get("authorization");
    let passed = bearer.is_some()
        && throttle::checked(host, &req.headers, || operations::authorized(bearer, token))?;
    if !passed {
        return Err(RegistryError::new(
            401,
            ErrorCode::Unauthorized,
            "the admin API needs the admin token",
        )
        .with_challenge(r#"Bearer realm="registry-proxy admin""#.to_string()));
    }
    if op.writes() && !host.store_persists() {
        return Err(RegistryError::new(
            501,
            ErrorCode::Unsupported,
            "this runtime's key-value store keeps nothing between requests: \
             preset routes and users instead (docs/deployment.md, \"Run on wasmtime\")",
        ));
    }
    let writes = op.writes();
    let answer = match op {
        Operation::ListRoutes => list_routes(host),
        Operation::GetRoute(h) => match host.kv_get(&route::key_for(&h)).map_err(kv_error)? {
            Some(bytes) => Ok(Response::json(200, bytes)),
            None => Err(not_found()),
        },
        Operation::PutRoute(h) => put_route(host, req, &h).await,
        Operation::DeleteRoute(h) => delete_route(host, &h),
        Operation::Prefetch => {
            let body = host.read_body(req.body, BODY_LIMIT).await.map_err(|e| {
                RegistryError::new(400, ErrorCode::Unsupported, format!("prefetch body: {e}"))
            })?;
            prefetch::start(host, incoming, &body)
        }
        Operation::Pin(image) => prefetch::pin(host, incoming, &image).await,
        Operation::Unpin(image) => prefetch::unpin(host, incoming, &image),
        cache_op => cache(host, cache_op).await,
    };
    if writes {
        repositories::forget_listed(host);
    }
    answer
}

fn list_routes<H: Host>(host: &H) -> Result<Response<H::Stream>, RegistryError> {
    let mut routes = serde_json::Map::new();
    for key in host
        .kv_keys()
        .map_err(kv_error)?
        .iter()
        .filter(|k| k.starts_with(route::KEY_PREFIX))
    {
        if let Ok(Some(bytes)) = host.kv_get(key) {
            let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into())
            });
            routes.insert(key[route::KEY_PREFIX.len()..].to_string(), value);
        }
    }
    Ok(json(200, &serde_json::json!({ "routes": routes })))
}

async fn put_route<H: Host>(
    host: &H,
    req: Request<H::Stream>,
    h: &str,
) -> Result<Response<H::Stream>, RegistryError> {
    let body = host
        .read_body(req.body, BODY_LIMIT)
        .await
        .map_err(|e| RegistryError::new(400, ErrorCode::Unsupported, format!("route body: {e}")))?;
    let invalid = |e: route::RouteError| {
        RegistryError::new(400, ErrorCode::Unsupported, "invalid route").with_fields(e.0)
    };
    let config = RouteConfig::from_json(&body).map_err(invalid)?;
    config.resolve().map_err(invalid)?;
    let stored = serde_json::to_vec(&config)
        .map_err(|e| RegistryError::new(500, ErrorCode::Unknown, e.to_string()))?;
    let key = route::key_for(h);
    let existed = host.kv_get(&key).map_err(kv_error)?.is_some();
    host.kv_set(&key, &stored).map_err(kv_error)?;
    Ok(Response::json(if existed { 200 } else { 201 }, stored))
}

fn delete_route<H: Host>(host: &H, h: &str) -> Result<Response<H::Stream>, RegistryError> {
    let key = route::key_for(h);
    if host.kv_get(&key).map_err(kv_error)?.is_none() {
        return Err(not_found());
    }
    host.kv_delete(&key).map_err(kv_error)?;
    Ok(Response {
        status: 204,
        headers: Headers::default(),
        body: Body::Empty,
    })
}

async fn cache<H: Host>(host: &H, op: Operation) -> Result<Response<H::Stream>, RegistryError> {
    let figures = match op {
        Operation::CacheStats => upkeep::figures(host),
        Operation::CacheGc => upkeep::collect_garbage(host).await,
        Operation::CacheDeleteRepository(r) => upkeep::delete_repository(host, &r),
        Operation::CacheDeleteBlob(d) => upkeep::delete_blob(host, &d).await,
        Operation::CacheRepositories => repositories::list(host),
        Operation::ListPins => upkeep::pins(host),
        _ => return Err(not_found()),
    };
    Ok(json(200, &figures.map_err(kv_error)?))
}

fn json<S>(status: u16, value: &serde_json::Value) -> Response<S> {
    Response::json(status, value.to_string().into_bytes())
}
