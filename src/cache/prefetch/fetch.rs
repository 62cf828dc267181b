//! One object of a prefetch, fetched the way a pull fetches it: a call for
//! the endpoint through the manifest or blob cache, with the route's own
//! credentials, and what the cache did with it.

use super::Prefetch;
use crate::auth::access::UpstreamAuth;
use crate::cache::layout::BlobEntry;
use crate::cache::{blob_store, manifest_store};
use crate::host::{Body, Headers, Host, Request, Response};
use crate::oci::descriptor::{Descriptor, ImageIndex};
use crate::oci::digest::Digest;
use crate::oci::endpoint::Endpoint;
use crate::oci::media_type::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::oci::reference::Reference;
use crate::relay::Call;
use futures::StreamExt;
use std::time::Duration;

/// distribution's limit on manifest size.
const MANIFEST_LIMIT: usize = 4 << 20;
/// How long a blob's copy may take to commit after its last byte (its
/// digest check), before the prefetch calls it failed.
const COMMIT_WAIT: Duration = Duration::from_secs(60);
const COMMIT_POLL: Duration = Duration::from_millis(50);

/// What became of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Copied into the cache now.
    Cached,
    /// The cache had it: no upstream GET.
    Already,
    Failed(String),
}

/// A manifest: what became of it, and its bytes and media type when the
/// cache holds it now.
pub struct Manifest {
    pub fetched: Fetched,
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// The types a pull by docker, containerd or podman offers: an index
/// kept for them answers each of them (`manifest_store::by_tag`).
const ACCEPT: [&str; 4] = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

fn request<S>() -> Request<S> {
    let mut headers = Headers::default();
    for t in ACCEPT {
        headers.push("accept", t);
    }
    headers.push("user-agent", "registry-proxy prefetch");
    Request {
        method: "GET".into(),
        path: String::new(),
        query: None,
        headers,
        body: Body::Empty,
    }
}

/// What the cache did, from the answer's `X-Cache`.
fn outcome<S>(resp: &Response<S>) -> Fetched {
    match resp.headers.get("x-cache") {
        Some("HIT" | "REVALIDATED" | "STALE") => Fetched::Already,
        Some("MISS" | "COALESCED") => Fetched::Cached,
        Some("BYPASS") => Fetched::Failed("the cache store is away".into()),
        _ => Fetched::Failed(
            "not kept: larger than the route's max_blob_size or cache_max_size, \
             or no blob storage (kv_max_keys without a bucket)"
                .into(),
        ),
    }
}

fn refused(status: u16) -> Fetched {
    Fetched::Failed(format!("the upstream answered {status}"))
}

/// The manifest `reference` names, through the manifest cache.
pub async fn manifest<H: Host>(host: &H, job: &Prefetch, reference: &Reference) -> Manifest {
    let failed = |why: String| Manifest {
        fetched: Fetched::Failed(why),
        digest: reference.to_string(),
        media_type: String::new(),
        bytes: Vec::new(),
    };
    let endpoint = Endpoint::Manifest {
        name: job.name.clone(),
        reference: reference.clone(),
    };
    let req = request();
    let auth = UpstreamAuth::Proxy;
    let answer = async {
        let call = Call::new(host, &job.target, &job.origin, &endpoint, &req, &auth)?;
        let repo = call
            .upstream_name
            .clone()
            .unwrap_or_else(|| job.name.clone());
        manifest_store::get(&call, &repo, reference).await
    };
    let resp = match answer.await {
        Ok(r) if r.status == 200 => r,
        Ok(r) => return failed(format!("the upstream answered {}", r.status)),
        Err(e) => return failed(e.message),
    };
    let fetched = outcome(&resp);
    let digest = resp
        .headers
        .get("docker-content-digest")
        .unwrap_or_default();
    let (digest, media_type) = (
        digest.to_string(),
        resp.headers
            .get("content-type")
            .unwrap_or_default()
            .to_string(),
    );
    match host.read_body(resp.body, MANIFEST_LIMIT).await {
        Ok(bytes) => Manifest {
            fetched,
            digest,
            media_type,
            bytes,
        },
        Err(e) => failed(e),
    }
}

/// The blob `digest`, through the blob cache: a hit is not read, a miss is
/// read to its end (its copy goes on beside) and waited for until committed.
pub async fn blob<H: Host>(host: &H, job: &Prefetch, digest: &Digest) -> Fetched {
    let endpoint = Endpoint::Blob {
        name: job.name.clone(),
        digest: digest.clone(),
    };
    let req = request();
    let auth = UpstreamAuth::Proxy;
    let call = match Call::new(host, &job.target, &job.origin, &endpoint, &req, &auth) {
        Ok(call) => call,
        Err(e) => return Fetched::Failed(e.message),
    };
    let resp = match blob_store::get(&call, digest).await {
        Ok(r) if r.status == 200 => r,
        Ok(r) => return refused(r.status),
        Err(e) => return Fetched::Failed(e.message),
    };
    let fetched = outcome(&resp);
    if fetched != Fetched::Cached {
        return fetched;
    }
    if let Err(e) = drain(resp.body).await {
        return Fetched::Failed(format!("the upstream's body failed: {e}"));
    }
    committed(host, &call, digest).await
}

async fn drain<S>(body: Body<S>) -> Result<(), String>
where
    S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
{
    let Ok(mut chunks) = body.streamed() else {
        return Ok(());
    };
    while let Some(chunk) = chunks.next().await {
        chunk?;
    }
    Ok(())
}

/// Waits for the copy the read started to commit: the entry appears once
/// its digest is checked; the lease goes with no entry when it failed.
async fn committed<H: Host>(host: &H, call: &Call<'_, H>, digest: &Digest) -> Fetched {
    let scope = crate::cache::scope(call);
    let (entry_key, lease_key) = (
        scope.blob_key(digest.as_str()),
        scope.lease_key(digest.as_str()),
    );
    let cache = host.cache();
    let mut waited = Duration::ZERO;
    while waited < COMMIT_WAIT {
        if BlobEntry::load(cache.as_ref(), &entry_key).is_some() {
            return Fetched::Cached;
        }
        // The commit writes the entry, then lets the lease go.
        let lease_gone = matches!(cache.get(&lease_key), Ok(None));
        if lease_gone && BlobEntry::load(cache.as_ref(), &entry_key).is_none() {
            return Fetched::Failed(
                "the copy did not commit (its digest or the store failed)".into(),
            );
        }
        host.timer().sleep(COMMIT_POLL).await;
        waited += COMMIT_POLL;
    }
    Fetched::Failed(format!(
        "the copy did not commit within {}s",
        COMMIT_WAIT.as_secs()
    ))
}

/// The referrers of `subject` (signatures, SBOMs): the referrers API, else
/// the tag the OCI spec's fallback names (`sha256-<hex>`), as clients do.
pub async fn referrers<H: Host>(
    host: &H,
    job: &Prefetch,
    subject: &Digest,
) -> Result<Vec<Descriptor>, String> {
    let endpoint = Endpoint::Referrers {
        name: job.name.clone(),
        digest: subject.clone(),
    };
    let req = request();
    let auth = UpstreamAuth::Proxy;
    let call =
        Call::new(host, &job.target, &job.origin, &endpoint, &req, &auth).map_err(|e| e.message)?;
    let resp = call.relay().await.map_err(|e| e.message)?;
    let bytes = match resp.status {
        200 => host.read_body(resp.body, MANIFEST_LIMIT).await?,
        404 => {
            let tag = subject.as_str().replacen(':', "-", 1);
            let fallback = manifest(host, job, &Reference::Tag(tag)).await;
            match fallback.fetched {
                Fetched::Failed(_) => return Ok(Vec::new()),
                _ => fallback.bytes,
            }
        }
        status => return Err(format!("the upstream answered {status}")),
    };
    serde_json::from_slice::<ImageIndex>(&bytes)
        .map(|i| i.manifests)
        .map_err(|e| format!("not an image index: {e}"))
}
