//! Small servers in front of the real registry: one that 307-redirects blob
//! reads to a "CDN" on another loopback address, and one whose challenge
//! names a realm the route does not allow.

use super::http::{self, Handler};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// One request a front or the CDN saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
}

/// A front that flips one byte of every blob it relays while `corrupt` is
/// set, closes every blob's connection halfway while `cut` is, sends half
/// of every blob and then holds the connection while `stall` is, and
/// answers manifest requests 429 (as Docker Hub's pull limit does) while
/// `throttle` is.
pub struct Corrupting {
    pub addr: SocketAddr,
    pub corrupt: Arc<std::sync::atomic::AtomicBool>,
    pub cut: Arc<std::sync::atomic::AtomicBool>,
    pub throttle: Arc<std::sync::atomic::AtomicBool>,
    /// Manifest requests hang (longer than the proxy waits).
    pub hang: Arc<std::sync::atomic::AtomicBool>,
    pub stall: Arc<std::sync::atomic::AtomicBool>,
}

pub async fn corrupting(registry: SocketAddr) -> Corrupting {
    let corrupt = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let throttle = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stall = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flag, throttled, hanging, cutting) =
        (corrupt.clone(), throttle.clone(), hang.clone(), cut.clone());
    let stalling = stall.clone();
    let handler: Handler = Arc::new(move |req| {
        let (flag, throttled, hanging) = (flag.clone(), throttled.clone(), hanging.clone());
        let (cutting, stalling) = (cutting.clone(), stalling.clone());
        Box::pin(async move {
            if req.uri().path().contains("/manifests/")
                && hanging.load(std::sync::atomic::Ordering::SeqCst)
            {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            }
            if req.uri().path().contains("/manifests/")
                && throttled.load(std::sync::atomic::Ordering::SeqCst)
            {
                let limits = [
                    ("ratelimit-limit", "100;w=21600"),
                    ("ratelimit-remaining", "0;w=21600"),
                    ("content-type", "application/json"),
                ];
                return http::response(
                    429,
                    &limits,
                    r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"pull limit"}]}"#,
                );
            }
            let blob = req.uri().path().contains("/blobs/sha256:") && req.method() == "GET";
            let pq = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            let resp = relay(registry, &pq, req).await;
            let corrupts = flag.load(std::sync::atomic::Ordering::SeqCst);
            let cuts = cutting.load(std::sync::atomic::Ordering::SeqCst);
            let stalls = stalling.load(std::sync::atomic::Ordering::SeqCst);
            if !blob || !(corrupts || cuts || stalls) {
                return resp;
            }
            let (parts, body) = resp.into_parts();
            let mut bytes = http_body_util::BodyExt::collect(body)
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            if stalls {
                bytes.truncate(bytes.len() / 2);
                let body = http::held_body(bytes, stalling);
                return hyper::Response::from_parts(parts, body);
            }
            if cuts {
                // Content-Length stays the whole blob's: the connection
                // closes with half of it sent, as an upstream that resets.
                bytes.truncate(bytes.len() / 2);
                return hyper::Response::from_parts(parts, http::unsized_body(bytes));
            }
            if let Some(b) = bytes.first_mut() {
                *b ^= 0xff;
            }
            hyper::Response::from_parts(parts, http::full(bytes))
        })
    });
    Corrupting {
        addr: http::serve("127.0.0.1", handler).await,
        corrupt,
        cut,
        throttle,
        hang,
        stall,
    }
}

pub struct Fronts {
    pub redirecting: SocketAddr,
    pub cdn: SocketAddr,
    pub bad_realm: SocketAddr,
    pub front_seen: Arc<Mutex<Vec<Seen>>>,
    pub cdn_seen: Arc<Mutex<Vec<Seen>>>,
}

fn seen(req: &hyper::Request<hyper::body::Incoming>) -> Seen {
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        range: h("range"),
        authorization: h("authorization"),
    }
}

/// A front of `registry` that waits `delay` before answering each blob
/// `GET`: an upstream slow enough for a request's time limit to show.
pub async fn slow(registry: SocketAddr, delay: std::time::Duration) -> SocketAddr {
    let handler: Handler = Arc::new(move |req| {
        Box::pin(async move {
            if req.uri().path().contains("/blobs/sha256:") && req.method() == "GET" {
                tokio::time::sleep(delay).await;
            }
            let pq = req.uri().path_and_query().map(|p| p.as_str().to_string());
            relay(registry, &pq.unwrap_or_default(), req).await
        })
    });
    http::serve("127.0.0.1", handler).await
}

