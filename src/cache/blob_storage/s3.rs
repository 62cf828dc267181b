//! Blobs in an S3-compatible bucket (AWS S3, R2, GCS with HMAC keys, MinIO,
//! Ceph RGW, Garage), reached over the component's outbound HTTP; every
//! request is a URL presigned by `rusty-s3`, which sends nothing itself.
//!
//! A copy is one multipart upload of the blob's own key,
//! `blobs/<scope>/<digest>/<upload>` under `s3_prefix`: each part is sent
//! once (`UploadPart`), and completed (`CompleteMultipartUpload`) only
//! once the digest, hashed on the way, matched. Until then the bucket
//! shows nothing of it, so nothing unchecked is ever under `blobs/`, and a
//! presigned GET of a blob's key serves it in one piece. Into a three-node
//! Garage (replication 3), parts written as objects of their own and then
//! copied into the blob (`UploadPartCopy`) made every byte land twice: a
//! cold copy took 2.1-2.8x the bucket's own PUT of the same bytes.
//!
//! The parts of an open upload cannot be read back, so followers read
//! them from the stage ([`super::staged`]) or, behind it, wait for the
//! commit and read the blob. Versions before this one wrote parts as
//! objects under `uploads/`; a collection still removes those.

mod config;
mod multipart;
mod requests;

pub use config::S3Config;

use super::{BlobStorage, StorageError, StoreFuture, StoredBlob, Upload};
use crate::cache::layout;
use crate::host::{Chunks, Outbound};
use futures::StreamExt;
use requests::Bucket;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use url::Url;

/// The smallest part S3 takes in a multipart upload (but the last).
const MIN_PART: u64 = 5 << 20;
/// The most parts a multipart upload has (S3's limit).
const MAX_PARTS: u64 = 10_000;
/// Part writes sent at once.
const PARALLEL: usize = 4;

/// The multipart upload of a copy under way: its id, the ETag of each
/// part stored so far.
struct Open {
    id: String,
    etags: Vec<String>,
}

