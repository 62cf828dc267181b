//! Blobs through the cache. A miss streams to the client and, on the way,
//! into the blob storage (`blob_copy`), one copy per blob at a time; hits
//! are read back from it, with `HEAD` and `Range`.

use crate::cache::blob_copy::{BlobCopy, remember};
use crate::cache::blob_follow::{self, Followed};
use crate::cache::blob_health::{self, Started, Waiting};
use crate::cache::blob_storage::{self, BlobStorage, StoredBlob, Upload};
use crate::cache::blob_tee;
use crate::cache::bound;
use crate::cache::detached::Unread;
use crate::cache::layout::{self, BlobEntry, Scope};
use crate::cache::lease::{self, HeldLease, Lease};
use crate::host::notes::Outcome;
use crate::host::{Body, Headers, Host, Response};
use crate::oci::digest::Digest;
use crate::oci::error::ErrorCode;
use crate::oci::error::RegistryError;
use crate::oci::range::{self, ByteRange};
use crate::relay::Call;
use crate::telemetry::stats;
use std::rc::Rc;

/// A blob `GET` or `HEAD` through the cache: a hit streams from the blob
/// storage (a range of it for `Range`); a whole `GET` that misses is copied
/// in as it streams to the client, one copy per blob across instances
/// (the others follow it); anything else is relayed.
pub async fn get<H: Host>(
    call: &Call<'_, H>,
    digest: &Digest,
) -> Result<Response<H::Stream>, RegistryError> {
    let host = call.host;
    let Some(storage) = storage_of(host)? else {
        return call.relay().await;
    };
    let scope = super::scope(call);
    let repo = call
        .upstream_name
        .as_ref()
        .map(|n| n.as_str())
        .unwrap_or_default();
    let seen_key = scope.seen_key(repo, digest.as_str());
    if let Some(entry) = hit(call, storage.as_ref(), &scope, digest, &seen_key).await? {
        return from_storage(call, storage.as_ref(), &scope, digest, &entry).await;
    }
    // Only a whole GET is worth keeping.
    if call.req.method != "GET"
        || call.req.headers.get("range").is_some()
        || !digest.as_str().starts_with("sha256:")
    {
        return call.relay().await;
    }
    miss(call, storage, scope, digest, repo).await
}

/// A hit, streamed from the blob storage; relayed when the storage does not
/// answer, or fails or hangs before its first byte (a bucket that stopped
/// answering while believed up: then taken as away).
async fn from_storage<H: Host>(
    call: &Call<'_, H>,
    storage: &dyn BlobStorage,
    scope: &Scope,
    digest: &Digest,
    entry: &BlobEntry,
) -> Result<Response<H::Stream>, RegistryError> {
    if !blob_health::answers(call.host, storage).await {
        stats::record_instead(call.host, Outcome::Bypass);
        return call.relay().await;
    }
    let blob = stored_blob(entry, scope, digest.as_str());
    let answer = serve(call, storage, &blob, &entry.media_type);
    once_begun(call, storage, answer, Waiting::Storage).await
}

/// `answer` from the storage once its first bytes are there; else the
/// upstream's (the storage failed before a byte, or hangs).
async fn once_begun<H: Host>(
    call: &Call<'_, H>,
    storage: &dyn BlobStorage,
    mut answer: Response<H::Stream>,
    waiting: Waiting,
) -> Result<Response<H::Stream>, RegistryError> {
    match blob_health::first_bytes(call.host, storage, &mut answer.body, waiting).await {
        Started::Yes => Ok(answer),
        Started::Failed => call.relay().await,
        Started::Hung => {
            stats::record_instead(call.host, Outcome::Bypass);
            call.relay().await
        }
    }
}

/// The cached entry of `digest` that may answer this call (counted as a
/// hit), if any.
pub(super) async fn hit<H: Host>(
    call: &Call<'_, H>,
    storage: &dyn BlobStorage,
    scope: &Scope,
    digest: &Digest,
    seen_key: &str,
) -> Result<Option<BlobEntry>, RegistryError> {
    let cache = call.host.cache();
    let entry = BlobEntry::load(cache.as_ref(), &scope.blob_key(digest.as_str()))
        .filter(|e| e.store == storage.name());
    let Some(entry) = entry else {
        return Ok(None);
    };
    if !usable(call, &entry, seen_key).await? {
        return Ok(None);
    }
    stats::record(call.host, Outcome::Hit);
    let key = scope.blob_key(digest.as_str());
    let entry = bound::note_read(
        cache.as_ref(),
        &key,
        entry,
        call.target.route.cache.blob_ttl,
    );
    bound::touch(cache.as_ref(), &entry);
    Ok(Some(entry))
}

