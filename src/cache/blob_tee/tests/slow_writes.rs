//! A bucket whose writes take a while: what a copy does meanwhile.

use crate::cache::blob_storage::memory::MemoryBlobs;
use crate::cache::blob_storage::{BlobStorage, StoreFuture, StoredBlob, Upload};
use crate::cache::blob_tee::yield_now;
use crate::host::Chunks;
use std::cell::RefCell;
use std::rc::Rc;

/// A bucket whose writes take a while, noting how many upstream pieces
/// had been read when each ended.
pub struct SlowWrites {
    pub inner: MemoryBlobs,
    pub pulled: Rc<std::cell::Cell<usize>>,
    pub seen: RefCell<Vec<usize>>,
}

impl BlobStorage for SlowWrites {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn part_size(&self, chunk_size: u64) -> u64 {
        self.inner.part_size(chunk_size)
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
        Box::pin(async move {
            for _ in 0..64 {
                yield_now().await;
            }
            self.seen.borrow_mut().push(self.pulled.get());
            self.inner.put_parts(upload, first, parts).await
        })
    }
    fn get_part<'a>(&'a self, upload: &'a Upload, n: u64) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.inner.get_part(upload, n)
    }
    fn complete<'a>(&'a self, blob: &'a StoredBlob) -> StoreFuture<'a, ()> {
        self.inner.complete(blob)
    }
    fn abort<'a>(&'a self, upload: &'a Upload, parts: u64) -> StoreFuture<'a, ()> {
        self.inner.abort(upload, parts)
    }
    fn read(&self, blob: &StoredBlob, start: u64, end: u64) -> Chunks {
        self.inner.read(blob, start, end)
    }
    fn delete<'a>(&'a self, blob: &'a StoredBlob) -> StoreFuture<'a, ()> {
        self.inner.delete(blob)
    }
    fn collect_abandoned<'a>(
        &'a self,
        now: u64,
        completed: &'a dyn Fn(&Upload) -> bool,
    ) -> StoreFuture<'a, u64> {
        self.inner.collect_abandoned(now, completed)
    }
    fn presigned_get(&self, _: &StoredBlob, _: std::time::Duration) -> Option<url::Url> {
        None
    }
}
