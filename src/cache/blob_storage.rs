//! The one seam between the blob cache and where its bytes live, in the
//! manner of distribution's `StorageDriver`: a copy writes an upload's parts
//! (others may read them while it goes on, where the backend can read
//! them back), then completes or aborts it; a
//! completed upload is the blob, read whole or in ranges, deleted when
//! evicted. The index of what is cached (entries, leases, the eviction
//! queue) stays in the key-value store whichever backend holds the bytes.
//!
//! Backends: [`files`] (the default: a directory Spin mounts writable),
//! [`kv_chunks`] (parts are the cache store's chunks, where there is no
//! such directory) and [`s3`] (an S3-compatible bucket over outbound HTTP), which
//! [`staged`] fronts for followers where the store holds chunks. One
//! conformance suite runs against each.

mod error;
pub mod files;
pub mod kv_chunks;
pub mod s3;
pub mod staged;

#[cfg(test)]
pub mod conformance;
#[cfg(test)]
pub mod memory;

use crate::cache::layout::{self, Scope};
use crate::host::{Chunks, Host};
use crate::oci::digest::Digest;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;
use url::Url;

pub use error::StorageError;

/// A backend's answer, later.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + 'a>>;

/// One write of one blob into one cache partition: its parts while it goes
/// on, and once completed, the blob. Two writes of a digest never share
/// bytes, so evicting one leaves a later one whole.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upload {
    pub scope: Scope,
    pub digest: String,
    /// From [`layout::upload_id`](crate::cache::layout::upload_id): when the
    /// write started, so a collection can tell abandoned ones.
    pub id: String,
}

impl Upload {
    /// The upload a key read back from a backend names; `None` unless every
    /// part is one the cache writes (a bucket may hold others' objects too).
    pub fn from_key_parts(scope: &str, digest: &str, id: &str) -> Option<Self> {
        let sha256 = digest.starts_with("sha256:") && Digest::parse(digest).is_ok();
        if !sha256 || !layout::is_upload_id(id) {
            return None;
        }
        Some(Self {
            scope: Scope::parse(scope)?,
            digest: digest.to_string(),
            id: id.to_string(),
        })
    }
}

/// A backend's answer of words, typed ([`StorageError::from`] a store's
/// words: unavailable).
fn typed<'a, T>(
    answer: impl Future<Output = Result<T, impl Into<StorageError>>> + 'a,
) -> StoreFuture<'a, T> {
    Box::pin(async move { answer.await.map_err(Into::into) })
}

/// A completed upload, as the index records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub upload: Upload,
    pub size: u64,
    pub part_size: u64,
}

impl StoredBlob {
    /// How many parts the blob spans; the last may be short.
    pub fn parts(&self) -> u64 {
        self.size.div_ceil(self.part_size.max(1))
    }
}

