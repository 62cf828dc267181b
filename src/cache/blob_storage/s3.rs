//! Blobs in an S3-compatible bucket (AWS S3, R2, GCS with HMAC keys, MinIO,
//! Ceph RGW, Garage), reached over the component's outbound HTTP; every
//! request is a URL presigned by `rusty-s3`, which sends nothing itself.
//!
//! Object keys, under `s3_prefix`:
//! - `uploads/<scope>/<digest>/<upload>/<n>`: part `n` of a copy under way,
//!   one object each, so followers on any instance read them as they land;
//! - `blobs/<scope>/<digest>/<upload>`: the blob, made from the parts by a
//!   server-side copy (`UploadPartCopy`: no byte passes through the proxy
//!   again) once the digest was checked, when the parts are removed.
//!
//! So nothing unchecked is ever under `blobs/`, and a presigned GET of a
//! blob's key serves it in one piece.

mod config;
mod multipart;
mod requests;

pub use config::S3Config;

use super::{BlobStorage, StoreFuture, StoredBlob, Upload, typed};
use crate::cache::layout;
use crate::host::{Chunks, Outbound};
use futures::StreamExt;
use requests::Bucket;
use std::ops::Range;
use std::rc::Rc;
use std::time::Duration;
use url::Url;

/// The smallest part S3 takes in a multipart upload (but the last).
const MIN_PART: u64 = 5 << 20;
/// The largest part read back.
const PART_LIMIT: usize = 64 << 20;
/// Part copies, part writes and deletes sent at once.
const PARALLEL: usize = 4;

pub struct S3Blobs {
    bucket: Bucket,
    prefix: String,
    name: String,
}

impl S3Blobs {
    /// The bucket `config` names, reached through `outbound`; `Err` when rusty-s3
    /// refuses its name or endpoint.
    pub fn new(config: S3Config, outbound: Rc<dyn Outbound>) -> Result<Self, String> {
        let name = format!(
            "s3:{}/{}/{}",
            config.endpoint.as_str().trim_end_matches('/'),
            config.bucket,
            config.prefix
        );
        let prefix = config.prefix.clone();
        Ok(Self {
            bucket: Bucket::new(config, outbound)?,
            prefix,
            name,
        })
    }

    fn part_key(&self, upload: &Upload, n: u64) -> String {
        format!("{}{n}", self.parts_prefix(upload))
    }

    fn parts_prefix(&self, upload: &Upload) -> String {
        let (scope, digest, id) = (upload.scope.as_str(), &upload.digest, &upload.id);
        format!("{}uploads/{scope}/{digest}/{id}/", self.prefix)
    }

    fn blob_key(&self, upload: &Upload) -> String {
        let (scope, digest, id) = (upload.scope.as_str(), &upload.digest, &upload.id);
        format!("{}blobs/{scope}/{digest}/{id}", self.prefix)
    }

    fn part_keys(&self, upload: &Upload, parts: u64) -> Vec<String> {
        (0..parts).map(|n| self.part_key(upload, n)).collect()
    }

