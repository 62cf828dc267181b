//! The pull-through cache's layout in the key-value store, its entries and
//! its settings. Manifests are kept by digest with their exact bytes; a tag
//! points at a digest for a while; blobs are kept in fixed-size chunks and
//! become visible only once their digest has been checked.

use crate::oci::media_type::Accepted;
use crate::routing::cache_settings::CacheSettings;
use crate::routing::route::spin_variable_prefix;
use serde::{Deserialize, Serialize};
use url::Url;

/// The cache's keys for one upstream and one upstream account
/// (`scheme~host:port`, then `@<credential set>` for what the route's own
/// account fetched: no '/', so keys split cleanly). What an account fetched
/// may be private to it, so it is never answered from another partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(String);

impl Scope {
    /// The partition of `upstream`'s origin, or of what the route's credential set
    /// `account` fetched there.
    pub fn of(upstream: &Url, account: Option<&str>) -> Self {
        let host = upstream.host_str().unwrap_or_default();
        let mut scope = match upstream.port() {
            Some(p) => format!("{}~{host}:{p}", upstream.scheme()),
            None => format!("{}~{host}", upstream.scheme()),
        };
        if let Some(account) = account {
            scope.push('@');
            scope.push_str(account);
        }
        Self(scope)
    }

    /// A scope as it stands in a key.
    pub fn from_key_part(part: &str) -> Self {
        Self(part.to_string())
    }

    /// A scope read back from outside (a bucket's key): `None` unless it is
    /// one [`Scope::of`] makes, an http(s) origin and maybe a credential set.
    pub fn parse(part: &str) -> Option<Self> {
        let (origin, account) = match part.split_once('@') {
            Some((o, a)) => (o, Some(a)),
            None => (part, None),
        };
        let (scheme, host) = origin.split_once('~')?;
        if !matches!(scheme, "http" | "https") || account.is_some_and(|a| !spin_variable_prefix(a))
        {
            return None;
        }
        let upstream = Url::parse(&format!("{scheme}://{host}/")).ok()?;
        // Made again from what it names, it must come out the same: no
        // default port, path, user or upper case slips through.
        let scope = Self::of(&upstream, account);
        (scope.0 == part).then_some(scope)
    }

    /// As it stands in keys: no '/' in it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The upstream's origin (`https://ghcr.io`) and the route's account,
    /// as people read them.
    pub fn upstream_and_account(&self) -> (String, Option<&str>) {
        let (upstream, account) = match self.0.split_once('@') {
            Some((u, a)) => (u, Some(a)),
            None => (self.0.as_str(), None),
        };
        (upstream.replacen('~', "://", 1), account)
    }

    /// A manifest of `repo` by digest: its [`ManifestEntry`] and exact bytes.
    pub fn manifest_key(&self, repo: &str, digest: &str) -> String {
        format!("{MANIFEST_PREFIX}{}/{repo}@{digest}", self.0)
    }

    /// One tag as answered to clients naming `accepted` (an index, or one
    /// platform's manifest, may be the answer).
    pub fn tag_key(&self, repo: &str, tag: &str, accepted: Accepted) -> String {
        format!("{TAG_PREFIX}{}/{repo}:{tag}#{}", self.0, accepted.key())
    }

    /// The list of one tag's variant keys, so a push that moves the tag
    /// forgets them all without listing the store.
    pub fn tag_variants_key(&self, repo: &str, tag: &str) -> String {
        format!("{TAG_VARIANTS_PREFIX}{}/{repo}:{tag}", self.0)
    }

    /// That the upstream has served `digest` in `repo`: distribution keeps
    /// blobs per repository, so a blob cached for one repository is not
    /// answered for another (a push checks with `HEAD` whether to upload)
    /// until the upstream confirmed it there.
    pub fn seen_key(&self, repo: &str, digest: &str) -> String {
        format!("{SEEN_PREFIX}{}/{repo}@{digest}", self.0)
    }

    /// A blob's [`BlobEntry`] by digest: one per partition, whatever the repository.
    pub fn blob_key(&self, digest: &str) -> String {
        format!("{BLOB_PREFIX}{}/{digest}", self.0)
    }

    /// Chunk `n` of one copy (`upload`) of a blob: [`Scope::chunk_prefix`] and `n`.
    pub fn chunk_key(&self, digest: &str, upload: &str, n: u64) -> String {
        format!("{}{n}", self.chunk_prefix(digest, upload))
    }

    /// Every chunk key of one copy of a blob is this and the chunk's number.
    pub fn chunk_prefix(&self, digest: &str, upload: &str) -> String {
        format!("{CHUNK_PREFIX}{}/{digest}/{upload}/", self.0)
    }

    /// Every key an upload staged for its followers starts so: its staged
    /// parts (by number) and the note that it is followed.
    pub fn stage_prefix(&self, digest: &str, upload: &str) -> String {
        format!("{STAGE_PREFIX}{}/{digest}/{upload}/", self.0)
    }

