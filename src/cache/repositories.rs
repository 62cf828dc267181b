//! What the cache holds, by repository: its tags, bytes, when it was last
//! read, and whether a pin holds it. Read from the cache's keys, so it is
//! an operator's question (the status page, the admin API), never a pull's,
//! and gathered at most once a minute an instance: see [`listed`].

use crate::cache::layout::{
    self, BLOB_PREFIX, BlobEntry, MANIFEST_PREFIX, ManifestEntry, SEEN_PREFIX, Scope, TAG_PREFIX,
};
use crate::cache::pins;
use crate::host::Host;
use crate::telemetry::reads;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CachedRepository {
    /// The upstream's name of the repository.
    pub name: String,
    /// The upstream's origin.
    pub upstream: String,
    /// The route's account it was fetched with, if any.
    pub account: Option<String>,
    pub tags: BTreeSet<String>,
    /// Its manifests' bytes and its blobs' (a blob shared with another
    /// repository counts in each).
    pub bytes: u64,
    /// Unix seconds of the last manifest answered for it.
    pub last_read: Option<u64>,
    pub pinned: bool,
}

/// How long a gathered list is answered again. Gathering lists every key
/// of the cache store (blob chunks included) and reads every cached
/// manifest whole, up to `cache_max_size` in all: a page view or API call
/// that did so each time would let whoever can load the page make the
/// store do that much work. Kept for a minute, a request's work is one
/// read of this instance's memory; the list is at most this old.
const LISTED_SECS: u64 = 60;
/// In the instance's own memory (the `health` store): the list is a
/// snapshot of the shared cache, and needs no sharing itself.
const LISTED_KEY: &str = "repositories|listed";

#[derive(Deserialize)]
struct Listed {
    /// Unix seconds it was gathered.
    at: u64,
    repositories: Vec<CachedRepository>,
}

/// Every cached repository, biggest first, as gathered at most
/// [`LISTED_SECS`] ago by this instance.
pub fn listed<H: Host>(host: &H) -> Result<Vec<CachedRepository>, String> {
    let now = crate::now();
    let health = host.health();
    let kept = health
        .get(LISTED_KEY)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice::<Listed>(&v).ok())
        .filter(|l| l.at <= now && now < l.at + LISTED_SECS);
    if let Some(kept) = kept {
        return Ok(kept.repositories);
    }
    let repositories = gather(host)?;
    let value = serde_json::json!({ "at": now, "repositories": &repositories });
    if let Err(e) = health.set(LISTED_KEY, value.to_string().as_bytes()) {
        eprintln!("the list of cached repositories not kept: {e}");
    }
    Ok(repositories)
}

/// Drops the list kept by [`listed`]: the admin API changed what it shows
/// (a pin, a removal, `gc`), and the operator who did so expects to see it.
pub fn forget_listed<H: Host>(host: &H) {
    if let Err(e) = host.health().delete(LISTED_KEY) {
        eprintln!("the list of cached repositories not dropped: {e}");
    }
}

/// Every cached repository, biggest first, read from the cache store now.
pub fn gather<H: Host>(host: &H) -> Result<Vec<CachedRepository>, String> {
    let cache = host.cache();
    let keys = cache.keys()?;
    let pinned: BTreeSet<String> = pins::records(cache.as_ref())?
        .into_values()
        .flat_map(|r| r.objects.into_iter().map(|o| o.key))
        .collect();
    let mut found: BTreeMap<(String, String), CachedRepository> = BTreeMap::new();
    for key in &keys {
        let Some((scope, name)) = scope_and_repository(key) else {
            continue;
        };
        let repo = found
            .entry((scope.to_string(), name.to_string()))
            .or_default();
        repo.pinned |= pinned.contains(key);
        if key.starts_with(TAG_PREFIX) {
            if let Some(tag) = key.rsplit_once('#').and_then(|(t, _)| t.rsplit_once(':')) {
                repo.tags.insert(tag.1.to_string());
            }
        } else {
            repo.bytes += bytes_of(host, key, scope)?;
        }
    }
    let counters = host.counters();
    let mut list: Vec<CachedRepository> = found
        .into_iter()
        .map(|((scope, name), mut repo)| {
            let scope_of = Scope::from_key_part(&scope);
            let (upstream, account) = scope_of.upstream_and_account();
            repo.last_read = reads::last_read(counters.as_ref(), &format!("{scope}/{name}"));
            repo.account = account.map(str::to_string);
            repo.upstream = upstream;
            repo.name = name;
            repo
        })
        .collect();
    list.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    Ok(list)
}

/// `GET <admin_path>/cache/repositories`.
pub fn list<H: Host>(host: &H) -> Result<serde_json::Value, String> {
    Ok(serde_json::json!({ "repositories": listed(host)? }))
}

/// A manifest, tag or seen-blob key's scope and repository.
pub fn scope_and_repository(key: &str) -> Option<(&str, &str)> {
    let rest = [MANIFEST_PREFIX, TAG_PREFIX, SEEN_PREFIX]
        .iter()
        .find_map(|p| key.strip_prefix(p))?;
    let scope = rest.split_once('/')?.0;
    Some((scope, layout::repository_of(key)?))
}

/// A manifest's bytes, or the bytes of the blob a seen key names.
fn bytes_of<H: Host>(host: &H, key: &str, scope: &str) -> Result<u64, String> {
    let cache = host.cache();
    if key.starts_with(MANIFEST_PREFIX) {
        let value = cache.get(key)?.unwrap_or_default();
        return Ok(ManifestEntry::decode(&value).map_or(0, |(_, b)| b.len() as u64));
    }
    let Some((_, digest)) = key.rsplit_once('@') else {
        return Ok(0);
    };
    let blob_key = format!("{BLOB_PREFIX}{scope}/{digest}");
    Ok(BlobEntry::load(cache.as_ref(), &blob_key).map_or(0, |e| e.size))
}
