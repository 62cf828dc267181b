//! Manifests by tag: the tag's entry for this client's manifest types, or
//! another client's that gives the same answer; revalidated with a `HEAD`
//! past the TTL, and served stale while the upstream fails.

use super::{Cached, RATE_LIMIT_HEADERS, fetch, load, serve, usable};
use crate::cache::layout::{Scope, TagEntry, TagState};
use crate::cache::tag_entries::{load_tag, store_tag, variants};
use crate::host::notes::Outcome;
use crate::host::{Headers, Host, Response};
use crate::oci::error::RegistryError;
use crate::oci::media_type::{Accepted, is_index};
use crate::oci::reference::{Reference, RepositoryName};
use crate::relay::Call;
use crate::telemetry::stats;
use futures::future::Either;
use std::time::Duration;

/// The longest a tag that may still be served stale waits on the upstream
/// to revalidate it. A healthy registry answers a `HEAD`, its token round
/// trip included, in well under a second; `upstream_timeout` (30 s unless
/// set) is as long as containerd waits for an answer's head at all.
const STALE_AFTER: Duration = Duration::from_secs(5);

/// A manifest by tag: as cached for this client's manifest types, or for
/// another client's when it is what the upstream would answer this one
/// (docker, containerd and podman list different types, and one pull by
/// each costs one upstream request); else from the upstream.
pub(super) async fn by_tag<H: Host>(
    call: &Call<'_, H>,
    scope: &Scope,
    repo: &RepositoryName,
    tag: &str,
) -> Result<Response<H::Stream>, RegistryError> {
    let accepted = Accepted::parse(call.req.headers.get_all("accept"));
    let key = scope.tag_key(repo.as_str(), tag, accepted);
    if let Some(answer) = from_tag(call, scope, repo, &key).await? {
        return Ok(answer);
    }
    // An index goes to any client taking indexes; a single manifest fetched
    // while index types were offered is what the tag is, for any client
    // taking its type.
    let same_answer = |e: &TagEntry| {
        accepted.covers(&e.media_type) && (is_index(&e.media_type) || e.offered_index)
    };
    if let Some(answer) = other_variant(call, scope, repo, tag, same_answer).await? {
        return Ok(answer);
    }
    match fetch(
        call,
        scope,
        repo,
        &Reference::Tag(tag.to_string()),
        Some(key),
    )
    .await
    {
        // While the upstream fails, any variant this client takes will do,
        // so a pull of what is cached works from any client.
        Err(e) if e.is_upstream_failure() => {
            let takes = |e: &TagEntry| accepted.is_empty() || accepted.covers(&e.media_type);
            other_variant(call, scope, repo, tag, takes).await?.ok_or(e)
        }
        answer => answer,
    }
}

/// The tag as cached for another client's manifest types, when `fits`.
async fn other_variant<H: Host>(
    call: &Call<'_, H>,
    scope: &Scope,
    repo: &RepositoryName,
    tag: &str,
    fits: impl Fn(&TagEntry) -> bool,
) -> Result<Option<Response<H::Stream>>, RegistryError> {
    let list_key = scope.tag_variants_key(repo.as_str(), tag);
    for key in variants(call.host, &list_key) {
        if load_tag(call.host, &key).is_some_and(|e| fits(&e))
            && let Ok(Some(answer)) = from_tag(call, scope, repo, &key).await
        {
            return Ok(Some(answer));
        }
    }
    Ok(None)
}

/// A cached tag's answer: fresh, revalidated, or stale while the upstream
/// fails; `None` to ask the upstream.
async fn from_tag<H: Host>(
    call: &Call<'_, H>,
    scope: &Scope,
    repo: &RepositoryName,
    key: &str,
) -> Result<Option<Response<H::Stream>>, RegistryError> {
    let host = call.host;
    let settings = &call.target.route.cache;
    let Some(tag) = load_tag(host, key) else {
        return Ok(None);
    };
    let bytes = match call.req.method.as_str() {
        "GET" => match load(host, scope, repo, &tag.digest) {
            Some((_, bytes)) => Some(bytes),
            None => return Ok(None),
        },
        _ => None,
    };
    if tag.media_type.is_empty() || !usable(call, tag.private).await? {
        return Ok(None);
    }
    let cached = Cached {
        digest: tag.digest.clone(),
        media_type: tag.media_type.clone(),
        size: tag.size,
        bytes,
    };
    let state = tag.state(crate::now(), settings);
    if state == TagState::Fresh {
        stats::record(host, Outcome::Hit);
        return Ok(Some(serve(call, cached, "HIT", Headers::default())));
    }
    revalidate(call, key, tag, state, cached).await
}

/// A cached tag past its TTL: a `HEAD` upstream says whether it still
/// points where it did; while the upstream fails, a stale tag still serves.
async fn revalidate<H: Host>(
    call: &Call<'_, H>,
    key: &str,
    tag: TagEntry,
    state: TagState,
    cached: Cached,
) -> Result<Option<Response<H::Stream>>, RegistryError> {
    let (host, settings, now) = (call.host, &call.target.route.cache, crate::now());
    match asked_to_revalidate(call, state).await {
        Ok(r)
            if r.status == 200
                && r.headers.get("docker-content-digest") == Some(tag.digest.as_str()) =>
        {
            let mut checked = TagEntry::new(
                &tag.digest,
                &tag.media_type,
                tag.size,
                tag.private,
                now,
                settings,
            );
            checked.offered_index = tag.offered_index;
            store_tag(host, key, &checked);
            stats::record(host, Outcome::Revalidated);
            Ok(Some(serve(call, cached, "REVALIDATED", Headers::default())))
        }
        Ok(r) if state == TagState::Stale && (r.status == 429 || r.status >= 500) => {
            let mut passed = Headers::default();
            for name in RATE_LIMIT_HEADERS {
                if let Some(v) = r.headers.get(name) {
                    passed.push(name, v);
                }
            }
            stats::record(host, Outcome::Stale);
            Ok(Some(serve(call, cached, "STALE", passed)))
        }
        Err(e) if state == TagState::Stale && e.status == 502 => {
            eprintln!("serving a stale tag: {}", e.message);
            stats::record(host, Outcome::Stale);
            Ok(Some(serve(call, cached, "STALE", Headers::default())))
        }
        Err(e) => Err(e),
        // Moved, gone or refused: ask again with the request itself.
        Ok(_) => Ok(None),
    }
}

/// The upstream's answer to a `HEAD` of the tag: within [`STALE_AFTER`]
/// when a stale tag can stand in for it, else an error as if unreachable.
async fn asked_to_revalidate<H: Host>(
    call: &Call<'_, H>,
    state: TagState,
) -> Result<Response<H::Stream>, RegistryError> {
    let asked = Box::pin(call.upstream("HEAD"));
    if state != TagState::Stale {
        return asked.await;
    }
    match futures::future::select(asked, call.host.timer().sleep(STALE_AFTER)).await {
        Either::Left((answer, _)) => answer,
        Either::Right(_) => Err(RegistryError::bad_gateway(format!(
            "the upstream did not answer in {} s",
            STALE_AFTER.as_secs()
        ))),
    }
}
