//! Following another request's copy of a blob: its chunks stream to this
//! client as they land in the store, on this instance or any other sharing
//! it, so a crowd asking for one uncached blob costs one upstream fetch.
//! The last bytes go out only once the copy is committed (its digest
//! checked); a copy that stops (client gone, digest wrong, instance dead,
//! lease expired) makes its followers fail, and the next request starts
//! afresh.

use crate::cache::eviction::Lease;
use crate::cache::layout::{BlobEntry, Scope};
use crate::host::{Body, Chunks, Headers, Host, Kv, Response, Timer};
use crate::oci::digest::Digest;
use crate::relay::Call;
use std::rc::Rc;
use std::time::Duration;

/// How often a follower looks for the next chunk.
const POLL: Duration = Duration::from_millis(20);

/// The answer that follows the copy under `lease_key`, or `None` when that
/// copy cannot be followed (another repository, private, gone).
pub async fn follow<H: Host>(
    call: &Call<'_, H>,
    scope: &Scope,
    digest: &Digest,
    lease_key: &str,
) -> Option<Response<H::Stream>> {
    let kv = call.host.cache();
    let timer = call.host.timer();
    let repo = call.upstream_name.as_ref()?.as_str();
    // The leader takes its lease before it asks the upstream: wait for the
    // upstream's answer (size and type), as a client of it would.
    let (lease, size, media_type) = loop {
        let lease = current(kv.as_ref(), lease_key)?;
        if !lease.live(crate::now()) || lease.private || lease.repository != repo {
            return None;
        }
        if let (Some(size), Some(media_type)) = (lease.size, lease.media_type.clone()) {
            break (lease, size, media_type);
        }
        timer.sleep(POLL).await;
    };
    let mut headers = Headers::default();
    headers.push("content-type", media_type);
    headers.push("content-length", size.to_string());
    headers.push("docker-content-digest", digest.as_str());
    headers.push("x-cache", "COALESCED");
    let following = Following {
        kv,
        timer,
        blob_key: scope.blob_key(digest.as_str()),
        chunk_prefix: scope.chunk_prefix(digest.as_str(), &lease.upload),
        lease_key: lease_key.to_string(),
        upload: lease.upload,
        size,
        sent: 0,
        next: 0,
    };
    Some(Response {
        status: 200,
        headers,
        body: Body::Generated(following.into_stream()),
    })
}

fn current(kv: &dyn Kv, lease_key: &str) -> Option<Lease> {
    kv.get(lease_key)
        .ok()
        .flatten()
        .and_then(|v| Lease::parse(&v))
}

struct Following {
    kv: Rc<dyn Kv>,
    timer: Rc<dyn Timer>,
    blob_key: String,
    chunk_prefix: String,
    lease_key: String,
    upload: String,
    size: u64,
    sent: u64,
    next: u64,
}

impl Following {
    fn into_stream(self) -> Chunks {
        Box::pin(futures::stream::unfold(self, |mut f| async move {
            if f.sent >= f.size {
                return None;
            }
            let chunk = match f.next_chunk().await {
                Ok(c) => c,
                Err(e) => {
                    f.sent = f.size;
                    return Some((Err(e), f));
                }
            };
            f.sent += chunk.len() as u64;
            f.next += 1;
            Some((Ok(chunk), f))
        }))
    }

    /// The next chunk once stored; the last one once the copy is committed.
    async fn next_chunk(&mut self) -> Result<Vec<u8>, String> {
        let key = format!("{}{}", self.chunk_prefix, self.next);
        loop {
            // Committed first: a copy stores every chunk before it commits,
            // so a chunk read after that is there.
            let committed = self.committed();
            let chunk = self.kv.get(&key)?;
            let last = chunk
                .as_ref()
                .is_some_and(|c| self.sent + c.len() as u64 >= self.size);
            match chunk {
                Some(c) if !last || committed => return Ok(c),
                None if committed => return Err(format!("cached blob lost {key}")),
                _ => {}
            }
            let leading = current(self.kv.as_ref(), &self.lease_key)
                .is_some_and(|l| l.upload == self.upload && l.live(crate::now()));
            if !leading && !self.committed() {
                return Err("the copy this request followed stopped".to_string());
            }
            self.timer.sleep(POLL).await;
        }
    }

    fn committed(&self) -> bool {
        self.kv
            .get(&self.blob_key)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice::<BlobEntry>(&v).ok())
            .is_some_and(|e| e.upload == self.upload)
    }
}
