//! Manifests through the cache: by digest from the store; by tag from the
//! store within the route's TTL, then revalidated with a `HEAD` (which
//! Docker Hub does not count) and fetched again only when the digest moved;
//! served stale while the upstream fails.

mod tags;

use crate::cache::blob_storage;
use crate::cache::bound;
use crate::cache::layout::{ManifestEntry, Scope, TagEntry};
use crate::cache::tag_entries::{store, store_tag, variants};
use crate::host::notes::Outcome;
use crate::host::{Body, Headers, Host, Response};
use crate::oci::error::RegistryError;
use crate::oci::media_type::Accepted;
use crate::oci::reference::{Reference, RepositoryName};
use crate::relay::Call;
use crate::telemetry::stats;
use sha2::{Digest, Sha256};

/// distribution's limit on manifest size; larger answers are not manifests.
const MANIFEST_LIMIT: usize = 4 << 20;

/// Headers of a throttled upstream worth passing on with a stale answer.
const RATE_LIMIT_HEADERS: &[&str] = &[
    "ratelimit-limit",
    "ratelimit-remaining",
    "docker-ratelimit-source",
    "retry-after",
];

/// What the cache can answer with: the bytes only when a `GET` needs them.
struct Cached {
    digest: String,
    media_type: String,
    size: u64,
    bytes: Option<Vec<u8>>,
}

/// A manifest `GET` or `HEAD` through the cache: by digest from its entry,
/// by tag from the tag's entry within its TTL (revalidated upstream with a
/// `HEAD` after it), otherwise relayed and kept byte for byte with its
/// digest checked. The repository counts as read once it answered from
/// the cache or into it.
pub async fn get<H: Host>(
    call: &Call<'_, H>,
    repo: &RepositoryName,
    reference: &Reference,
) -> Result<Response<H::Stream>, RegistryError> {
    let scope = super::scope(call);
    let answer = lookup(call, &scope, repo, reference).await;
    if answer.as_ref().is_ok_and(|r| r.status == 200) {
        stats::note_read(call.host, &format!("{}/{repo}", scope.as_str()));
    }
    answer
}

async fn lookup<H: Host>(
    call: &Call<'_, H>,
    scope: &Scope,
    repo: &RepositoryName,
    reference: &Reference,
) -> Result<Response<H::Stream>, RegistryError> {
    let host = call.host;
    let tag_key = match reference {
        Reference::Digest(d) => {
            if let Some((entry, bytes)) = load(host, scope, repo, d.as_str())
                && usable(call, entry.private).await?
            {
                stats::record(host, Outcome::Hit);
                let cached = Cached {
                    digest: d.to_string(),
                    media_type: entry.media_type,
                    size: bytes.len() as u64,
                    bytes: Some(bytes),
                };
                return Ok(serve(call, cached, "HIT", Headers::default()));
            }
            None
        }
        Reference::Tag(t) => return tags::by_tag(call, scope, repo, t).await,
    };
    fetch(call, scope, repo, reference, tag_key).await
}

/// The request upstream as it is. A `GET` answered 200 is checked against
/// its digest and stored; a `HEAD` answered 200 is remembered for its tag.
async fn fetch<H: Host>(
    call: &Call<'_, H>,
    scope: &Scope,
    repo: &RepositoryName,
    reference: &Reference,
    tag_key: Option<String>,
) -> Result<Response<H::Stream>, RegistryError> {
    let host = call.host;
    let resp = call.upstream(&call.req.method).await?;
    let announced = resp
        .headers
        .get("docker-content-digest")
        .map(str::to_string);
    let media_type = resp
        .headers
        .get("content-type")
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    if call.req.method != "GET" || resp.status != 200 {
        let size = resp
            .headers
            .get("content-length")
            .and_then(|l| l.parse().ok());
        if let (Some(key), Some(digest), Some(size), 200) =
            (&tag_key, &announced, size, resp.status)
        {
            remember_tag(call, key, digest, &media_type, size);
        }
        return Ok(call.pass_back(resp));
    }
    let passed = call.client_headers(resp.status, &resp.headers);
    let bytes = host
        .read_body(resp.body, MANIFEST_LIMIT)
        .await
        .map_err(|e| RegistryError::bad_gateway(format!("upstream manifest: {e}")))?;
    let digest = checked_digest(&bytes, reference, announced)?;
    let entry = ManifestEntry {
        media_type: media_type.clone(),
        private: call.with_client_credentials(),
    };
    let key = scope.manifest_key(repo.as_str(), &digest);
    // Under a key budget each manifest is one of its keys: bounded there.
    if store(host, &key, &entry.encode(&bytes)) {
        admit(host, &key, bytes.len() as u64).await;
    }
    if let Some(key) = tag_key {
        remember_tag(call, &key, &digest, &media_type, bytes.len() as u64);
    }
    stats::record(host, Outcome::Miss);
    let cached = Cached {
        digest,
        media_type,
        size: bytes.len() as u64,
        bytes: Some(bytes),
    };
    Ok(serve(call, cached, "MISS", passed))
}

