//! The entries of cached manifests and tags as the store holds them: a
//! tag's entry for each set of manifest types, and the list of those
//! entries (so a push forgets them all without listing the store).

use crate::cache::layout::{TagEntry, variants_key_of};
use crate::host::Host;

/// A tag's entry, added to its tag's list of entries.
pub(super) fn store_tag<H: Host>(host: &H, key: &str, tag: &TagEntry) {
    if let Ok(v) = serde_json::to_vec(tag) {
        store(host, key, &v);
    }
    let Some(list_key) = variants_key_of(key) else {
        return;
    };
    let mut variants = variants(host, &list_key);
    if !variants.iter().any(|v| v == key) {
        variants.push(key.to_string());
        if let Ok(v) = serde_json::to_vec(&variants) {
            store(host, &list_key, &v);
        }
    }
}

/// The tag entry under `key`; `None` when absent, unreadable or not one.
pub(super) fn load_tag<H: Host>(host: &H, key: &str) -> Option<TagEntry> {
    let value = host.cache().get(key).ok().flatten()?;
    serde_json::from_slice(&value).ok()
}

/// The tag entry keys listed under `list_key`; empty when none or unreadable.
pub(super) fn variants<H: Host>(host: &H, list_key: &str) -> Vec<String> {
    host.cache()
        .get(list_key)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default()
}

/// The cache is best effort: a store that refuses a write costs a later
/// miss. Whether it took the value.
pub(super) fn store<H: Host>(host: &H, key: &str, value: &[u8]) -> bool {
    let stored = host.cache().set(key, value);
    if let Err(e) = &stored {
        eprintln!("cache: cannot store a manifest: {e}");
    }
    stored.is_ok()
}
