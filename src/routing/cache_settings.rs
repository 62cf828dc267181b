//! A route's cache switches: its `cache` field.

use serde::{Deserialize, Serialize};

/// A route's cache switches (the route's `cache` field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    pub manifests: bool,
    pub blobs: bool,
    /// Seconds a tag is answered from the cache before a `HEAD` revalidates it.
    pub tag_ttl: u64,
    /// Larger blobs stream through uncached.
    pub max_blob_size: u64,
    /// Size of each stored piece of a blob (fit it to the store's value limit).
    pub chunk_size: u64,
    /// Seconds past the TTL a cached tag is still served while the upstream fails.
    pub stale_if_error: u64,
    /// Seconds a blob stays cached unread before `gc` removes it; 0 keeps
    /// blobs until the size bound evicts them.
    pub blob_ttl: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            manifests: true,
            blobs: true,
            tag_ttl: 300,
            max_blob_size: 8 << 30,
            chunk_size: 1 << 20,
            stale_if_error: 86_400,
            blob_ttl: 0,
        }
    }
}

impl CacheSettings {
    /// `Err` says which setting is out of range: `chunk_size` outside 64 KiB to
    /// 64 MiB, or a TTL past its cap.
    pub fn validate(&self) -> Result<(), String> {
        if !(64 << 10..=64 << 20).contains(&self.chunk_size) {
            return Err("chunk_size must be between 64 KiB and 64 MiB".into());
        }
        let year = 365 * 86_400;
        if self.tag_ttl > year || self.stale_if_error > year || self.blob_ttl > 10 * year {
            return Err("tag_ttl and stale_if_error are at most a year, blob_ttl ten years".into());
        }
        Ok(())
    }
}
