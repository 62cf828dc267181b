//! The proxy's logic, request to answer, on the in-memory host: what the
//! cache spares the upstream, and what it never keeps or crosses.

mod cache;
mod headers;
mod outages;
mod prefetch;
mod prefetch_bounds;
mod reads;
mod status_forms;

use super::handle;
use crate::host::memory::{Answer, MemoryHost, Sent};
use crate::host::{Body, Headers, Host, Kv, Request, Response};
use futures::StreamExt;
use futures::executor::block_on;
use sha2::{Digest, Sha256};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
const PODMAN: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v1+prettyjws, application/vnd.docker.distribution.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// An upstream holding one index (tag `v1`) and one blob; `corrupt` sends
/// other bytes than the blob's digest says.
struct Upstream {
    index: Vec<u8>,
    blob: Vec<u8>,
    corrupt: bool,
}

impl Upstream {
    fn new() -> Self {
        Self {
            index: br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec(),
            blob: (0..=255u8).cycle().take(100_000).collect(),
            corrupt: false,
        }
    }

    fn host(self) -> (MemoryHost, String, String) {
        let (index_digest, blob_digest) = (digest(&self.index), digest(&self.blob));
        let (i, b) = (index_digest.clone(), blob_digest.clone());
        let host = MemoryHost::new(move |sent: &Sent| self.answer(sent, &i, &b));
        host.set_variable("default_upstream", "http://upstream.test");
        (host, index_digest, blob_digest)
    }

    fn answer(&self, sent: &Sent, index_digest: &str, blob_digest: &str) -> Answer {
        let path = sent.url.split_once(".test").map_or("", |(_, p)| p);
        let found = |media_type: &str, body: Vec<u8>, digest: &str| Answer {
            status: 200,
            headers: vec![
                ("content-type", media_type.to_string()),
                ("docker-content-digest", digest.to_string()),
            ],
            body,
        };
        match path {
            "/v2/" => found("application/json", b"{}".to_vec(), ""),
            p if p.ends_with("/manifests/v1") || p.ends_with(index_digest) => {
                found(INDEX, self.index.clone(), index_digest)
            }
            p if p.ends_with(blob_digest) && self.corrupt => found(
                "application/octet-stream",
                vec![0; self.blob.len()],
                blob_digest,
            ),
            p if p.ends_with(blob_digest) => {
                found("application/octet-stream", self.blob.clone(), blob_digest)
            }
            _ => Answer {
                status: 404,
                headers: vec![("content-type", "application/json".into())],
                body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#.to_vec(),
            },
        }
    }
}

fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Request<<MemoryHost as Host>::Stream> {
    let mut h = Headers::default();
    h.push("host", "proxy.test");
    for (k, v) in headers {
        h.push(k, *v);
    }
    Request {
        method: method.into(),
        path: path.into(),
        query: None,
        headers: h,
        body: Body::Empty,
    }
}

/// The answer with its body read whole, after the work beside it.
fn ask(
    host: &MemoryHost,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Response<()>, Vec<u8>) {
    answer(host, request(method, path, headers))
}

/// `req`'s answer with its body read whole, after the work beside it.
fn answer(
    host: &MemoryHost,
    req: Request<<MemoryHost as Host>::Stream>,
) -> (Response<()>, Vec<u8>) {
    block_on(async {
        let (response, _) = handle(host, req).await;
        let (body, ()) = futures::future::join(read(response.body), host.settle()).await;
        let head = Response {
            status: response.status,
            headers: response.headers,
            body: Body::Empty,
        };
        (head, body)
    })
}

async fn read<S>(body: Body<S>) -> Vec<u8>
where
    S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
{
    let mut pieces: crate::host::Chunks = match body {
        Body::Empty => return Vec::new(),
        Body::Bytes(b) => return b,
        Body::Stream(s) => Box::pin(s),
        Body::Generated(g) => g,
    };
    let mut out = Vec::new();
    while let Some(Ok(piece)) = pieces.next().await {
        out.extend(piece);
    }
    out
}

fn x_cache(r: &Response<()>) -> Option<&str> {
    r.headers.get("x-cache")
}

#[test]
fn a_cached_tag_spares_the_upstream() {
    let (host, index, _) = Upstream::new().host();
    let tag = "/v2/library/app/manifests/v1";
    let (first, _) = ask(&host, "GET", tag, &[("accept", DOCKER)]);
    let (second, body) = ask(&host, "GET", tag, &[("accept", DOCKER)]);
    assert_eq!((first.status, x_cache(&first)), (200, Some("MISS")));
    assert_eq!((second.status, x_cache(&second)), (200, Some("HIT")));
    assert_eq!(
        second.headers.get("docker-content-digest"),
        Some(index.as_str())
    );
    assert_eq!(digest(&body), index);
    assert_eq!(host.sent_count("GET", "/manifests/"), 1);
}