    /// Held by the one request copying `digest` into the cache.
    pub fn lease_key(&self, digest: &str) -> String {
        format!("{LEASE_PREFIX}{}/{digest}", self.0)
    }
}

pub const MANIFEST_PREFIX: &str = "cache/manifest/";
pub const TAG_PREFIX: &str = "cache/tag/";
pub const BLOB_PREFIX: &str = "cache/blob/";
pub const SEEN_PREFIX: &str = "cache/seen/";
pub const CHUNK_PREFIX: &str = "cache/chunk/";
pub const STAGE_PREFIX: &str = "cache/stage/";
pub const LEASE_PREFIX: &str = "cache/lease/";
pub const LEASE_GATE_PREFIX: &str = "cache/lease-gate/";
pub const LEASE_FOLLOWERS_PREFIX: &str = "cache/lease-followers/";

/// The counter that admits one request to take a missing lease.
pub fn lease_gate_key(lease_key: &str) -> String {
    let rest = lease_key.strip_prefix(LEASE_PREFIX).unwrap_or(lease_key);
    format!("{LEASE_GATE_PREFIX}{rest}")
}

/// Where the followers of copy `upload` under `lease_key` count themselves.
pub fn lease_followers_key(lease_key: &str, upload: &str) -> String {
    let rest = lease_key.strip_prefix(LEASE_PREFIX).unwrap_or(lease_key);
    format!("{LEASE_FOLLOWERS_PREFIX}{rest}/{upload}")
}

/// The lease, and the copy under it, a followers' count is of.
pub fn lease_of_followers(key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix(LEASE_FOLLOWERS_PREFIX)?;
    let (lease, upload) = rest.rsplit_once('/')?;
    Some((format!("{LEASE_PREFIX}{lease}"), upload.to_string()))
}

/// The lease a gate admits to.
pub fn lease_of_gate(gate_key: &str) -> Option<String> {
    let rest = gate_key.strip_prefix(LEASE_GATE_PREFIX)?;
    Some(format!("{LEASE_PREFIX}{rest}"))
}
pub const TAG_VARIANTS_PREFIX: &str = "cache/tag-variants/";

/// The variants list a tag key belongs in.
pub fn variants_key_of(tag_key: &str) -> Option<String> {
    let (tag, _) = tag_key.strip_prefix(TAG_PREFIX)?.rsplit_once('#')?;
    Some(format!("{TAG_VARIANTS_PREFIX}{tag}"))
}
/// The repository a manifest, tag or seen-blob key is for.
pub fn repository_of(key: &str) -> Option<&str> {
    if let Some(rest) = key
        .strip_prefix(MANIFEST_PREFIX)
        .or_else(|| key.strip_prefix(SEEN_PREFIX))
    {
        return rest
            .split_once('/')
            .and_then(|(_, r)| r.rsplit_once('@'))
            .map(|(repo, _)| repo);
    }
    let rest = key.strip_prefix(TAG_PREFIX)?;
    rest.split_once('/')
        .and_then(|(_, r)| r.rsplit_once('#'))
        .and_then(|(r, _)| r.rsplit_once(':'))
        .map(|(repo, _)| repo)
}

/// A chunk key's scope, blob digest and upload.
pub fn chunk_of(key: &str) -> Option<(&str, &str, &str)> {
    upload_under(key, CHUNK_PREFIX)
}

/// A staged key's scope, blob digest and upload.
pub fn staged_of(key: &str) -> Option<(&str, &str, &str)> {
    upload_under(key, STAGE_PREFIX)
}

fn upload_under<'k>(key: &'k str, prefix: &str) -> Option<(&'k str, &'k str, &'k str)> {
    let rest = key.strip_prefix(prefix)?;
    let (scope, rest) = rest.split_once('/')?;
    let mut parts = rest.rsplitn(3, '/');
    let (_n, upload, digest) = (parts.next()?, parts.next()?, parts.next()?);
    Some((scope, digest, upload))
}

/// A blob write's id: when it started, so garbage collection can tell a
/// copy still under way from an abandoned one.
pub fn upload_id(now: u64, random: u64) -> String {
    format!("{now:x}-{random:016x}")
}

/// Whether `id` has the shape [`upload_id`] gives: hex seconds, '-', 16 hex
/// digits. Ids read back from a store or a bucket go into object keys.
pub fn is_upload_id(id: &str) -> bool {
    let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    id.split_once('-')
        .is_some_and(|(t, r)| (1..=16).contains(&t.len()) && hex(t) && r.len() == 16 && hex(r))
}

/// How long a copy may take before its chunks count as abandoned.
pub const UPLOAD_GRACE_SECS: u64 = 6 * 3600;

