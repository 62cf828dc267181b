//! A bound on secret checks per client: a login's password costs an Argon2
//! run, and the admin and metrics tokens must not be guessed at wire speed.
//! A client past a few failures within the current and the last minute is
//! told to wait before the proxy checks another of its secrets.
//!
//! Every check is counted as a failure before it is made and refunded when
//! it passes, so a store that refuses the count refuses the check too (a
//! throttle that cannot count is no throttle). The counts of every client
//! live in one value of the counters' store (shared by every instance when
//! that is Redis), written by compare-and-swap and bounded in size: entries
//! older than a minute go at each write, and past [`MAX_CLIENTS`] the
//! clients with the fewest failures make room, so a flood of new addresses
//! never pushes out one that is being throttled.

use crate::host::{Headers, Host, Kv};
use crate::oci::error::{ErrorCode, RegistryError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

/// Failed checks a client may have within this minute and the last.
const FAILURES_PER_MINUTE: u32 = 10;
/// Clients counted at once: about 40 bytes each in the one value.
const MAX_CLIENTS: usize = if cfg!(test) { 64 } else { 2048 };
/// The counters' key of the one value.
pub const KEY: &str = "throttle/failures";
/// Compare-and-swap tries before a busy store counts as refusing.
const TRIES: usize = 8;

/// Who a request came from, as the runtime says (the adapter keeps only
/// the runtime's own `spin-client-addr`, never one the client sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    /// Counted per address; IPv6 per /64, which one host usually holds.
    Address(IpAddr),
    /// The runtime names no address (`wasmtime serve`): all such clients
    /// share one count.
    Unknown,
    /// The runtime's address does not parse: no secret is checked.
    Unreadable,
}

/// The request's client, from the runtime's `spin-client-addr`.
pub fn client_of(headers: &Headers) -> Client {
    match headers.get("spin-client-addr") {
        None => Client::Unknown,
        Some(a) => a
            .trim()
            .parse::<SocketAddr>()
            .map(|a| Client::Address(a.ip().to_canonical()))
            .unwrap_or(Client::Unreadable),
    }
}

impl Client {
    fn counted_as(&self) -> Option<String> {
        match self {
            Client::Address(IpAddr::V4(a)) => Some(a.to_string()),
            Client::Address(IpAddr::V6(a)) => {
                let s = a.segments();
                Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
            }
            Client::Unknown => Some("unknown".into()),
            Client::Unreadable => None,
        }
    }
}

/// One client's failures: in minute `minute`, and in the minute before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Count {
    minute: u64,
    now: u32,
    before: u32,
}

impl Count {
    /// Failures within `minute` and the one before it.
    fn recent(&self, minute: u64) -> u32 {
        match minute.saturating_sub(self.minute) {
            0 => self.now + self.before,
            1 => self.now,
            _ => 0,
        }
    }

    /// The count moved on to `minute`.
    fn at(self, minute: u64) -> Count {
        match minute.saturating_sub(self.minute) {
            0 => self,
            1 => Count {
                minute,
                now: 0,
                before: self.now,
            },
            _ => Count {
                minute,
                ..Count::default()
            },
        }
    }
}

/// Every counted client, and a nonce that makes each written value unique
/// (the store's compare-and-swap reads a value back to tell if it won).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Counts {
    clients: BTreeMap<String, Count>,
    nonce: u64,
}

impl Counts {
    fn parse(value: Option<&[u8]>) -> Counts {
        // A damaged value starts the counts afresh rather than lock everyone out.
        value
            .and_then(|v| serde_json::from_slice(v).ok())
            .unwrap_or_default()
    }

    /// Drops what is over a minute old, then the least-failing clients
    /// past the bound (never `keep`).
    fn prune(&mut self, minute: u64, keep: &str) {
        self.clients.retain(|_, c| c.recent(minute) > 0);
        while self.clients.len() > MAX_CLIENTS {
            let fewest = self
                .clients
                .iter()
                .filter(|(k, _)| k.as_str() != keep)
                .min_by_key(|(_, c)| c.recent(minute))
                .map(|(k, _)| k.clone());
            match fewest {
                Some(k) => self.clients.remove(&k),
                None => break,
            };
        }
    }
}

