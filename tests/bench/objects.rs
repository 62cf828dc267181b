//! Blobs in a Garage bucket under real Spin, side by side in one run with
//! the bucket's own PUT and GET of the same bytes, the proxy with its cache
//! off, and GETs straight from the registry: cold copies, warm reads
//! streamed and by redirect, the `307` itself, and a crowd of 16 on two
//! instances sharing Redis and the bucket.

use super::cpu::Usage;
use super::{crowd, logged};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rusty_s3::S3Action;
use sha2::{Digest as _, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::garage::{BUCKET, Garage, REGION};
use support::{http, redis, registry, spin};

mod report;
pub use report::section;

/// One run's figures: seconds, unless named otherwise.
#[derive(Default)]
pub struct Figures {
    pub bucket_put: Vec<f64>,
    pub bucket_get: Vec<f64>,
    pub relay: Vec<f64>,
    pub cold: Vec<f64>,
    pub warm_stream: Vec<f64>,
    pub presigned_get: Vec<f64>,
    pub warm_redirect: Vec<f64>,
    pub redirect_p50_ms: Vec<f64>,
    pub crowd_direct: Vec<f64>,
    pub crowd_proxied: Vec<f64>,
    pub crowd_upstream_gets: Vec<usize>,
    /// CPU seconds by kind of process: the bucket's own PUT and GET, one
    /// cold copy through the proxy, and each crowd, direct and proxied.
    pub baseline_cpu: Vec<Usage>,
    pub cold_cpu: Vec<Usage>,
    pub crowd_cpu_direct: Vec<Usage>,
    pub crowd_cpu_proxied: Vec<Usage>,
    pub stored_per_byte: Vec<f64>,
    pub component_mib: f64,
    pub rss_mib: f64,
    /// Garage's nodes, each holding every object.
    pub garage_nodes: usize,
}

fn s3_variables(garage: &Garage, prefix: &str, upstream: &str) -> Vec<(&'static str, String)> {
    vec![
        ("default_upstream", upstream.to_string()),
        ("blob_store", "s3".into()),
        ("s3_endpoint", garage.endpoints[0].clone()),
        ("s3_region", REGION.into()),
        ("s3_bucket", BUCKET.into()),
        ("s3_access_key_id", garage.key_id.clone()),
        ("s3_secret_access_key", garage.secret.clone()),
        ("s3_path_style", "true".into()),
        ("s3_prefix", prefix.into()),
    ]
}

fn start(app: &Path, name: &str, vars: &[(&'static str, String)]) -> spin::Instance {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spin::Instance::start(app, name, &vars)
}

fn bucket(garage: &Garage) -> (rusty_s3::Bucket, rusty_s3::Credentials) {
    let endpoint = garage.endpoints[0].parse().unwrap();
    let bucket = rusty_s3::Bucket::new(endpoint, rusty_s3::UrlStyle::Path, BUCKET, REGION).unwrap();
    let credentials = rusty_s3::Credentials::new(&garage.key_id, &garage.secret);
    (bucket, credentials)
}

/// A GET of `url` that hashes what it reads, as a client checks a blob;
/// its time and the body's digest.
async fn timed_get(url: &str) -> (f64, String) {
    let started = Instant::now();
    let mut hasher = Sha256::new();
    let r = http::send_with("GET", url, &[], http::full(""), |c| hasher.update(c), false)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert!(matches!(r.status, 200 | 307), "{url}: {}", r.status);
    (
        started.elapsed().as_secs_f64(),
        format!("sha256:{:x}", hasher.finalize()),
    )
}

/// The bucket's own PUT and GET of the blob's bytes (`seed`, `size`), by
/// presigned URL, as the proxy sends them.
async fn baseline(garage: &Garage, key: &str, seed: u64, size: u64) -> (f64, f64) {
    let (bucket, creds) = bucket(garage);
    let ttl = Duration::from_secs(600);
    let put = bucket.put_object(Some(&creds), key).sign(ttl);
    let body = registry::futures_stream(registry::chunks(seed, size, 1 << 20));
    let length = size.to_string();
    let started = Instant::now();
    let r = http::send_with(
        "PUT",
        put.as_str(),
        &[("content-length", &length)],
        body,
        |_| {},
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "bucket PUT");
    let put_secs = started.elapsed().as_secs_f64();
    let get = bucket.get_object(Some(&creds), key).sign(ttl);
    let (get_secs, _) = timed_get(get.as_str()).await;
    let delete = bucket.delete_object(Some(&creds), key).sign(ttl);
    http::send_with(
        "DELETE",
        delete.as_str(),
        &[],
        http::full(""),
        |_| {},
        false,
    )
    .await
    .unwrap();
    (put_secs, get_secs)
}

/// `n` GETs of `path` on one kept-alive connection, each answered `307`:
/// their latencies in ms.
async fn redirect_latency(addr: SocketAddr, path: &str, n: usize) -> Vec<f64> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut times = Vec::new();
    for _ in 0..n {
        let req = hyper::Request::builder()
            .uri(path)
            .header("host", addr.to_string())
            .body(http::full(Bytes::new()))
            .unwrap();
        let t = Instant::now();
        sender.ready().await.unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 307, "{path}");
        resp.into_body().collect().await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times
}

/// Waits until the blob is in the bucket under `prefix`, its parts gone;
/// the bytes there.
fn committed(garage: &Garage, prefix: &str) -> u64 {
    for _ in 0..1200 {
        let blobs = garage.keys(0, &format!("{prefix}blobs/"));
        if !blobs.is_empty() && garage.keys(0, &format!("{prefix}uploads/")).is_empty() {
            return blobs.iter().map(|(_, size)| size).sum();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no blob under {prefix} in the bucket");
}

/// One repetition: a fresh blob of `size` and one of `crowd_size` (cold
/// everywhere), fresh prefixes in the bucket.
pub async fn measure(
    upstream: SocketAddr,
    dir: &Path,
    garage: &Garage,
    sizes: (u64, u64),
    seed: u64,
    into: &mut Figures,
) {
    let (size, crowd_size) = sizes;
    let repo = "bench/objects";
    let digest = registry::push_big_blob(upstream, repo, seed, size).await;
    let cpu = Usage::now();
    let (put, get) = baseline(garage, &format!("baseline-{seed}"), seed, size).await;
    into.baseline_cpu.push(Usage::now().since(&cpu));
    into.bucket_put.push(put);
    into.bucket_get.push(get);

    let prefix = format!("bench-{seed}/");
    let [streams, redirects, relay] = proxies(upstream, dir, garage, &prefix, seed);

    let path = format!("/v2/{repo}/blobs/{digest}");
    let (secs, got) = timed_get(&format!("{}{path}", relay.url())).await;
    assert_eq!(got, digest);
    into.relay.push(secs);
    let cpu = Usage::now();
    let (secs, got) = timed_get(&format!("{}{path}", streams.url())).await;
    assert_eq!(got, digest);
    into.cold.push(secs);
    // The copy's check and completion run after the answer: wait for them.
    logged::wait_for_requests(&streams, 1);
    into.cold_cpu.push(Usage::now().since(&cpu));
    let stored = committed(garage, &prefix);
    into.stored_per_byte.push(stored as f64 / size as f64);
    let (secs, got) = timed_get(&format!("{}{path}", streams.url())).await;
    assert_eq!(got, digest);
    into.warm_stream.push(secs);

    redirected(&redirects, &path, &digest, into).await;

    for i in [&streams, &redirects, &relay] {
        logged::wait_for_requests(i, 1);
        into.component_mib = into.component_mib.max(logged::peak_memory_mib(i));
        into.rss_mib = into.rss_mib.max(i.rss_mib(spin::Rss::Peak));
        i.stop();
    }
    crowd_on_redis(upstream, dir, garage, crowd_size, seed + 1, into).await;
}

/// Three instances on the bucket under `prefix`: one streaming blobs, one
/// answering with redirects (sharing an app), and a relay whose route
/// caches nothing (an app of its own).
fn proxies(
    upstream: SocketAddr,
    dir: &Path,
    garage: &Garage,
    prefix: &str,
    seed: u64,
) -> [spin::Instance; 3] {
    let origin = format!("http://{upstream}");
    let app = spin::derive_app(
        &dir.join(format!("objects-{seed}")),
        &spin::Store::Sqlite,
        true,
    );
    let mut vars = s3_variables(garage, prefix, &origin);
    let streams = start(&app, "stream", &vars);
    vars.push(("blob_delivery", "redirect".into()));
    let redirects = start(&app, "redirect", &vars);
    let relay_app = spin::derive_app(
        &dir.join(format!("relay-{seed}")),
        &spin::Store::Sqlite,
        true,
    );
    let relay = start(&relay_app, "relay", &s3_variables(garage, prefix, &origin));
    let no_cache =
        serde_json::json!({"upstream": origin, "cache": {"manifests": false, "blobs": false}});
    spin::SqliteStore::of(&relay_app, "default").set(
        &format!("route/{}", relay.addr),
        no_cache.to_string().as_bytes(),
    );
    [streams, redirects, relay]
}

/// By redirect: the 307 and the presigned GET it names, against that GET
/// alone; then the `307` alone, kept-alive.
async fn redirected(redirects: &spin::Instance, path: &str, digest: &str, into: &mut Figures) {
    let started = Instant::now();
    let r = http::get(&format!("{}{path}", redirects.url()), &[]).await;
    assert_eq!(r.status, 307);
    let location = r.header("location").unwrap().to_string();
    let (_, got) = timed_get(&location).await;
    assert_eq!(got, digest);
    into.warm_redirect.push(started.elapsed().as_secs_f64());
    into.presigned_get.push(timed_get(&location).await.0);
    let mut times = redirect_latency(redirects.addr, path, 200).await;
    times.sort_by(f64::total_cmp);
    into.redirect_p50_ms.push(times[times.len() / 2]);
}

/// 16 clients of one cold blob over two instances sharing Redis and the
/// bucket, and 16 straight from the registry; every client hashes.
async fn crowd_on_redis(
    upstream: SocketAddr,
    dir: &Path,
    garage: &Garage,
    size: u64,
    seed: u64,
    into: &mut Figures,
) {
    let repo = "bench/objects-crowd";
    let digest = registry::push_big_blob(upstream, repo, seed, size).await;
    let run = dir.join(format!("objects-redis-{seed}"));
    let (server, port) = redis::start(&run);
    let app = spin::derive_app(&run.join("app"), &spin::Store::Redis(port), true);
    let vars = s3_variables(
        garage,
        &format!("bench-crowd-{seed}/"),
        &format!("http://{upstream}"),
    );
    let instances = [start(&app, "a", &vars), start(&app, "b", &vars)];
    let direct: Vec<SocketAddr> = vec![upstream; crowd::CLIENTS];
    let cpu = Usage::now();
    into.crowd_direct.push(
        crowd::all_at_once(&direct, repo, &digest)
            .await
            .as_secs_f64(),
    );
    into.crowd_cpu_direct.push(Usage::now().since(&cpu));
    let before = crowd::blob_gets(dir, repo, &digest);
    let split: Vec<SocketAddr> = (0..crowd::CLIENTS).map(|i| instances[i % 2].addr).collect();
    let cpu = Usage::now();
    into.crowd_proxied.push(
        crowd::all_at_once(&split, repo, &digest)
            .await
            .as_secs_f64(),
    );
    into.crowd_cpu_proxied.push(Usage::now().since(&cpu));
    into.crowd_upstream_gets
        .push(crowd::blob_gets(dir, repo, &digest) - before);
    logged::wait_for_requests(&instances[0], crowd::CLIENTS / 2);
    logged::wait_for_requests(&instances[1], crowd::CLIENTS / 2);
    for i in &instances {
        into.component_mib = into.component_mib.max(logged::peak_memory_mib(i));
        into.rss_mib = into.rss_mib.max(i.rss_mib(spin::Rss::Peak));
        i.stop();
    }
    server.stop();
}
