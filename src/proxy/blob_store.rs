//! Blobs through the cache. A miss streams to the client and, on the way,
//! into the store in fixed-size chunks while its sha256 is computed; the
//! blob becomes visible only when the stream completed and the digest
//! matched, and the last bytes reach the client only then, so a corrupt
//! upstream blob fails the client's pull too. Hits are served in chunks,
//! with `HEAD` and `Range`.

use super::host::{Body, Chunks, Headers, Host, Kv, Response};
use super::relay::Call;
use super::stats::{self, Outcome};
use crate::cache::{self, BlobEntry, Scope};
use crate::digest::Digest;
use crate::error::RegistryError;
use crate::range::{self, ByteRange};
use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use std::rc::Rc;

pub async fn get<H: Host>(
    call: &Call<'_, H>,
    digest: &Digest,
) -> Result<Response<H::Stream>, RegistryError> {
    let host = call.host;
    let scope = call.cache_scope();
    let entry = host
        .cache()
        .get(&scope.blob_key(digest.as_str()))
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice::<BlobEntry>(&v).ok());
    let repo = call
        .upstream_name
        .as_ref()
        .map(|n| n.as_str())
        .unwrap_or_default();
    let seen_key = scope.seen_key(repo, digest.as_str());
    if let Some(entry) = entry
        && usable(call, &entry, &seen_key).await?
    {
        stats::record(host, Outcome::Hit);
        return Ok(serve(call, host.cache(), scope, digest.as_str(), entry));
    }
    // Only a whole GET is worth keeping.
    if call.req.method != "GET" || call.req.headers.get("range").is_some() {
        return call.relay().await;
    }
    let resp = call.upstream("GET").await?;
    let size = resp
        .headers
        .get("content-length")
        .and_then(|l| l.parse::<u64>().ok());
    let keep = resp.status == 200
        && digest.as_str().starts_with("sha256:")
        && size.is_some_and(|s| s <= call.target.route.cache.max_blob_size);
    let (Some(size), true) = (size, keep) else {
        return Ok(call.pass_back(resp));
    };
    let mut headers = call.client_headers(resp.status, &resp.headers);
    let Body::Stream(upstream) = resp.body else {
        return Ok(Response {
            status: resp.status,
            headers,
            body: resp.body,
        });
    };
    headers.push("x-cache", "MISS");
    stats::record(host, Outcome::Miss);
    let entry = BlobEntry {
        size,
        chunk_size: call.target.route.cache.chunk_size,
        upload: cache::upload_id(super::now(), super::random_u64()),
        private: call.with_client_credentials(),
        media_type: headers
            .get("content-type")
            .unwrap_or("application/octet-stream")
            .to_string(),
    };
    let tee = Tee {
        seen_key,
        kv: host.cache(),
        scope,
        digest: digest.as_str().to_string(),
        entry,
        hasher: Sha256::new(),
        buf: Vec::new(),
        received: 0,
        stored: 0,
        storing: true,
    };
    Ok(Response {
        status: 200,
        headers,
        body: Body::Generated(tee.into_stream(upstream)),
    })
}

/// After a delete: the blob is no longer served (garbage collection takes
/// its chunks once they are old enough).
pub fn forget<H: Host>(call: &Call<'_, H>, digest: &Digest) {
    let scope = call.cache_scope();
    if let Err(e) = call.host.cache().delete(&scope.blob_key(digest.as_str())) {
        eprintln!("cache: cannot forget a deleted blob: {e}");
    }
}

/// A cached blob answers for this repository once the upstream has served
/// it there (else a `HEAD`, which moves no bytes, asks); a private one only
/// after this client's own credentials pass that `HEAD`, every time.
async fn usable<H: Host>(
    call: &Call<'_, H>,
    entry: &BlobEntry,
    seen_key: &str,
) -> Result<bool, RegistryError> {
    if entry.private && !call.with_client_credentials() {
        return Ok(false);
    }
    if !entry.private && call.host.cache().get(seen_key).ok().flatten().is_some() {
        return Ok(true);
    }
    if call.upstream("HEAD").await?.status != 200 {
        return Ok(false);
    }
    if !entry.private {
        remember(call.host.cache().as_ref(), seen_key);
    }
    Ok(true)
}

fn remember(kv: &dyn Kv, seen_key: &str) {
    if let Err(e) = kv.set(seen_key, b"1") {
        eprintln!("cache: cannot store a blob's repository: {e}");
    }
}

fn serve<H: Host>(
    call: &Call<'_, H>,
    kv: Rc<dyn Kv>,
    scope: Scope,
    digest: &str,
    entry: BlobEntry,
) -> Response<H::Stream> {
    let mut headers = Headers::default();
    headers.push("content-type", entry.media_type.clone());
    headers.push("docker-content-digest", digest);
    headers.push("etag", format!("\"{digest}\""));
    headers.push("accept-ranges", "bytes");
    headers.push("x-cache", "HIT");
    let size = entry.size;
    let (status, start, end) = match range::parse(call.req.headers.get("range"), size) {
        Some(ByteRange::Unsatisfiable) => {
            headers.push("content-range", format!("bytes */{size}"));
            return Response {
                status: 416,
                headers,
                body: Body::Empty,
            };
        }
        Some(ByteRange::Satisfiable { start, end }) => {
            headers.push("content-range", format!("bytes {start}-{end}/{size}"));
            (206, start, end + 1)
        }
        None => (200, 0, size),
    };
    headers.push("content-length", (end - start).to_string());
    Response {
        status,
        headers,
        body: Body::Generated(read_chunks(
            kv,
            scope,
            digest.to_string(),
            entry,
            start,
            end,
        )),
    }
}

