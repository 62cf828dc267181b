//! Upstream tokens kept in the cache's store for reuse, in a fixed number
//! of slots for each kind (anonymous, or one route account): a client can
//! make up repository names and query parameters without end, and each new
//! scope then takes the place of another in its slot instead of adding a
//! key. A slot says which request it answers, so a collision is a miss.

use crate::host::Kv;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Slots of each kind: as many scopes as a busy pull uses at once, many
/// times over.
pub const SLOTS: u64 = 256;

#[derive(Serialize, Deserialize)]
struct Kept {
    /// The request the token answers: a scope, or a realm URL.
    #[serde(rename = "for")]
    answers: String,
    expires: u64,
    token: String,
}

/// The key of the slot that a token of `kind` for `request` lives in.
pub fn slot_key(kind: &str, request: &str) -> String {
    let digest = Sha256::digest(request.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()) % SLOTS;
    format!("token/{kind}/slot-{n}")
}

/// The kept token for `request`, while it is good.
pub fn read(kv: &dyn Kv, kind: &str, request: &str, now: u64) -> Option<String> {
    let value = kv.get(&slot_key(kind, request)).ok()??;
    let kept: Kept = serde_json::from_slice(&value).ok()?;
    (kept.answers == request && kept.expires > now).then_some(kept.token)
}

/// Keeps `token` for `request` until `expires` (unix seconds).
pub fn keep(kv: &dyn Kv, kind: &str, request: &str, token: &str, expires: u64) {
    let kept = Kept {
        answers: request.to_string(),
        expires,
        token: token.to_string(),
    };
    let result = serde_json::to_vec(&kept)
        .map_err(|e| e.to_string())
        .and_then(|v| kv.set(&slot_key(kind, request), &v));
    if let Err(e) = result {
        eprintln!("cache: cannot keep an upstream token: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryKv;

    #[test]
    fn made_up_scopes_never_add_keys_past_the_slots() {
        let kv = MemoryKv::default();
        for n in 0..2000 {
            keep(&kv, "k", &format!("repository:junk{n}:pull"), "t", 100);
        }
        assert!(kv.keys().unwrap().len() as u64 <= SLOTS);
        let last = "repository:junk1999:pull";
        assert_eq!(read(&kv, "k", last, 99).as_deref(), Some("t"));
        assert_eq!(read(&kv, "k", last, 100), None, "expired");
        assert_eq!(read(&kv, "other", last, 99), None, "another kind");
    }

    #[test]
    fn a_slot_answers_only_its_own_request() {
        let kv = MemoryKv::default();
        let (a, b) = (0..)
            .map(|n| (format!("a{n}"), format!("b{n}")))
            .find(|(a, b)| slot_key("k", a) == slot_key("k", b))
            .unwrap();
        keep(&kv, "k", &a, "ta", 100);
        keep(&kv, "k", &b, "tb", 100);
        assert_eq!(read(&kv, "k", &a, 1), None);
        assert_eq!(read(&kv, "k", &b, 1).as_deref(), Some("tb"));
    }
}
