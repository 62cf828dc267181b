//! Pins: images kept out of eviction. A pin is a record of the cache keys
//! of an image's manifests and blobs with their sizes (`cache/pin/<id>`);
//! each key held carries a marker naming the pins that hold it
//! (`cache/pinned/<key>`), which eviction and the key budget read. Pinned
//! bytes count against `cache_max_size`, so a pin the bound cannot hold
//! beside the others is refused.

use crate::cache::layout::{BlobEntry, MANIFEST_PREFIX, ManifestEntry};
use crate::host::Kv;
use crate::oci::reference::{Reference, RepositoryName};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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

/// Pins the objects under `keys` as `id`, unless one of them is no longer
/// cached or the bound cannot hold them beside what the other pins hold;
/// the image's bytes. Sizes are the ones the cache holds them at, not
/// what a manifest says of them: an upstream that understates its layers
/// would otherwise pin more than `cache_max_size` can hold.
pub fn pin(kv: &dyn Kv, id: &str, keys: &[String], max_size: u64) -> Result<u64, String> {
    let pins = records(kv)?;
    let before: BTreeSet<&str> = pins
        .get(id)
        .map(|r| r.objects.iter().map(|o| o.key.as_str()).collect())
        .unwrap_or_default();
    // Marked first: what is found cached next can no longer be evicted,
    // so an object the walk's own later commits evicted shows as missing.
    for key in keys {
        change_marker(kv, key, |ids| {
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        })?;
    }
    let checked = stored(kv, keys).and_then(|objects| {
        let bytes = within_bound(&pins, id, &objects, max_size)?;
        Ok((objects, bytes))
    });
    let (objects, bytes) = match checked {
        Ok(checked) => checked,
        Err(why) => {
            for key in keys.iter().filter(|k| !before.contains(k.as_str())) {
                change_marker(kv, key, |ids| ids.retain(|i| i != id))?;
            }
            return Err(why);
        }
    };
    let record = PinRecord {
        objects,
        pinned_at: crate::now(),
    };
    let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    kv.set(&format!("{PIN_PREFIX}{id}"), &value)?;
    Ok(bytes)
}

/// Each object with the size the cache holds it at; an error saying how
/// many are no longer cached.
fn stored(kv: &dyn Kv, keys: &[String]) -> Result<Vec<Pinned>, String> {
    let mut objects = Vec::new();
    for key in keys {
        let Some(value) = kv.get(key)? else {
            continue;
        };
        let size = match key.starts_with(MANIFEST_PREFIX) {
            true => ManifestEntry::decode(&value).map(|(_, bytes)| bytes.len() as u64),
            false => serde_json::from_slice::<BlobEntry>(&value)
                .ok()
                .map(|e| e.size),
        };
        objects.push(Pinned {
            key: key.clone(),
            size: size.unwrap_or(0),
        });
    }
    let missing = keys.len() - objects.len();
    if missing > 0 {
        return Err(format!(
            "{missing} of the image's {} objects are no longer cached \
             (evicted while the walk went on: the image and what it was cached beside \
             are more than cache_max_size holds)",
            keys.len()
        ));
    }
    Ok(objects)
}

/// The image's bytes, if the bound holds them beside the other pins'.
fn within_bound(
    pins: &BTreeMap<String, PinRecord>,
    id: &str,
    objects: &[Pinned],
    max_size: u64,
) -> Result<u64, String> {
    let sum = |sizes: &mut dyn Iterator<Item = u64>| sizes.fold(0u64, u64::saturating_add);
    let others = held_by_others(pins, id);
    let theirs = sum(&mut others.values().copied());
    let mine = sum(&mut objects.iter().map(|o| o.size));
    let more = sum(&mut objects
        .iter()
        .filter(|o| !others.contains_key(&o.key))
        .map(|o| o.size));
    if theirs.saturating_add(more) > max_size {
        return Err(format!(
            "the image needs {more} bytes more than the other pins hold ({theirs}); \
             cache_max_size is {max_size}"
        ));
    }
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

    /// `keys` as blobs of `size` bytes the cache holds.
    fn objects(kv: &MemoryKv, keys: &[&str], size: u64) -> Vec<String> {
        for key in keys {
            let entry = BlobEntry {
                size,
                chunk_size: size,
                upload: crate::cache::layout::upload_id(1, 1),
                private: false,
                media_type: String::new(),
                store: "kv".into(),
                queued: None,
                read: None,
            };
            kv.set(key, &serde_json::to_vec(&entry).unwrap()).unwrap();
        }
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn pins_mark_what_they_hold_until_the_last_goes() {
        let kv = MemoryKv::default();
        pin(&kv, "a", &objects(&kv, &["k1", "k2"], 10), 100).unwrap();
        pin(&kv, "b", &objects(&kv, &["k2", "k3"], 10), 100).unwrap();
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
        pin(&kv, "a", &objects(&kv, &["k1", "k2"], 40), 130).unwrap();
        // Shared objects count once: 120 bytes in all.
        pin(&kv, "b", &objects(&kv, &["k2", "k3"], 40), 130).unwrap();
        let refused = pin(&kv, "c", &objects(&kv, &["k4"], 40), 130).unwrap_err();
        assert!(refused.contains("cache_max_size is 130"), "{refused}");
        assert!(!is_pinned(&kv, "k4"));
        // Pinning the same image again is no more bytes.
        pin(&kv, "a", &objects(&kv, &["k1", "k2"], 40), 130).unwrap();
    }

    #[test]
    fn a_pin_counts_what_the_cache_holds_and_refuses_what_it_lost() {
        let kv = MemoryKv::default();
        // Sizes are the cache's entries', whatever a manifest said.
        let keys = objects(&kv, &["k1", "k2"], 40);
        assert_eq!(pin(&kv, "a", &keys, 100), Ok(80));
        assert_eq!(records(&kv).unwrap()["a"].objects[0].size, 40);
        let refused = pin(&kv, "b", &objects(&kv, &["k3", "k4"], 40), 100).unwrap_err();
        assert!(refused.contains("cache_max_size is 100"), "{refused}");
        // An object evicted before the pin: refused, naming how many.
        let mut keys = objects(&kv, &["k5"], 1);
        keys.push("gone".into());
        let refused = pin(&kv, "c", &keys, 1000).unwrap_err();
        assert!(
            refused.starts_with("1 of the image's 2 objects"),
            "{refused}"
        );
        assert!(!is_pinned(&kv, "k5") && !is_pinned(&kv, "gone"));
        assert!(is_pinned(&kv, "k1"), "a refused pin let go of another's");
    }
}
