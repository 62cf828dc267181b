//! Following another request's copy of a blob: its parts stream to this
//! client as they land in the blob storage, from this instance or any other
//! sharing it (where the storage keeps them to itself until the blob is
//! complete, as a bucket's multipart upload does, the follower waits for
//! the blob), so a crowd asking for one uncached blob costs one upstream
//! fetch.
//! The last bytes go out only once the copy's stored parts passed the
//! digest check (before it is completed in a bucket); a copy that stops
//! (client gone, digest wrong, instance dead, lease expired) makes its
//! followers fail, and the next request starts afresh. A request follows
//! only a copy it has seen beat in its lease: one whose lease stands still
//! (its instance was killed) it takes over, before its client saw a byte.

use crate::cache::blob_copy;
use crate::cache::blob_storage::{BlobStorage, StoredBlob, Upload};
use crate::cache::detached;
use crate::cache::layout::{self, BlobEntry, Scope};
use crate::cache::lease::{Lease, Pulse, Watch};
use crate::host::{Body, Chunks, Headers, Host, Kv, Response, Timer};
use crate::oci::digest::Digest;
use crate::relay::Call;
use std::rc::Rc;
use std::time::Duration;

/// How often a follower looks for the next part.
const POLL: Duration = Duration::from_millis(20);
/// Polls for a lease whose gate is open: a second at most.
const GATE_WAITS: u32 = 50;

/// What following the copy under a lease came to.
pub enum Followed<S> {
    /// The answer that follows it.
    Answer(Response<S>),
    /// Its lease stopped beating: the copy is gone, and this was its lease.
    Gone(Vec<u8>),
    /// It cannot be followed: another repository, private, no lease.
    Not,
}

/// Follows the copy under `lease_key` once it is seen alive: its lease
/// beats, and says what the blob is (the leader takes its lease before it
/// asks the upstream, so this waits for the upstream's answer, as a client
/// of it would).
pub async fn follow<H: Host>(
    call: &Call<'_, H>,
    storage: Rc<dyn BlobStorage>,
    scope: &Scope,
    digest: &Digest,
    lease_key: &str,
) -> Followed<H::Stream> {
    let Some(repo) = call.upstream_name.as_ref().map(|n| n.as_str()) else {
        return Followed::Not;
    };
    if !storage.followable() {
        return Followed::Not;
    }
    let kv = call.host.cache();
    let timer = call.host.timer();
    let (lease, size, media_type) = match alive(kv.as_ref(), timer.as_ref(), lease_key, repo).await
    {
        Seen::Alive(lease, size, media_type) => (lease, size, media_type),
        Seen::Gone(gone) => return Followed::Gone(gone),
        Seen::Not => return Followed::Not,
    };
    if lease.store.as_ref().is_some_and(|s| *s != storage.name()) {
        return Followed::Not;
    }
    let mut headers = Headers::default();
    headers.push("content-type", media_type);
    headers.push("content-length", size.to_string());
    headers.push("docker-content-digest", digest.as_str());
    headers.push("x-cache", "COALESCED");
    let part_size = part_size_of(&lease, storage.as_ref(), call);
    let followers_key = layout::lease_followers_key(lease_key, &lease.upload);
    let counted = detached::count_in(kv.clone(), followers_key, lease_key, &lease.upload);
    let following = Following {
        kv,
        storage,
        timer,
        blob_key: scope.blob_key(digest.as_str()),
        lease_key: lease_key.to_string(),
        blob: StoredBlob {
            upload: Upload {
                scope: scope.clone(),
                digest: digest.as_str().to_string(),
                id: lease.upload,
            },
            size,
            part_size,
        },
        sent: 0,
        next: 0,
        watch: Watch::default(),
        _counted: counted,
    };
    following.storage.follow(&following.blob.upload);
    Followed::Answer(Response {
        status: 200,
        headers,
        body: Body::Generated(following.into_stream()),
    })
}

/// The copy's own part size: another route to the same upstream may copy
/// in parts of another size (a lease from before it said so: the route's).
fn part_size_of<H: Host>(lease: &Lease, storage: &dyn BlobStorage, call: &Call<'_, H>) -> u64 {
    match lease.part_size {
        Some(size) => size.max(1),
        None => storage.part_size(call.target.route.cache.chunk_size),
    }
}