#[test]
fn junk_in_accept_adds_neither_keys_nor_upstream_requests() {
    let (host, _, _) = Upstream::new().host();
    for n in 0..50 {
        let accept = format!("{INDEX}, application/x-junk-{n}");
        let (r, _) = ask(
            &host,
            "HEAD",
            "/v2/library/app/manifests/v1",
            &[("accept", &accept)],
        );
        assert_eq!(r.status, 200);
    }
    assert_eq!(host.sent_count("HEAD", "/manifests/"), 1);
    let tags = host
        .cache
        .keys()
        .unwrap()
        .into_iter()
        .filter(|k| k.starts_with("cache/tag/"))
        .count();
    assert_eq!(tags, 1);
}

#[test]
fn only_the_known_manifest_types_go_upstream() {
    let (host, _, _) = Upstream::new().host();
    let accept = format!("application/x-junk, {MANIFEST};q=0.9, */*");
    ask(
        &host,
        "GET",
        "/v2/library/app/manifests/v1",
        &[("accept", &accept)],
    );
    let sent = host.upstream.sent.borrow();
    let manifest = sent.iter().find(|s| s.url.contains("/manifests/")).unwrap();
    assert_eq!(manifest.headers.get("accept"), Some(MANIFEST));
}

#[test]
fn a_tag_cached_for_docker_answers_podman() {
    let (host, _, _) = Upstream::new().host();
    let tag = "/v2/library/app/manifests/v1";
    ask(&host, "GET", tag, &[("accept", DOCKER)]);
    let (r, _) = ask(&host, "GET", tag, &[("accept", PODMAN)]);
    assert_eq!(x_cache(&r), Some("HIT"));
    assert_eq!(host.sent_count("GET", "/manifests/"), 1);
}

#[test]
fn an_index_is_not_served_to_a_client_that_takes_none() {
    let (host, _, _) = Upstream::new().host();
    let tag = "/v2/library/app/manifests/v1";
    ask(&host, "GET", tag, &[("accept", DOCKER)]);
    let (r, _) = ask(&host, "GET", tag, &[("accept", MANIFEST)]);
    assert_ne!(x_cache(&r), Some("HIT"));
    assert_eq!(host.sent_count("GET", "/manifests/"), 2);
}

#[test]
fn a_blob_miss_is_copied_and_then_served_from_the_cache() {
    let (host, _, blob) = Upstream::new().host();
    let path = format!("/v2/library/app/blobs/{blob}");
    let (first, body) = ask(&host, "GET", &path, &[]);
    assert_eq!((first.status, x_cache(&first)), (200, Some("MISS")));
    assert_eq!(digest(&body), blob);
    let (second, body) = ask(&host, "GET", &path, &[]);
    assert_eq!((second.status, x_cache(&second)), (200, Some("HIT")));
    assert_eq!(digest(&body), blob);
    assert_eq!(host.sent_count("GET", "/blobs/"), 1);
}

#[test]
fn a_cached_blob_the_store_lost_is_relayed_not_cut_short() {
    let (host, _, blob) = Upstream::new().host();
    let path = format!("/v2/library/app/blobs/{blob}");
    ask(&host, "GET", &path, &[]);
    for key in host.cache.keys().unwrap() {
        if key.starts_with("cache/chunk/") {
            host.cache.delete(&key).unwrap();
        }
    }
    let (r, body) = ask(&host, "GET", &path, &[]);
    assert_eq!((r.status, x_cache(&r)), (200, None));
    assert_eq!(digest(&body), blob);
    assert_eq!(host.sent_count("GET", "/blobs/"), 2);
}

#[test]
fn a_cached_blob_answers_ranges() {
    let (host, _, blob) = Upstream::new().host();
    let path = format!("/v2/library/app/blobs/{blob}");
    ask(&host, "GET", &path, &[]);
    let (r, body) = ask(&host, "GET", &path, &[("range", "bytes=10-19")]);
    assert_eq!((r.status, body.len()), (206, 10));
    assert_eq!(body, (10..20u8).collect::<Vec<_>>());
    assert_eq!(r.headers.get("content-range"), Some("bytes 10-19/100000"));
}

