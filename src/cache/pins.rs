//! Pins: images kept out of eviction. A pin is a record of the cache keys
//! of an image's manifests and blobs with their sizes (`cache/pin/<id>`);
//! each key held carries a marker naming the pins that hold it
//! (`cache/pinned/<key>`), which eviction and the key budget read. Pinned
//! bytes count against `cache_max_size`, so a pin the bound cannot hold
//! beside the others is refused.

use crate::host::Kv;
use crate::oci::reference::{Reference, RepositoryName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const PIN_PREFIX: &str = "cache/pin/";
const MARKER_PREFIX: &str = "cache/pinned/";

/// One object a pin holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinned {
    pub key: String,
    pub size: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PinRecord {
    pub objects: Vec<Pinned>,
    /// Unix seconds.
    pub pinned_at: u64,
}

/// A pin's name: the route, and the image as clients name it through it.
pub fn id(route: &str, name: &RepositoryName, reference: &Reference) -> String {
    match reference {
        Reference::Tag(t) => format!("{route}/{name}:{t}"),
        Reference::Digest(d) => format!("{route}/{name}@{d}"),
    }
}

fn marker_key(key: &str) -> String {
    format!("{MARKER_PREFIX}{key}")
}

/// Keys of the pins' own bookkeeping, which no budget evicts.
pub fn is_bookkeeping(key: &str) -> bool {
    key.starts_with(PIN_PREFIX) || key.starts_with(MARKER_PREFIX)
}

/// Whether a pin holds `key`. A marker that cannot be read counts as a
/// pin: what cannot be checked is kept, never evicted.
pub fn is_pinned(kv: &dyn Kv, key: &str) -> bool {
    !matches!(kv.get(&marker_key(key)), Ok(None))
}

/// Every pin, by id.
pub fn records(kv: &dyn Kv) -> Result<BTreeMap<String, PinRecord>, String> {
    let mut pins = BTreeMap::new();
    for key in kv.keys()?.iter().filter(|k| k.starts_with(PIN_PREFIX)) {
        if let Some(record) = kv.get(key)?.and_then(|v| serde_json::from_slice(&v).ok()) {
            pins.insert(key[PIN_PREFIX.len()..].to_string(), record);
        }
    }
    Ok(pins)
}

/// The bytes the pins other than `except` hold, each object once.
fn held_by_others(pins: &BTreeMap<String, PinRecord>, except: &str) -> BTreeMap<String, u64> {
    pins.iter()
        .filter(|(id, _)| *id != except)
        .flat_map(|(_, r)| r.objects.iter().map(|o| (o.key.clone(), o.size)))
        .collect()
}

/// Pins `objects` under `id`, unless the bound cannot hold them beside
/// what the other pins hold; the image's bytes.
pub fn pin(kv: &dyn Kv, id: &str, objects: &[Pinned], max_size: u64) -> Result<u64, String> {
    let others = held_by_others(&records(kv)?, id);
    let theirs: u64 = others.values().sum();
    let mine: u64 = objects.iter().map(|o| o.size).sum();
    let more: u64 = objects
        .iter()
        .filter(|o| !others.contains_key(&o.key))
        .map(|o| o.size)
        .sum();
    if theirs + more > max_size {
        return Err(format!(
            "the image needs {more} bytes more than the other pins hold ({theirs}); \
             cache_max_size is {max_size}"
        ));
    }
    for o in objects {
        change_marker(kv, &o.key, |ids| {
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        })?;
    }
    let record = PinRecord {
        objects: objects.to_vec(),
        pinned_at: crate::now(),
    };
    let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    kv.set(&format!("{PIN_PREFIX}{id}"), &value)?;
    Ok(mine)
}

/// Removes pin `id`; false when there was none.
pub fn unpin(kv: &dyn Kv, id: &str) -> Result<bool, String> {
    let key = format!("{PIN_PREFIX}{id}");
    let Some(record) = kv
        .get(&key)?
        .and_then(|v| serde_json::from_slice::<PinRecord>(&v).ok())
    else {
        return Ok(false);
    };
    for o in &record.objects {
        change_marker(kv, &o.key, |ids| ids.retain(|i| i != id))?;
    }
    kv.delete(&key)?;
    Ok(true)
}

/// Changes the list of pins holding `key`; an empty list is no marker.
fn change_marker(kv: &dyn Kv, key: &str, change: impl Fn(&mut Vec<String>)) -> Result<(), String> {
    let marker = marker_key(key);
    let mut ids: Vec<String> = kv
        .get(&marker)?
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default();
    change(&mut ids);
    if ids.is_empty() {
        return kv.delete(&marker);
    }
    kv.set(
        &marker,
        &serde_json::to_vec(&ids).map_err(|e| e.to_string())?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryKv;

    fn objects(keys: &[&str], size: u64) -> Vec<Pinned> {
        keys.iter()
            .map(|k| Pinned {
                key: k.to_string(),
                size,
            })
            .collect()
    }

    #[test]
    fn pins_mark_what_they_hold_until_the_last_goes() {
        let kv = MemoryKv::default();
        pin(&kv, "a", &objects(&["k1", "k2"], 10), 100).unwrap();
        pin(&kv, "b", &objects(&["k2", "k3"], 10), 100).unwrap();
        assert!(is_pinned(&kv, "k1") && is_pinned(&kv, "k2") && is_pinned(&kv, "k3"));
        assert!(!is_pinned(&kv, "k4"));
        assert!(unpin(&kv, "a").unwrap());
        assert!(!is_pinned(&kv, "k1"));
        assert!(is_pinned(&kv, "k2"), "b still holds k2");
        assert!(!unpin(&kv, "a").unwrap());
        assert_eq!(records(&kv).unwrap().len(), 1);
    }

    #[test]
    fn a_pin_the_bound_cannot_hold_is_refused() {
        let kv = MemoryKv::default();
        pin(&kv, "a", &objects(&["k1", "k2"], 40), 130).unwrap();
        // Shared objects count once: 120 bytes in all.
        pin(&kv, "b", &objects(&["k2", "k3"], 40), 130).unwrap();
        let refused = pin(&kv, "c", &objects(&["k4"], 40), 130).unwrap_err();
        assert!(refused.contains("cache_max_size is 130"), "{refused}");
        assert!(!is_pinned(&kv, "k4"));
        // Pinning the same image again is no more bytes.
        pin(&kv, "a", &objects(&["k1", "k2"], 40), 130).unwrap();
    }
}