/// Bytes `start..end` of a stored blob, a chunk at a time.
fn read_chunks(
    kv: Rc<dyn Kv>,
    scope: Scope,
    digest: String,
    entry: BlobEntry,
    start: u64,
    end: u64,
) -> Chunks {
    let chunk_size = entry.chunk_size.max(1);
    Box::pin(futures::stream::unfold(start, move |pos| {
        let (kv, scope, digest, upload) = (
            kv.clone(),
            scope.clone(),
            digest.clone(),
            entry.upload.clone(),
        );
        async move {
            if pos >= end {
                return None;
            }
            let n = pos / chunk_size;
            let chunk = match kv.get(&scope.chunk_key(&digest, &upload, n)) {
                Ok(Some(c)) => c,
                _ => return Some((Err(format!("cached blob {digest} lost chunk {n}")), end)),
            };
            let from = (pos - n * chunk_size) as usize;
            let to = (chunk.len() as u64).min(end - n * chunk_size) as usize;
            if from >= to {
                return Some((
                    Err(format!("cached blob {digest} has a short chunk {n}")),
                    end,
                ));
            }
            Some((Ok(chunk[from..to].to_vec()), n * chunk_size + to as u64))
        }
    }))
}

/// The copy of an upstream blob into the store.
struct Tee {
    /// Marks the blob as the upstream's in the requested repository.
    seen_key: String,
    kv: Rc<dyn Kv>,
    scope: Scope,
    digest: String,
    entry: BlobEntry,
    hasher: Sha256,
    buf: Vec<u8>,
    received: u64,
    /// Chunks written so far.
    stored: u64,
    /// False once the store refused a write: the client still gets the blob.
    storing: bool,
}

impl Tee {
    fn absorb(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.received += data.len() as u64;
        if !self.storing {
            return;
        }
        self.buf.extend_from_slice(data);
        let chunk = self.entry.chunk_size as usize;
        while self.buf.len() >= chunk {
            let rest = self.buf.split_off(chunk);
            let full = std::mem::replace(&mut self.buf, rest);
            self.store_chunk(&full);
        }
    }

    fn store_chunk(&mut self, bytes: &[u8]) {
        let key = self
            .scope
            .chunk_key(&self.digest, &self.entry.upload, self.stored);
        match self.kv.set(&key, bytes) {
            Ok(()) => self.stored += 1,
            Err(e) => {
                eprintln!("cache: cannot store a blob chunk, streaming only: {e}");
                self.storing = false;
            }
        }
    }

    /// At the end of the upstream body: whether it is the blob asked for;
    /// if so and every chunk is stored, the blob becomes visible.
    fn finish(&mut self) -> bool {
        let hasher = std::mem::take(&mut self.hasher);
        let verified = self.received == self.entry.size
            && format!("sha256:{:x}", hasher.finalize()) == self.digest;
        if verified && self.storing {
            if !self.buf.is_empty() {
                let last = std::mem::take(&mut self.buf);
                self.store_chunk(&last);
            }
            if self.storing
                && let Ok(v) = serde_json::to_vec(&self.entry)
            {
                match self.kv.set(&self.scope.blob_key(&self.digest), &v) {
                    Ok(()) => remember(self.kv.as_ref(), &self.seen_key),
                    Err(e) => eprintln!("cache: cannot commit a blob: {e}"),
                }
            }
        }
        if !verified {
            eprintln!(
                "cache: upstream blob {} does not match its digest or length; not cached",
                self.digest
            );
        }
        verified
    }

    fn into_stream<S>(self, upstream: S) -> Chunks
    where
        S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
    {
        // The latest piece is held back until the next arrives, so the last
        // one goes out only once the digest is known to match.
        struct State<S> {
            tee: Tee,
            upstream: S,
            pending: Option<Vec<u8>>,
            done: bool,
        }
        let state = State {
            tee: self,
            upstream,
            pending: None,
            done: false,
        };
        Box::pin(futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            loop {
                match st.upstream.next().await {
                    Some(Ok(data)) => {
                        st.tee.absorb(&data);
                        if let Some(previous) = st.pending.replace(data) {
                            return Some((Ok(previous), st));
                        }
                    }
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                    None => {
                        st.done = true;
                        if !st.tee.finish() {
                            return Some((
                                Err("the upstream blob does not match its digest".to_string()),
                                st,
                            ));
                        }
                        return st.pending.take().map(|last| (Ok(last), st));
                    }
                }
            }
        }))
    }
}
