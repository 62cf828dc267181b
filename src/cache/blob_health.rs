//! Whether the blob storage answers: asked within a bound, and remembered
//! for a few seconds in the instance's own memory (the health store). A
//! bucket that is away then costs one request the bound and the next ones
//! nothing: they are served from the upstream, never sent to the bucket by
//! redirect. One that is back is used again within [`DOWN_FOR`] seconds.

use crate::cache::blob_storage::BlobStorage;
use crate::host::Host;
use futures::future::Either;
use std::time::Duration;

/// The longest a request waits on the bucket to learn it is away.
const BOUND: Duration = Duration::from_secs(2);
/// How long an answer is believed, in seconds: a bucket that answered is
/// asked again after this, one that did not, sooner.
const UP_FOR: u64 = 5;
const DOWN_FOR: u64 = 2;

/// Whether `storage` answers, asked when no recent answer is remembered.
pub async fn answers<H: Host>(host: &H, storage: &dyn BlobStorage) -> bool {
    // Nothing to ask (chunks in the cache store): no memory to read either.
    let Some(probe) = storage.answers() else {
        return true;
    };
    let health = host.health();
    let key = format!("blob-storage/{}", storage.name());
    let now = crate::now();
    if let Some(up) = remembered(health.get(&key).ok().flatten(), now) {
        return up;
    }
    let up = match futures::future::select(probe, host.timer().sleep(BOUND)).await {
        Either::Left((answered, _)) => answered.is_ok(),
        Either::Right(_) => false,
    };
    if !up {
        eprintln!("cache: the blob storage does not answer; blobs come from the upstream");
    }
    let _ = health.set(&key, format!("{} {now}", u8::from(up)).as_bytes());
    up
}

/// A remembered answer still believed at `now`.
fn remembered(value: Option<Vec<u8>>, now: u64) -> Option<bool> {
    let text = String::from_utf8(value?).ok()?;
    let (up, at) = text.split_once(' ')?;
    let (up, at) = (up == "1", at.parse::<u64>().ok()?);
    let believed = if up { UP_FOR } else { DOWN_FOR };
    (now.saturating_sub(at) < believed).then_some(up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_believed_for_a_while_and_a_failure_for_less() {
        let at = |up: bool, t: u64| Some(format!("{} {t}", u8::from(up)).into_bytes());
        assert_eq!(remembered(at(true, 100), 104), Some(true));
        assert_eq!(remembered(at(true, 100), 105), None);
        assert_eq!(remembered(at(false, 100), 101), Some(false));
        assert_eq!(remembered(at(false, 100), 102), None);
        assert_eq!(remembered(Some(b"junk".to_vec()), 100), None);
        assert_eq!(remembered(None, 100), None);
    }
}
