//! Blobs as files in a writable directory, as distribution's filesystem
//! driver keeps them: the default under `spin up` (spin.toml mounts the
//! app's `blobs/` at [`MOUNT`]; `--direct-mounts --allow-transient-write`
//! make it the real, writable directory). Spin's key-value store takes new
//! keys at about 250 MiB/s here, a file at 1,250-1,800 (docs/benchmarks.md).
//!
//! Layout, under the directory:
//! - `uploads/<scope>/<digest>/<upload>/<n>`: part `n` of a copy under way,
//!   written as `<n>.partial` and renamed, so a follower sees a part whole
//!   or not at all;
//! - `blobs/<scope>/<digest>/<upload>/<n>`: the blob, the upload's folder
//!   renamed there once its digest was checked: nothing unchecked is ever
//!   under `blobs/`.
//! - `directory-id`: names this directory in the index's entries
//!   ([`BlobStorage::name`]), so an instance sharing the index (Redis) but
//!   not the directory never takes another's entry for a file it has.

mod paths;
mod probe;

pub use probe::{MOUNT, open, verdict};

use super::{BlobStorage, StorageError, StoreFuture, StoredBlob, Upload};
use crate::host::Chunks;
use paths::{Folder, io_error};
use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;
use url::Url;

/// The largest piece a read of a completed blob yields at once.
const READ_PIECE: u64 = 1 << 20;

pub struct BlobFiles {
    root: PathBuf,
    id: String,
}

impl BlobFiles {
    /// Blobs under `root`, a directory named `id`.
    pub fn new(root: PathBuf, id: String) -> Self {
        Self { root, id }
    }

    fn folder(&self, folder: Folder, upload: &Upload) -> PathBuf {
        paths::upload_dir(&self.root, folder, upload)
    }

    fn write_parts(
        &self,
        upload: &Upload,
        first: u64,
        parts: &[Rc<Vec<u8>>],
    ) -> Result<(), StorageError> {
        let dir = self.folder(Folder::Uploads, upload);
        if first == 0 {
            paths::with_folder(&dir, || Ok(())).map_err(|e| io_error("create", &dir, e))?;
        }
        for (n, part) in (first..).zip(parts) {
            let partial = dir.join(format!("{n}.partial"));
            let mut file =
                fs::File::create(&partial).map_err(|e| io_error("create", &partial, e))?;
            file.write_all(part)
                .map_err(|e| io_error("write", &partial, e))?;
            fs::rename(&partial, dir.join(n.to_string()))
                .map_err(|e| io_error("rename", &partial, e))?;
        }
        Ok(())
    }

    /// Bytes `range` of part `n` of the upload in `folder`; `None` when the
    /// part is not there.
    fn part_range(
        &self,
        folder: Folder,
        upload: &Upload,
        n: u64,
        range: Range<u64>,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.folder(folder, upload).join(n.to_string());
        let mut file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("open", &path, e)),
        };
        let len = file
            .metadata()
            .map_err(|e| io_error("stat", &path, e))?
            .len();
        let (start, end) = (range.start.min(len), range.end.min(len));
        file.seek(SeekFrom::Start(start))
            .map_err(|e| io_error("seek", &path, e))?;
        let mut bytes = vec![0; (end - start) as usize];
        file.read_exact(&mut bytes)
            .map_err(|e| io_error("read", &path, e))?;
        Ok(Some(bytes))
    }

    fn complete_now(&self, blob: &StoredBlob) -> Result<(), StorageError> {
        let from = self.folder(Folder::Uploads, &blob.upload);
        let to = self.folder(Folder::Blobs, &blob.upload);
        let parent = to.parent().unwrap_or(&self.root);
        paths::with_folder(parent, || fs::rename(&from, &to))
            .map_err(|e| io_error("rename", &from, e))?;
        paths::remove_empty_parents(&self.root, &from);
        Ok(())
    }

    fn remove(&self, folder: Folder, upload: &Upload) -> Result<(), StorageError> {
        let dir = self.folder(folder, upload);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &dir, e)),
        }
        paths::remove_empty_parents(&self.root, &dir);
        Ok(())
    }
}

