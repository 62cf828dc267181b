//! Blobs in the cache's key-value store, one key per fixed-size chunk: an
//! upload's parts are the chunks, so completing it writes nothing and a
//! follower reads the very keys the blob is served from. The default, and
//! what `spin up` needs no setup for.

use super::{BlobStorage, StoreFuture, StoredBlob, Upload, typed};
use crate::cache::layout::{self, CHUNK_PREFIX};
use crate::host::{Chunks, Kv};
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;
use url::Url;

pub struct KvChunks {
    kv: Rc<dyn Kv>,
}

impl KvChunks {
    /// Blobs as chunks in `kv`, the cache's own store.
    pub fn new(kv: Rc<dyn Kv>) -> Self {
        Self { kv }
    }
}

fn chunk_key(upload: &Upload, n: u64) -> String {
    upload.scope.chunk_key(&upload.digest, &upload.id, n)
}

fn delete_chunks(kv: &dyn Kv, upload: &Upload, parts: u64) -> Result<(), String> {
    (0..parts).try_for_each(|n| kv.delete(&chunk_key(upload, n)))
}

impl BlobStorage for KvChunks {
    fn name(&self) -> String {
        "kv".to_string()
    }

    fn part_size(&self, chunk_size: u64) -> u64 {
        chunk_size.max(1)
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
        // One write for the batch: a SQLite store commits (and syncs) once
        // per write. A part alone is written from where it is, not copied.
        if let [part] = parts.as_slice() {
            let key = chunk_key(upload, first);
            return typed(std::future::ready(self.kv.set(&key, part)));
        }
        let entries = (first..)
            .zip(parts)
            .map(|(n, bytes)| (chunk_key(upload, n), bytes.to_vec()))
            .collect();
        typed(std::future::ready(self.kv.set_many(entries)))
    }

    fn get_part<'a>(&'a self, upload: &'a Upload, n: u64) -> StoreFuture<'a, Option<Vec<u8>>> {
        typed(std::future::ready(self.kv.get(&chunk_key(upload, n))))
    }

    fn complete<'a>(&'a self, _: &'a StoredBlob) -> StoreFuture<'a, ()> {
        // The chunks are the blob; its index entry makes it visible.
        Box::pin(std::future::ready(Ok(())))
    }

    fn abort<'a>(&'a self, upload: &'a Upload, parts: u64) -> StoreFuture<'a, ()> {
        typed(std::future::ready(delete_chunks(
            self.kv.as_ref(),
            upload,
            parts,
        )))
    }

    fn read(&self, blob: &StoredBlob, start: u64, end: u64) -> Chunks {
        read_chunks(self.kv.clone(), blob.clone(), start, end)
    }

    fn delete<'a>(&'a self, blob: &'a StoredBlob) -> StoreFuture<'a, ()> {
        let parts = blob.parts();
        typed(std::future::ready(delete_chunks(
            self.kv.as_ref(),
            &blob.upload,
            parts,
        )))
    }

    fn collect_abandoned<'a>(
        &'a self,
        now: u64,
        completed: &'a dyn Fn(&Upload) -> bool,
    ) -> StoreFuture<'a, u64> {
        typed(std::future::ready(collect(
            self.kv.as_ref(),
            now,
            completed,
        )))
    }

    fn presigned_get(&self, _: &StoredBlob, _: Duration) -> Option<Url> {
        None
    }
}

/// Chunks of abandoned uploads that are no completed blob.
fn collect(kv: &dyn Kv, now: u64, completed: &dyn Fn(&Upload) -> bool) -> Result<u64, String> {
    let mut kept = HashSet::new();
    let mut removed = 0;
    for key in kv.keys()?.iter().filter(|k| k.starts_with(CHUNK_PREFIX)) {
        let Some((scope, digest, id)) = layout::chunk_of(key) else {
            continue;
        };
        if !layout::upload_abandoned(id, now) || kept.contains(&(scope, digest, id)) {
            continue;
        }
        let upload = Upload {
            scope: layout::Scope::from_key_part(scope),
            digest: digest.to_string(),
            id: id.to_string(),
        };
        if completed(&upload) {
            kept.insert((scope, digest, id));
            continue;
        }
        kv.delete(key)?;
        removed += 1;
    }
    Ok(removed)
}

/// Bytes `start..end` of a stored blob, a chunk at a time.
fn read_chunks(kv: Rc<dyn Kv>, blob: StoredBlob, start: u64, end: u64) -> Chunks {
    let chunk_size = blob.part_size.max(1);
    Box::pin(futures::stream::unfold(start, move |pos| {
        let (kv, upload) = (kv.clone(), blob.upload.clone());
        async move {
            if pos >= end {
                return None;
            }
            let n = pos / chunk_size;
            let digest = &upload.digest;
            let chunk = match kv.get(&chunk_key(&upload, n)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryKv;

    #[test]
    fn conforms() {
        futures::executor::block_on(super::super::conformance::run(&KvChunks::new(Rc::new(
            MemoryKv::default(),
        ))));
    }
}
