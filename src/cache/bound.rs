//! The cache's bound on its size (`cache_max_size`): committed blobs and
//! manifests join a first-in, first-out queue in the cache's store (two
//! atomic counters and a record each), so the oldest are evicted without
//! ever listing the store, and one in use moves to the newest end. A copy
//! under way counts too, from before it starts ([`reserve`]): what clients
//! can make the proxy write is within the bound, not only what it kept.

use crate::cache::blob_storage::{BlobStorage, StoredBlob, Upload};
use crate::cache::layout::{self, BlobEntry};
use crate::cache::pins;
use crate::host::{Host, Kv};
use serde::{Deserialize, Serialize};
use std::rc::Rc;

/// Bytes of committed blobs and of copies under way (an atomic counter).
pub const TOTAL_KEY: &str = "cache/budget/bytes";
/// The next queue position to evict, and the next to fill (counters).
pub const HEAD_KEY: &str = "cache/budget/head";
pub const TAIL_KEY: &str = "cache/budget/tail";

/// The key of the eviction queue's record at `position`.
pub fn queue_key(position: i64) -> String {
    format!("cache/budget/queue/{position}")
}

/// A committed blob, as its queue record: what evicting it removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub blob_key: String,
    /// Only the entry of this copy is removed (a later copy may have
    /// replaced it).
    pub upload: String,
    /// Chunk `n`'s key is this followed by `n`.
    pub chunk_prefix: String,
    pub chunks: u64,
    pub size: u64,
    /// A manifest, kept whole under `blob_key`: evicting it removes that key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manifest: bool,
}

impl Committed {
    /// The blob whose bytes evicting this record removes; none for a
    /// manifest. Its upload is read back from `chunk_prefix`
    /// (`cache/chunk/<scope>/<digest>/<upload>/`), the records' layout
    /// since before blob backends.
    pub fn stored_blob(&self) -> Option<StoredBlob> {
        if self.manifest {
            return None;
        }
        let first_chunk = format!("{}0", self.chunk_prefix);
        let (scope, digest, id) = layout::chunk_of(&first_chunk)?;
        let parts = self.chunks.max(1);
        Some(StoredBlob {
            upload: Upload {
                scope: layout::Scope::from_key_part(scope),
                digest: digest.to_string(),
                id: id.to_string(),
            },
            size: self.size,
            part_size: self.size.div_ceil(parts).max(1),
        })
    }
}

/// The `cache_max_size` variable.
pub fn max_size<H: Host>(host: &H) -> u64 {
    host.settings().cache_max_size
}

/// Counts a committed blob in, then evicts the least recently used blobs
/// (their bytes from `storage`) while the cache is over `max`; the blob's
/// place in the queue.
pub async fn admit(
    kv: &dyn Kv,
    storage: &dyn BlobStorage,
    record: &Committed,
    max: u64,
) -> Result<i64, String> {
    let position = enqueue(kv, record)?;
    let mut total = kv.increment(TOTAL_KEY, signed(record.size))?;
    while total > signed(max) || too_many_records(kv, position)? {
        let Some(freed) = evict_oldest(kv, storage, position).await? else {
            break;
        };
        total = kv.increment(TOTAL_KEY, -signed(freed))?;
    }
    Ok(position)
}

/// Whether the queue up to `newest` holds more records than a key budget
/// leaves the bound.
fn too_many_records(kv: &dyn Kv, newest: i64) -> Result<bool, String> {
    let Some(max) = kv.max_records() else {
        return Ok(false);
    };
    let head = kv.increment(HEAD_KEY, 0)?;
    Ok(newest + 1 - head > signed(max))
}

/// The bytes of one copy under way, counted in the total until dropped.
#[must_use = "the bytes are counted only while it is held"]
pub struct Reservation {
    kv: Rc<dyn Kv>,
    size: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Err(e) = self.kv.increment(TOTAL_KEY, -signed(self.size)) {
            eprintln!("cache: cannot give back a copy's room in the bound: {e}");
        }
    }
}

/// Counts `size` bytes of a copy about to start against `max`, evicting
/// the least recently used blobs to make room; `None` when even then they
/// would not fit (other copies under way and pins fill the bound).
pub async fn reserve(
    kv: Rc<dyn Kv>,
    storage: &dyn BlobStorage,
    size: u64,
    max: u64,
) -> Result<Option<Reservation>, String> {
    let mut total = kv.increment(TOTAL_KEY, signed(size))?;
    let reservation = Reservation {
        kv: kv.clone(),
        size,
    };
    let newest = kv.increment(TAIL_KEY, 0)?;
    while total > signed(max) {
        match evict_oldest(kv.as_ref(), storage, newest).await? {
            Some(freed) => total = kv.increment(TOTAL_KEY, -signed(freed))?,
            None => return Ok(None),
        }
    }
    Ok(Some(reservation))
}

fn enqueue(kv: &dyn Kv, record: &Committed) -> Result<i64, String> {
    let position = kv.increment(TAIL_KEY, 1)? - 1;
    let json = serde_json::to_vec(record).map_err(|e| e.to_string())?;
    kv.set(&queue_key(position), &json)?;
    Ok(position)
}