/// The manifest's digest, if it is the one asked for (by digest) or the
/// one the upstream announced (by tag).
/// Counts a stored manifest against the bound, evicting through the blob
/// storage; under a key budget (no blob storage) it is one of its keys.
async fn admit<H: Host>(host: &H, key: &str, size: u64) {
    match blob_storage::open(host) {
        Ok(Some(storage)) if host.cache().holds_blobs() => {
            let max = bound::max_size(host);
            let cache = host.cache();
            bound::admit_manifest(cache.as_ref(), storage.as_ref(), key, size, max).await
        }
        Ok(_) => {}
        Err(e) => eprintln!("cache: a manifest is outside the bound: {e}"),
    }
}

fn checked_digest(
    bytes: &[u8],
    reference: &Reference,
    announced: Option<String>,
) -> Result<String, RegistryError> {
    let digest = format!("sha256:{:x}", Sha256::digest(bytes));
    let expected = match reference {
        Reference::Digest(d) => Some(d.to_string()),
        Reference::Tag(_) => announced,
    };
    match expected.filter(|e| e.starts_with("sha256:")) {
        Some(e) if e != digest => Err(RegistryError::bad_gateway(format!(
            "the upstream manifest does not match its digest {e}"
        ))),
        _ => Ok(digest),
    }
}

/// A tag now points at `digest`, for the route's TTL.
fn remember_tag<H: Host>(call: &Call<'_, H>, key: &str, digest: &str, media_type: &str, size: u64) {
    let private = call.with_client_credentials();
    let settings = &call.target.route.cache;
    let mut tag = TagEntry::new(digest, media_type, size, private, crate::now(), settings);
    tag.offered_index = Accepted::parse(call.req.headers.get_all("accept")).offers_index();
    store_tag(call.host, key, &tag);
}

/// After a push or a delete: the tag's entries (every `Accept`), or the
/// manifest by digest, are no longer served.
pub fn forget<H: Host>(call: &Call<'_, H>, repo: &RepositoryName, reference: &Reference) {
    let host = call.host;
    let scope = super::scope(call);
    let result = match reference {
        Reference::Tag(t) => {
            let list_key = scope.tag_variants_key(repo.as_str(), t);
            variants(host, &list_key)
                .iter()
                .chain([&list_key])
                .try_for_each(|k| host.cache().delete(k))
        }
        Reference::Digest(d) => host
            .cache()
            .delete(&scope.manifest_key(repo.as_str(), d.as_str())),
    };
    if let Err(e) = result {
        eprintln!("cache: cannot forget a pushed manifest: {e}");
    }
}

fn load<H: Host>(
    host: &H,
    scope: &Scope,
    repo: &RepositoryName,
    digest: &str,
) -> Option<(ManifestEntry, Vec<u8>)> {
    let value = host
        .cache()
        .get(&scope.manifest_key(repo.as_str(), digest))
        .ok()
        .flatten()?;
    let (entry, bytes) = ManifestEntry::decode(&value)?;
    Some((entry.clone(), bytes.to_vec()))
}

/// A private entry is served only to a client whose own credentials the
/// upstream accepts for it now (a `HEAD`, which moves no bytes).
async fn usable<H: Host>(call: &Call<'_, H>, private: bool) -> Result<bool, RegistryError> {
    if !private {
        return Ok(true);
    }
    if !call.with_client_credentials() {
        return Ok(false);
    }
    Ok(call.upstream("HEAD").await?.status == 200)
}

fn serve<H: Host>(
    call: &Call<'_, H>,
    cached: Cached,
    how: &str,
    mut headers: Headers,
) -> Response<H::Stream> {
    headers.0.retain(|(n, _)| {
        ![
            "content-type",
            "content-length",
            "docker-content-digest",
            "etag",
        ]
        .iter()
        .any(|x| n.eq_ignore_ascii_case(x))
    });
    headers.push("content-type", cached.media_type);
    headers.push("content-length", cached.size.to_string());
    headers.push("docker-content-digest", cached.digest.clone());
    headers.push("etag", format!("\"{}\"", cached.digest));
    headers.push("x-cache", how);
    let body = match cached.bytes {
        Some(b) if call.req.method == "GET" => Body::Bytes(b),
        _ => Body::Empty,
    };
    Response {
        status: 200,
        headers,
        body,
    }
}
