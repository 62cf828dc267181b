//! Where a blob's files are, and walking them back into uploads: every
//! name read back from the directory must be one the cache writes
//! ([`Upload::from_key_parts`]) before anything is removed by it.

use super::super::{StorageError, Upload};
use crate::cache::layout;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The two folders of the layout: copies under way, and checked blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    Uploads,
    Blobs,
}

impl Folder {
    fn name(self) -> &'static str {
        match self {
            Folder::Uploads => "uploads",
            Folder::Blobs => "blobs",
        }
    }
}

/// `<root>/<folder>/<scope>/<digest>/<upload>`. Scopes, digests and upload
/// ids hold no `/` and are never `.` or `..` (layout makes them so).
pub fn upload_dir(root: &Path, folder: Folder, upload: &Upload) -> PathBuf {
    root.join(folder.name())
        .join(upload.scope.as_str())
        .join(&upload.digest)
        .join(&upload.id)
}

/// What a file operation on `path` failed with, typed and in words.
pub fn io_error(doing: &str, path: &Path, e: std::io::Error) -> StorageError {
    StorageError::of_io(doing, path, e)
}

/// Runs `then` in folder `dir`, made first with its parents. Another
/// instance may remove an empty parent (a scope's folder, as its last
/// blob goes) between the making and `then`: made again, a few times.
pub fn with_folder(dir: &Path, then: impl Fn() -> std::io::Result<()>) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        let done = fs::create_dir_all(dir).and_then(|()| then());
        match done {
            Err(e) if e.kind() == ErrorKind::NotFound && tries < 3 => tries += 1,
            other => return other,
        }
    }
}

/// Removes the digest and scope folders above `dir` once they are empty,
/// so evicted blobs leave no folders behind; one still in use stays.
pub fn remove_empty_parents(root: &Path, dir: &Path) {
    for parent in dir.ancestors().skip(1).take(2) {
        if parent == root || fs::remove_dir(parent).is_err() {
            return;
        }
    }
}

/// The uploads under `folder` that started before the grace
/// ([`layout::upload_abandoned`]); names of other shapes are left alone.
pub fn abandoned(root: &Path, folder: Folder, now: u64) -> Result<Vec<Upload>, StorageError> {
    let mut found = Vec::new();
    for scope in names_in(&root.join(folder.name()))? {
        let scope_dir = root.join(folder.name()).join(&scope);
        for digest in names_in(&scope_dir)? {
            for id in names_in(&scope_dir.join(&digest))? {
                let upload = Upload::from_key_parts(&scope, &digest, &id)
                    .filter(|_| layout::upload_abandoned(&id, now));
                found.extend(upload);
            }
        }
    }
    Ok(found)
}

/// The names in a folder; none when it is not there.
fn names_in(dir: &Path) -> Result<Vec<String>, StorageError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("list", dir, e))?;
        names.extend(entry.file_name().into_string().ok());
    }
    Ok(names)
}
