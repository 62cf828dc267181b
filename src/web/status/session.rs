//! Sessions of the status page: a signed value the cookie holds, never
//! the admin token itself.

use crate::host::Headers;
use crate::web::operations::cookie_token;
use crate::web::status_page::COOKIE;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a sign-in lasts: a session value that leaks (a copied cookie,
/// a backup of a browser profile) opens the page for no longer than this.
pub(super) const SESSION_SECS: u64 = 12 * 60 * 60;

/// The first field of a session value, so that a change of its layout
/// refuses the old ones instead of misreading them.
const SESSION_VERSION: &str = "v1";

/// The key that signs sessions, derived from the admin token: a new admin
/// token ends every session, and the cookie never holds the token itself.
fn session_mac(admin_token: &str) -> Hmac<Sha256> {
    let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(admin_token.as_bytes())
        .expect("HMAC accepts any key length");
    derive.update(b"registry-proxy status page session");
    <Hmac<Sha256> as Mac>::new_from_slice(&derive.finalize().into_bytes())
        .expect("HMAC accepts any key length")
}

/// A session value: `v1.<expiry, Unix seconds>.<random hex>.<hex
/// HMAC-SHA256 over the rest>`. The random part makes each sign-in's value
/// its own.
pub(super) fn new_session(admin_token: &str, now: u64, nonce: [u64; 2]) -> String {
    let expiry = now + SESSION_SECS;
    let signed = format!(
        "{SESSION_VERSION}.{expiry}.{:016x}{:016x}",
        nonce[0], nonce[1]
    );
    let mut mac = session_mac(admin_token);
    mac.update(signed.as_bytes());
    let tag: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{signed}.{tag}")
}

/// A session value this admin token signed, not yet expired; an expired,
/// altered or foreign one is no sign-in at all.
pub(super) fn session_valid(value: &str, admin_token: &str, now: u64) -> bool {
    let Some((signed, tag)) = value.rsplit_once('.') else {
        return false;
    };
    let fields: Vec<&str> = signed.split('.').collect();
    let [SESSION_VERSION, expiry, _nonce] = fields[..] else {
        return false;
    };
    let in_time = expiry
        .parse::<u64>()
        .is_ok_and(|e| e > now && e <= now.saturating_add(SESSION_SECS));
    let Some(tag) = unhex(tag) else {
        return false;
    };
    let mut mac = session_mac(admin_token);
    mac.update(signed.as_bytes());
    // Constant time: the comparison tells nothing about a forged tag.
    mac.verify_slice(&tag).is_ok() && in_time
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Whether the request carries a session cookie this admin token signed,
/// still in time: what the page's forms need to be acted on.
pub(super) fn signed_in(headers: &Headers, admin_token: &str) -> bool {
    cookie_token(headers.get_all("cookie"), COOKIE)
        .is_some_and(|c| session_valid(c, admin_token, crate::now()))
}
