//! Blobs in memory, for fast native tests of the cache's logic; it passes
//! the same conformance suite as the real backends. As [`MemoryBlobs::multipart`]
//! it stands for a bucket's multipart upload instead: parts that do not
//! read back, a completion that waits for the bucket's answer.

use super::{BlobStorage, StorageError, StoreFuture, StoredBlob, Upload};
use crate::cache::layout;
use crate::host::Chunks;
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::Shared;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use url::Url;

/// Parts of uploads under way, by upload and number.
type Parts = HashMap<(Upload, u64), Rc<Vec<u8>>>;

#[derive(Default)]
pub struct MemoryBlobs {
    parts: RefCell<Parts>,
    blobs: RefCell<HashMap<Upload, Vec<u8>>>,
    /// As a multipart upload: when the bucket answers a completion.
    multipart: Option<Shared<oneshot::Receiver<()>>>,
}

impl MemoryBlobs {
    /// Parts kept to themselves until completed, each completion answered
    /// once `answer` is sent (or dropped).
    pub fn multipart(answer: oneshot::Receiver<()>) -> Self {
        Self {
            multipart: Some(answer.shared()),
            ..Self::default()
        }
    }

    fn ready<T: 'static>(value: Result<T, String>) -> StoreFuture<'static, T> {
        Box::pin(std::future::ready(value.map_err(Into::into)))
    }

    fn remove_parts(&self, upload: &Upload) {
        self.parts.borrow_mut().retain(|(u, _), _| u != upload);
    }
}

impl BlobStorage for MemoryBlobs {
    fn name(&self) -> String {
        "memory".to_string()
    }

    fn part_size(&self, chunk_size: u64) -> u64 {
        chunk_size.max(1)
    }

    fn check_on_the_way(&self) -> bool {
        // Stands for a bucket in the tests of the copy.
        true
    }

    fn followable(&self) -> bool {
        true
    }

    fn reads_parts_back(&self) -> bool {
        self.multipart.is_none()
    }

    fn put_parts<'a>(
        &'a self,
        upload: &'a Upload,
        first: u64,
        parts: Vec<Rc<Vec<u8>>>,
    ) -> StoreFuture<'a, ()> {
        let mut stored = self.parts.borrow_mut();
        for (n, bytes) in (first..).zip(parts) {
            stored.insert((upload.clone(), n), bytes);
        }
        Self::ready(Ok(()))
    }

    fn get_part<'a>(&'a self, upload: &'a Upload, n: u64) -> StoreFuture<'a, Option<Vec<u8>>> {
        let part = self
            .parts
            .borrow()
            .get(&(upload.clone(), n))
            .filter(|_| self.reads_parts_back())
            .map(|p| p.to_vec());
        Self::ready(Ok(part))
    }

    fn complete<'a>(&'a self, stored: &'a StoredBlob) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if let Some(answer) = self.multipart.clone() {
                // Sent or dropped, the bucket has answered.
                let _ = answer.await;
            }
            let upload = &stored.upload;
            let mut blob = Vec::new();
            for n in 0..stored.parts() {
                match self.parts.borrow().get(&(upload.clone(), n)) {
                    Some(part) => blob.extend_from_slice(part),
                    None => return Err(StorageError::Absent(format!("part {n} was never stored"))),
                }
            }
            self.remove_parts(upload);
            self.blobs.borrow_mut().insert(upload.clone(), blob);
            Ok(())
        })
    }

    fn abort<'a>(&'a self, upload: &'a Upload, _: u64) -> StoreFuture<'a, ()> {
        self.remove_parts(upload);
        Self::ready(Ok(()))
    }

    fn read(&self, blob: &StoredBlob, start: u64, end: u64) -> Chunks {
        let bytes = self.blobs.borrow().get(&blob.upload).and_then(|b| {
            let end = (end as usize).min(b.len());
            b.get(start as usize..end).map(<[u8]>::to_vec)
        });
        let piece = bytes.ok_or_else(|| format!("blob {} is not stored", blob.upload.digest));
        Box::pin(futures::stream::iter([piece]))
    }

    fn delete<'a>(&'a self, blob: &'a StoredBlob) -> StoreFuture<'a, ()> {
        self.blobs.borrow_mut().remove(&blob.upload);
        Self::ready(Ok(()))
    }

    fn collect_abandoned<'a>(
        &'a self,
        now: u64,
        completed: &'a dyn Fn(&Upload) -> bool,
    ) -> StoreFuture<'a, u64> {
        // Parts are never a completed blob here: completing moves them.
        let mut parts = self.parts.borrow_mut();
        let mut blobs = self.blobs.borrow_mut();
        let before = parts.len() + blobs.len();
        parts.retain(|(u, _), _| !layout::upload_abandoned(&u.id, now));
        blobs.retain(|u, _| !layout::upload_abandoned(&u.id, now) || completed(u));
        Self::ready(Ok((before - parts.len() - blobs.len()) as u64))
    }

    fn presigned_get(&self, _: &StoredBlob, _: Duration) -> Option<Url> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryBlobs;

    #[test]
    fn conforms() {
        futures::executor::block_on(super::super::conformance::run(&MemoryBlobs::default()));
    }

    #[test]
    fn conforms_as_a_multipart_upload() {
        let (answer, answered) = futures::channel::oneshot::channel();
        answer.send(()).unwrap();
        let storage = MemoryBlobs::multipart(answered);
        futures::executor::block_on(super::super::conformance::run(&storage));
    }
}