fn minute() -> u64 {
    crate::now() / 60
}

fn refused(status: u16, code: ErrorCode, message: &str) -> RegistryError {
    RegistryError::new(status, code, message)
}

/// A secret check about to be made, counted as failed until it passes.
#[must_use = "a check that passes is refunded with `passed`"]
pub struct Attempt {
    counters: Rc<dyn Kv>,
    client: String,
}

/// Counts a check for `client` before it is made; refuses a client past
/// the bound (429) and, failing closed, a store that will not count (503).
/// While the counters' store is away the instance counts in its own
/// memory: per instance then, but still bounded, and the operator can
/// still sign in and see what is down.
pub fn attempt<H: Host>(host: &H, client: &Client) -> Result<Attempt, RegistryError> {
    let counters = host.counters();
    match counters.reachable() {
        Ok(()) => attempt_in(counters, client),
        Err(_) => attempt_in(host.health(), client),
    }
}

fn attempt_in(counters: Rc<dyn Kv>, client: &Client) -> Result<Attempt, RegistryError> {
    let Some(counted) = client.counted_as() else {
        return Err(refused(
            400,
            ErrorCode::Denied,
            "the runtime gave no readable client address; no secret is checked",
        ));
    };
    let now = minute();
    let over = update(counters.as_ref(), &counted, |c| {
        if c.recent(now) >= FAILURES_PER_MINUTE {
            return None;
        }
        let mut next = c.at(now);
        next.now += 1;
        Some(next)
    })
    .map_err(|e| {
        eprintln!("login throttle cannot count: {e}");
        refused(
            503,
            ErrorCode::Unknown,
            "the login throttle's store is unavailable; no secret is checked",
        )
    })?;
    if over {
        return Err(refused(
            429,
            ErrorCode::TooManyRequests,
            "too many failed logins from this address; try again in a minute",
        ));
    }
    Ok(Attempt {
        counters,
        client: counted,
    })
}

impl Attempt {
    /// The check passed: it does not count as a failure.
    pub fn passed(self) {
        let refund = |c: Count| {
            let mut c = c;
            match (c.now, c.before) {
                (0, 0) => return None,
                (0, _) => c.before -= 1,
                _ => c.now -= 1,
            }
            Some(c)
        };
        if let Err(e) = update(self.counters.as_ref(), &self.client, refund) {
            eprintln!("login throttle: a passed check stays counted: {e}");
        }
    }
}

/// Runs `check` of a secret the client sent, counted against its bound.
pub fn checked<H: Host>(
    host: &H,
    headers: &Headers,
    check: impl FnOnce() -> bool,
) -> Result<bool, RegistryError> {
    let attempt = attempt(host, &client_of(headers))?;
    let passed = check();
    if passed {
        attempt.passed();
    }
    Ok(passed)
}

/// Applies `change` to `client`'s count; `Ok(true)` when it declined to.
fn update(
    kv: &dyn Kv,
    client: &str,
    change: impl Fn(Count) -> Option<Count>,
) -> Result<bool, String> {
    for _ in 0..TRIES {
        let current = kv.get(KEY)?;
        let mut counts = Counts::parse(current.as_deref());
        let count = counts.clients.get(client).copied().unwrap_or_default();
        let Some(next) = change(count) else {
            return Ok(true);
        };
        counts.clients.insert(client.to_string(), next);
        counts.prune(minute(), client);
        counts.nonce = crate::random_u64();
        let value = serde_json::to_vec(&counts).map_err(|e| e.to_string())?;
        let unchanged = |now: Option<&[u8]>| now == current.as_deref();
        if kv.swap_if(KEY, &unchanged, &value)? {
            return Ok(false);
        }
    }
    Err("the store kept changing under the count".into())
}

#[cfg(test)]
mod tests;