/// Relays a request to the registry (bodies are small here) and its answer back.
async fn relay(
    registry: SocketAddr,
    path_and_query: &str,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<http::Body> {
    let method = req.method().to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    for n in ["accept", "range", "authorization"] {
        for v in req.headers().get_all(n) {
            headers.push((n.to_string(), v.to_str().unwrap_or_default().to_string()));
        }
    }
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let r = http::send(
        &method,
        &format!("http://{registry}{path_and_query}"),
        &h,
        http::read(req.into_body()).await,
    )
    .await;
    let mut b = hyper::Response::builder().status(r.status);
    for (k, v) in r.headers.iter() {
        if k != "transfer-encoding" && k != "connection" {
            b = b.header(k, v);
        }
    }
    b.body(http::full(r.body)).unwrap()
}

/// Tag-list pagination (`n`, `last`) with an absolute `Link`, which
/// distribution 2.8 does not do for tags.
async fn paginated_tags(
    registry: SocketAddr,
    req: &hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<http::Body> {
    let path = req.uri().path();
    let all = http::get(&format!("http://{registry}{path}"), &[])
        .await
        .json();
    let mut tags: Vec<String> = serde_json::from_value(all["tags"].clone()).unwrap_or_default();
    tags.sort();
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let n: usize = param("n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    let page: Vec<String> = tags
        .into_iter()
        .filter(|t| param("last").is_none_or(|l| *t > l))
        .take(n)
        .collect();
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let link = match page.last() {
        Some(last) if n != usize::MAX => {
            format!(r#"<http://{host}{path}?last={last}&n={n}>; rel="next""#)
        }
        _ => String::new(),
    };
    let body = serde_json::json!({"name": all["name"], "tags": page}).to_string();
    let mut headers = vec![("content-type", "application/json")];
    if !link.is_empty() {
        headers.push(("link", &link));
    }
    http::response(200, &headers, body)
}

/// Fronts for the API at `registry`; the CDN serves blobs from `cdn_registry`
/// (without credentials, as a CDN with signed URLs would).
pub async fn start(
    registry: SocketAddr,
    cdn_registry: SocketAddr,
    forbidden_realm_host: &str,
) -> Fronts {
    let cdn_seen = Arc::new(Mutex::new(Vec::new()));
    let cdn_log = cdn_seen.clone();
    let cdn: Handler = Arc::new(move |req| {
        let log = cdn_log.clone();
        Box::pin(async move {
            log.lock().unwrap().push(seen(&req));
            let path = req
                .uri()
                .path()
                .strip_prefix("/cdn")
                .unwrap_or("/")
                .to_string();
            relay(cdn_registry, &path, req).await
        })
    });
    let cdn = http::serve("127.0.0.2", cdn).await;

    let front_seen = Arc::new(Mutex::new(Vec::new()));
    let front_log = front_seen.clone();
    let front: Handler = Arc::new(move |req| {
        let log = front_log.clone();
        Box::pin(async move {
            log.lock().unwrap().push(seen(&req));
            let path = req.uri().path().to_string();
            if path.contains("/blobs/sha256:") {
                // 127.0.0.3 is reachable for the host, but no route allows it.
                let target = if path.starts_with("/v2/test/evil/") {
                    "127.0.0.3"
                } else {
                    "127.0.0.2"
                };
                let location = format!("http://{target}:{}/cdn{path}?signature=abc", cdn.port());
                return http::response(307, &[("location", &location)], "");
            }
            if path.ends_with("/tags/list") {
                return paginated_tags(registry, &req).await;
            }
            let pq = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or(path);
            relay(registry, &pq, req).await
        })
    });
    let redirecting = http::serve("127.0.0.1", front).await;

    let realm =
        format!(r#"Bearer realm="http://{forbidden_realm_host}/token",service="elsewhere""#);
    let bad: Handler = Arc::new(move |_req| {
        let realm = realm.clone();
        Box::pin(async move {
            http::response(
                401,
                &[
                    ("www-authenticate", &realm),
                    ("content-type", "application/json"),
                ],
                r#"{"errors":[]}"#,
            )
        })
    });
    let bad_realm = http::serve("127.0.0.1", bad).await;
    Fronts {
        redirecting,
        cdn,
        bad_realm,
        front_seen,
        cdn_seen,
    }
}
