//! Blobs by redirect to the bucket (`blob_delivery = redirect` with a
//! blob storage that presigns URLs): no byte of a cached blob passes
//! through the proxy, so the hosted platforms' 10 MiB bodies and 30 s
//! requests bound nothing. A miss is copied into the bucket first, while
//! the client waits, and answered the same way once it is checked; one that
//! takes longer than [`COPY_DEADLINE`] is answered with the upstream's own
//! redirect, as without a bucket, and the copy goes on beside the answer
//! as long as the platform lets it.

use crate::cache::blob_copy::BlobCopy;
use crate::cache::blob_health;
use crate::cache::blob_storage::BlobStorage;
use crate::cache::blob_store::{self, hit, storage_of, stored_blob};
use crate::cache::blob_tee;
use crate::cache::bound;
use crate::cache::detached::Unread;
use crate::cache::layout::{self, BlobEntry, Scope};
use crate::cache::lease::{self, Lease};
use crate::host::notes::Outcome;
use crate::host::{Body, Headers, Host, Response};
use crate::oci::digest::Digest;
use crate::oci::error::RegistryError;
use crate::relay::Call;
use crate::telemetry::stats;
use futures::future::Either;
use std::time::Duration;

/// How long a presigned URL of a cached blob holds: the client follows it
/// at once.
const PRESIGNED_TTL: Duration = Duration::from_secs(300);
/// How long a client waits for a miss to be copied: within a hosted
/// platform's 30 s a request, with time left to answer otherwise.
const COPY_DEADLINE: Duration = Duration::from_secs(20);

/// A `307` to a presigned URL of the blob in the bucket, copied there first
/// on a miss; `None` when the storage has no such URLs, the blob is not
/// the kind kept, or its copy did not finish in time.
pub async fn answer<H: Host>(
    call: &Call<'_, H>,
    digest: &Digest,
) -> Result<Option<Response<H::Stream>>, RegistryError> {
    let Some(storage) = storage_of(call.host)? else {
        return Ok(None);
    };
    let scope = super::scope(call);
    let repo = call.upstream_name.as_ref().map(|n| n.as_str());
    let seen_key = scope.seen_key(repo.unwrap_or_default(), digest.as_str());
    if let Some(entry) = hit(call, storage.as_ref(), &scope, digest, &seen_key).await? {
        // Never a client sent to a bucket that is away.
        if !blob_health::answers(call.host, storage.as_ref()).await {
            stats::record_instead(call.host, Outcome::Bypass);
            return Ok(None);
        }
        return Ok(presigned(storage.as_ref(), &entry, &scope, digest, "HIT"));
    }
    let keeps = digest.as_str().starts_with("sha256:") && !call.with_client_credentials();
    if !keeps || !presigns(storage.as_ref(), &scope, digest) {
        return Ok(None);
    }
    let Some(entry) = copied(call, storage.clone(), &scope, digest).await? else {
        return Ok(None);
    };
    Ok(presigned(storage.as_ref(), &entry, &scope, digest, "MISS"))
}

fn presigned<S>(
    storage: &dyn BlobStorage,
    entry: &BlobEntry,
    scope: &Scope,
    digest: &Digest,
    outcome: &str,
) -> Option<Response<S>> {
    let blob = stored_blob(entry, scope, digest.as_str());
    let url = storage.presigned_get(&blob, PRESIGNED_TTL)?;
    let mut headers = Headers::default();
    headers.push("location", url.as_str());
    headers.push("docker-content-digest", digest.as_str());
    headers.push("cache-control", "no-store");
    headers.push("x-cache", outcome);
    Some(Response {
        status: 307,
        headers,
        body: Body::Empty,
    })
}

/// Whether the storage can answer with a URL at all (asked of the blob's
/// would-be place: signing is local).
fn presigns(storage: &dyn BlobStorage, scope: &Scope, digest: &Digest) -> bool {
    let probe = BlobEntry {
        size: 0,
        chunk_size: 1,
        upload: String::new(),
        private: false,
        media_type: String::new(),
        store: storage.name(),
        queued: None,
        read: None,
    };
    storage
        .presigned_get(&stored_blob(&probe, scope, digest.as_str()), PRESIGNED_TTL)
        .is_some()
}

/// The blob copied into the storage by this request within
/// [`COPY_DEADLINE`]; its entry. `None` when another request is copying
/// it (that one answers its own client so), or the upstream's answer is
/// not a blob to keep.
async fn copied<H: Host>(
    call: &Call<'_, H>,
    storage: std::rc::Rc<dyn BlobStorage>,
    scope: &Scope,
    digest: &Digest,
) -> Result<Option<BlobEntry>, RegistryError> {
    let host = call.host;
    let lease_key = scope.lease_key(digest.as_str());
    let upload = layout::upload_id(crate::now(), crate::random_u64());
    let repo = call.upstream_name.as_ref().map(|n| n.as_str());
    let lease = Lease::new(crate::now(), &upload, repo.unwrap_or_default(), false);
    let Some(mut lease) = lease::take_lease(host.cache(), &lease_key, lease) else {
        return Ok(None);
    };
    let asked = call.upstream("GET");
    let resp = lease::beating(asked, host.timer().as_ref(), || lease.renew()).await?;
    let settings = &call.target.route.cache;
    let size = resp
        .headers
        .get("content-length")
        .and_then(|l| l.parse::<u64>().ok())
        .filter(|&s| s <= settings.max_blob_size && s <= bound::max_size(host));
    let (Some(size), 200, Body::Stream(upstream)) = (size, resp.status, resp.body) else {
        return Ok(None);
    };
    let Some(reservation) = blob_store::room_for(host, storage.as_ref(), size).await else {
        return Ok(None);
    };
    stats::record(host, Outcome::Miss);
    let media_type = resp.headers.get("content-type").map(str::to_string);
    let unread = blob_store::unread_of(host, &lease);
    let copy = blob_store::new_copy(
        call,
        storage.clone(),
        scope.clone(),
        digest,
        lease,
        size,
        media_type,
    )
    .reserving(reservation);
    if !within_deadline(host, copy, unread, upstream).await {
        return Ok(None);
    }
    Ok(committed_entry(
        call,
        storage.as_ref(),
        scope,
        digest,
        &upload,
    ))
}

/// Runs `copy`, which no client reads, at the upstream's pace, here (work
/// beside the answer runs only once the answer's head is out); whether it
/// ended within [`COPY_DEADLINE`]. Past it the copy goes on beside the
/// answer, as one whose client has gone.
async fn within_deadline<H: Host>(
    host: &H,
    copy: BlobCopy,
    unread: Unread,
    upstream: H::Stream,
) -> bool {
    let (unread, awaited) = unread.awaited();
    let mut copying = blob_tee::unread(copy, unread, upstream, host.timer());
    let deadline = host.timer().sleep(COPY_DEADLINE);
    if let Either::Right(_) = futures::future::select(&mut copying, deadline).await {
        drop(awaited);
        host.alongside().push(copying);
        return false;
    }
    true
}

/// The entry `upload` committed.
fn committed_entry<H: Host>(
    call: &Call<'_, H>,
    storage: &dyn BlobStorage,
    scope: &Scope,
    digest: &Digest,
    upload: &str,
) -> Option<BlobEntry> {
    let cache = call.host.cache();
    BlobEntry::load(cache.as_ref(), &scope.blob_key(digest.as_str()))
        .filter(|e| e.upload == upload && e.store == storage.name())
}
