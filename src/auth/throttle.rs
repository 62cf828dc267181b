//! A bound on secret checks per client: a login's password costs an Argon2
//! run, and the admin and metrics tokens must not be guessed at wire speed.
//! A client past a few failures within the current and the last minute is
//! told to wait before the proxy checks another of its secrets.
//!
//! Every check is counted as a failure before it is made and refunded when
//! it passes, so a store that refuses the count refuses the check too (a
//! throttle that cannot count is no throttle). The counts live in
//! [`SHARDS`] values of the counters' store (shared by every instance when
//! that is Redis), a client's by a hash of its address, each written by
//! compare-and-swap and bounded in size: entries older than a minute go at
//! each write, and past [`CLIENTS_PER_SHARD`] the clients with the fewest
//! failures make room, so a flood of new addresses never pushes out one
//! that is being throttled. A check reads and writes one small value, and
//! one whose value stays contended is counted in the instance's memory
//! instead of being refused. Who the client is: [`client_address`].

use crate::auth::client_address::{self, Client};
use crate::host::{Headers, Host, Kv};
use crate::oci::error::{ErrorCode, RegistryError};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::rc::Rc;

/// Failed checks a client may have within this minute and the last.
const FAILURES_PER_MINUTE: u32 = 10;
/// Values the counts are spread over: a crowd of addresses makes each
/// check read and write about 1.5 KB, not 100 KB, and contend with a
/// sixty-fourth of the crowd.
const SHARDS: u64 = 64;
/// Clients counted at once in one shard: about 40 bytes each (2,048 in all).
const CLIENTS_PER_SHARD: usize = 32;
/// Compare-and-swap tries before a busy store counts as refusing.
const TRIES: usize = 8;

/// What `client` is counted as; a refusal when it cannot be counted.
fn counted_as(client: &Client) -> Result<String, RegistryError> {
    match client {
        Client::Address(IpAddr::V4(a)) => Ok(a.to_string()),
        Client::Address(IpAddr::V6(a)) => {
            let s = a.segments();
            Ok(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
        }
        Client::Unknown => Ok("unknown".into()),
        Client::Unreadable => Err(refused(
            400,
            ErrorCode::Denied,
            "the runtime gave no readable client address; no secret is checked",
        )),
        Client::Misconfigured(e) => Err(refused(
            503,
            ErrorCode::Unknown,
            &format!("{e}; no secret is checked until it is fixed"),
        )),
    }
}

/// The key of the shard that counts `client`.
pub fn shard_key(client: &str) -> String {
    let hash = Sha256::digest(client.as_bytes());
    let n = u64::from_le_bytes(hash[..8].try_into().unwrap_or_default()) % SHARDS;
    format!("throttle/failures/{n}")
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
        while self.clients.len() > CLIENTS_PER_SHARD {
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
/// While the counters' store is away, or the client's shard stays
/// contended, the instance counts in its own memory: per instance then,
/// but still bounded, and the operator can still sign in and see what is
/// down.
pub fn attempt<H: Host>(host: &H, client: &Client) -> Result<Attempt, RegistryError> {
    let counted = counted_as(client)?;
    let counters = host.counters();
    if counters.reachable().is_ok() {
        match attempt_in(counters, &counted) {
            Err(Uncounted::Contended) => {}
            other => return answer(other),
        }
    }
    answer(attempt_in(host.health(), &counted))
}

/// Why a check could not be counted.
#[derive(Debug)]
enum Uncounted {
    /// Past the bound.
    Over,
    /// The store refused.
    Store(String),
    /// Every compare-and-swap lost.
    Contended,
}

fn answer(counted: Result<Attempt, Uncounted>) -> Result<Attempt, RegistryError> {
    let refusal = match counted {
        Ok(attempt) => return Ok(attempt),
        Err(why) => why,
    };
    Err(match refusal {
        Uncounted::Over => refused(
            429,
            ErrorCode::TooManyRequests,
            "too many failed logins from this address; try again in a minute",
        ),
        Uncounted::Store(e) => {
            eprintln!("login throttle cannot count: {e}");
            refused(
                503,
                ErrorCode::Unknown,
                &format!("the login throttle's store is unavailable ({e}); no secret is checked"),
            )
        }
        Uncounted::Contended => refused(
            503,
            ErrorCode::Unknown,
            "the login throttle's count is contended; no secret is checked",
        ),
    })
}

fn attempt_in(counters: Rc<dyn Kv>, counted: &str) -> Result<Attempt, Uncounted> {
    let now = minute();
    let over = update(counters.as_ref(), counted, |c| {
        if c.recent(now) >= FAILURES_PER_MINUTE {
            return None;
        }
        let mut next = c.at(now);
        next.now += 1;
        Some(next)
    })?;
    if over {
        return Err(Uncounted::Over);
    }
    Ok(Attempt {
        counters,
        client: counted.to_string(),
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
            eprintln!("login throttle: a passed check stays counted: {e:?}");
        }
    }
}

/// Runs `check` of a secret the client sent, counted against its bound.
pub fn checked<H: Host>(
    host: &H,
    headers: &Headers,
    check: impl FnOnce() -> bool,
) -> Result<bool, RegistryError> {
    let attempt = attempt(host, &client_address::client(host, headers))?;
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
) -> Result<bool, Uncounted> {
    let key = shard_key(client);
    for _ in 0..TRIES {
        let current = kv.get(&key).map_err(Uncounted::Store)?;
        let mut counts = Counts::parse(current.as_deref());
        let count = counts.clients.get(client).copied().unwrap_or_default();
        let Some(next) = change(count) else {
            return Ok(true);
        };
        counts.clients.insert(client.to_string(), next);
        counts.prune(minute(), client);
        counts.nonce = crate::random_u64();
        let value = serde_json::to_vec(&counts).map_err(|e| Uncounted::Store(e.to_string()))?;
        let unchanged = |now: Option<&[u8]>| now == current.as_deref();
        if kv
            .swap_if(&key, &unchanged, &value)
            .map_err(Uncounted::Store)?
        {
            return Ok(false);
        }
    }
    Err(Uncounted::Contended)
}

#[cfg(test)]
mod tests;
