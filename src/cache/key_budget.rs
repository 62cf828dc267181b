//! The key-value budget for hosted platforms (Fermyon Cloud: 1,024 keys and
//! 1 MB values a store; Akamai Functions: 1 MB values). With `kv_max_keys`
//! set, the cache store holds no blob chunks, refuses values over
//! `kv_max_value`, and keeps at most `kv_max_keys` keys by evicting the
//! entry written longest ago. A tag is written again whenever it is
//! revalidated, so what is in use stays and what is not ages out: least
//! recently used at the granularity of the tag TTL, without a write per hit.
//! An entry read while it is among the oldest quarter moves to the newest
//! end, so what is still read stays too; that is a write only for entries
//! about to go.
//!
//! The order lives in one index value, changed by compare-and-swap so that
//! instances sharing the store agree.
//!
//! The size bound's own records (its queue, blob entries) and the copies'
//! leases are never evicted here: losing them left the bound's total
//! counting bytes nothing would free, and bucket objects nothing would
//! delete. They stay out of the index; the bound keeps at most a quarter of
//! `kv_max_keys` records (each with a blob entry, [`Kv::max_records`]) and
//! the index half, so the store stays within `kv_max_keys` all the same.

use crate::cache::layout::{BLOB_PREFIX, LEASE_FOLLOWERS_PREFIX, LEASE_GATE_PREFIX, LEASE_PREFIX};
use crate::cache::pins;
use crate::host::Kv;
use std::rc::Rc;

/// The index of the budgeted keys, oldest first; it counts as one key.
pub const INDEX_KEY: &str = "cache/budget/keys";
/// Attempts at a contended index before a write goes ahead uncounted.
const ATTEMPTS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_keys: usize,
    pub max_value: usize,
}

impl Limits {
    /// Keys the index admits (itself among them).
    fn indexed_keys(&self) -> usize {
        (self.max_keys / 2).max(2)
    }

    /// From `kv_max_keys` and `kv_max_value`; none without the first.
    fn from_variables(variable: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let size = |name: &str| crate::variables::size(name, variable(name)) as usize;
        let max_keys = Some(size("kv_max_keys")).filter(|&n| n > 0)?;
        let max_value = size("kv_max_value");
        Some(Self {
            max_keys: max_keys.max(2),
            max_value,
        })
    }
}

/// A cache store kept within `limits`.
pub struct Budgeted {
    inner: Rc<dyn Kv>,
    limits: Limits,
    /// The index as this request last read it, to tell a read entry's age.
    seen: std::cell::RefCell<Option<Vec<String>>>,
}

impl Budgeted {
    /// The cache store `inner`, kept within `limits`.
    pub fn new(inner: Rc<dyn Kv>, limits: Limits) -> Self {
        Self {
            inner,
            limits,
            seen: Default::default(),
        }
    }

    fn index(&self) -> Result<(Option<Vec<u8>>, Vec<String>), String> {
        let current = self.inner.get(INDEX_KEY)?;
        let keys = current
            .as_deref()
            .and_then(|v| serde_json::from_slice(v).ok())
            .unwrap_or_default();
        Ok((current, keys))
    }

    /// Whether `key` is among the oldest quarter, by this request's view.
    fn aging(&self, key: &str) -> Result<bool, String> {
        let mut seen = self.seen.borrow_mut();
        if seen.is_none() {
            *seen = Some(self.index()?.1);
        }
        let keys = seen.as_deref().unwrap_or_default();
        let quarter = keys.len().div_ceil(4);
        Ok(keys[..quarter].iter().any(|k| k == key))
    }