pub trait BlobStorage {
    /// Which storage holds a blob, as its index entry records it: an entry
    /// written through another backend (or bucket) is not read through this.
    fn name(&self) -> String;
    /// The size of every part but the last, given the route's chunk size.
    fn part_size(&self, chunk_size: u64) -> u64;
    /// Whether others may follow an upload while it goes on (reading its
    /// parts, or waiting for its blob), so a crowd follows one copy instead
    /// of each fetching the blob.
    fn followable(&self) -> bool;
    /// Whether an upload's stored parts read back while it goes on. A
    /// bucket's multipart upload keeps them to itself until completed:
    /// whoever is behind what a copy holds in memory then waits for the
    /// blob.
    fn reads_parts_back(&self) -> bool {
        true
    }
    /// Notes that a reader follows the upload from its start, so the
    /// backend may serve it [`follow_part`](Self::follow_part) from nearer.
    fn follow(&self, _upload: &Upload) {}
    /// Whether the copy hashes what it stores while it is stored, rather
    /// than read it back after the answer: where the store's writes wait
    /// on the network and readers follow, who wait for the check, and
    /// where parts do not read back.
    fn check_on_the_way(&self) -> bool {
        false
    }
    /// Stores parts `first..` of an upload, in order.
    fn put_parts<'a>(
        &'a self,
        upload: &'a Upload,
        first: u64,
        parts: Vec<Rc<Vec<u8>>>,
    ) -> StoreFuture<'a, ()>;
    /// Part `n` of an upload under way; `None` while it is not stored, and
    /// always unless the backend [reads parts back](Self::reads_parts_back).
    fn get_part<'a>(&'a self, upload: &'a Upload, n: u64) -> StoreFuture<'a, Option<Vec<u8>>>;
    /// Bytes `range` of part `n` of an upload under way (fewer where the
    /// part is shorter), for a reader that needs only them: a part is 5 MiB
    /// in a bucket, and a slow client's read-back held it whole beside the
    /// copy's own.
    fn get_part_range<'a>(
        &'a self,
        upload: &'a Upload,
        n: u64,
        range: Range<usize>,
    ) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let part = self.get_part(upload, n).await?;
            Ok(part.map(|p| part_range(&p, range)))
        })
    }
    /// Part `n` for a reader following the upload: the same bytes, from
    /// wherever the backend serves them fastest (the digest check reads
    /// [`get_part`](Self::get_part), what the blob is made of).
    fn follow_part<'a>(&'a self, upload: &'a Upload, n: u64) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.get_part(upload, n)
    }
    /// Makes the upload's parts the blob. Called only once its digest was
    /// checked; nothing of the upload is served before.
    fn complete<'a>(&'a self, blob: &'a StoredBlob) -> StoreFuture<'a, ()>;
    /// Removes what an unfinished upload stored.
    fn abort<'a>(&'a self, upload: &'a Upload, parts: u64) -> StoreFuture<'a, ()>;
    /// Bytes `start..end` of a completed blob.
    fn read(&self, blob: &StoredBlob, start: u64, end: u64) -> Chunks;
    /// Removes a completed blob.
    fn delete<'a>(&'a self, blob: &'a StoredBlob) -> StoreFuture<'a, ()>;
    /// Removes what uploads that started [`UPLOAD_GRACE_SECS`] before `now`
    /// left, except parts that are a `completed` blob; how many removed.
    ///
    /// [`UPLOAD_GRACE_SECS`]: crate::cache::layout::UPLOAD_GRACE_SECS
    fn collect_abandoned<'a>(
        &'a self,
        now: u64,
        completed: &'a dyn Fn(&Upload) -> bool,
    ) -> StoreFuture<'a, u64>;
    /// A URL that serves the blob for `ttl` to whoever has it, signed, with
    /// no credential in it: where the backend has such URLs.
    fn presigned_get(&self, blob: &StoredBlob, ttl: Duration) -> Option<Url>;
    /// A request that says whether the backend answers at all, whatever
    /// it holds; `None` for one that lives in the cache store, which
    /// answers when that store does (and is asked before).
    fn answers(&self) -> Option<StoreFuture<'_, ()>> {
        None
    }
}

/// Bytes `range` of a part, fewer where the part is shorter.
fn part_range(part: &[u8], range: Range<usize>) -> Vec<u8> {
    let end = range.end.min(part.len());
    part[range.start.min(end)..end].to_vec()
}

/// The backend the `blob_store` variable names (`files`, the default, `kv`
/// or `s3`), or why it cannot be used, naming the variable; `None` for the
/// cache store when it keeps no blobs (a key budget). `files` without a
/// writable directory (a runtime that mounts none, or read-only) is the
/// cache store, as `kv` (said once, by [`files::open`]).
pub fn open<H: Host>(host: &H) -> Result<Option<Rc<dyn BlobStorage>>, String> {
    let choice = host.variable("blob_store").unwrap_or_default();
    match choice.trim() {
        "" | "files" => match host.blob_directory() {
            Some(root) => match files::open(&root, host.health().as_ref()) {
                Ok(files) => Ok(Some(Rc::new(files))),
                Err(_) => Ok(in_the_cache_store(host)),
            },
            None => Ok(in_the_cache_store(host)),
        },
        "kv" => Ok(in_the_cache_store(host)),
        "s3" => {
            let bucket = Rc::new(s3::S3Blobs::new(
                s3::S3Config::read(host)?,
                host.outbound(),
            )?);
            // A store with room for chunks stages the copies under way.
            Ok(Some(match host.cache().holds_blobs() {
                true => Rc::new(staged::Staged::new(bucket, host.cache())),
                false => bucket,
            }))
        }
        other => Err(format!(
            "blob_store is {other:?}: it must be files, kv or s3"
        )),
    }
}

/// Blobs as the cache store's chunks, where it has room for them.
fn in_the_cache_store<H: Host>(host: &H) -> Option<Rc<dyn BlobStorage>> {
    let cache = host.cache();
    cache
        .holds_blobs()
        .then(|| Rc::new(kv_chunks::KvChunks::new(cache)) as Rc<dyn BlobStorage>)
}
