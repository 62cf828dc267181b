//! The cache's bound on its size and its one copy in flight per blob, kept
//! in the cache's store with its atomics so every instance agrees.

use crate::cache::blob_storage::BlobStorage;
use crate::cache::eviction::{
    self, Committed, DEFAULT_MAX_SIZE, HEAD_KEY, Lease, TAIL_KEY, TOTAL_KEY, queue_key,
};
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
pub fn take_lease(kv: Rc<dyn Kv>, key: &str, lease: Lease) -> Option<HeldLease> {
    let now = crate::now();
    let free = |current: Option<&[u8]>| eviction::lease_free(current, now);
    match kv.swap_if(key, &free, &lease.to_bytes()) {
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

    /// Keeps the lease from expiring while the copy goes on.
    pub fn renew(&mut self) {
        self.lease.expires = crate::now() + eviction::LEASE_SECS;
        if let Err(e) = self.kv.set(&self.key, &self.lease.to_bytes()) {
            eprintln!("cache: cannot renew a copy's lease: {e}");
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        let _ = self.kv.delete(&self.key);
    }
}

/// Counts a committed blob in, then evicts the oldest blobs (their bytes
/// from `storage`) while the cache is over `max`.
pub async fn admit(
    kv: &dyn Kv,
    storage: &dyn BlobStorage,
    record: &Committed,
    max: u64,
) -> Result<(), String> {
    let position = kv.increment(TAIL_KEY, 1)? - 1;
    let json = serde_json::to_vec(record).map_err(|e| e.to_string())?;
    kv.set(&queue_key(position), &json)?;
    let mut total = kv.increment(TOTAL_KEY, signed(record.size))?;
    while total > signed(max) {
        let Some(freed) = evict_oldest(kv, storage, position).await? else {
            break;
        };
        total = kv.increment(TOTAL_KEY, -signed(freed))?;
    }
    Ok(())
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
        .and_then(|v| serde_json::from_slice::<crate::cache::layout::BlobEntry>(&v).ok());
    if record.manifest || current.is_some_and(|e| e.upload == record.upload) {
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
    use crate::host::memory::MemoryKv;

    #[test]
    fn manifests_count_against_the_bound_and_are_evicted_oldest_first() {
        let kv = MemoryKv::default();
        let blobs = crate::cache::blob_storage::memory::MemoryBlobs::default();
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
}