/// The blob storage, `None` where blobs are not kept (a key budget
/// without a bucket), or a 503 naming the setting that stops it.
pub(super) fn storage_of<H: Host>(host: &H) -> Result<Option<Rc<dyn BlobStorage>>, RegistryError> {
    blob_storage::open(host).map_err(|e| {
        eprintln!("cache: {e}");
        RegistryError::new(503, ErrorCode::Unknown, e)
    })
}

/// The stored blob an entry of `digest` in `scope` names.
pub(super) fn stored_blob(entry: &BlobEntry, scope: &Scope, digest: &str) -> StoredBlob {
    StoredBlob {
        upload: Upload {
            scope: scope.clone(),
            digest: digest.to_string(),
            id: entry.upload.clone(),
        },
        size: entry.size,
        part_size: entry.chunk_size.max(1),
    }
}

/// One copy per blob at a time, across instances: the others follow it.
async fn miss<H: Host>(
    call: &Call<'_, H>,
    storage: Rc<dyn BlobStorage>,
    scope: Scope,
    digest: &Digest,
    repo: &str,
) -> Result<Response<H::Stream>, RegistryError> {
    let host = call.host;
    // Neither a copy into a storage that is away nor a follower of one.
    if !blob_health::answers(host, storage.as_ref()).await {
        stats::record(host, Outcome::Bypass);
        return call.relay().await;
    }
    let lease_key = scope.lease_key(digest.as_str());
    let upload = layout::upload_id(crate::now(), crate::random_u64());
    let private = call.with_client_credentials();
    let lease = Lease::new(crate::now(), &upload, repo, private);
    let Some(lease) = lease::take_lease(host.cache(), &lease_key, lease.clone()) else {
        if private {
            return call.relay().await;
        }
        return match blob_follow::follow(call, storage.clone(), &scope, digest, &lease_key).await {
            Followed::Answer(answer) => {
                stats::record(host, Outcome::Coalesced);
                once_begun(call, storage.as_ref(), answer, Waiting::Copy).await
            }
            // Its instance is gone: this request copies in its place.
            Followed::Gone(gone) => {
                match lease::take_over(host.cache(), &lease_key, &gone, lease) {
                    Some(lease) => copy(call, storage, scope, digest, lease).await,
                    None => call.relay().await,
                }
            }
            // The copy may have committed while this request looked: a
            // small blob's copy is over before one poll of its lease.
            Followed::Not => {
                let seen_key = scope.seen_key(repo, digest.as_str());
                match hit(call, storage.as_ref(), &scope, digest, &seen_key).await? {
                    Some(entry) => {
                        from_storage(call, storage.as_ref(), &scope, digest, &entry).await
                    }
                    None => call.relay().await,
                }
            }
        };
    };
    copy(call, storage, scope, digest, lease).await
}

