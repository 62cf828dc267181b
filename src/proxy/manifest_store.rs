//! Manifests through the cache: by digest from the store; by tag from the
//! store within the route's TTL, then revalidated with a `HEAD` (which
//! Docker Hub does not count) and fetched again only when the digest moved;
//! served stale while the upstream fails.

use super::host::{Body, Headers, Host, Response};
use super::relay::Call;
use super::stats::{self, Outcome};
use crate::cache::{ManifestEntry, Scope, TagEntry, TagState};
use crate::error::RegistryError;
use crate::reference::{Reference, RepositoryName};
use sha2::{Digest, Sha256};

/// distribution's limit on manifest size; larger answers are not manifests.
const MANIFEST_LIMIT: usize = 4 << 20;

/// Headers of a throttled or failing upstream worth passing on with a
/// stale answer.
const RATE_LIMIT_HEADERS: &[&str] = &[
    "ratelimit-limit",
    "ratelimit-remaining",
    "docker-ratelimit-source",
    "retry-after",
];

pub async fn get<H: Host>(
    call: &Call<'_, H>,
    repo: &RepositoryName,
    reference: &Reference,
) -> Result<Response<H::Stream>, RegistryError> {
    let host = call.host;
    let settings = &call.target.route.cache;
    let scope = Scope::of(&call.target.route.upstream);
    let tag_key = match reference {
        Reference::Digest(d) => {
            if let Some((entry, bytes)) = load(host, &scope, repo, d.as_str())
                && usable(call, &entry).await?
            {
                stats::record(host, Outcome::Hit);
                return Ok(serve(&entry, bytes, d.as_str(), "HIT", Headers::default()));
            }
            None
        }
        Reference::Tag(t) => {
            let accept: Vec<&str> = call.req.headers.get_all("accept").collect();
            let key = scope.tag_key(repo.as_str(), t, &accept.join(","));
            let tag = host
                .kv_get(&key)
                .ok()
                .flatten()
                .and_then(|v| serde_json::from_slice::<TagEntry>(&v).ok());
            if let Some(tag) = tag
                && let Some((entry, bytes)) = load(host, &scope, repo, &tag.digest)
                && usable(call, &entry).await?
            {
                let now = super::now();
                let state = tag.state(now, settings);
                if state == TagState::Fresh {
                    stats::record(host, Outcome::Hit);
                    return Ok(serve(&entry, bytes, &tag.digest, "HIT", Headers::default()));
                }
                match call.upstream("HEAD").await {
                    Ok(r)
                        if r.status == 200
                            && r.headers.get("docker-content-digest")
                                == Some(tag.digest.as_str()) =>
                    {
                        store(host, &key, &TagEntry::new(&tag.digest, now, settings));
                        stats::record(host, Outcome::Revalidated);
                        return Ok(serve(
                            &entry,
                            bytes,
                            &tag.digest,
                            "REVALIDATED",
                            Headers::default(),
                        ));
                    }
                    Ok(r) if state == TagState::Stale && (r.status == 429 || r.status >= 500) => {
                        let mut passed = Headers::default();
                        for name in RATE_LIMIT_HEADERS {
                            if let Some(v) = r.headers.get(name) {
                                passed.push(name, v);
                            }
                        }
                        stats::record(host, Outcome::Stale);
                        return Ok(serve(&entry, bytes, &tag.digest, "STALE", passed));
                    }
                    Err(e) if state == TagState::Stale && e.status == 502 => {
                        eprintln!("serving a stale tag: {}", e.message);
                        stats::record(host, Outcome::Stale);
                        return Ok(serve(
                            &entry,
                            bytes,
                            &tag.digest,
                            "STALE",
                            Headers::default(),
                        ));
                    }
                    Err(e) => return Err(e),
                    // Moved, gone or refused: ask again with the request itself.
                    Ok(_) => {}
                }
            }
            Some(key)
        }
    };
    fetch(call, &scope, repo, reference, tag_key).await
}

/// The request upstream as it is; a `GET` answered 200 is checked against
/// its digest and stored.
async fn fetch<H: Host>(
    call: &Call<'_, H>,
    scope: &Scope,
    repo: &RepositoryName,
    reference: &Reference,
    tag_key: Option<String>,
) -> Result<Response<H::Stream>, RegistryError> {
    let host = call.host;
    let resp = call.upstream(&call.req.method).await?;
    if call.req.method != "GET" || resp.status != 200 {
        return Ok(call.pass_back(resp));
    }
    let passed = call.client_headers(resp.status, &resp.headers);
    let announced = resp
        .headers
        .get("docker-content-digest")
        .map(str::to_string);
    let media_type = resp
        .headers
        .get("content-type")
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    let bytes = host
        .read_body(resp.body, MANIFEST_LIMIT)
        .await
        .map_err(|e| RegistryError::bad_gateway(format!("upstream manifest: {e}")))?;
    let digest = format!("sha256:{:x}", Sha256::digest(&bytes));
    let expected = match reference {
        Reference::Digest(d) => Some(d.as_str().to_string()),
        Reference::Tag(_) => announced,
    };
    if let Some(e) = expected.filter(|e| e.starts_with("sha256:"))
        && e != digest
    {
        return Err(RegistryError::bad_gateway(format!(
            "the upstream manifest does not match its digest {e}"
        )));
    }
    let entry = ManifestEntry {
        media_type,
        private: call.with_client_credentials(),
    };
    store_raw(
        host,
        &scope.manifest_key(repo.as_str(), &digest),
        &entry.encode(&bytes),
    );
    if let Some(key) = tag_key {
        store(
            host,
            &key,
            &TagEntry::new(&digest, super::now(), &call.target.route.cache),
        );
    }
    stats::record(host, Outcome::Miss);
    Ok(serve(&entry, bytes, &digest, "MISS", passed))
}

fn load<H: Host>(
    host: &H,
    scope: &Scope,
    repo: &RepositoryName,
    digest: &str,
) -> Option<(ManifestEntry, Vec<u8>)> {
    let value = host
        .kv_get(&scope.manifest_key(repo.as_str(), digest))
        .ok()
        .flatten()?;
    let (entry, bytes) = ManifestEntry::decode(&value)?;
    Some((entry.clone(), bytes.to_vec()))
}

/// A private entry is served only to a client whose own credentials the
/// upstream accepts for it now (a `HEAD`, which moves no bytes).
async fn usable<H: Host>(call: &Call<'_, H>, entry: &ManifestEntry) -> Result<bool, RegistryError> {
    if !entry.private {
        return Ok(true);
    }
    if !call.with_client_credentials() {
        return Ok(false);
    }
    Ok(call.upstream("HEAD").await?.status == 200)
}

fn store<H: Host>(host: &H, key: &str, tag: &TagEntry) {
    if let Ok(v) = serde_json::to_vec(tag) {
        store_raw(host, key, &v);
    }
}

/// The cache is best effort: a store that refuses a write costs a later miss.
fn store_raw<H: Host>(host: &H, key: &str, value: &[u8]) {
    if let Err(e) = host.kv_set(key, value) {
        eprintln!("cache: cannot store a manifest: {e}");
    }
}

fn serve<S>(
    entry: &ManifestEntry,
    bytes: Vec<u8>,
    digest: &str,
    how: &str,
    mut headers: Headers,
) -> Response<S> {
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
    headers.push("content-type", entry.media_type.clone());
    headers.push("content-length", bytes.len().to_string());
    headers.push("docker-content-digest", digest);
    headers.push("etag", format!("\"{digest}\""));
    headers.push("x-cache", how);
    Response {
        status: 200,
        headers,
        body: Body::Bytes(bytes),
    }
}