pub struct S3Blobs {
    bucket: Bucket,
    prefix: String,
    name: String,
    /// The copies under way through this backend (a copy holds it for its
    /// whole life), by upload.
    open: RefCell<HashMap<Upload, Open>>,
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
            open: RefCell::default(),
        })
    }

    fn blob_key(&self, upload: &Upload) -> String {
        let (scope, digest, id) = (upload.scope.as_str(), &upload.digest, &upload.id);
        format!("{}blobs/{scope}/{digest}/{id}", self.prefix)
    }

    /// The id of the upload's multipart upload, started with its first part.
    async fn multipart_id(&self, upload: &Upload) -> Result<String, StorageError> {
        if let Some(open) = self.open.borrow().get(upload) {
            return Ok(open.id.clone());
        }
        let id = self.bucket.start_multipart(&self.blob_key(upload)).await?;
        let open = Open {
            id: id.clone(),
            etags: Vec::new(),
        };
        self.open.borrow_mut().insert(upload.clone(), open);
        Ok(id)
    }

    /// Notes the ETags of parts `first..` as stored.
    fn stored(&self, upload: &Upload, first: u64, etags: Vec<String>) -> Result<(), StorageError> {
        let mut open = self.open.borrow_mut();
        let open = open.get_mut(upload).ok_or_else(|| {
            StorageError::Absent("the copy's multipart upload was aborted meanwhile".into())
        })?;
        if open.etags.len() as u64 != first {
            let had = open.etags.len();
            return Err(StorageError::Refused(format!(
                "part {first} was stored after {had} parts"
            )));
        }
        open.etags.extend(etags);
        Ok(())
    }

    /// The ids of the multipart uploads of the upload's blob key: the one
    /// this backend started, else the bucket's (its answer to the start
    /// may have been lost).
    async fn multipart_ids(&self, upload: &Upload) -> Result<Vec<String>, StorageError> {
        if let Some(open) = self.open.borrow_mut().remove(upload) {
            return Ok(vec![open.id]);
        }
        let key = self.blob_key(upload);
        let listed = self.bucket.multipart_uploads(&key).await?;
        Ok(listed
            .into_iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, id)| id)
            .collect())
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
    ) -> Result<u64, StorageError> {
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

    /// Multipart uploads of copies that never completed (their instance
    /// went away in the middle), begun before the grace.
    async fn collect_multiparts(
        &self,
        now: u64,
        completed: &dyn Fn(&Upload) -> bool,
    ) -> Result<u64, StorageError> {
        let uploads = self
            .bucket
            .multipart_uploads(&format!("{}blobs/", self.prefix))
            .await?;
        let mut removed = 0;
        for (key, id) in uploads {
            let abandoned = self
                .upload_of_key(&key, "blobs/")
                .is_some_and(|u| layout::upload_abandoned(&u.id, now) && !completed(&u));
            if abandoned {
                self.bucket.abort_multipart(&key, &id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A part's number as versions before this one wrote it.
fn is_number(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
}

/// Part `n`'s number in a multipart upload, from 1; `Err` past S3's limit.
fn part_number(n: u64) -> Result<u16, StorageError> {
    match n < MAX_PARTS {
        true => Ok(n as u16 + 1),
        false => Err(StorageError::Refused(format!(
            "a blob of over {MAX_PARTS} parts: a larger chunk_size makes fewer"
        ))),
    }
}

impl BlobStorage for S3Blobs {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn part_size(&self, chunk_size: u64) -> u64 {
        chunk_size.max(MIN_PART)
    }

    /// Followers read the stage, or wait for the commit.
    fn followable(&self) -> bool {
        true
    }

    fn reads_parts_back(&self) -> bool {
        false
    }

    /// Always: the parts cannot be read back for the check.
    fn check_on_the_way(&self) -> bool {
        true
    }

    fn put_parts<'a>(
        &'a self,
        upload: &'a Upload,
        first: u64,
        parts: Vec<Rc<Vec<u8>>>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let id = self.multipart_id(upload).await?;
            let key = self.blob_key(upload);
            let (id, key) = (&id, &key);
            let sends = (first..).zip(parts).map(|(n, bytes)| async move {
                let number = part_number(n)?;
                self.bucket.upload_part(key, id, number, bytes).await
            });
            let etags: Vec<Result<String, StorageError>> = futures::stream::iter(sends)
                .buffered(PARALLEL)
                .collect()
                .await;
            self.stored(upload, first, etags.into_iter().collect::<Result<_, _>>()?)
        })
    }

    /// Never: the parts of an open multipart upload are the bucket's alone.
    fn get_part<'a>(&'a self, _upload: &'a Upload, _n: u64) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async { Ok(None) })
    }

    fn complete<'a>(&'a self, blob: &'a StoredBlob) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (id, etags) = match self.open.borrow().get(&blob.upload) {
                Some(open) => (open.id.clone(), open.etags.clone()),
                None => {
                    let none = "no part of the blob was stored".to_string();
                    return Err(StorageError::Absent(none));
                }
            };
            if etags.len() as u64 != blob.parts() {
                let stored = etags.len();
                return Err(StorageError::Corrupt(format!(
                    "{stored} of the blob's {} parts stored",
                    blob.parts()
                )));
            }
            let key = self.blob_key(&blob.upload);
            self.bucket.finish(&key, &id, &etags).await?;
            self.open.borrow_mut().remove(&blob.upload);
            Ok(())
        })
    }

    fn abort<'a>(&'a self, upload: &'a Upload, _parts: u64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = self.blob_key(upload);
            for id in self.multipart_ids(upload).await? {
                self.bucket.abort_multipart(&key, &id).await?;
            }
            Ok(())
        })
    }

    fn read(&self, blob: &StoredBlob, start: u64, end: u64) -> Chunks {
        self.bucket
            .get_range(self.blob_key(&blob.upload), start, end)
    }

    fn delete<'a>(&'a self, blob: &'a StoredBlob) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = self.blob_key(&blob.upload);
            self.bucket.delete_all(&[key]).await
        })
    }

    fn collect_abandoned<'a>(
        &'a self,
        now: u64,
        completed: &'a dyn Fn(&Upload) -> bool,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            // Parts an earlier version wrote are never a blob: it copied them.
            let parts = self.collect_objects("uploads/", now, &|_| false).await?;
            let orphans = self.collect_objects("blobs/", now, completed).await?;
            Ok(parts + orphans + self.collect_multiparts(now, completed).await?)
        })
    }

    /// A GET of a key no blob has: a 404 is an answer.
    fn answers(&self) -> Option<StoreFuture<'_, ()>> {
        Some(Box::pin(async move {
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
