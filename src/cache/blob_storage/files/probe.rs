//! Whether the blob directory can be used, found out once per instance and
//! kept in its `health` store: a directory Spin mounted read-only (no
//! `--direct-mounts --allow-transient-write`, a hosted platform) is said so
//! once, in the log and on the status page, and blobs stay where they were
//! kept before (the key-value store or the bucket).

use super::BlobFiles;
use super::paths::io_error;
use crate::host::Kv;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::Path;

/// Where Spin mounts the app's `blobs/` (spin.toml's `files`).
pub const MOUNT: &str = "/blobs";

/// The verdict on the directory, in `health`: `ok:<id>` or `no:<why>`.
const STATE_KEY: &str = "blob-files/state";

/// The file that names the directory (see [`BlobStorage::name`]).
///
/// [`BlobStorage::name`]: super::super::BlobStorage::name
const ID_FILE: &str = "directory-id";

/// The blobs under `root`, or why they cannot be kept there.
pub fn open(root: &Path, health: &dyn Kv) -> Result<BlobFiles, String> {
    if let Some(known) = verdict(health) {
        return known.map(|id| BlobFiles::new(root.to_path_buf(), id));
    }
    let found = probe(root);
    let value = match &found {
        Ok(id) => format!("ok:{id}"),
        Err(why) => format!("no:{why}"),
    };
    // The first request to find out says so; the others only read it.
    let first = health.swap_if(STATE_KEY, &|now| now.is_none(), value.as_bytes()) == Ok(true);
    if let (true, Err(why)) = (first, &found) {
        eprintln!("blob files: {why}");
    }
    found.map(|id| BlobFiles::new(root.to_path_buf(), id))
}

/// What this instance found of the directory, if it looked yet.
pub fn verdict(health: &dyn Kv) -> Option<Result<String, String>> {
    let value = health.get(STATE_KEY).ok().flatten()?;
    let value = String::from_utf8(value).ok()?;
    match value.split_once(':')? {
        ("ok", id) => Some(Ok(id.to_string())),
        ("no", why) => Some(Err(why.to_string())),
        _ => None,
    }
}

/// The directory's id, once a file was written and removed in it.
fn probe(root: &Path) -> Result<String, String> {
    let check = root.join(format!(".write-check-{:016x}", crate::random_u64()));
    let written = fs::File::create(&check).and_then(|mut f| f.write_all(b"ok"));
    let _ = fs::remove_file(&check);
    if let Err(e) = written {
        return Err(format!(
            "{} is not writable ({e}), so blobs are not kept in files: run spin up with \
             --direct-mounts --allow-transient-write (README.md) to keep them in the app's blobs/",
            root.display()
        ));
    }
    directory_id(root)
}

/// The id in the directory's [`ID_FILE`], made on first use: written
/// beside it and linked in, so two instances starting at once never read
/// a half-written one.
fn directory_id(root: &Path) -> Result<String, String> {
    let path = root.join(ID_FILE);
    let made = format!("{:016x}", crate::random_u64());
    let draft = root.join(format!("{ID_FILE}.{made}"));
    fs::write(&draft, &made).map_err(|e| String::from(io_error("write", &draft, e)))?;
    let linked = fs::hard_link(&draft, &path);
    let _ = fs::remove_file(&draft);
    match linked {
        Ok(()) => return Ok(made),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error("link", &path, e).into()),
    }
    let id = fs::read_to_string(&path).map_err(|e| String::from(io_error("read", &path, e)))?;
    let id = id.trim();
    match id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        true => Ok(id.to_string()),
        false => Err(format!("{} holds no directory id", path.display())),
    }
}
