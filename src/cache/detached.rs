//! Copies no client reads. A copy goes on after its client hangs up so
//! that a client that retries finds the blob and a crowd can follow one
//! copy; but one short request per cold blob would otherwise start a copy
//! of up to `max_blob_size` that holds an instance and its link to the
//! end, and hundreds of them fill the runtime's instance pool. So a copy
//! whose clients have all gone goes on only while another request follows
//! it, or in one of [`Settings::max_detached_copies`] slots of the
//! instance (default 4); past that it stops and its upload is aborted.
//!
//! Slots live in the instance's `health` store (its own memory), each a
//! copy's upload id and its last beat, so a slot whose copy's instance
//! died is free again after [`lease::GONE_AFTER`].
//!
//! [`Settings::max_detached_copies`]: crate::host::settings::Settings

use crate::cache::lease;
use crate::host::Kv;
use std::rc::Rc;

/// The key of detached-copy slot `n`.
fn slot_key(n: u64) -> String {
    format!("copies/detached/{n}")
}

/// A slot held by one detached copy, given back when dropped.
pub struct Slot {
    health: Rc<dyn Kv>,
    key: String,
    upload: String,
    held: Vec<u8>,
}

/// A slot's value: whose, and when it last beat (Unix milliseconds).
fn mark(upload: &str, now_millis: u64) -> Vec<u8> {
    format!("{upload} {now_millis}").into_bytes()
}

/// Whether a slot's value leaves it free at `now_millis`: empty, or not
/// beaten for [`lease::GONE_AFTER`].
fn free(value: Option<&[u8]>, now_millis: u64) -> bool {
    let beat = value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.rsplit_once(' '))
        .and_then(|(_, millis)| millis.parse::<u64>().ok());
    let gone = lease::GONE_AFTER.as_millis() as u64;
    beat.is_none_or(|b| now_millis.saturating_sub(b) >= gone)
}

/// One of `max` slots for copy `upload`, if one is free.
pub fn take(health: Rc<dyn Kv>, max: u64, upload: &str) -> Option<Slot> {
    for n in 0..max {
        let key = slot_key(n);
        let now = crate::now_millis();
        let held = mark(upload, now);
        match health.swap_if(&key, &|v| free(v, now), &held) {
            Ok(true) => {
                return Some(Slot {
                    health,
                    key,
                    upload: upload.to_string(),
                    held,
                });
            }
            Ok(false) => continue,
            Err(e) => {
                // A slot that cannot be counted is not given.
                eprintln!("cache: cannot count detached copies: {e}");
                return None;
            }
        }
    }
    None
}

impl Slot {
    /// Says the copy in the slot is still there.
    pub fn beat(&mut self) {
        let next = mark(&self.upload, crate::now_millis());
        let held = self.held.clone();
        match self.health.swap_if(&self.key, &|v| v == Some(&held), &next) {
            Ok(true) => self.held = next,
            Ok(false) => eprintln!("cache: a detached copy lost its slot"),
            Err(e) => eprintln!("cache: cannot beat a detached copy's slot: {e}"),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let ours = self.held.clone();
        let freed = self.health.swap_if(&self.key, &|v| v == Some(&ours), b"");
        if let Err(e) = freed {
            eprintln!("cache: cannot free a detached copy's slot: {e}");
        }
    }
}

/// Whether a copy whose clients have gone goes on: while it is followed,
/// or in a slot of its own; else it stops, for good.
pub struct Unread {
    health: Rc<dyn Kv>,
    cache: Rc<dyn Kv>,
    max: u64,
    followers_key: String,
    upload: String,
    state: State,
    /// A client still waits for the copy to commit (redirect mode).
    awaited: Rc<std::cell::Cell<bool>>,
}

/// Held while a client waits for an unread copy to commit: till then the
/// copy needs no slot.
pub struct Awaited(Rc<std::cell::Cell<bool>>);

impl Drop for Awaited {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

enum State {
    Undecided,
    /// Seen followed at this instant (Unix milliseconds): asked again a
    /// beat later, since followers hang up too.
    Followed(u64),
    Detached(Slot),
    Stopped,
}

impl Unread {
    /// For copy `upload`, whose followers count in under `followers_key`
    /// of the `cache` store, with at most `max` detached in `health`.
    pub fn new(
        health: Rc<dyn Kv>,
        cache: Rc<dyn Kv>,
        max: u64,
        followers_key: String,
        upload: &str,
    ) -> Self {
        Self {
            health,
            cache,
            max,
            followers_key,
            upload: upload.to_string(),
            state: State::Undecided,
            awaited: Default::default(),
        }
    }

    /// The copy is awaited until the [`Awaited`] is dropped.
    pub fn awaited(self) -> (Self, Awaited) {
        self.awaited.set(true);
        let awaited = Awaited(self.awaited.clone());
        (self, awaited)
    }

