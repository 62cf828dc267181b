//! When each cached repository was last read, for the operator's list of
//! repositories: a bounded set of notes in the counters store,
//! `read|<scope>/<name>` = `<unix seconds> <sequence>`.
//!
//! The repositories clients can name are every repository of every
//! reachable registry (millions on Docker Hub), and the counters store is
//! listed whole by `/metrics` and the status page: so at most
//! [`MAX_NOTED`] repositories keep a note, the least recently noted
//! dropped first. Each note takes the next slot of a ring of that many
//! (`reads|<n>`, numbered by the counter `reads|next`); a note whose slot
//! comes round again is dropped, unless its repository was noted anew
//! since (it then holds a later slot). Only atomic counters and plain
//! writes, so instances sharing the store need no lock.

use crate::host::Kv;

/// Read notes kept at most: a page of repositories an operator can read,
/// and what a listing of the counters store (one Redis `KEYS`) stays
/// quick with, while it is more than a cache bounded by `cache_max_size`
/// holds repositories in use at once in most setups.
pub const MAX_NOTED: i64 = 1000;

/// A repository noted this recently is not noted anew: most manifest
/// answers then cost one read of the store, and the last-read time shown
/// is at most this old.
const RENOTE_SECS: u64 = 60;

const NEXT_KEY: &str = "reads|next";
const NOTE_PREFIX: &str = "read|";

/// The note of `repository` (`<scope>/<name>`).
pub fn key(repository: &str) -> String {
    format!("{NOTE_PREFIX}{repository}")
}

/// The repository a note's key names, if `key` is one.
pub fn repository_of(key: &str) -> Option<&str> {
    key.strip_prefix(NOTE_PREFIX)
}

fn slot_key(sequence: i64) -> String {
    format!("reads|{}", sequence.rem_euclid(MAX_NOTED))
}

/// A note's time, and its sequence (notes from before the bound have none).
fn parse(value: &[u8]) -> Option<(u64, Option<i64>)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut fields = text.split(' ');
    let time = fields.next()?.parse().ok()?;
    Some((time, fields.next().and_then(|s| s.parse().ok())))
}

/// Unix seconds `repository` was last read, if it is noted.
pub fn last_read(kv: &dyn Kv, repository: &str) -> Option<u64> {
    parse(&kv.get(&key(repository)).ok()??).map(|(time, _)| time)
}

/// Notes that `repository` was read at `now`, dropping the note of the
/// repository noted [`MAX_NOTED`] notes ago unless it was noted since.
pub fn note(kv: &dyn Kv, repository: &str, now: u64) -> Result<(), String> {
    let own = key(repository);
    let noted = kv.get(&own)?.and_then(|v| parse(&v));
    if noted.is_some_and(|(time, _)| time + RENOTE_SECS > now) {
        return Ok(());
    }
    let sequence = kv.increment(NEXT_KEY, 1)?;
    let slot = slot_key(sequence);
    if let Some(previous) = kv.get(&slot)? {
        let previous = key(&String::from_utf8_lossy(&previous));
        let stale = kv
            .get(&previous)?
            .and_then(|v| parse(&v))
            .and_then(|(_, s)| s)
            .is_some_and(|s| s <= sequence - MAX_NOTED);
        if previous != own && stale {
            kv.delete(&previous)?;
        }
    }
    kv.set(&slot, repository.as_bytes())?;
    kv.set(&own, format!("{now} {sequence}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryKv;

    fn notes(kv: &MemoryKv) -> usize {
        let keys = kv.keys().unwrap();
        keys.iter().filter(|k| repository_of(k).is_some()).count()
    }

    #[test]
    fn a_repository_noted_again_outlives_those_noted_once() {
        let kv = MemoryKv::default();
        note(&kv, "s/kept", 1).unwrap();
        for n in 0..10 {
            note(&kv, &format!("s/r{n}"), 2).unwrap();
        }
        // Read again, later: it takes a later slot, and its first one
        // coming round does not drop it.
        note(&kv, "s/kept", 100).unwrap();
        for n in 0..MAX_NOTED - 5 {
            note(&kv, &format!("s/more{n}"), 101).unwrap();
        }
        assert_eq!(last_read(&kv, "s/kept"), Some(100));
        assert_eq!(last_read(&kv, "s/r0"), None);
        assert_eq!(last_read(&kv, "s/r9"), Some(2));
        assert_eq!(notes(&kv), MAX_NOTED as usize);
    }

    #[test]
    fn a_repository_read_again_within_a_minute_is_not_noted_anew() {
        let kv = MemoryKv::default();
        note(&kv, "s/r", 1000).unwrap();
        note(&kv, "s/r", 1030).unwrap();
        assert_eq!(last_read(&kv, "s/r"), Some(1000));
        note(&kv, "s/r", 1060).unwrap();
        assert_eq!(last_read(&kv, "s/r"), Some(1060));
        // Notes written before the bound hold only the time.
        kv.set(&key("s/old"), b"5").unwrap();
        assert_eq!(last_read(&kv, "s/old"), Some(5));
    }
}
