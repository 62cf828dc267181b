//! Anonymous upstream tokens, reused: a client that asks the proxy's realm
//! without credentials gets what anyone would get, so the upstream's answer
//! serves every such client until shortly before it expires. A warm pull
//! then costs no token request upstream (hosted platforms count them).

use crate::host::{Host, Response};
use sha2::{Digest, Sha256};

/// Tokens are reused until this many seconds before they expire.
const MARGIN_SECS: u64 = 30;
/// A token answer bigger than this is not kept.
const LIMIT: usize = 16 << 10;

/// The cache key of the token request to `url` (the realm with its query).
pub fn key(url: &url::Url) -> String {
    format!(
        "token/anonymous/{:x}",
        Sha256::digest(url.as_str().as_bytes())
    )
}

/// A kept answer that is still good.
pub fn cached<H: Host>(host: &H, key: &str) -> Option<Response<H::Stream>> {
    let kept: serde_json::Value = serde_json::from_slice(&host.cache().get(key).ok()??).ok()?;
    if kept["expires"].as_u64()? <= crate::now() {
        return None;
    }
    let body = kept["body"].as_str()?.as_bytes().to_vec();
    Some(Response::json(200, body))
}

/// Keeps a 200 token answer for its lifetime (the spec's 60 s when it
/// does not say).
pub fn keep<H: Host>(host: &H, key: &str, body: &[u8]) {
    let Ok(token) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let lifetime = token["expires_in"].as_u64().unwrap_or(60).min(86_400);
    if body.len() > LIMIT || lifetime <= MARGIN_SECS {
        return;
    }
    let kept = serde_json::json!({
        "expires": crate::now() + lifetime - MARGIN_SECS,
        "body": String::from_utf8_lossy(body),
    });
    if let Err(e) = host.cache().set(key, kept.to_string().as_bytes()) {
        eprintln!("cache: cannot keep an anonymous token: {e}");
    }
}
