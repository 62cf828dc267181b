//! Looking after the cache: its figures, removing what expired or was
//! orphaned, and removing one repository's or one blob's entries.

use crate::cache::blob_storage::{self, Upload};
use crate::cache::layout::{
    self, BLOB_PREFIX, BlobEntry, CHUNK_PREFIX, LEASE_FOLLOWERS_PREFIX, LEASE_GATE_PREFIX,
    MANIFEST_PREFIX, SEEN_PREFIX, Scope, TAG_PREFIX, TagEntry,
};
use crate::cache::{blob_store, bound, pins, repositories};
use crate::host::Host;
use crate::routing::route;
use crate::telemetry::{reads, stats};
use serde_json::json;
use std::collections::{HashMap, HashSet};

/// The cache's figures for the admin API: entries by kind, blob bytes and
/// outcome counts. It reads every key of the store.
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
        "bypassed": stats.bypassed,
    }))
}

/// Removes tags past their stale period, and what copies that started
/// long enough ago to count as abandoned left in the blob storage (a copy
/// under way has no committed entry yet).
pub async fn collect_garbage<H: Host>(host: &H) -> Result<serde_json::Value, String> {
    let keys = host.cache().keys()?;
    let now = crate::now();
    let mut expired_tags = HashSet::new();
    for k in keys.iter().filter(|k| k.starts_with(TAG_PREFIX)) {
        let expired = host
            .cache()
            .get(k)?
            .and_then(|v| serde_json::from_slice::<TagEntry>(&v).ok())
            .is_none_or(|t| t.expires <= now);
        if expired {
            host.cache().delete(k)?;
            expired_tags.insert(k.as_str());
        }
    }
    let kept = keys.iter().filter(|k| !expired_tags.contains(k.as_str()));
    let read_notes = forget_reads(host, kept).unwrap_or_else(|e| {
        eprintln!("gc: the read notes in the counters store not looked at: {e}");
        0
    });
    // A gate left open by a request that stopped before it took the lease
    // would keep every later one from taking it.
    for gate in keys.iter().filter(|k| k.starts_with(LEASE_GATE_PREFIX)) {
        let lease = layout::lease_of_gate(gate).unwrap_or_default();
        if host.cache().get(&lease)?.is_none() {
            host.cache().delete(gate)?;
        }
    }
    // A follower that counted itself out just after its copy ended left a
    // count of no copy.
    for count in keys
        .iter()
        .filter(|k| k.starts_with(LEASE_FOLLOWERS_PREFIX))
    {
        let (lease, upload) = layout::lease_of_followers(count).unwrap_or_default();
        let current = host.cache().get(&lease)?;
        let copy = current
            .as_deref()
            .and_then(crate::cache::lease::Lease::parse);
        if copy.is_none_or(|l| l.upload != upload) {
            host.cache().delete(count)?;
        }
    }
    let (blobs, freed) = unread_blobs(host, &keys, now).await?;
    let uploads = match blob_storage::open(host)? {
        Some(storage) => {
            let completed = completed_uploads(host, &keys)?;
            let is_completed = |u: &Upload| completed.contains(u);
            storage.collect_abandoned(now, &is_completed).await?
        }
        None => 0,
    };
    Ok(json!({
        "removed": {
            "tags": expired_tags.len(), "uploads": uploads, "blobs": blobs,
            "read_notes": read_notes,
        },
        "freed": { "objects": blobs, "bytes": freed },
    }))
}

/// Drops the read notes of repositories the cache holds no key of (`kept`,
/// the cache's keys): a note is for the list of cached repositories, and
/// is worth nothing once its repository has gone. How many were dropped.
fn forget_reads<'k, H: Host>(
    host: &H,
    kept: impl Iterator<Item = &'k String>,
) -> Result<u64, String> {
    let cached: HashSet<String> = kept
        .filter_map(|k| repositories::scope_and_repository(k))
        .map(|(scope, name)| format!("{scope}/{name}"))
        .collect();
    let counters = host.counters();
    let mut dropped = 0;
    for key in counters.keys()? {
        if reads::repository_of(&key).is_some_and(|r| !cached.contains(r)) {
            counters.delete(&key)?;
            dropped += 1;
        }
    }
    Ok(dropped)
}

