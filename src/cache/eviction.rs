//! The cache's bound on its blob bytes, and its one copy in flight per
//! blob: the key layout and records, kept apart from the store that holds
//! them. Committed blobs join a first-in, first-out queue (two atomic
//! counters and a record each), so the oldest are evicted without ever
//! listing the store; a lease with an expiry marks the copy under way.

use crate::cache::blob_storage::{StoredBlob, Upload};
use crate::cache::layout;
use serde::{Deserialize, Serialize};

/// Bytes of committed blob chunks in the store (an atomic counter).
pub const TOTAL_KEY: &str = "cache/budget/bytes";
/// The next queue position to evict, and the next to fill (counters).
pub const HEAD_KEY: &str = "cache/budget/head";
pub const TAIL_KEY: &str = "cache/budget/tail";

/// The cache bound when the `cache_max_size` variable is empty.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;

/// How long a copy may go without renewing its lease before another
/// request may take over (the copy renews it as it stores chunks).
pub const LEASE_SECS: u64 = 15;

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

/// The lease of the one copy of a blob under way: which copy, until when,
/// and, once the upstream answered, what the blob is, so concurrent
/// requests can follow the copy instead of fetching the blob again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub expires: u64,
    pub upload: String,
    /// The repository the copy was asked for: distribution keeps blobs per
    /// repository, so only requests for the same one follow it.
    pub repository: String,
    /// A copy made with a client's own credentials is followed by nobody.
    pub private: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Parts stored so far, so followers ask the blob storage only for
    /// parts that are there (a bucket's missing object is a request too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u64>,
    /// The stored parts hash to the digest: followers may take the last
    /// one while the copy is still being completed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub checked: bool,
}

impl Lease {
    pub fn new(now: u64, upload: &str, repository: &str, private: bool) -> Self {
        Self {
            expires: now + LEASE_SECS,
            upload: upload.to_string(),
            repository: repository.to_string(),
            private,
            size: None,
            media_type: None,
            parts: None,
            checked: false,
        }
    }

    pub fn parse(value: &[u8]) -> Option<Self> {
        serde_json::from_slice(value).ok()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn live(&self, now: u64) -> bool {
        self.expires > now
    }
}

/// Whether a lease may be taken: none, expired, or unreadable.
pub fn lease_free(current: Option<&[u8]>, now: u64) -> bool {
    current
        .and_then(Lease::parse)
        .is_none_or(|lease| !lease.live(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases() {
        let lease = Lease::new(100, "u", "r", false).to_bytes();
        assert!(lease_free(None, 100));
        assert!(!lease_free(Some(&lease), 100));
        assert!(lease_free(Some(&lease), 100 + LEASE_SECS));
        assert!(lease_free(Some(b"garbage"), 100));
        assert_eq!(Lease::parse(&lease).unwrap().upload, "u");
    }

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
}