/// The upstream's blob, streamed to the client and copied into the cache
/// under the lease; one too big for the cache only streams.
async fn copy<H: Host>(
    call: &Call<'_, H>,
    storage: Rc<dyn BlobStorage>,
    scope: Scope,
    digest: &Digest,
    mut lease: HeldLease,
) -> Result<Response<H::Stream>, RegistryError> {
    let host = call.host;
    let asked = call.upstream("GET");
    let resp = lease::beating(asked, host.timer().as_ref(), || lease.renew()).await?;
    let size = resp
        .headers
        .get("content-length")
        .and_then(|l| l.parse::<u64>().ok());
    let settings = &call.target.route.cache;
    let max_size = bound::max_size(host);
    let fits = |s: u64| s <= settings.max_blob_size && s <= max_size;
    let (Some(size), true) = (size, resp.status == 200 && size.is_some_and(fits)) else {
        return Ok(call.pass_back(resp));
    };
    let Some(reservation) = room_for(host, storage.as_ref(), size).await else {
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
    let media_type = headers.get("content-type").map(str::to_string);
    let unread = unread_of(host, &lease);
    let copy = new_copy(call, storage, scope, digest, lease, size, media_type);
    let copy = copy.reserving(reservation);
    Ok(Response {
        status: 200,
        headers,
        body: Body::Generated(blob_tee::start(
            copy,
            unread,
            upstream,
            host.alongside(),
            host.timer(),
        )),
    })
}

/// Room in the bound for a copy of `size` bytes; none (it only streams)
/// while copies under way and pins fill the bound, or the store refuses.
pub(super) async fn room_for<H: Host>(
    host: &H,
    storage: &dyn BlobStorage,
    size: u64,
) -> Option<bound::Reservation> {
    let max = bound::max_size(host);
    match bound::reserve(host.cache(), storage, size, max).await {
        Ok(Some(reservation)) => Some(reservation),
        Ok(None) => {
            eprintln!(
                "cache: no room for a copy of {size} bytes within cache_max_size; streaming only"
            );
            None
        }
        Err(e) => {
            eprintln!("cache: cannot count a copy against cache_max_size, streaming only: {e}");
            None
        }
    }
}

/// What lets the copy under `lease` go on once its client has gone.
pub(super) fn unread_of<H: Host>(host: &H, lease: &HeldLease) -> Unread {
    let max = host.settings().max_detached_copies;
    let upload = &lease.lease().upload;
    Unread::new(
        host.health(),
        host.cache(),
        max,
        lease.followers_key(),
        upload,
    )
}

/// The copy of `digest`, `size` bytes long, under `lease`; it says what it
/// is in the lease, so others can follow it.
pub(super) fn new_copy<H: Host>(
    call: &Call<'_, H>,
    storage: Rc<dyn BlobStorage>,
    scope: Scope,
    digest: &Digest,
    mut lease: HeldLease,
    size: u64,
    media_type: Option<String>,
) -> BlobCopy {
    let repo = call.upstream_name.as_ref().map(|n| n.as_str());
    let seen_key = scope.seen_key(repo.unwrap_or_default(), digest.as_str());
    let media_type = media_type.unwrap_or_else(|| "application/octet-stream".to_string());
    let part_size = storage.part_size(call.target.route.cache.chunk_size);
    lease.describe(size, &media_type, part_size, storage.name());
    let entry = BlobEntry {
        size,
        chunk_size: part_size,
        upload: lease.lease().upload.clone(),
        private: lease.lease().private,
        media_type,
        store: storage.name(),
        queued: None,
        read: None,
    };
    let upload = Upload {
        scope,
        digest: digest.as_str().to_string(),
        id: entry.upload.clone(),
    };
    let kv = call.host.cache();
    let max_size = bound::max_size(call.host);
    BlobCopy::new(kv, storage, upload, entry, seen_key, lease, max_size)
}

/// After a delete in one repository: the blob is no longer served there
/// without the upstream confirming it again; other repositories that hold
/// it keep it (distribution deletes a blob's link in one repository only).
pub fn forget<H: Host>(call: &Call<'_, H>, digest: &Digest) {
    let scope = super::scope(call);
    let Some(repo) = call.upstream_name.as_ref() else {
        return;
    };
    let seen_key = scope.seen_key(repo.as_str(), digest.as_str());
    if let Err(e) = call.host.cache().delete(&seen_key) {
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
    // What a client's own credentials confirmed says nothing of what anyone
    // else may see: a mark would tell which layers a private repository has.
    if !entry.private && !call.with_client_credentials() {
        remember(call.host.cache().as_ref(), seen_key);
    }
    Ok(true)
}

fn serve<H: Host>(
    call: &Call<'_, H>,
    storage: &dyn BlobStorage,
    blob: &StoredBlob,
    media_type: &str,
) -> Response<H::Stream> {
    let digest = blob.upload.digest.as_str();
    let mut headers = Headers::default();
    headers.push("content-type", media_type);
    headers.push("docker-content-digest", digest);
    headers.push("etag", format!("\"{digest}\""));
    headers.push("accept-ranges", "bytes");
    headers.push("x-cache", "HIT");
    let size = blob.size;
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
    let body = match call.req.method.as_str() {
        // A HEAD moves no byte out of the storage.
        "HEAD" => Body::Empty,
        _ => Body::Generated(storage.read(blob, start, end)),
    };
    Response {
        status,
        headers,
        body,
    }
}
