//! The proxy's own users: stored as `user/<name>` in the key-value store,
//! each with a password hash and rights on repository patterns.

use crate::pattern::RepositoryPattern;
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "user/";

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
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("invalid user JSON: {e}"))
    }

    pub fn password_matches(&self, password: &str) -> bool {
        if let Some(hex) = self.password_hash.strip_prefix("sha256:") {
            let digest = format!("{:x}", Sha256::digest(password.as_bytes()));
            // Both sides are fixed-length hex: compare without early exit.
            return digest.len() == hex.len()
                && digest
                    .bytes()
                    .zip(hex.bytes())
                    .fold(0u8, |a, (x, y)| a | (x ^ y))
                    == 0;
        }
        PasswordHash::new(&self.password_hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
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

    #[test]
    fn sha256_tokens() {
        let u = user(&format!(
            "sha256:{:x}",
            Sha256::digest(b"long-random-token")
        ));
        assert!(u.password_matches("long-random-token"));
        assert!(!u.password_matches("long-random-tokeN"));
    }

    #[test]
    fn argon2_hashes() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let hash = argon2::Argon2::default()
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        let u = user(&hash);
        assert!(u.password_matches("pw"));
        assert!(!u.password_matches("pw2"));
        assert!(!user("not-a-hash").password_matches(""));
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