/// What watching a lease before following it showed.
enum Seen {
    Alive(Lease, u64, String),
    Gone(Vec<u8>),
    Not,
}

/// Watches the lease until its copy is seen beating and says what the
/// blob is, or is seen gone.
async fn alive(kv: &dyn Kv, timer: &dyn Timer, lease_key: &str, repo: &str) -> Seen {
    let mut gate_waits = 0;
    let mut watch = Watch::default();
    loop {
        let Some((value, lease)) = current(kv, lease_key) else {
            // The request that opened the gate is about to take the lease.
            let gate = layout::lease_gate_key(lease_key);
            let opened = kv.get(&gate).ok().flatten().is_some();
            if !opened || gate_waits >= GATE_WAITS {
                return Seen::Not;
            }
            gate_waits += 1;
            timer.sleep(POLL).await;
            continue;
        };
        if !lease.live(crate::now()) || lease.private || lease.repository != repo {
            return Seen::Not;
        }
        match (
            watch.see(&value, crate::now_millis()),
            lease.size,
            lease.media_type.clone(),
        ) {
            (Pulse::Gone, _, _) => return Seen::Gone(value),
            (Pulse::Alive, Some(size), Some(media_type)) => {
                return Seen::Alive(lease, size, media_type);
            }
            _ => timer.sleep(POLL).await,
        }
    }
}

/// The lease under `lease_key`, as stored and as read.
fn current(kv: &dyn Kv, lease_key: &str) -> Option<(Vec<u8>, Lease)> {
    let value = kv.get(lease_key).ok().flatten()?;
    let lease = Lease::parse(&value)?;
    Some((value, lease))
}

struct Following {
    kv: Rc<dyn Kv>,
    storage: Rc<dyn BlobStorage>,
    timer: Rc<dyn Timer>,
    blob_key: String,
    lease_key: String,
    blob: StoredBlob,
    sent: u64,
    next: u64,
    /// The copy's lease, whose beats say it goes on.
    watch: Watch,
    /// Counted among the copy's followers, so it goes on for this one
    /// after its own client has gone.
    _counted: detached::Follower,
}

impl Following {
    fn into_stream(self) -> Chunks {
        Box::pin(futures::stream::unfold(self, |mut f| async move {
            if f.sent >= f.blob.size {
                return None;
            }
            let chunk = match f.next_part().await {
                Ok(c) => c,
                Err(e) => {
                    f.sent = f.blob.size;
                    return Some((Err(e), f));
                }
            };
            f.sent += chunk.len() as u64;
            f.next += 1;
            Some((Ok(chunk), f))
        }))
    }

    /// The next part once stored; the last one once the copy's digest check
    /// passed (read from the blob if the backend removed the parts by then,
    /// or never showed them).
    async fn next_part(&mut self) -> Result<Vec<u8>, String> {
        let upload = &self.blob.upload;
        let last = self.next + 1 >= self.blob.parts();
        loop {
            // Committed first: a copy stores every part before it commits,
            // so a part read after that is there, or in the blob.
            let committed = self.committed();
            let lease = current(self.kv.as_ref(), &self.lease_key)
                .filter(|(value, l)| {
                    let beating = self.watch.see(value, crate::now_millis()) != Pulse::Gone;
                    l.upload == upload.id && l.live(crate::now()) && beating
                })
                .map(|(_, l)| l);
            // A copy that says how far it is is asked only for stored parts.
            let stored = lease
                .as_ref()
                .is_none_or(|l| l.parts.is_none_or(|p| p > self.next));
            let checked = lease.as_ref().is_some_and(|l| l.checked);
            if committed || (stored && (!last || checked)) {
                match self.storage.follow_part(upload, self.next).await? {
                    Some(part) => return Ok(part),
                    None if committed => {
                        let storage = self.storage.as_ref();
                        return blob_copy::completed_part(storage, &self.blob, self.next).await;
                    }
                    None => {}
                }
            }
            if lease.is_none() && !self.committed() {
                return Err("the copy this request followed stopped".to_string());
            }
            self.timer.sleep(POLL).await;
        }
    }

    fn committed(&self) -> bool {
        BlobEntry::load(self.kv.as_ref(), &self.blob_key)
            .is_some_and(|e| e.upload == self.blob.upload.id)
    }
}