/// Whether the chunks of `upload` belong to an abandoned copy by now.
pub fn upload_abandoned(upload: &str, now: u64) -> bool {
    upload_started(upload) + UPLOAD_GRACE_SECS <= now
}

/// When an upload began, from its id (0 for one that does not say).
fn upload_started(upload: &str) -> u64 {
    upload
        .split_once('-')
        .and_then(|(t, _)| u64::from_str_radix(t, 16).ok())
        .unwrap_or(0)
}

/// A cached manifest: this header as a JSON line, then the exact bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub media_type: String,
    /// Fetched with a client's own credentials: served again only after that
    /// client's access is checked upstream.
    pub private: bool,
}

impl ManifestEntry {
    /// The stored value: this header as one JSON line, then the manifest's `bytes`.
    pub fn encode(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out.extend_from_slice(bytes);
        out
    }

    /// The header and the manifest bytes of a stored value; `None` when it is not one.
    pub fn decode(value: &[u8]) -> Option<(Self, &[u8])> {
        let nl = value.iter().position(|&b| b == b'\n')?;
        let entry = serde_json::from_slice(&value[..nl]).ok()?;
        Some((entry, &value[nl + 1..]))
    }
}

/// A tag's answer for one `Accept`: which manifest, checked when. It holds
/// what a `HEAD` answers, so a client resolving tags with `HEAD` (containerd)
/// is served before the manifest itself was ever fetched by tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagEntry {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// As for manifests: fetched with a client's own credentials.
    pub private: bool,
    /// Unix seconds of the last upstream confirmation.
    pub checked: u64,
    /// Unix seconds after which even a failing upstream does not get it served.
    pub expires: u64,
    /// Whether the client that fetched it offered index types: a single
    /// manifest fetched so is what the tag is, for any client taking its type.
    #[serde(default)]
    pub offered_index: bool,
}

/// What to do with a cached tag now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagState {
    Fresh,
    /// Revalidate; serve it if the upstream fails.
    Stale,
    /// Revalidate; never serve it again.
    Expired,
}

impl TagEntry {
    /// A tag confirmed upstream `now`: fresh for `tag_ttl`, then served for
    /// `stale_if_error` longer only while the upstream fails.
    pub fn new(
        digest: &str,
        media_type: &str,
        size: u64,
        private: bool,
        now: u64,
        settings: &CacheSettings,
    ) -> Self {
        Self {
            digest: digest.to_string(),
            media_type: media_type.to_string(),
            size,
            private,
            checked: now,
            expires: now + settings.tag_ttl + settings.stale_if_error,
            offered_index: false,
        }
    }

    /// Whether the tag is fresh, stale or expired at `now` under `settings`.
    pub fn state(&self, now: u64, settings: &CacheSettings) -> TagState {
        if now < self.checked + settings.tag_ttl {
            TagState::Fresh
        } else if now < self.expires {
            TagState::Stale
        } else {
            TagState::Expired
        }
    }
}

/// A blob whose bytes are all stored and whose digest matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    pub size: u64,
    /// Its parts' size (all but the last).
    pub chunk_size: u64,
    /// Which write of the blob holds its bytes: it goes into the storage's
    /// keys (a presigned URL, a delete), so an entry with any other shape
    /// than [`upload_id`]'s is no entry.
    #[serde(deserialize_with = "generated_upload_id")]
    pub upload: String,
    pub private: bool,
    pub media_type: String,
    /// The [`BlobStorage::name`] of the backend that holds the bytes: an
    /// entry of another is a miss. Entries before backends were kv chunks.
    ///
    /// [`BlobStorage::name`]: crate::cache::blob_storage::BlobStorage::name
    #[serde(default = "kv_store")]
    pub store: String,
    /// Its place in the eviction queue, moved to the newest end when it is
    /// used while among the oldest (entries before that: never moved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<i64>,
    /// Unix seconds it was last read, kept only for a route with a
    /// `blob_ttl` (and then written at most every eighth of it); none: not
    /// read since its copy began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<u64>,
}

fn generated_upload_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id = String::deserialize(d)?;
    match is_upload_id(&id) {
        true => Ok(id),
        false => Err(serde::de::Error::custom(format!(
            "{id:?} is not an upload id (hex seconds, '-', 16 hex digits)"
        ))),
    }
}

fn kv_store() -> String {
    "kv".to_string()
}

impl BlobEntry {
    /// The entry under `key`; none when absent, unreadable or not one.
    pub fn load(kv: &dyn crate::host::Kv, key: &str) -> Option<Self> {
        kv.get(key)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
    }

    /// How many chunks the blob's bytes fill; the last may be short.
    pub fn chunks(&self) -> u64 {
        self.size.div_ceil(self.chunk_size.max(1))
    }

    /// Unix seconds it was last read, or its copy began.
    pub fn last_read(&self) -> u64 {
        self.read.unwrap_or_else(|| upload_started(&self.upload))
    }
}

#[cfg(test)]
mod tests;
