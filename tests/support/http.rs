//! Tiny HTTP/1 client and server helpers over hyper, for loopback only.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

pub type Body = BoxBody<Bytes, hyper::Error>;
pub type Handler = Arc<
    dyn Fn(hyper::Request<Incoming>) -> Pin<Box<dyn Future<Output = hyper::Response<Body>> + Send>>
        + Send
        + Sync,
>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// `b` as a body that does not say its size, so a `Content-Length` header
/// stands: one longer than `b` makes the server close the connection short.
pub fn unsized_body(b: impl Into<Bytes>) -> Body {
    let frame = Ok::<_, hyper::Error>(hyper::body::Frame::data(b.into()));
    http_body_util::StreamBody::new(futures::stream::iter([frame])).boxed()
}

/// `b`, then nothing while `held` is set (a minute at most), then the end:
/// an upstream that stalls partway through a body it said is longer.
pub fn held_body(b: impl Into<Bytes>, held: Arc<std::sync::atomic::AtomicBool>) -> Body {
    use futures::StreamExt;
    let first = futures::stream::iter([Ok::<_, hyper::Error>(hyper::body::Frame::data(b.into()))]);
    let hold = futures::stream::once(async move {
        for _ in 0..1200 {
            if !held.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .filter_map(|()| async { None });
    BodyExt::boxed(http_body_util::StreamBody::new(first.chain(hold)))
}

pub fn response(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> hyper::Response<Body> {
    let mut r = hyper::Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(full(body)).unwrap()
}

/// Serves `handler` on `ip` (any free port) until the process ends.
pub async fn serve(ip: &str, handler: Handler) -> SocketAddr {
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, std::convert::Infallible>(handler(req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends one request; the response body comes back to `sink` chunk by chunk
/// (so huge bodies need not be held) and, if `keep`, whole in the reply.
pub async fn send_with(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Body,
    mut sink: impl FnMut(&[u8]),
    keep: bool,
) -> Result<Reply, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let authority = uri.authority().ok_or("no authority")?.to_string();
    let stream = TcpStream::connect(&authority)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", &authority);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(body).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            sink(data);
            if keep {
                kept.extend_from_slice(data);
            }
        }
    }
    Ok(Reply {
        status,
        headers,
        body: kept,
    })
}

pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    send_with(method, url, headers, full(body), |_| {}, true)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    send("GET", url, headers, Bytes::new()).await
}

/// Reads a whole incoming body (test servers only see small ones).
pub async fn read(body: Incoming) -> Vec<u8> {
    body.collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default()
}
