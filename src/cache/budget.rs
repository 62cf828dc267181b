//! The cache's bound on its size and its one copy in flight per blob, kept
//! in the cache's store with its atomics so every instance agrees.

use crate::cache::blob_storage::BlobStorage;
use crate::cache::eviction::{
    self, Committed, DEFAULT_MAX_SIZE, HEAD_KEY, Lease, TAIL_KEY, TOTAL_KEY, queue_key,
};
use crate::cache::layout::{self, BlobEntry};
use crate::host::{Host, Kv};
use std::rc::Rc;

/// The `cache_max_size` variable, or the default when it is empty or not a size.
pub fn max_size<H: Host>(host: &H) -> u64 {
    match host
        .variable("cache_max_size")
        .filter(|v| !v.trim().is_empty())
    {
        None => DEFAULT_MAX_SIZE,
        Some(v) => crate::variables::parse_size(&v).unwrap_or_else(|| {
            eprintln!("cache_max_size {v:?} is not a size (like 10GiB); using the default");
            DEFAULT_MAX_SIZE
        }),
    }
}

/// The lease on copying one blob, held until dropped.
pub struct HeldLease {
    kv: Rc<dyn Kv>,
    key: String,
    lease: Lease,
}

/// Takes the lease on copying a blob; none while another copy holds it.
///
/// Where no lease is, only the request that opens the lease's gate may
/// take it: Spin 4.0.2's SQLite store swaps a missing key unconditionally,
/// so a crowd's first requests each took the lease, and their followers
/// failed as the copies overwrote each other's. The gate is a counter
/// (atomic in every store); the holder closes it as it lets go.
pub fn take_lease(kv: Rc<dyn Kv>, key: &str, lease: Lease) -> Option<HeldLease> {
    let now = crate::now();
    let gate = layout::lease_gate_key(key);
    let opened = std::cell::Cell::new(false);
    let free = |current: Option<&[u8]>| match current {
        None => match kv.increment(&gate, 1) {
            Ok(n) => {
                opened.set(n == 1);
                n == 1
            }
            // A gate that cannot be read holds back no copy: the swap
            // alone decides, as before there was one.
            Err(e) => {
                eprintln!("cache: cannot open a copy lease's gate: {e}");
                true
            }
        },
        Some(_) => eviction::lease_free(current, now),
    };
    let taken = kv.swap_if(key, &free, &lease.to_bytes());
    if opened.get() && !matches!(taken, Ok(true)) {
        let _ = kv.delete(&gate);
    }
    match taken {
        Ok(true) => Some(HeldLease {
            kv,
            key: key.to_string(),
            lease,
        }),
        Ok(false) => None,
        Err(e) => {
            eprintln!("cache: cannot take a copy's lease, streaming only: {e}");
            None
        }
    }
}

impl HeldLease {
    /// The lease as taken: its upload, repository, privacy.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Says what the blob is, so others can follow the copy.
    pub fn describe(&mut self, size: u64, media_type: &str) {
        self.lease.size = Some(size);
        self.lease.media_type = Some(media_type.to_string());
        self.renew();
    }

    /// Says how many parts are stored (and keeps the lease).
    pub fn stored(&mut self, parts: u64) {
        self.lease.parts = Some(parts);
        self.renew();
    }

    /// Says the stored parts passed the digest check (and keeps the lease).
    pub fn checked(&mut self) {
        self.lease.checked = true;
        self.renew();
    }

    /// Keeps the lease from expiring while the copy goes on.
    pub fn renew(&mut self) {
        self.lease.expires = crate::now() + eviction::LEASE_SECS;
        if let Err(e) = self.kv.set(&self.key, &self.lease.to_bytes()) {
            eprintln!("cache: cannot renew a copy's lease: {e}");
        }
    }
}

impl Drop for HeldLease {
    /// Lets go of the lease, unless another copy took it over (this one
    /// stalled past it), and closes its gate for the next.
    fn drop(&mut self) {
        let ours = self.lease.to_bytes();
        if self.kv.get(&self.key).ok().flatten().as_deref() != Some(&ours[..]) {
            return;
        }
        let _ = self.kv.delete(&self.key);
        let _ = self.kv.delete(&layout::lease_gate_key(&self.key));
    }
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
pub fn touch(kv: &dyn Kv, blob_key: &str, entry: &BlobEntry) {
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
        let position = enqueue(kv, &record)?;
        let entry = BlobEntry {
            queued: Some(position),
            ..entry.clone()
        };
        let value = serde_json::to_vec(&entry).map_err(|e| e.to_string())?;
        kv.set(blob_key, &value)
    })();
    if let Err(e) = moved {
        eprintln!("cache: cannot move a blob in use to the end of the queue: {e}");
    }
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
        touch(&kv, &keys[0], &entry(&kv, &keys[0]).unwrap());
        assert_eq!(entry(&kv, &keys[0]).unwrap().queued, Some(8));
        // One used while among the newest stays where it is.
        touch(&kv, &keys[7], &entry(&kv, &keys[7]).unwrap());
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

    /// A store that swaps as Spin 4.0.2's SQLite does when each of a crowd
    /// looked before any wrote: the key seen missing, then set regardless.
    struct SwapsBlind(MemoryKv);

    impl Kv for SwapsBlind {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
            self.0.get(key)
        }
        fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
            self.0.set(key, value)
        }
        fn delete(&self, key: &str) -> Result<(), String> {
            self.0.delete(key)
        }
        fn keys(&self) -> Result<Vec<String>, String> {
            self.0.keys()
        }
        fn increment(&self, key: &str, delta: i64) -> Result<i64, String> {
            self.0.increment(key, delta)
        }
        fn swap_if(
            &self,
            key: &str,
            expect: &dyn Fn(Option<&[u8]>) -> bool,
            value: &[u8],
        ) -> Result<bool, String> {
            if !expect(None) {
                return Ok(false);
            }
            self.0.set(key, value).map(|()| true)
        }
    }

    #[test]
    fn a_crowd_that_finds_no_lease_lets_one_take_it() {
        let kv: Rc<dyn Kv> = Rc::new(SwapsBlind(MemoryKv::default()));
        let key = "cache/lease/s/sha256:0";
        let lease = |u: &str| Lease::new(crate::now(), u, "r", false);
        let first = take_lease(kv.clone(), key, lease("a")).expect("the first takes it");
        assert!(take_lease(kv.clone(), key, lease("b")).is_none());
        assert_eq!(kv.get(key).unwrap(), Some(lease("a").to_bytes()));
        drop(first);
        assert!(kv.keys().unwrap().is_empty(), "let go, gate closed");
        assert!(take_lease(kv.clone(), key, lease("c")).is_some());
    }
}