/// A hit on the blob under `blob_key`: one among the oldest quarter of the
/// queue moves to its newest end (its bytes counted once still), so what
/// is in use is evicted last. Most hits read two counters and write
/// nothing.
pub fn touch(kv: &dyn Kv, entry: &BlobEntry) {
    let Some(queued) = entry.queued else {
        return;
    };
    let moved = (|| {
        let (head, tail) = (kv.increment(HEAD_KEY, 0)?, kv.increment(TAIL_KEY, 0)?);
        if queued >= head + (tail - head) / 4 {
            return Ok(());
        }
        let Some(record) = kv.get(&queue_key(queued))? else {
            return Ok(());
        };
        let record: Committed = serde_json::from_slice(&record).map_err(|e| e.to_string())?;
        to_newest_end(kv, &record, Some(entry)).map(|_| ())
    })();
    if let Err(e) = moved {
        eprintln!("cache: cannot move a blob in use to the end of the queue: {e}");
    }
}

/// A blob removed by other means than eviction (its TTL): its place in
/// the queue goes, and its bytes from the total.
pub fn forget(kv: &dyn Kv, entry: &BlobEntry) -> Result<(), String> {
    let Some(position) = entry.queued else {
        // Entries from before the queue moved: eviction frees them in turn.
        return Ok(());
    };
    if kv.get(&queue_key(position))?.is_some() {
        kv.delete(&queue_key(position))?;
        kv.increment(TOTAL_KEY, -signed(entry.size))?;
    }
    Ok(())
}

/// A hit on a blob of a route with a `blob_ttl`: when it was read, written
/// at most every eighth of the TTL, so `gc` keeps what is in use and most
/// hits write nothing.
pub fn note_read(kv: &dyn Kv, key: &str, entry: BlobEntry, blob_ttl: u64) -> BlobEntry {
    let now = crate::now();
    if blob_ttl == 0 || entry.last_read() + blob_ttl / 8 > now {
        return entry;
    }
    let read = BlobEntry {
        read: Some(now),
        ..entry
    };
    let noted = serde_json::to_vec(&read)
        .map_err(|e| e.to_string())
        .and_then(|v| kv.set(key, &v));
    if let Err(e) = noted {
        eprintln!("cache: cannot note a blob read: {e}");
    }
    read
}

/// Queues `record` again at the newest end, and its blob's entry with it
/// (the old place is skipped when its turn comes); the new place.
fn to_newest_end(
    kv: &dyn Kv,
    record: &Committed,
    entry: Option<&BlobEntry>,
) -> Result<i64, String> {
    let position = enqueue(kv, record)?;
    if let Some(entry) = entry {
        let entry = BlobEntry {
            queued: Some(position),
            ..entry.clone()
        };
        let value = serde_json::to_vec(&entry).map_err(|e| e.to_string())?;
        kv.set(&record.blob_key, &value)?;
    }
    Ok(position)
}

/// Counts a stored manifest in, like a blob: what any client can make the
/// cache fetch (up to 4 MiB each) is within the bound too.
pub async fn admit_manifest(
    kv: &dyn Kv,
    storage: &dyn BlobStorage,
    key: &str,
    size: u64,
    max: u64,
) {
    let record = Committed {
        blob_key: key.to_string(),
        upload: String::new(),
        chunk_prefix: String::new(),
        chunks: 0,
        size,
        manifest: true,
    };
    if let Err(e) = admit(kv, storage, &record, max).await {
        eprintln!("cache: cannot keep the cache within its bound: {e}");
    }
}

/// Removes the oldest committed blob before position `newest`: its entry (if
/// still this copy's) and its bytes. The bytes freed, or `None` when
/// nothing older is left.
async fn evict_oldest(
    kv: &dyn Kv,
    storage: &dyn BlobStorage,
    newest: i64,
) -> Result<Option<u64>, String> {
    let position = kv.increment(HEAD_KEY, 1)? - 1;
    if position >= newest {
        // Never the blob just admitted: give the place back.
        kv.increment(HEAD_KEY, -1)?;
        return Ok(None);
    }
    let key = queue_key(position);
    let Some(record) = kv
        .get(&key)?
        .and_then(|v| serde_json::from_slice::<Committed>(&v).ok())
    else {
        // A record another instance has not written yet, or lost: skip it.
        return Ok(Some(0));
    };
    let current = kv
        .get(&record.blob_key)?
        .and_then(|v| serde_json::from_slice::<BlobEntry>(&v).ok())
        .filter(|e| e.upload == record.upload);
    if current
        .as_ref()
        .is_some_and(|e| e.queued.is_some_and(|q| q != position))
    {
        // Moved to the newest end since: only this old place goes.
        kv.delete(&key)?;
        return Ok(Some(0));
    }
    if pins::is_pinned(kv, &record.blob_key) {
        // Kept, its bytes still counted: it waits at the newest end, past
        // the record being admitted, so one admission moves it once.
        to_newest_end(kv, &record, current.as_ref())?;
        kv.delete(&key)?;
        return Ok(Some(0));
    }
    if record.manifest || current.is_some() {
        kv.delete(&record.blob_key)?;
    }
    if let Some(blob) = record.stored_blob() {
        storage.delete(&blob).await?;
    }
    kv.delete(&key)?;
    Ok(Some(record.size))
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
pub(crate) mod tests;
