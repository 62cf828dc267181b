//! Looking after the cache: its figures, removing what expired or was
//! orphaned, and removing one repository's or one blob's entries.

use crate::cache::layout::{
    self as cache, BLOB_PREFIX, BlobEntry, CHUNK_PREFIX, MANIFEST_PREFIX, SEEN_PREFIX, TAG_PREFIX,
    TagEntry,
};
use crate::host::Host;
use crate::telemetry::stats;
use serde_json::json;
use std::collections::HashSet;

pub fn figures<H: Host>(host: &H) -> Result<serde_json::Value, String> {
    let keys = host.cache().keys()?;
    let count = |prefix: &str| keys.iter().filter(|k| k.starts_with(prefix)).count();
    let mut blob_bytes = 0u64;
    for k in keys.iter().filter(|k| k.starts_with(BLOB_PREFIX)) {
        if let Some(e) = host
            .cache()
            .get(k)?
            .and_then(|v| serde_json::from_slice::<BlobEntry>(&v).ok())
        {
            blob_bytes += e.size;
        }
    }
    let stats = stats::load(host);
    Ok(json!({
        "entries": {
            "manifests": count(MANIFEST_PREFIX),
            "tags": count(TAG_PREFIX),
            "blobs": count(BLOB_PREFIX),
            "chunks": count(CHUNK_PREFIX),
        },
        "blob_bytes": blob_bytes,
        "hits": stats.hits,
        "misses": stats.misses,
        "revalidated": stats.revalidated,
        "stale": stats.stale,
        "coalesced": stats.coalesced,
    }))
}

/// Removes tags past their stale period and chunks of no committed blob
/// whose copy started long enough ago to count as abandoned (a copy under
/// way has no committed entry yet).
pub fn collect_garbage<H: Host>(host: &H) -> Result<serde_json::Value, String> {
    let keys = host.cache().keys()?;
    let now = crate::now();
    let mut tags = 0;
    for k in keys.iter().filter(|k| k.starts_with(TAG_PREFIX)) {
        let expired = host
            .cache()
            .get(k)?
            .and_then(|v| serde_json::from_slice::<TagEntry>(&v).ok())
            .is_none_or(|t| t.expires <= now);
        if expired {
            host.cache().delete(k)?;
            tags += 1;
        }
    }
    // The committed (scope, digest, upload) of every blob.
    let mut committed = HashSet::new();
    for k in keys.iter().filter(|k| k.starts_with(BLOB_PREFIX)) {
        let rest = &k[BLOB_PREFIX.len()..];
        if let (Some((scope, digest)), Some(e)) = (
            rest.split_once('/'),
            host.cache()
                .get(k)?
                .and_then(|v| serde_json::from_slice::<BlobEntry>(&v).ok()),
        ) {
            committed.insert((scope.to_string(), digest.to_string(), e.upload));
        }
    }
    let mut chunks = 0;
    for k in keys.iter() {
        if let Some((scope, digest, upload)) = cache::chunk_of(k)
            && !committed.contains(&(scope.to_string(), digest.to_string(), upload.to_string()))
            && cache::upload_abandoned(upload, now)
        {
            host.cache().delete(k)?;
            chunks += 1;
        }
    }
    Ok(json!({ "removed": { "tags": tags, "chunks": chunks } }))
}

pub fn delete_repository<H: Host>(host: &H, repository: &str) -> Result<serde_json::Value, String> {
    let mut removed = 0;
    for k in host.cache().keys()? {
        if cache::repository_of(&k) == Some(repository) {
            host.cache().delete(&k)?;
            removed += 1;
        }
    }
    Ok(json!({ "removed": removed }))
}

pub fn delete_blob<H: Host>(host: &H, digest: &str) -> Result<serde_json::Value, String> {
    let mut removed = 0;
    for k in host.cache().keys()? {
        let is_entry = k
            .strip_prefix(BLOB_PREFIX)
            .and_then(|r| r.split_once('/'))
            .is_some_and(|(_, d)| d == digest)
            || k.strip_prefix(SEEN_PREFIX)
                .and_then(|r| r.rsplit_once('@'))
                .is_some_and(|(_, d)| d == digest);
        let is_chunk = cache::chunk_of(&k).is_some_and(|(_, d, _)| d == digest);
        if is_entry || is_chunk {
            host.cache().delete(&k)?;
            removed += 1;
        }
    }
    Ok(json!({ "removed": removed }))
}
