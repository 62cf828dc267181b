//! The route management API over the key-value store. Off (404) unless the
//! `admin_token` variable is set; every call carries it as a Bearer token.

use super::cache_admin;
use super::host::{Body, Headers, Host, Request, Response};
use crate::admin::{self, Operation, OperationError};
use crate::error::{ErrorCode, RegistryError};
use crate::route::{self, RouteConfig};

const BODY_LIMIT: usize = 64 * 1024;

pub async fn handle<H: Host>(
    host: &H,
    req: Request<H::Stream>,
    path: &str,
) -> Result<Response<H::Stream>, RegistryError> {
    let not_found = || RegistryError::new(404, ErrorCode::NameUnknown, "not found");
    let token = host
        .variable("admin_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(not_found)?;
    if !admin::authorized(req.headers.get("authorization"), &token) {
        return Err(RegistryError::new(
            401,
            ErrorCode::Unauthorized,
            "the admin API needs the admin token",
        )
        .with_challenge(r#"Bearer realm="registry-proxy admin""#.to_string()));
    }
    let op = admin::parse(&req.method, path).map_err(|e| match e {
        OperationError::NotFound => not_found(),
        OperationError::MethodNotAllowed => {
            RegistryError::new(405, ErrorCode::Unsupported, "method not allowed here")
        }
        OperationError::BadSegment(h) => RegistryError::new(
            400,
            ErrorCode::NameInvalid,
            format!("{h:?} is not a host name"),
        ),
    })?;
    if op.writes() && !host.store_persists() {
        return Err(RegistryError::new(
            501,
            ErrorCode::Unsupported,
            "this runtime's key-value store keeps nothing between requests: \
             preset routes and users instead (README, \"Run on wasmtime\")",
        ));
    }
    let kv_error =
        |e: String| RegistryError::new(500, ErrorCode::Unknown, format!("key-value store: {e}"));
    match op {
        Operation::ListRoutes => {
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
        Operation::GetRoute(h) => match host.kv_get(&route::key_for(&h)).map_err(kv_error)? {
            Some(bytes) => Ok(Response::json(200, bytes)),
            None => Err(not_found()),
        },
        Operation::PutRoute(h) => {
            let body = host.read_body(req.body, BODY_LIMIT).await.map_err(|e| {
                RegistryError::new(400, ErrorCode::Unsupported, format!("route body: {e}"))
            })?;
            let invalid = |e: route::RouteError| {
                RegistryError::new(400, ErrorCode::Unsupported, "invalid route").with_fields(e.0)
            };
            let config = RouteConfig::from_json(&body).map_err(invalid)?;
            config.resolve().map_err(invalid)?;
            let stored = serde_json::to_vec(&config)
                .map_err(|e| RegistryError::new(500, ErrorCode::Unknown, e.to_string()))?;
            let existed = host
                .kv_get(&route::key_for(&h))
                .map_err(kv_error)?
                .is_some();
            host.kv_set(&route::key_for(&h), &stored)
                .map_err(kv_error)?;
            Ok(Response::json(if existed { 200 } else { 201 }, stored))
        }
        Operation::CacheStats => Ok(json(200, &cache_admin::figures(host).map_err(kv_error)?)),
        Operation::CacheGc => Ok(json(
            200,
            &cache_admin::collect_garbage(host).map_err(kv_error)?,
        )),
        Operation::CacheDeleteRepository(r) => Ok(json(
            200,
            &cache_admin::delete_repository(host, &r).map_err(kv_error)?,
        )),
        Operation::CacheDeleteBlob(d) => Ok(json(
            200,
            &cache_admin::delete_blob(host, &d).map_err(kv_error)?,
        )),
        Operation::DeleteRoute(h) => {
            let key = route::key_for(&h);
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
    }
}

fn json<S>(status: u16, value: &serde_json::Value) -> Response<S> {
    Response::json(status, value.to_string().into_bytes())
}