/// Removes the blobs of routes with a `blob_ttl` not read for that long
/// (pinned ones stay), with their bytes: how many, and their bytes.
async fn unread_blobs<H: Host>(host: &H, keys: &[String], now: u64) -> Result<(u64, u64), String> {
    let ttls = blob_ttls(host)?;
    if ttls.is_empty() {
        return Ok((0, 0));
    }
    let (cache, storage) = (host.cache(), blob_storage::open(host)?);
    let (mut objects, mut bytes) = (0, 0);
    for (key, entry) in blob_entries(host, keys)? {
        let Some((scope, digest)) = key[BLOB_PREFIX.len()..].split_once('/') else {
            continue;
        };
        let Some(ttl) = ttls.get(scope) else {
            continue;
        };
        if entry.last_read() + ttl > now || pins::is_pinned(cache.as_ref(), &key) {
            continue;
        }
        if let Some(storage) = storage.as_ref().filter(|s| s.name() == entry.store) {
            let blob = blob_store::stored_blob(&entry, &Scope::from_key_part(scope), digest);
            storage.delete(&blob).await?;
        }
        cache.delete(&key)?;
        bound::forget(cache.as_ref(), &entry)?;
        objects += 1;
        bytes += entry.size;
    }
    Ok((objects, bytes))
}

/// Each cache partition of a stored route with a `blob_ttl`, and the
/// longest TTL a route gives it.
fn blob_ttls<H: Host>(host: &H) -> Result<HashMap<String, u64>, String> {
    let mut ttls = HashMap::new();
    for (_, route) in route::stored_routes(host.kv().as_ref())? {
        let Some(route) = route.ok().filter(|r| r.cache.blob_ttl > 0) else {
            continue;
        };
        let ttl = route.cache.blob_ttl;
        for account in [None, route.credentials.as_deref()] {
            let scope = Scope::of(&route.upstream, account).as_str().to_string();
            let longest = ttls.entry(scope).or_insert(ttl);
            *longest = (*longest).max(ttl);
        }
    }
    Ok(ttls)
}

/// `GET <admin_path>/cache/pins`: every pin, with what it holds.
pub fn pins<H: Host>(host: &H) -> Result<serde_json::Value, String> {
    let mut listed = serde_json::Map::new();
    for (id, record) in pins::records(host.cache().as_ref())? {
        let bytes: u64 = record.objects.iter().map(|o| o.size).sum();
        let about =
            json!({"objects": record.objects.len(), "bytes": bytes, "pinned_at": record.pinned_at});
        listed.insert(id, about);
    }
    Ok(json!({ "pins": listed }))
}

/// Every committed blob's upload, from the index.
fn completed_uploads<H: Host>(host: &H, keys: &[String]) -> Result<HashSet<Upload>, String> {
    let mut completed = HashSet::new();
    for (key, entry) in blob_entries(host, keys)? {
        if let Some((scope, digest)) = key[BLOB_PREFIX.len()..].split_once('/') {
            completed.insert(Upload {
                scope: Scope::from_key_part(scope),
                digest: digest.to_string(),
                id: entry.upload,
            });
        }
    }
    Ok(completed)
}

fn blob_entries<H: Host>(host: &H, keys: &[String]) -> Result<Vec<(String, BlobEntry)>, String> {
    let mut entries = Vec::new();
    for k in keys.iter().filter(|k| k.starts_with(BLOB_PREFIX)) {
        if let Some(e) = host
            .cache()
            .get(k)?
            .and_then(|v| serde_json::from_slice::<BlobEntry>(&v).ok())
        {
            entries.push((k.clone(), e));
        }
    }
    Ok(entries)
}

/// Removes `repository`'s manifests, tags and seen-blob marks from every
/// partition (blobs stay: others may share them), and says how many.
pub fn delete_repository<H: Host>(host: &H, repository: &str) -> Result<serde_json::Value, String> {
    let mut removed = 0;
    for k in host.cache().keys()? {
        if layout::repository_of(&k) == Some(repository) {
            host.cache().delete(&k)?;
            removed += 1;
        }
    }
    Ok(json!({ "removed": removed }))
}

/// Removes one blob from every partition: its entries, marks and bytes.
pub async fn delete_blob<H: Host>(host: &H, digest: &str) -> Result<serde_json::Value, String> {
    let keys = host.cache().keys()?;
    let storage = blob_storage::open(host)?;
    let mut removed = 0;
    for (key, entry) in blob_entries(host, &keys)? {
        let Some((scope, d)) = key[BLOB_PREFIX.len()..].split_once('/') else {
            continue;
        };
        if d != digest {
            continue;
        }
        if let Some(storage) = storage.as_ref().filter(|s| s.name() == entry.store) {
            let blob = blob_store::stored_blob(&entry, &Scope::from_key_part(scope), digest);
            storage.delete(&blob).await?;
            removed += 1;
        }
    }
    for k in keys {
        let is_entry = k
            .strip_prefix(BLOB_PREFIX)
            .and_then(|r| r.split_once('/'))
            .is_some_and(|(_, d)| d == digest)
            || k.strip_prefix(SEEN_PREFIX)
                .and_then(|r| r.rsplit_once('@'))
                .is_some_and(|(_, d)| d == digest);
        if is_entry {
            host.cache().delete(&k)?;
            removed += 1;
        }
    }
    Ok(json!({ "removed": removed }))
}
