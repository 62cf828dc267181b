//! The cache's bound on its size (`cache_max_size`): committed blobs and
//! manifests join a first-in, first-out queue in the cache's store (two
//! atomic counters and a record each), so the oldest are evicted without
//! ever listing the store, and one in use moves to the newest end.

use crate::cache::blob_storage::{BlobStorage, StoredBlob, Upload};
use crate::cache::layout::{self, BlobEntry};
use crate::cache::pins;
use crate::host::{Host, Kv};
use serde::{Deserialize, Serialize};

/// Bytes of committed blob chunks in the store (an atomic counter).
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
    while total > signed(max) {
        let Some(freed) = evict_oldest(kv, storage, position).await? else {
            break;
        };
        total = kv.increment(TOTAL_KEY, -signed(freed))?;
    }
    Ok(position)
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

/// Removes the oldest committed blob older than `newest`: its entry (if
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
mod tests {
    use super::*;
    use crate::cache::blob_storage::memory::MemoryBlobs;
    use crate::host::memory::MemoryKv;

    #[test]
    fn a_record_names_its_blob() {
        let c = Committed {
            blob_key: "b".into(),
            upload: "u".into(),
            chunk_prefix: "cache/chunk/s/sha256:d/u/".into(),
            chunks: 3,
            size: 10,
            manifest: false,
        };
        let blob = c.stored_blob().unwrap();
        assert_eq!(
            (blob.upload.scope.as_str(), blob.upload.digest.as_str()),
            ("s", "sha256:d")
        );
        assert_eq!((blob.upload.id.as_str(), blob.parts()), ("u", 3));
        assert!(
            Committed {
                manifest: true,
                ..c
            }
            .stored_blob()
            .is_none()
        );
    }
    #[test]
    fn manifests_count_against_the_bound_and_are_evicted_oldest_first() {
        let kv = MemoryKv::default();
        let blobs = MemoryBlobs::default();
        for n in 0..5 {
            let key = format!("cache/manifest/s/r@sha256:{n}");
            kv.set(&key, b"manifest").unwrap();
            futures::executor::block_on(admit_manifest(&kv, &blobs, &key, 4 << 20, 10 << 20));
        }
        let kept: Vec<String> = kv
            .keys()
            .unwrap()
            .into_iter()
            .filter(|k| k.starts_with("cache/manifest/"))
            .collect();
        assert_eq!(
            kept,
            ["cache/manifest/s/r@sha256:3", "cache/manifest/s/r@sha256:4"]
        );
        assert_eq!(kv.increment(TOTAL_KEY, 0).unwrap(), 8 << 20);
    }

    #[test]
    fn pinned_blobs_wait_at_the_newest_end_and_the_others_go() {
        let (kv, blobs) = (MemoryKv::default(), MemoryBlobs::default());
        let keys: Vec<String> = (0..8).map(|n| blob(&kv, n, &blobs)).collect();
        crate::cache::pins::pin(&kv, "p", &keys[..2], 8 << 20).unwrap();
        for n in 8..20 {
            blob(&kv, n, &blobs);
        }
        assert!(entry(&kv, &keys[0]).is_some() && entry(&kv, &keys[1]).is_some());
        assert!((2..8).all(|n| entry(&kv, &keys[n]).is_none()));
        assert_eq!(kv.increment(TOTAL_KEY, 0).unwrap(), 8 << 20);
    }

    /// Eight blobs of 1 MiB fill an 8 MiB cache; `n` as committed.
    fn blob(kv: &MemoryKv, n: usize, blobs: &MemoryBlobs) -> String {
        let key = format!("cache/blob/s/sha256:{n}");
        let mut entry = BlobEntry {
            size: 1 << 20,
            chunk_size: 1 << 20,
            upload: format!("u{n}"),
            private: false,
            media_type: String::new(),
            store: "memory".into(),
            queued: None,
            read: None,
        };
        kv.set(&key, &serde_json::to_vec(&entry).unwrap()).unwrap();
        let record = Committed {
            blob_key: key.clone(),
            upload: entry.upload.clone(),
            chunk_prefix: format!("cache/chunk/s/sha256:{n}/u{n}/"),
            chunks: 1,
            size: 1 << 20,
            manifest: false,
        };
        let position = futures::executor::block_on(admit(kv, blobs, &record, 8 << 20)).unwrap();
        entry.queued = Some(position);
        kv.set(&key, &serde_json::to_vec(&entry).unwrap()).unwrap();
        key
    }

    fn entry(kv: &MemoryKv, key: &str) -> Option<BlobEntry> {
        kv.get(key)
            .unwrap()
            .map(|v| serde_json::from_slice(&v).unwrap())
    }

    #[test]
    fn a_blob_in_use_is_evicted_after_the_unused_ones() {
        let kv = MemoryKv::default();
        let blobs = MemoryBlobs::default();
        let keys: Vec<String> = (0..8).map(|n| blob(&kv, n, &blobs)).collect();
        // The oldest is used: it moves to the newest end.
        touch(&kv, &entry(&kv, &keys[0]).unwrap());
        assert_eq!(entry(&kv, &keys[0]).unwrap().queued, Some(8));
        // One used while among the newest stays where it is.
        touch(&kv, &entry(&kv, &keys[7]).unwrap());
        assert_eq!(entry(&kv, &keys[7]).unwrap().queued, Some(7));
        blob(&kv, 8, &blobs);
        assert!(
            entry(&kv, &keys[0]).is_some(),
            "the blob in use was evicted"
        );
        assert!(
            entry(&kv, &keys[1]).is_none(),
            "the oldest unused blob stayed"
        );
        assert_eq!(kv.increment(TOTAL_KEY, 0).unwrap(), 8 << 20);
        // Its old place is gone, its new one evicts it in turn.
        for n in 9..17 {
            blob(&kv, n, &blobs);
        }
        assert!(entry(&kv, &keys[0]).is_none());
        assert_eq!(kv.increment(TOTAL_KEY, 0).unwrap(), 8 << 20);
    }
}
