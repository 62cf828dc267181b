//! Manifest requests straight from the registry and through registry-proxy,
//! side by side: latency percentiles and requests per second on kept-alive
//! connections.

use super::plan::{BIG, Plan};
use super::proxy_process::ProxyProcess;
use super::pulls::pull;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;
use support::http;
use support::registry::OCI_MANIFEST;

/// Manifest requests direct and through registry-proxy, side by side.
pub struct Latency {
    /// The table's rows, in markdown.
    pub rows: Vec<String>,
    /// Largest added p50 of a warm proxy on one connection (ms).
    pub cached_added: f64,
    /// Smallest req/s ratio to direct of a warm proxy at 32 connections.
    pub cached_rps_ratio: f64,
    /// Largest added p50 of the cache-off relay on one connection (ms).
    pub relay_added: f64,
}

/// Which proxy a row measures, as its row names it: a warm one, the
/// cache-off relay, a warm one that counts nothing.
const WARM: &str = "";
const CACHE_OFF: &str = ", cache off";
const COUNTERS_OFF: &str = ", counters off";

/// One row: `method` on the manifest `reference` through `proxy`.
struct Case<'a> {
    method: &'a str,
    reference: &'a str,
    proxy: SocketAddr,
    kind: &'static str,
    concurrency: usize,
}

/// HEAD and GET by tag and by digest, at 1 and 32 connections, through a
/// warm proxy; GET by tag on one connection through the cache-off relay;
/// and GET by tag through a warm proxy that counts nothing (`metrics`
/// off), for what counting costs.
pub async fn measure(upstream: SocketAddr, dir: &Path, plan: &Plan, digest: &str) -> Latency {
    let cached = ProxyProcess::start(upstream, dir, true);
    let relay = ProxyProcess::start(upstream, dir, false);
    let uncounted = ProxyProcess::start_with(upstream, dir, true, &[("metrics", "false")]);
    pull(cached.addr, BIG).await;
    pull(uncounted.addr, BIG).await;
    let mut out = Latency {
        rows: Vec::new(),
        cached_added: f64::MIN,
        cached_rps_ratio: f64::MAX,
        relay_added: f64::MIN,
    };
    let case = |method, reference, proxy: &ProxyProcess, kind, concurrency| Case {
        method,
        reference,
        proxy: proxy.addr,
        kind,
        concurrency,
    };
    let mut cases = Vec::new();
    for (method, reference) in [
        ("HEAD", "latest"),
        ("GET", "latest"),
        ("HEAD", digest),
        ("GET", digest),
    ] {
        cases.push(case(method, reference, &cached, WARM, 1));
        cases.push(case(method, reference, &cached, WARM, 32));
    }
    cases.push(case("GET", "latest", &relay, CACHE_OFF, 1));
    cases.push(case("GET", "latest", &uncounted, COUNTERS_OFF, 1));
    cases.push(case("GET", "latest", &uncounted, COUNTERS_OFF, 32));
    for c in &cases {
        out.add(upstream, plan.latency_requests, c).await;
    }
    out
}

impl Latency {
    /// Measures one case, direct then through its proxy, into a row.
    async fn add(&mut self, upstream: SocketAddr, requests: usize, case: &Case<'_>) {
        let Case {
            method,
            reference,
            proxy,
            kind,
            concurrency,
        } = *case;
        let path = format!("/v2/{BIG}/manifests/{reference}");
        let by = if reference == "latest" {
            "tag"
        } else {
            "digest"
        };
        let n = requests.max(concurrency);
        let (direct, direct_rps) = latency(upstream, method, &path, concurrency, n).await;
        let (proxied, proxied_rps) = latency(proxy, method, &path, concurrency, n).await;
        let added = percentile(&proxied, 0.5) - percentile(&direct, 0.5);
        match (kind, concurrency) {
            (CACHE_OFF, _) => self.relay_added = self.relay_added.max(added),
            (WARM, 1) => self.cached_added = self.cached_added.max(added),
            (WARM, _) => {
                self.cached_rps_ratio = self.cached_rps_ratio.min(proxied_rps / direct_rps)
            }
            _ => {}
        }
        self.rows.push(format!(
            "| {method} by {by}{kind} | {concurrency} | {:.2} / {:.2} | {:.2} / {:.2} | {direct_rps:.0} | {proxied_rps:.0} | {added:+.2} |",
            percentile(&direct, 0.5),
            percentile(&direct, 0.99),
            percentile(&proxied, 0.5),
            percentile(&proxied, 0.99),
        ));
    }
}

/// `n` requests over `concurrency` kept-alive connections: latencies in ms
/// and requests per second.
async fn latency(
    addr: SocketAddr,
    method: &str,
    path: &str,
    concurrency: usize,
    n: usize,
) -> (Vec<f64>, f64) {
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (method, path) = (method.to_string(), path.to_string());
        async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut times = Vec::new();
            for _ in 0..n / concurrency {
                let req = hyper::Request::builder()
                    .method(method.as_str())
                    .uri(path.as_str())
                    .header("host", addr.to_string())
                    .header("accept", OCI_MANIFEST)
                    .body(http::full(Bytes::new()))
                    .unwrap();
                let t = Instant::now();
                sender.ready().await.unwrap();
                let resp = sender.send_request(req).await.unwrap();
                assert_eq!(resp.status(), 200, "{method} {path}");
                resp.into_body().collect().await.unwrap();
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times
        }
    });
    let times: Vec<f64> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let rps = times.len() as f64 / started.elapsed().as_secs_f64();
    (times, rps)
}

fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}