    /// Whether the copy goes on with no client of its own reading it.
    pub fn may_go_on(&mut self) -> bool {
        let now = crate::now_millis();
        let beat = lease::BEAT.as_millis() as u64;
        if self.awaited.get() {
            return true;
        }
        match &self.state {
            State::Detached(_) => return true,
            State::Stopped => return false,
            State::Followed(at) if now < at + beat => return true,
            State::Followed(_) | State::Undecided => {}
        }
        self.state = if followed(self.cache.as_ref(), &self.followers_key) {
            State::Followed(now)
        } else if let Some(slot) = take(self.health.clone(), self.max, &self.upload) {
            State::Detached(slot)
        } else {
            eprintln!(
                "cache: a copy no client reads stopped: {} detached copies run already (max_detached_copies)",
                self.max
            );
            State::Stopped
        };
        !matches!(self.state, State::Stopped)
    }

    /// Says a detached copy is still there.
    pub fn beat(&mut self) {
        if let State::Detached(slot) = &mut self.state {
            slot.beat();
        }
    }
}

/// Whether another request follows the copy under `followers_key` now:
/// followers count themselves in while they read.
pub fn followed(cache: &dyn Kv, followers_key: &str) -> bool {
    cache.increment(followers_key, 0).is_ok_and(|n| n > 0)
}

/// A follower, counted in while it lives.
pub struct Follower {
    cache: Rc<dyn Kv>,
    key: String,
    /// The copy's lease, to count out only while it lasts: its holder
    /// removes the count when it lets go.
    lease_key: String,
    upload: String,
}

/// Counts a follower of copy `upload` in.
pub fn count_in(cache: Rc<dyn Kv>, key: String, lease_key: &str, upload: &str) -> Follower {
    if let Err(e) = cache.increment(&key, 1) {
        eprintln!("cache: cannot count a follower in: {e}");
    }
    Follower {
        cache,
        key,
        lease_key: lease_key.to_string(),
        upload: upload.to_string(),
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let lease = self.cache.get(&self.lease_key).ok().flatten();
        let ours = lease
            .as_deref()
            .and_then(lease::Lease::parse)
            .is_some_and(|l| l.upload == self.upload);
        if ours {
            let _ = self.cache.increment(&self.key, -1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryKv;

    #[test]
    fn at_most_max_slots_are_held_and_a_dropped_or_stale_one_is_free() {
        let health: Rc<dyn Kv> = Rc::new(MemoryKv::default());
        let held: Vec<Slot> = (0..4)
            .map(|n| take(health.clone(), 4, &format!("u{n}")).expect("a free slot"))
            .collect();
        assert!(take(health.clone(), 4, "u4").is_none());
        drop(held);
        let again = take(health.clone(), 4, "u5").expect("freed by drop");
        // A slot whose copy stopped beating (its instance died) is free.
        let gone = GONE_MILLIS + 1;
        health
            .set(&slot_key(1), &mark("dead", crate::now_millis() - gone))
            .unwrap();
        for n in 2..4 {
            health
                .set(&slot_key(n), &mark("x", crate::now_millis()))
                .unwrap();
        }
        let taken = take(health.clone(), 4, "u6").expect("the stale slot");
        assert_eq!(taken.key, slot_key(1));
        drop(again);
    }

    const GONE_MILLIS: u64 = lease::GONE_AFTER.as_millis() as u64;

    #[test]
    fn no_slot_at_all_when_the_bound_is_zero() {
        let health: Rc<dyn Kv> = Rc::new(MemoryKv::default());
        assert!(take(health, 0, "u").is_none());
    }

    #[test]
    fn an_unread_copy_goes_on_while_followed_or_in_a_slot_else_stops_for_good() {
        let (health, cache): (Rc<dyn Kv>, Rc<dyn Kv>) =
            (Rc::new(MemoryKv::default()), Rc::new(MemoryKv::default()));
        let unread = |u: &str| Unread::new(health.clone(), cache.clone(), 1, format!("f/{u}"), u);
        let mut first = unread("a");
        assert!(first.may_go_on(), "the one slot");
        let mut second = unread("b");
        cache.increment("f/b", 1).unwrap();
        assert!(second.may_go_on(), "followed, no slot needed");
        let mut third = unread("c");
        assert!(!third.may_go_on(), "no slot left");
        drop(first);
        assert!(!third.may_go_on(), "a stopped copy stays stopped");
    }

    #[test]
    fn followers_count_in_and_out_while_the_lease_lasts() {
        let cache: Rc<dyn Kv> = Rc::new(MemoryKv::default());
        let lease = lease::Lease::new(crate::now(), "u", "r", false);
        cache.set("lease", &lease.to_bytes()).unwrap();
        assert!(!followed(cache.as_ref(), "followers"));
        let one = count_in(cache.clone(), "followers".into(), "lease", "u");
        assert!(followed(cache.as_ref(), "followers"));
        drop(one);
        assert!(!followed(cache.as_ref(), "followers"));
        // Past the lease, nothing is counted out (its holder removed it).
        let late = count_in(cache.clone(), "followers".into(), "lease", "u");
        cache.delete("lease").unwrap();
        cache.delete("followers").unwrap();
        drop(late);
        assert_eq!(cache.get("followers").unwrap(), None);
    }
}
