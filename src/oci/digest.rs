//! Content digests (`algorithm:encoded`), as in the OCI image spec.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestError(String);

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Digest {
    /// `algorithm ":" encoded`, with the registered algorithms checked strictly
    /// (sha256: 64, sha512: 128 lowercase hex) and others by the general grammar.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let err = |why: &str| Err(DigestError(format!("invalid digest {s:?}: {why}")));
        let Some((algorithm, encoded)) = s.split_once(':') else {
            return err("expected algorithm:encoded");
        };
        let algorithm_ok = !algorithm.is_empty()
            && algorithm.split(['+', '.', '_', '-']).all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if !algorithm_ok {
            return err("bad algorithm");
        }
        let hex = |n: usize| {
            encoded.len() == n
                && encoded
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let encoded_ok = match algorithm {
            "sha256" => hex(64),
            "sha512" => hex(128),
            _ => {
                !encoded.is_empty()
                    && encoded.len() <= 1024
                    && encoded
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
            }
        };
        if !encoded_ok {
            return err("bad encoded part for its algorithm");
        }
        Ok(Self(s.to_string()))
    }

    /// The digest as written (`sha256:...`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_for_registered_algorithms() {
        assert!(Digest::parse(&format!("sha256:{}", "0f".repeat(32))).is_ok());
        assert!(Digest::parse(&format!("sha512:{}", "0f".repeat(64))).is_ok());
        assert!(Digest::parse(&format!("sha256:{}", "0F".repeat(32))).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "0f".repeat(31))).is_err());
        assert!(Digest::parse("sha256").is_err());
        assert!(Digest::parse(":abc").is_err());
        assert!(
            Digest::parse("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8")
                .is_ok()
        );
        assert!(Digest::parse("sha256:../../etc").is_err());
    }
}
