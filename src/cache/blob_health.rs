//! Whether the blob storage answers: asked within a bound, and remembered
//! for a few seconds in the instance's own memory (the health store). A
//! bucket that is away then costs one request the bound and the next ones
//! nothing: they are served from the upstream, never sent to the bucket by
//! redirect. One that is back is used again within [`DOWN_FOR`] seconds.
//! A bucket that stops answering while it is believed up is caught by the
//! first answer from it that waits too long for its first bytes
//! ([`first_bytes`]).

use crate::cache::blob_storage::BlobStorage;
use crate::host::{Body, Host};
use futures::StreamExt;
use futures::future::Either;
use std::time::Duration;

/// The longest a request waits on the bucket to learn it is away: for its
/// answer to a question, or for a hit's first byte. A bucket's first byte
/// takes tens of milliseconds (a new TLS connection across a continent,
/// some hundreds); one that has not come in a second is hung as far as a
/// client can tell, and the upstream serves the request instead, within
/// the 2 s. Taken as away wrongly, a bucket costs two seconds of
/// relaying, not an error.
pub const BOUND: Duration = Duration::from_millis(1_000);
/// How long an answer is believed, in seconds: a bucket that answered is
/// asked again after this, one that did not, sooner.
const UP_FOR: u64 = 5;
const DOWN_FOR: u64 = 2;
/// How long a follower waits for the first part of the copy it follows
/// before it asks the storage whether it answers: with [`BOUND`] for the
/// question and the wait for a beat of the copy's lease (250 ms), within
/// the 2 s.
const ASK_AFTER: Duration = Duration::from_millis(100);

/// What an answer from the storage is waiting on for its first bytes.
#[derive(Clone, Copy)]
pub enum Waiting {
    /// A hit's bytes: the storage alone.
    Storage,
    /// A follower's: the copy it follows, which may only be slow (a slow
    /// upstream, a big first part), and the storage.
    Copy,
}

/// How an answer from the storage began.
pub enum Started {
    Yes,
    /// It failed before a byte went out: the upstream has it.
    Failed,
    /// The storage hangs: it is now taken as away.
    Hung,
}

/// Whether `storage` answers, asked when no recent answer is remembered.
pub async fn answers<H: Host>(host: &H, storage: &dyn BlobStorage) -> bool {
    // Nothing to ask (chunks in the cache store): no memory to read either.
    if storage.answers().is_none() {
        return true;
    }
    let known = host.health().get(&key_of(storage)).ok().flatten();
    let known = known.as_deref().and_then(parse);
    let now = crate::now();
    if let Some(up) = known.and_then(|k| believed(k, now)) {
        return up;
    }
    // This request asks; the others go by what was known meanwhile, so a
    // storage that hangs costs one request the bound, not every one.
    if let Some((up, _)) = known {
        note(host, storage, up);
    }
    let up = asked(host, storage).await;
    remember(host, storage, up);
    up
}

/// Waits for `body`'s first bytes from `storage`, and puts them back. A
/// hit waits [`BOUND`] at most. A follower that has none after
/// [`ASK_AFTER`] asks the storage, and goes on waiting only if it answers.
/// A storage that hangs is taken as away for [`DOWN_FOR`] seconds.
pub async fn first_bytes<H: Host, S>(
    host: &H,
    storage: &dyn BlobStorage,
    body: &mut Body<S>,
    waiting: Waiting,
) -> Started {
    let hung = async {
        match waiting {
            Waiting::Storage => host.timer().sleep(BOUND).await,
            Waiting::Copy => {
                host.timer().sleep(ASK_AFTER).await;
                if asked(host, storage).await {
                    futures::future::pending::<()>().await;
                }
            }
        }
    };
    let started = futures::future::select(Box::pin(begun(body)), Box::pin(hung)).await;
    match started {
        Either::Left((true, _)) => Started::Yes,
        Either::Left((false, _)) => Started::Failed,
        Either::Right(_) => {
            remember(host, storage, false);
            Started::Hung
        }
    }
}

/// Whether `storage` answers a question now, within [`BOUND`] (true where
/// there is nothing to ask).
async fn asked<H: Host>(host: &H, storage: &dyn BlobStorage) -> bool {
    let Some(probe) = storage.answers() else {
        return true;
    };
    match futures::future::select(probe, host.timer().sleep(BOUND)).await {
        Either::Left((answered, _)) => answered.is_ok(),
        Either::Right(_) => false,
    }
}

/// Waits for the body's first bytes, and puts them back in front; false
/// when it failed before any.
async fn begun<S>(body: &mut Body<S>) -> bool {
    let Body::Generated(chunks) = body else {
        return true;
    };
    match chunks.next().await {
        Some(Err(e)) => {
            eprintln!("cache: a cached blob cannot be read, relaying it: {e}");
            false
        }
        Some(Ok(first)) => {
            let rest = std::mem::replace(chunks, Box::pin(futures::stream::empty()));
            *chunks = Box::pin(futures::stream::iter([Ok(first)]).chain(rest));
            true
        }
        None => true,
    }
}

fn remember<H: Host>(host: &H, storage: &dyn BlobStorage, up: bool) {
    if !up {
        eprintln!("cache: the blob storage does not answer; blobs come from the upstream");
    }
    note(host, storage, up);
}

/// Notes in the health store that `storage` is `up` (or not) as of now.
fn note<H: Host>(host: &H, storage: &dyn BlobStorage, up: bool) {
    let value = format!("{} {}", u8::from(up), crate::now());
    let _ = host.health().set(&key_of(storage), value.as_bytes());
}

/// Where what is known of `storage` is kept, in the health store.
fn key_of(storage: &dyn BlobStorage) -> String {
    format!("blob-storage/{}", storage.name())
}

/// A noted answer: up or not, and when (seconds).
fn parse(value: &[u8]) -> Option<(bool, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let (up, at) = text.split_once(' ')?;
    Some((up == "1", at.parse().ok()?))
}

/// A noted answer, if still believed at `now`.
fn believed((up, at): (bool, u64), now: u64) -> Option<bool> {
    let believed = if up { UP_FOR } else { DOWN_FOR };
    (now.saturating_sub(at) < believed).then_some(up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_believed_for_a_while_and_a_failure_for_less() {
        let remembered = |value: &[u8], now| parse(value).and_then(|k| believed(k, now));
        assert_eq!(remembered(b"1 100", 104), Some(true));
        assert_eq!(remembered(b"1 100", 105), None);
        assert_eq!(remembered(b"0 100", 101), Some(false));
        assert_eq!(remembered(b"0 100", 102), None);
        assert_eq!(remembered(b"junk", 100), None);
    }
}