#[test]
fn a_corrupt_upstream_blob_is_never_kept() {
    let upstream = Upstream {
        corrupt: true,
        ..Upstream::new()
    };
    let (host, _, blob) = upstream.host();
    let path = format!("/v2/library/app/blobs/{blob}");
    for _ in 0..2 {
        let (r, _) = ask(&host, "GET", &path, &[]);
        assert_eq!(x_cache(&r), Some("MISS"));
    }
    assert_eq!(host.sent_count("GET", "/blobs/"), 2);
    let blobs = host
        .cache
        .keys()
        .unwrap()
        .into_iter()
        .filter(|k| k.starts_with("cache/blob/"))
        .count();
    assert_eq!(blobs, 0);
}

#[test]
fn a_deleted_blob_stays_cached_for_other_repositories() {
    let (host, _, blob) = Upstream::new().host();
    let (a, b) = (
        format!("/v2/team/a/blobs/{blob}"),
        format!("/v2/team/b/blobs/{blob}"),
    );
    ask(&host, "GET", &a, &[]);
    ask(&host, "GET", &b, &[]);
    let (deleted, _) = ask(&host, "DELETE", &a, &[]);
    assert!(
        deleted.status < 300 || deleted.status == 404,
        "{}",
        deleted.status
    );
    let (r, _) = ask(&host, "GET", &b, &[]);
    assert_eq!(x_cache(&r), Some("HIT"));
}

#[test]
fn a_denied_repository_never_reaches_the_upstream() {
    let (host, _, _) = Upstream::new().host();
    host.kv
        .set(
            "route/proxy.test",
            br#"{"upstream":"http://upstream.test","deny":["secret/**"]}"#,
        )
        .unwrap();
    let (r, _) = ask(
        &host,
        "GET",
        "/v2/secret/app/manifests/v1",
        &[("accept", DOCKER)],
    );
    assert_eq!(r.status, 403);
    assert_eq!(host.sent_count("GET", "/secret/"), 0);
}

#[test]
fn an_unreadable_require_login_is_a_503() {
    let (host, _, _) = Upstream::new().host();
    host.fail_variable("require_login");
    let (r, _) = ask(
        &host,
        "GET",
        "/v2/library/app/manifests/v1",
        &[("accept", DOCKER)],
    );
    assert_eq!(r.status, 503);
    assert_eq!(host.sent_count("GET", "/manifests/"), 0);
}

#[test]
fn admin_token_guesses_are_bounded_and_right_ones_are_not_counted() {
    let (host, _, _) = Upstream::new().host();
    host.set_variable("admin_token", "right-token");
    let routes = "/_registry-proxy/routes";
    let client = [("spin-client-addr", "192.0.2.9:4000")];
    for _ in 0..15 {
        let (r, _) = ask(
            &host,
            "GET",
            routes,
            &[client[0], ("authorization", "Bearer right-token")],
        );
        assert_eq!(r.status, 200);
    }
    let statuses: Vec<u16> = (0..11)
        .map(|_| {
            ask(
                &host,
                "GET",
                routes,
                &[client[0], ("authorization", "Bearer guess")],
            )
            .0
            .status
        })
        .collect();
    assert_eq!(statuses[..10], [401; 10]);
    assert_eq!(statuses[10], 429);
}

#[test]
fn metrics_token_guesses_are_bounded() {
    let (host, _, _) = Upstream::new().host();
    host.set_variable("metrics_token", "m");
    let statuses: Vec<u16> = (0..11)
        .map(|_| {
            ask(
                &host,
                "GET",
                "/_registry-proxy/metrics",
                &[("authorization", "Bearer x")],
            )
            .0
            .status
        })
        .collect();
    assert_eq!(statuses[10], 429, "{statuses:?}");
}

#[test]
fn a_throttle_store_that_refuses_writes_refuses_the_check() {
    let (host, _, _) = Upstream::new().host();
    host.set_variable("admin_token", "right-token");
    host.counters.refuse_writes(true);
    let (r, _) = ask(
        &host,
        "GET",
        "/_registry-proxy/routes",
        &[("authorization", "Bearer right-token")],
    );
    assert_eq!(r.status, 503);
}

#[test]
fn manifests_count_against_the_cache_bound() {
    let (host, index, _) = Upstream::new().host();
    host.set_variable("cache_max_size", "1");
    let path = format!("/v2/library/app/manifests/{index}");
    ask(&host, "GET", &path, &[("accept", DOCKER)]);
    let total = host
        .cache
        .increment(crate::cache::bound::TOTAL_KEY, 0)
        .unwrap();
    assert!(total > 0, "the manifest's bytes were not counted");
}