    /// Puts `key` last in the index, and returns the keys that fall out.
    fn admit(&self, key: &str) -> Result<Vec<String>, String> {
        self.seen.borrow_mut().take();
        for _ in 0..ATTEMPTS {
            let (current, mut keys) = self.index()?;
            keys.retain(|k| k != key);
            keys.push(key.to_string());
            // The index is a key of the store too, and a value within the
            // limit: long names leave room for fewer keys, never none.
            let mut over = keys.len().saturating_sub(self.limits.indexed_keys() - 1);
            let mut length = index_length(&keys[over..]);
            while length > self.limits.max_value && over + 1 < keys.len() {
                length -= keys[over].len() + 3;
                over += 1;
            }
            // Pinned keys are kept, at the newest end: pins count against
            // the budget and never leave it.
            let (kept, evicted): (Vec<String>, Vec<String>) = keys
                .drain(..over)
                .partition(|k| pins::is_pinned(self.inner.as_ref(), k));
            keys.extend(kept);
            let value = serde_json::to_vec(&keys).map_err(|e| e.to_string())?;
            let unchanged = |now: Option<&[u8]>| now == current.as_deref();
            if self.inner.swap_if(INDEX_KEY, &unchanged, &value)? {
                return Ok(evicted);
            }
        }
        Err("the cache's key index is contended".to_string())
    }
}

/// The size bound's records and blob entries, and the copies' leases:
/// kept until the bound or the copy lets go of them.
fn is_bound_bookkeeping(key: &str) -> bool {
    let bound = key.starts_with("cache/budget/") && key != INDEX_KEY;
    let copies = [
        BLOB_PREFIX,
        LEASE_PREFIX,
        LEASE_GATE_PREFIX,
        LEASE_FOLLOWERS_PREFIX,
    ];
    bound || copies.iter().any(|p| key.starts_with(p))
}

/// The bytes of the index as JSON (keys are names without escapes).
fn index_length(keys: &[String]) -> usize {
    2 + keys.iter().map(|k| k.len() + 3).sum::<usize>()
}

impl Kv for Budgeted {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let value = self.inner.get(key)?;
        if value.is_some() && key != INDEX_KEY && self.aging(key)? {
            // Read again while about to go: it is in use, keep it.
            for old in self.admit(key)? {
                self.inner.delete(&old)?;
            }
        }
        Ok(value)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        if value.len() > self.limits.max_value {
            return Err(format!(
                "{} bytes is over the store's value limit (kv_max_value = {})",
                value.len(),
                self.limits.max_value
            ));
        }
        // The pins' own records are few, the bound's are bounded by it;
        // neither is evicted here.
        if pins::is_bookkeeping(key) || is_bound_bookkeeping(key) {
            return self.inner.set(key, value);
        }
        for old in self.admit(key)? {
            self.inner.delete(&old)?;
        }
        self.inner.set(key, value)
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        // The index forgets it when it comes up for eviction.
        self.inner.delete(key)
    }

    fn keys(&self) -> Result<Vec<String>, String> {
        self.inner.keys()
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, String> {
        self.inner.increment(key, delta)
    }

    fn holds_blobs(&self) -> bool {
        false
    }

    fn max_records(&self) -> Option<u64> {
        Some((self.limits.max_keys / 4) as u64)
    }

    fn reachable(&self) -> Result<(), String> {
        self.inner.reachable()
    }

    fn swap_if(
        &self,
        key: &str,
        expect: &dyn Fn(Option<&[u8]>) -> bool,
        value: &[u8],
    ) -> Result<bool, String> {
        self.inner.swap_if(key, expect, value)
    }
}

