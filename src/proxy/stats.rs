//! Hit and miss counts for the admin API. A request notes its outcomes as
//! it goes and adds them to the store's atomic counters once its answer is
//! sent: under Spin a store write is a SQLite commit, which no client should
//! wait for, and a read-modify-write would lose counts between instances.

use super::host::Host;
use crate::cache::Stats;
use std::cell::RefCell;

#[derive(Clone, Copy)]
pub enum Outcome {
    Hit,
    Miss,
    Revalidated,
    Stale,
    /// A miss served by following another request's copy.
    Coalesced,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Hit,
        Outcome::Miss,
        Outcome::Revalidated,
        Outcome::Stale,
        Outcome::Coalesced,
    ];

    /// The counter's key; only ever written by `increment`.
    fn key(self) -> &'static str {
        match self {
            Outcome::Hit => "stats/hits",
            Outcome::Miss => "stats/misses",
            Outcome::Revalidated => "stats/revalidated",
            Outcome::Stale => "stats/stale",
            Outcome::Coalesced => "stats/coalesced",
        }
    }
}

/// The outcomes of one request, not yet counted in the store.
#[derive(Default)]
pub struct Tally(RefCell<Vec<Outcome>>);

pub fn record<H: Host>(host: &H, outcome: Outcome) {
    host.tally().0.borrow_mut().push(outcome);
}

/// Adds the request's outcomes to the counters; the adapter calls it after
/// the answer is out.
pub fn flush<H: Host>(host: &H) {
    let outcomes = host.tally().0.take();
    for o in outcomes {
        if let Err(e) = host.counters().increment(o.key(), 1) {
            eprintln!("cache counter not updated: {e}");
        }
    }
}

pub fn load<H: Host>(host: &H) -> Stats {
    // Adding 0 reads a counter whatever its store's number encoding.
    let read = |o: Outcome| {
        host.counters()
            .increment(o.key(), 0)
            .map_or(0, |n| u64::try_from(n).unwrap_or(0))
    };
    let [hits, misses, revalidated, stale, coalesced] = Outcome::ALL.map(read);
    Stats {
        hits,
        misses,
        revalidated,
        stale,
        coalesced,
    }
}
