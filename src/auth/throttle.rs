//! A bound on password checks per client: each costs an Argon2 run, so a
//! client past a few failed logins within the current and the last minute
//! is told to wait before the proxy checks another of its passwords. The counts live
//! in the counters' store (shared by every instance when that is Redis).

use crate::host::{Headers, Host};
use crate::oci::error::{ErrorCode, RegistryError};

/// Failed logins a client may have within this minute and the last.
const FAILURES_PER_MINUTE: i64 = 10;

fn key(client: &str, minute: u64) -> String {
    format!("login-failures/{client}/{minute}")
}

fn minute() -> u64 {
    crate::now() / 60
}

/// The client's address (Spin's `spin-client-addr`, without the port).
pub fn client_of(headers: &Headers) -> Option<String> {
    headers
        .get("spin-client-addr")
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip().to_string())
}

/// Refuses a client that failed too often this minute, before any check.
pub fn check<H: Host>(host: &H, client: Option<&str>) -> Result<(), RegistryError> {
    let Some(client) = client else {
        return Ok(());
    };
    // This minute's and the last: a burst across a minute's turn counts whole.
    let (counters, now) = (host.counters(), minute());
    let count = |m: u64| counters.increment(&key(client, m), 0).unwrap_or(0);
    let failures = count(now) + count(now.saturating_sub(1));
    if failures < FAILURES_PER_MINUTE {
        return Ok(());
    }
    Err(RegistryError::new(
        429,
        ErrorCode::TooManyRequests,
        "too many failed logins from this address; try again in a minute",
    ))
}

/// Counts a failed login; the count of two minutes ago goes.
pub fn failed<H: Host>(host: &H, client: Option<&str>) {
    let Some(client) = client else {
        return;
    };
    let (counters, now) = (host.counters(), minute());
    if let Err(e) = counters.increment(&key(client, now), 1) {
        eprintln!("login failures not counted: {e}");
    }
    let _ = counters.delete(&key(client, now.saturating_sub(2)));
}