impl BlobStorage for BlobFiles {
    fn name(&self) -> String {
        format!("files:{}", self.id)
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
        Box::pin(std::future::ready(self.write_parts(upload, first, &parts)))
    }

    fn get_part<'a>(&'a self, upload: &'a Upload, n: u64) -> StoreFuture<'a, Option<Vec<u8>>> {
        let read = self.part_range(Folder::Uploads, upload, n, 0..u64::MAX);
        Box::pin(std::future::ready(read))
    }

    fn get_part_range<'a>(
        &'a self,
        upload: &'a Upload,
        n: u64,
        range: Range<usize>,
    ) -> StoreFuture<'a, Option<Vec<u8>>> {
        let range = range.start as u64..range.end as u64;
        let read = self.part_range(Folder::Uploads, upload, n, range);
        Box::pin(std::future::ready(read))
    }

    fn complete<'a>(&'a self, blob: &'a StoredBlob) -> StoreFuture<'a, ()> {
        Box::pin(std::future::ready(self.complete_now(blob)))
    }

    fn abort<'a>(&'a self, upload: &'a Upload, _: u64) -> StoreFuture<'a, ()> {
        Box::pin(std::future::ready(self.remove(Folder::Uploads, upload)))
    }

    fn read(&self, blob: &StoredBlob, start: u64, end: u64) -> Chunks {
        read_blob(
            self.folder(Folder::Blobs, &blob.upload),
            blob.clone(),
            start,
            end,
        )
    }

    fn delete<'a>(&'a self, blob: &'a StoredBlob) -> StoreFuture<'a, ()> {
        Box::pin(std::future::ready(self.remove(Folder::Blobs, &blob.upload)))
    }

    fn collect_abandoned<'a>(
        &'a self,
        now: u64,
        completed: &'a dyn Fn(&Upload) -> bool,
    ) -> StoreFuture<'a, u64> {
        let collect = || -> Result<u64, StorageError> {
            let mut removed = 0;
            for folder in [Folder::Uploads, Folder::Blobs] {
                for upload in paths::abandoned(&self.root, folder, now)? {
                    if !completed(&upload) {
                        self.remove(folder, &upload)?;
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        };
        Box::pin(std::future::ready(collect()))
    }

    fn presigned_get(&self, _: &StoredBlob, _: Duration) -> Option<Url> {
        None
    }

    fn answers(&self) -> Option<StoreFuture<'_, ()>> {
        // A directory that went away (an unmounted volume) answers nothing.
        let there = fs::metadata(&self.root)
            .map(|_| ())
            .map_err(|e| io_error("stat", &self.root, e));
        Some(Box::pin(std::future::ready(there)))
    }
}

/// Bytes `start..end` of a completed blob in `dir`, a part file at a time,
/// in pieces of at most [`READ_PIECE`].
fn read_blob(dir: PathBuf, blob: StoredBlob, start: u64, end: u64) -> Chunks {
    let part_size = blob.part_size.max(1);
    let end = end.min(blob.size);
    Box::pin(futures::stream::unfold(start, move |pos| {
        let dir = dir.clone();
        let digest = blob.upload.digest.clone();
        async move {
            if pos >= end {
                return None;
            }
            let n = pos / part_size;
            let within = pos - n * part_size;
            let take = (end - pos).min(part_size - within).min(READ_PIECE);
            match read_piece(&dir.join(n.to_string()), within, take) {
                Ok(piece) => Some((Ok(piece), pos + take)),
                Err(e) => Some((Err(format!("cached blob {digest}: {e}")), end)),
            }
        }
    }))
}

/// `len` bytes at `offset` of a part file; an error for fewer.
fn read_piece(path: &std::path::Path, offset: u64, len: u64) -> Result<Vec<u8>, StorageError> {
    let mut file = fs::File::open(path).map_err(|e| io_error("open", path, e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| io_error("seek", path, e))?;
    let mut bytes = vec![0; len as usize];
    file.read_exact(&mut bytes)
        .map_err(|e| io_error("read", path, e))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests;
