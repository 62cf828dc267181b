//! What this instance knows of its Redis being hung, kept in its own
//! memory (the `health` store, which no outage takes away), so that a
//! request that would only wait does not call Redis at all.
//!
//! - A call over a socket has a deadline: past it, the call marks Redis
//!   hung, and for [`AWAY_FOR_MS`] requests take Redis as away. Then one
//!   request tries again (it renews the mark first, so the others keep
//!   passing Redis by meanwhile), and once Redis answers it, the mark goes
//!   and every request uses Redis again.
//! - A call through Spin's outbound Redis (a Redis named by host name)
//!   cannot be timed out from a wasi:http 0.2 handler. So each request's
//!   connecting is marked while it waits, and a request that finds a call
//!   waiting longer than [`HUNG_AFTER_MS`] takes Redis as away: only the
//!   requests of the hang's first two seconds wait for it.

use crate::host::Kv;
use std::cell::{Cell, OnceCell};
use std::rc::Rc;

/// A call to Redis waiting this long says Redis hangs.
const HUNG_AFTER_MS: u64 = 2_000;
/// A mark this old is a request that ended without taking it back (a trap,
/// a platform's time limit): forgotten, so it cannot keep Redis away.
const FORGET_AFTER_MS: u64 = 60_000;
/// How long a call past its deadline keeps Redis away.
const AWAY_FOR_MS: u64 = 1_000;
/// Where calls waiting on Redis are marked, in the health store.
const CALL_PREFIX: &str = "redis-call/";
/// When a call last went past its deadline.
const HUNG_KEY: &str = "redis-hung";

/// This request's marks, and what the marks of the others said when it
/// began.
pub struct Marks {
    health: Rc<dyn Kv>,
    mark: String,
    verdict: OnceCell<Result<(), String>>,
    /// This request tries a Redis marked hung: its answer takes the mark.
    probing: Cell<bool>,
}

impl Marks {
    /// Marks in `health`, the instance's own memory.
    pub fn new(health: Rc<dyn Kv>) -> Self {
        Self {
            health,
            mark: format!("{CALL_PREFIX}{:016x}", crate::random_u64()),
            verdict: OnceCell::new(),
            probing: Cell::new(false),
        }
    }

    /// Whether Redis may be called: not while it is marked hung. Read once
    /// a request.
    pub fn allowed(&self) -> Result<(), String> {
        self.verdict.get_or_init(|| self.read()).clone()
    }

    fn read(&self) -> Result<(), String> {
        let now = crate::now_millis();
        let since = |key: &str| {
            let value = self.health.get(key).ok().flatten()?;
            let at: u64 = std::str::from_utf8(&value).ok()?.parse().ok()?;
            Some(now.saturating_sub(at))
        };
        match since(HUNG_KEY) {
            Some(ago) if ago < AWAY_FOR_MS => {
                return Err(format!(
                    "Redis did not answer in time {:.1} s ago: taken as away",
                    ago as f64 / 1000.0
                ));
            }
            // This request tries Redis; renewed first, the mark keeps the
            // others passing Redis by meanwhile.
            Some(_) => {
                self.hung();
                self.probing.set(true);
            }
            None => {}
        }
        let keys = self.health.keys().unwrap_or_default();
        let waiting = keys
            .iter()
            .filter(|k| k.starts_with(CALL_PREFIX))
            .filter_map(|k| since(k))
            .filter(|&waited| (HUNG_AFTER_MS..FORGET_AFTER_MS).contains(&waited))
            .max();
        match waiting {
            Some(ms) => Err(format!(
                "Redis has not answered a call for {:.1} s: taken as away",
                ms as f64 / 1000.0
            )),
            None => Ok(()),
        }
    }

    /// Runs `call`, marked as waiting on Redis until it returns.
    pub fn around<T>(&self, call: impl FnOnce() -> T) -> T {
        let since = crate::now_millis().to_string();
        let _ = self.health.set(&self.mark, since.as_bytes());
        let out = call();
        let _ = self.health.delete(&self.mark);
        out
    }

    /// Redis answered: if this request was trying a Redis marked hung, the
    /// mark goes.
    pub fn answered(&self) {
        if self.probing.take() {
            let _ = self.health.delete(HUNG_KEY);
        }
    }

    /// A call went past its deadline: Redis is away for the next
    /// [`AWAY_FOR_MS`].
    pub fn hung(&self) {
        let now = crate::now_millis().to_string();
        let _ = self.health.set(HUNG_KEY, now.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::{MemoryKv, advance_clock};
    use std::time::Duration;

    fn health() -> Rc<dyn Kv> {
        Rc::new(MemoryKv::default())
    }

    #[test]
    fn a_call_past_its_deadline_keeps_redis_away_a_second_then_one_request_tries_it() {
        let health = health();
        assert_eq!(Marks::new(health.clone()).allowed(), Ok(()));
        Marks::new(health.clone()).hung();
        let away = Marks::new(health.clone()).allowed().unwrap_err();
        assert!(away.contains("taken as away"), "{away}");

        advance_clock(Duration::from_millis(AWAY_FOR_MS));
        let trying = Marks::new(health.clone());
        assert_eq!(trying.allowed(), Ok(()), "one request tries Redis again");
        assert!(
            Marks::new(health.clone()).allowed().is_err(),
            "the others pass it by while it does"
        );
        trying.answered();
        assert_eq!(
            Marks::new(health.clone()).allowed(),
            Ok(()),
            "Redis is back"
        );
    }

    #[test]
    fn a_request_that_tried_and_timed_out_again_keeps_redis_away_another_second() {
        let health = health();
        Marks::new(health.clone()).hung();
        advance_clock(Duration::from_millis(AWAY_FOR_MS));
        let trying = Marks::new(health.clone());
        assert_eq!(trying.allowed(), Ok(()));
        advance_clock(Duration::from_millis(AWAY_FOR_MS / 2));
        trying.hung();
        advance_clock(Duration::from_millis(AWAY_FOR_MS / 2));
        assert!(Marks::new(health.clone()).allowed().is_err());
    }

    #[test]
    fn the_verdict_is_read_once_a_request() {
        let health = health();
        let request = Marks::new(health.clone());
        assert_eq!(request.allowed(), Ok(()));
        Marks::new(health.clone()).hung();
        assert_eq!(request.allowed(), Ok(()), "read when the request began");
    }

    #[test]
    fn a_call_waiting_two_seconds_says_redis_hangs_and_one_a_minute_old_is_forgotten() {
        let health = health();
        let waiting = Marks::new(health.clone());
        waiting.around(|| {
            // Real time passes too: the steps leave it half a second.
            advance_clock(Duration::from_millis(HUNG_AFTER_MS - 500));
            assert_eq!(Marks::new(health.clone()).allowed(), Ok(()));
            advance_clock(Duration::from_millis(500));
            let away = Marks::new(health.clone()).allowed().unwrap_err();
            assert!(away.contains("has not answered a call for 2."), "{away}");
            advance_clock(Duration::from_millis(FORGET_AFTER_MS));
            assert_eq!(Marks::new(health.clone()).allowed(), Ok(()));
        });
        assert!(
            health.keys().unwrap().is_empty(),
            "the mark goes with the call"
        );
    }
}
