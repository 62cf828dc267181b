//! The tokens the proxy issues to its own users: JWTs signed with
//! HMAC-SHA256, with the `access` claim of the Docker token spec.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// One `access` entry: what the token allows on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<Access>,
}

impl Claims {
    /// Whether an `access` entry grants `action` on repository `name`.
    pub fn allows(&self, name: &str, action: &str) -> bool {
        self.access.iter().any(|a| {
            a.resource_type == "repository"
                && a.name == name
                && a.actions.iter().any(|x| x == action)
        })
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

/// An HS256 JWT of `claims` signed with `key`, as [`verify`] checks it.
pub fn sign(claims: &Claims, key: &[u8]) -> String {
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(key);
    m.update(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(m.finalize().into_bytes()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    Malformed,
    BadSignature,
    Expired,
    NotYetValid,
    WrongAudience,
}

/// Checks the signature (in constant time), the algorithm, the time window
/// and the audience.
pub fn verify(token: &str, key: &[u8], audience: &str, now: u64) -> Result<Claims, VerifyError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let header: serde_json::Value = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(VerifyError::Malformed)?;
    if header["alg"] != "HS256" {
        return Err(VerifyError::Malformed);
    }
    let sig = B64.decode(sig).map_err(|_| VerifyError::Malformed)?;
    let mut m = mac(key);
    m.update(format!("{h}.{p}").as_bytes());
    m.verify_slice(&sig)
        .map_err(|_| VerifyError::BadSignature)?;
    let claims: Claims = B64
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(VerifyError::Malformed)?;
    if claims.exp <= now {
        return Err(VerifyError::Expired);
    }
    if claims.nbf > now + 60 {
        return Err(VerifyError::NotYetValid);
    }
    if claims.aud != audience {
        return Err(VerifyError::WrongAudience);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            iss: "registry-proxy".into(),
            sub: "alice".into(),
            aud: "registry-proxy".into(),
            exp,
            nbf: 90,
            iat: 90,
            jti: "1".into(),
            access: vec![Access {
                resource_type: "repository".into(),
                name: "library/alpine".into(),
                actions: vec!["pull".into()],
            }],
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let t = sign(&claims(200), b"k");
        let c = verify(&t, b"k", "registry-proxy", 100).unwrap();
        assert!(c.allows("library/alpine", "pull"));
        assert!(!c.allows("library/alpine", "push"));
        assert!(!c.allows("library/other", "pull"));
        assert_eq!(
            verify(&t, b"other", "registry-proxy", 100),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(&t, b"k", "registry-proxy", 200),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            verify(&t, b"k", "elsewhere", 100),
            Err(VerifyError::WrongAudience)
        );
        // A payload changed after signing.
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        let mut c2 = claims(200);
        c2.access[0].actions.push("push".into());
        parts[1] = B64.encode(serde_json::to_vec(&c2).unwrap());
        assert_eq!(
            verify(&parts.join("."), b"k", "registry-proxy", 100),
            Err(VerifyError::BadSignature)
        );
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert_eq!(
                verify(bad, b"k", "registry-proxy", 100),
                Err(VerifyError::Malformed),
                "{bad}"
            );
        }
        // alg=none is refused whatever the signature.
        let none = format!("{}.{}.", B64.encode(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(
            verify(&none, b"k", "registry-proxy", 100),
            Err(VerifyError::Malformed)
        );
    }
}
