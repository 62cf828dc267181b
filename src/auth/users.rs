//! The proxy's own users: stored as `user/<name>` in the key-value store,
//! each with a password hash and rights on repository patterns.

use crate::routing::pattern::RepositoryPattern;
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "user/";

/// The key-value key user `name` is stored under (`user/<name>`).
pub fn key_for(name: &str) -> String {
    format!("{KEY_PREFIX}{name}")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Right {
    pub repository: String,
    pub actions: Vec<String>,
}

/// The JSON schema of a stored user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// An Argon2 PHC string (`$argon2id$...`), or `sha256:<hex>` of a long
    /// random token.
    pub password_hash: String,
    pub access: Vec<Right>,
}

impl User {
    /// A stored user; `Err` says what is wrong with the JSON (unknown fields too).
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("invalid user JSON: {e}"))
    }

    /// The actions of `requested` this user may take on `name`.
    pub fn granted(&self, name: &str, requested: &[&str]) -> Vec<String> {
        requested
            .iter()
            .filter(|action| {
                self.access.iter().any(|r| {
                    r.actions.iter().any(|a| a == *action || a == "*")
                        && RepositoryPattern::parse(&r.repository).is_ok_and(|p| p.matches(name))
                })
            })
            .map(|a| a.to_string())
            .collect()
    }
}

/// Verified in place of a missing or unusable hash: Argon2id with the
/// parameters of the documented hashes (m=19456, t=2, p=1).
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$cmVnaXN0cnktcHJveHktZHVtbXk$luCQUPyVa3du0NApGqbvV+X23R2aeZ+7Djj7cesxcDM";

/// Whether `password` is `user`'s. Every call runs exactly one Argon2
/// verification (against a dummy hash for unknown users, unusable hashes and
/// `sha256:` tokens) so that answer times do not tell which names exist.
pub fn verify_password(user: Option<&User>, password: &str) -> bool {
    let stored = user.map(|u| u.password_hash.as_str());
    if let Some(hex) = stored.and_then(|h| h.strip_prefix("sha256:")) {
        argon2_verify(&dummy_hash(), password);
        return sha256_matches(hex, password);
    }
    match stored.and_then(usable_argon2) {
        Some(h) => argon2_verify(&h, password),
        None => {
            // The dummy's result is meaningless: someone may send its password.
            argon2_verify(&dummy_hash(), password);
            false
        }
    }
}

fn dummy_hash() -> PasswordHash<'static> {
    PasswordHash::new(DUMMY_PHC).expect("the dummy hash is a valid PHC string")
}

/// A PHC string that Argon2 will actually compute against; anything else
/// would fail before hashing, as fast as an unknown user.
fn usable_argon2(phc: &str) -> Option<PasswordHash<'_>> {
    let h = PasswordHash::new(phc).ok()?;
    let usable = h.salt.is_some()
        && h.hash.is_some()
        && argon2::Algorithm::try_from(h.algorithm).is_ok()
        && argon2::Params::try_from(&h).is_ok();
    usable.then_some(h)
}

fn argon2_verify(hash: &PasswordHash<'_>, password: &str) -> bool {
    #[cfg(test)]
    ARGON2_RUNS.with(|n| n.set(n.get() + 1));
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

#[cfg(test)]
thread_local! {
    static ARGON2_RUNS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn sha256_matches(hex: &str, password: &str) -> bool {
    let digest = format!("{:x}", Sha256::digest(password.as_bytes()));
    // Both sides are fixed-length hex: compare without early exit.
    digest.len() == hex.len()
        && digest
            .bytes()
            .zip(hex.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0
}

/// `Basic base64(user:password)` → (user, password).
pub fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = authorization.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(hash: &str) -> User {
        User::from_json(
            format!(r#"{{"password_hash":"{hash}","access":[{{"repository":"library/*","actions":["pull"]}},{{"repository":"team/**","actions":["pull","push"]}}]}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    /// `verify_password`, and how many Argon2 verifications it ran.
    fn verify(u: Option<&User>, password: &str) -> (bool, u32) {
        let before = ARGON2_RUNS.with(|n| n.get());
        let ok = verify_password(u, password);
        (ok, ARGON2_RUNS.with(|n| n.get()) - before)
    }

    fn argon2_user(password: &str) -> User {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let hash = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .unwrap();
        user(&hash.to_string())
    }

    #[test]
    fn sha256_tokens() {
        let u = user(&format!(
            "sha256:{:x}",
            Sha256::digest(b"long-random-token")
        ));
        assert_eq!(verify(Some(&u), "long-random-token"), (true, 1));
        assert_eq!(verify(Some(&u), "long-random-tokeN"), (false, 1));
    }

    #[test]
    fn argon2_hashes() {
        let u = argon2_user("pw");
        assert_eq!(verify(Some(&u), "pw"), (true, 1));
        assert_eq!(verify(Some(&u), "pw2"), (false, 1));
    }

    #[test]
    fn unknown_users_cost_one_argon2_verification() {
        assert_eq!(verify(None, "pw"), (false, 1));
        assert_eq!(verify(Some(&user("not-a-hash")), ""), (false, 1));
        // PHC strings Argon2 would refuse before hashing.
        for bad in [
            "$argon2id$v=19$m=19456,t=2,p=1",
            "$pbkdf2$i=1$c2FsdA$aGFzaA",
        ] {
            assert_eq!(verify(Some(&user(bad)), "pw"), (false, 1), "{bad}");
        }
        // Even the dummy's own password opens nothing.
        let dummy = "no user has this password";
        assert!(argon2_verify(&dummy_hash(), dummy));
        assert_eq!(verify(None, dummy), (false, 1));
    }

    #[test]
    fn dummy_hash_costs_what_real_hashes_cost() {
        let real = argon2_user("pw");
        let real = PasswordHash::new(&real.password_hash).unwrap();
        let dummy = dummy_hash();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
    }

    #[test]
    fn rights() {
        let u = user("sha256:00");
        assert_eq!(u.granted("library/alpine", &["pull", "push"]), ["pull"]);
        assert_eq!(u.granted("team/a/b", &["pull", "push"]), ["pull", "push"]);
        assert!(u.granted("other/x", &["pull"]).is_empty());
    }

    #[test]
    fn basic() {
        assert_eq!(
            basic_credentials("Basic YWxpY2U6czNjcjp0"),
            Some(("alice".into(), "s3cr:t".into()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(basic_credentials("Basic !!"), None);
    }
}