/// The cache store, within the budget when `kv_max_keys` is set.
pub fn wrap(store: Rc<dyn Kv>, variable: impl Fn(&str) -> Option<String>) -> Rc<dyn Kv> {
    match Limits::from_variables(variable) {
        Some(limits) => Rc::new(Budgeted::new(store, limits)),
        None => store,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryKv;

    #[test]
    fn long_names_shorten_the_index_but_never_jam_it() {
        let memory = Rc::new(MemoryKv::default());
        let limits = Limits {
            max_keys: 10_000,
            max_value: 4096,
        };
        let store = Budgeted::new(memory.clone(), limits);
        for n in 0..200 {
            store
                .set(&format!("cache/tag/{}/{n}", "x".repeat(200)), b"v")
                .unwrap();
        }
        let index = memory.get(INDEX_KEY).unwrap().unwrap();
        assert!(index.len() <= 4096, "{} bytes", index.len());
        let last = format!("cache/tag/{}/199", "x".repeat(200));
        assert_eq!(store.get(&last).unwrap().as_deref(), Some(&b"v"[..]));
        assert!(memory.keys().unwrap().len() < 30);
    }

    #[test]
    fn keeps_within_its_keys_and_values_oldest_written_first() {
        let memory = Rc::new(MemoryKv::default());
        // Half the keys are the index's; the rest the size bound's.
        let limits = Limits {
            max_keys: 8,
            max_value: 32,
        };
        let store = Budgeted::new(memory.clone(), limits);
        assert!(!store.holds_blobs() && memory.holds_blobs());
        for k in ["a", "b", "c"] {
            store.set(k, b"x").unwrap();
        }
        assert_eq!(
            memory.keys().unwrap().len(),
            4,
            "three entries and the index"
        );
        // Written again, `a` is the newest: `b` goes first.
        store.set("a", b"y").unwrap();
        store.set("d", b"x").unwrap();
        assert_eq!(store.get("b").unwrap(), None);
        assert_eq!(store.get("a").unwrap(), Some(b"y".to_vec()));
        assert!(memory.keys().unwrap().len() <= 4);
        assert!(store.set("e", &[0; 33]).is_err());
        assert_eq!(store.get("e").unwrap(), None);
    }

    #[test]
    fn an_entry_read_while_among_the_oldest_stays() {
        let memory = Rc::new(MemoryKv::default());
        let limits = Limits {
            max_keys: 10,
            max_value: 32,
        };
        let store = Budgeted::new(memory.clone(), limits);
        for k in ["a", "b", "c", "d"] {
            store.set(k, b"x").unwrap();
        }
        // `a` is the oldest; read, it becomes the newest, and `b` goes next.
        let reader = Budgeted::new(memory.clone(), limits);
        assert_eq!(reader.get("a").unwrap(), Some(b"x".to_vec()));
        store.set("e", b"x").unwrap();
        assert_eq!(store.get("a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(store.get("b").unwrap(), None);
        // A newer entry read costs no write.
        let index = memory.get(INDEX_KEY).unwrap();
        Budgeted::new(memory.clone(), limits).get("e").unwrap();
        assert_eq!(memory.get(INDEX_KEY).unwrap(), index);
    }

    /// Finding 3 of the third review: the budget evicted the size bound's
    /// queue records and blob entries, so the bound's total only grew and
    /// their bucket objects were never deleted.
    #[test]
    fn the_size_bounds_records_are_never_evicted_and_stay_within_the_keys() {
        use crate::cache::blob_storage::memory::MemoryBlobs;
        use crate::cache::bound;
        let memory = Rc::new(MemoryKv::default());
        let limits = Limits {
            max_keys: 40,
            max_value: 1 << 20,
        };
        let store = Budgeted::new(memory.clone(), limits);
        let blobs = MemoryBlobs::default();
        let admit = |n: usize| bound::tests::committed(&store, n, &blobs, 1 << 40);
        for n in 0..3 {
            admit(n);
        }
        // Many new keys, as anonymous HEADs of many tags make.
        for n in 0..100 {
            store.set(&format!("cache/tag/s/r:{n}"), b"v").unwrap();
        }
        let queued = |m: &MemoryKv| {
            let keys = m.keys().unwrap();
            let records = keys.iter().filter(|k| k.starts_with("cache/budget/queue/"));
            let entries = keys.iter().filter(|k| k.starts_with("cache/blob/"));
            (records.count(), entries.count())
        };
        assert_eq!(queued(&memory), (3, 3), "the bound's records stay");
        assert_eq!(memory.increment(bound::TOTAL_KEY, 0).unwrap(), 3 << 20);
        // More blobs than the bound's share of keys: the bound evicts them.
        for n in 3..30 {
            admit(n);
        }
        assert_eq!(queued(&memory), (10, 10));
        assert_eq!(memory.increment(bound::TOTAL_KEY, 0).unwrap(), 10 << 20);
        let counters = 3; // the total, the queue's head and tail
        assert!(memory.keys().unwrap().len() <= 40 + counters);
    }

    #[test]
    fn limits_come_from_the_variables() {
        let vars = |name: &str| match name {
            "kv_max_keys" => Some("1000".to_string()),
            _ => None,
        };
        assert_eq!(
            Limits::from_variables(vars),
            Some(Limits {
                max_keys: 1000,
                max_value: 1_000_000
            })
        );
        assert_eq!(Limits::from_variables(|_| None), None);
        assert_eq!(Limits::from_variables(|_| Some(String::new())), None);
    }
}