    /// The upload a key under `uploads/` (a part) or `blobs/` belongs to;
    /// `None` for any key of another shape: not the cache's to remove, as
    /// an empty `s3_prefix` shares those folders with whatever else is there.
    fn upload_of_key(&self, key: &str, folder: &str) -> Option<Upload> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix(folder)?;
        let parts: Vec<&str> = rest.split('/').collect();
        match (folder, parts.as_slice()) {
            ("uploads/", [scope, digest, id, n]) if is_number(n) => {
                Upload::from_key_parts(scope, digest, id)
            }
            ("blobs/", [scope, digest, id]) => Upload::from_key_parts(scope, digest, id),
            _ => None,
        }
    }

    /// Objects under `folder` of uploads begun before the grace that are
    /// no `completed` blob: parts of abandoned copies, and blobs whose index
    /// entry and queue record went (a key budget evicts keys on its own).
    async fn collect_objects(
        &self,
        folder: &str,
        now: u64,
        completed: &dyn Fn(&Upload) -> bool,
    ) -> Result<u64, String> {
        let keys = self
            .bucket
            .list(&format!("{}{folder}", self.prefix))
            .await?;
        let old: Vec<String> = keys
            .into_iter()
            .filter(|k| match self.upload_of_key(k, folder) {
                Some(u) => layout::upload_abandoned(&u.id, now) && !completed(&u),
                None => false,
            })
            .collect();
        let removed = old.len() as u64;
        self.bucket.delete_all(&old).await?;
        Ok(removed)
    }

    /// Multipart uploads of a completion that never finished (its instance
    /// went away in the middle).
    async fn collect_completions(&self, now: u64) -> Result<u64, String> {
        let uploads = self
            .bucket
            .multipart_uploads(&format!("{}blobs/", self.prefix))
            .await?;
        let mut removed = 0;
        for (key, id) in uploads {
            let abandoned = self
                .upload_of_key(&key, "blobs/")
                .is_some_and(|u| layout::upload_abandoned(&u.id, now));
            if abandoned {
                self.bucket.abort_multipart(&key, &id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A part's number as [`S3Blobs::part_key`] writes it.
fn is_number(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
}

impl BlobStorage for S3Blobs {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn part_size(&self, chunk_size: u64) -> u64 {
        chunk_size.max(MIN_PART)
    }

    fn followable(&self) -> bool {
        true
    }

    fn put_parts<'a>(
        &'a self,
        upload: &'a Upload,
        first: u64,
        parts: Vec<Rc<Vec<u8>>>,
    ) -> StoreFuture<'a, ()> {
        typed(async move {
            let puts = (first..).zip(parts).map(|(n, bytes)| {
                let key = self.part_key(upload, n);
                async move { self.bucket.put(&key, bytes).await }
            });
            let results: Vec<Result<(), String>> = futures::stream::iter(puts)
                .buffered(PARALLEL)
                .collect()
                .await;
            results.into_iter().collect::<Result<(), String>>()
        })
    }

    fn get_part<'a>(&'a self, upload: &'a Upload, n: u64) -> StoreFuture<'a, Option<Vec<u8>>> {
        typed(async move { self.bucket.get(&self.part_key(upload, n), PART_LIMIT).await })
    }

    fn get_part_range<'a>(
        &'a self,
        upload: &'a Upload,
        n: u64,
        range: Range<usize>,
    ) -> StoreFuture<'a, Option<Vec<u8>>> {
        typed(async move {
            let key = self.part_key(upload, n);
            self.bucket.get_part_of(&key, range, PART_LIMIT).await
        })
    }

    fn complete<'a>(&'a self, blob: &'a StoredBlob) -> StoreFuture<'a, ()> {
        typed(async move {
            let parts = blob.parts().max(1);
            let sources = self.part_keys(&blob.upload, parts);
            let last_len = blob.size - (parts - 1) * blob.part_size;
            self.bucket
                .compose(&self.blob_key(&blob.upload), &sources, last_len)
                .await?;
            // The blob is whole; parts left by a failed delete are collected.
            if let Err(e) = self.bucket.delete_all(&sources).await {
                eprintln!("cache: cannot remove a copy's parts from the bucket: {e}");
            }
            Ok::<_, String>(())
        })
    }

    fn abort<'a>(&'a self, upload: &'a Upload, parts: u64) -> StoreFuture<'a, ()> {
        typed(async move { self.bucket.delete_all(&self.part_keys(upload, parts)).await })
    }

    fn read(&self, blob: &StoredBlob, start: u64, end: u64) -> Chunks {
        self.bucket
            .get_range(self.blob_key(&blob.upload), start, end)
    }

    fn delete<'a>(&'a self, blob: &'a StoredBlob) -> StoreFuture<'a, ()> {
        typed(async move {
            let key = self.blob_key(&blob.upload);
            self.bucket.delete_all(&[key]).await
        })
    }

    fn collect_abandoned<'a>(
        &'a self,
        now: u64,
        completed: &'a dyn Fn(&Upload) -> bool,
    ) -> StoreFuture<'a, u64> {
        typed(async move {
            // Parts are never a completed blob here: completing copies them.
            let parts = self.collect_objects("uploads/", now, &|_| false).await?;
            let orphans = self.collect_objects("blobs/", now, completed).await?;
            Ok::<_, String>(parts + orphans + self.collect_completions(now).await?)
        })
    }

    /// A GET of a key no blob has: a 404 is an answer.
    fn answers(&self) -> Option<StoreFuture<'_, ()>> {
        Some(typed(async move {
            let probe = format!("{}health-probe", self.prefix);
            self.bucket.answers(&probe).await
        }))
    }

    fn presigned_get(&self, blob: &StoredBlob, ttl: Duration) -> Option<Url> {
        Some(self.bucket.presigned_get(&self.blob_key(&blob.upload), ttl))
    }
}

// Against a scripted bucket: what each request carries, what gc leaves.
#[cfg(test)]
mod scripted;
// Against a Garage server, with the native test clients (not in wasm).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
