//! Anonymous upstream tokens, reused: a client that asks the proxy's realm
//! without credentials gets what anyone would get, so the upstream's answer
//! serves every such client until shortly before it expires. A warm pull
//! then costs no token request upstream (hosted platforms count them).
//! They are kept in the slots of `kept_tokens`, one per realm URL.

use crate::auth::kept_tokens;
use crate::host::{Host, Response};

/// Tokens are reused until this many seconds before they expire.
const MARGIN_SECS: u64 = 30;
/// A token answer bigger than this is not kept.
const LIMIT: usize = 16 << 10;
const KIND: &str = "anonymous";

/// A kept answer to the token request to `url` (the realm with its query)
/// that is still good.
pub fn cached<H: Host>(host: &H, url: &url::Url) -> Option<Response<H::Stream>> {
    let body = kept_tokens::read(host.cache().as_ref(), KIND, url.as_str(), crate::now())?;
    Some(Response::json(200, body.into_bytes()))
}

/// Keeps a 200 token answer for its lifetime (the spec's 60 s when it
/// does not say).
pub fn keep<H: Host>(host: &H, url: &url::Url, body: &[u8]) {
    let Ok(token) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let lifetime = token["expires_in"].as_u64().unwrap_or(60).min(86_400);
    if body.len() > LIMIT || lifetime <= MARGIN_SECS {
        return;
    }
    let expires = crate::now() + lifetime - MARGIN_SECS;
    let body = String::from_utf8_lossy(body);
    kept_tokens::keep(host.cache().as_ref(), KIND, url.as_str(), &body, expires);
}
