//! The one copy in flight per blob: a lease in the cache's store, with an
//! expiry the copy renews, that concurrent requests read to follow the copy
//! instead of fetching the blob again. Taken and let go with the store's
//! atomics, so every instance agrees. The copy beats in its lease while it
//! runs, so a request that finds a lease no longer beating (its instance
//! was killed) takes it over instead of following a copy that is gone.

use crate::cache::layout;
use crate::host::{Kv, Timer};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

/// How long a copy may go without renewing its lease before another
/// request may take over, whatever the beats say.
pub const LEASE_SECS: u64 = 15;

/// How often a copy rewrites its lease to say it is still there: a
/// follower waits for one beat before it answers its client.
pub const BEAT: Duration = Duration::from_millis(250);

/// How often at most a copy says how far it has stored, besides its beats.
pub const STORED_EVERY: Duration = Duration::from_millis(50);

/// A lease unchanged this long belongs to a copy that is gone. Twelve
/// beats, so a copy short of CPU on a crowded machine is not taken for
/// dead; the wait counts the watcher's own polls, never two clocks.
pub const GONE_AFTER: Duration = Duration::from_secs(3);

/// The lease of the one copy of a blob under way: which copy, until when,
/// and, once the upstream answered, what the blob is, so concurrent
/// requests can follow the copy instead of fetching the blob again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub expires: u64,
    pub upload: String,
    /// The repository the copy was asked for: distribution keeps blobs per
    /// repository, so only requests for the same one follow it.
    pub repository: String,
    /// A copy made with a client's own credentials is followed by nobody.
    pub private: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Bytes a part of the copy holds: followers through another route
    /// (another `chunk_size`) find the copy's parts by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// The blob storage the copy writes to ([`BlobStorage::name`]): an
    /// instance whose storage is another (its own blob directory, on
    /// another machine sharing Redis) cannot read the copy's parts.
    ///
    /// [`BlobStorage::name`]: crate::cache::blob_storage::BlobStorage::name
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Parts stored so far, so followers ask the blob storage only for
    /// parts that are there (a bucket's missing object is a request too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u64>,
    /// The stored parts hash to the digest: followers may take the last
    /// one while the copy is still being completed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub checked: bool,
    /// When the copy last said it is there (Unix milliseconds): each beat
    /// changes the lease.
    #[serde(default)]
    pub beat: u64,
}

impl Lease {
    /// A lease for copy `upload` of a blob in `repository`, beating now and expiring
    /// [`LEASE_SECS`] after `now`.
    pub fn new(now: u64, upload: &str, repository: &str, private: bool) -> Self {
        Self {
            expires: now + LEASE_SECS,
            upload: upload.to_string(),
            repository: repository.to_string(),
            private,
            size: None,
            media_type: None,
            part_size: None,
            store: None,
            parts: None,
            checked: false,
            beat: crate::now_millis(),
        }
    }

    /// A lease as stored; `None` when the value is not one.
    pub fn parse(value: &[u8]) -> Option<Self> {
        serde_json::from_slice(value).ok()
    }

    /// The lease as stored: JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Whether the lease has not expired at `now` (its beats are checked apart).
    pub fn live(&self, now: u64) -> bool {
        self.expires > now
    }
}

/// Whether a lease may be taken: none, expired, or unreadable.
pub fn lease_free(current: Option<&[u8]>, now: u64) -> bool {
    current
        .and_then(Lease::parse)
        .is_none_or(|lease| !lease.live(now))
}

/// The lease on copying one blob, held until dropped.
pub struct HeldLease {
    kv: Rc<dyn Kv>,
    key: String,
    lease: Lease,
}

/// Takes the lease on copying a blob; none while another copy holds it.
///
/// Where no lease is, only the request that opens the lease's gate may
/// take it: Spin 4.0.2's SQLite store swaps a missing key unconditionally,
/// so a crowd's first requests each took the lease, and their followers
/// failed as the copies overwrote each other's. The gate is a counter
/// (atomic in every store); the holder closes it as it lets go.
pub fn take_lease(kv: Rc<dyn Kv>, key: &str, lease: Lease) -> Option<HeldLease> {
    let now = crate::now();
    let gate = layout::lease_gate_key(key);
    let opened = std::cell::Cell::new(false);
    let free = |current: Option<&[u8]>| match current {
        None => match kv.increment(&gate, 1) {
            Ok(n) => {
                opened.set(n == 1);
                n == 1
            }
            // A gate that cannot be read holds back no copy: the swap
            // alone decides, as before there was one.
            Err(e) => {
                eprintln!("cache: cannot open a copy lease's gate: {e}");
                true
            }
        },
        Some(_) => lease_free(current, now),
    };
    let taken = kv.swap_if(key, &free, &lease.to_bytes());
    if opened.get() && !matches!(taken, Ok(true)) {
        let _ = kv.delete(&gate);
    }
    held(kv, key, lease, taken, "take a copy's lease, streaming only")
}

/// Takes over the lease `gone` of a copy that stopped beating: only if it
/// is still that lease, so of a crowd that saw it stop one takes it.
pub fn take_over(kv: Rc<dyn Kv>, key: &str, gone: &[u8], lease: Lease) -> Option<HeldLease> {
    let taken = kv.swap_if(key, &|current| current == Some(gone), &lease.to_bytes());
    held(kv, key, lease, taken, "take over a stopped copy's lease")
}

/// The lease, held if the swap that wrote it went through; a failed swap
/// is logged as what could not be done.
fn held(
    kv: Rc<dyn Kv>,
    key: &str,
    lease: Lease,
    taken: Result<bool, String>,
    doing: &str,
) -> Option<HeldLease> {
    match taken {
        Ok(true) => Some(HeldLease {
            kv,
            key: key.to_string(),
            lease,
        }),
        Ok(false) => None,
        Err(e) => {
            eprintln!("cache: cannot {doing}: {e}");
            None
        }
    }
}

/// Runs `work` while `beat` is called every [`BEAT`]: a copy keeps its
/// lease beating while it waits on the upstream and while it copies.
pub async fn beating<T>(
    work: impl Future<Output = T>,
    timer: &dyn Timer,
    mut beat: impl FnMut(),
) -> T {
    let mut work = std::pin::pin!(work);
    loop {
        match futures::future::select(work.as_mut(), timer.sleep(BEAT)).await {
            futures::future::Either::Left((out, _)) => return out,
            futures::future::Either::Right(((), _)) => beat(),
        }
    }
}

/// What a request watching a lease learned of the copy behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pulse {
    /// The lease changed while watched, within [`GONE_AFTER`].
    Alive,
    /// Not seen to change yet.
    Unsure,
    /// Unchanged for [`GONE_AFTER`]: the copy is gone.
    Gone,
}

/// Watches one lease's value between polls.
#[derive(Default)]
pub struct Watch {
    seen: Option<Vec<u8>>,
    /// When it was first seen as it is now (this instance's milliseconds).
    since: u64,
    changed: bool,
}

impl Watch {
    /// The lease as read at `now` (Unix milliseconds, this instance's).
    pub fn see(&mut self, current: &[u8], now: u64) -> Pulse {
        if self.seen.as_deref() != Some(current) {
            self.changed = self.seen.is_some();
            self.seen = Some(current.to_vec());
            self.since = now;
        }
        let still = Duration::from_millis(now.saturating_sub(self.since));
        match (still >= GONE_AFTER, self.changed) {
            (true, _) => Pulse::Gone,
            (false, true) => Pulse::Alive,
            (false, false) => Pulse::Unsure,
        }
    }
}

impl HeldLease {
    /// The lease as taken: its upload, repository, privacy.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Where the copy's followers count themselves in.
    pub fn followers_key(&self) -> String {
        layout::lease_followers_key(&self.key, &self.lease.upload)
    }

    /// Says what the blob is, and in parts of what size into which
    /// storage it is copied, so others can follow the copy.
    pub fn describe(&mut self, size: u64, media_type: &str, part_size: u64, store: String) {
        self.lease.size = Some(size);
        self.lease.media_type = Some(media_type.to_string());
        self.lease.part_size = Some(part_size);
        self.lease.store = Some(store);
        self.renew();
    }

    /// Says how many parts are stored: written at once unless the lease
    /// was written within [`STORED_EVERY`] (the next beat or batch says
    /// it then). A write into Spin's SQLite store commits to disk, and a
    /// copy stores a batch each 4 MiB: a cold 256 MiB GET into blob files
    /// went from 204-247 to 221-264 MiB/s (2 and 3 runs).
    pub fn stored(&mut self, parts: u64) {
        self.lease.parts = Some(parts);
        if crate::now_millis() >= self.lease.beat + STORED_EVERY.as_millis() as u64 {
            self.renew();
        }
    }

    /// Says the stored parts passed the digest check (and keeps the lease).
    pub fn checked(&mut self) {
        self.lease.checked = true;
        self.renew();
    }

    /// Keeps the lease from expiring while the copy goes on, and beats.
    pub fn renew(&mut self) {
        self.lease.expires = crate::now() + LEASE_SECS;
        self.lease.beat = crate::now_millis();
        if let Err(e) = self.kv.set(&self.key, &self.lease.to_bytes()) {
            eprintln!("cache: cannot renew a copy's lease: {e}");
        }
    }
}

impl Drop for HeldLease {
    /// Lets go of the lease, unless another copy took it over (this one
    /// stalled past it), and closes its gate for the next.
    fn drop(&mut self) {
        let ours = self.lease.to_bytes();
        if self.kv.get(&self.key).ok().flatten().as_deref() != Some(&ours[..]) {
            return;
        }
        let _ = self.kv.delete(&self.key);
        let _ = self.kv.delete(&self.followers_key());
        let _ = self.kv.delete(&layout::lease_gate_key(&self.key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryKv;

    #[test]
    fn leases() {
        let lease = Lease::new(100, "u", "r", false).to_bytes();
        assert!(lease_free(None, 100));
        assert!(!lease_free(Some(&lease), 100));
        assert!(lease_free(Some(&lease), 100 + LEASE_SECS));
        assert!(lease_free(Some(b"garbage"), 100));
        assert_eq!(Lease::parse(&lease).unwrap().upload, "u");
    }

    #[test]
    fn a_lease_that_stops_changing_is_gone_and_one_that_beats_is_alive() {
        let gone = GONE_AFTER.as_millis() as u64;
        let mut watch = Watch::default();
        assert_eq!(watch.see(b"a", 1000), Pulse::Unsure);
        assert_eq!(watch.see(b"a", 1000 + gone / 2), Pulse::Unsure);
        assert_eq!(watch.see(b"b", 1000 + gone / 2), Pulse::Alive);
        assert_eq!(watch.see(b"b", 1000 + gone), Pulse::Alive);
        assert_eq!(watch.see(b"b", 1000 + gone + gone / 2), Pulse::Gone);
        let mut never_seen_beating = Watch::default();
        never_seen_beating.see(b"a", 1000);
        assert_eq!(never_seen_beating.see(b"a", 1000 + gone), Pulse::Gone);
    }

    #[test]
    fn only_the_lease_that_stopped_is_taken_over() {
        let kv: Rc<dyn Kv> = Rc::new(MemoryKv::default());
        let key = "cache/lease/s/sha256:0";
        let gone = Lease::new(1, "gone", "r", false).to_bytes();
        kv.set(key, &gone).unwrap();
        let lease = |u: &str| Lease::new(crate::now(), u, "r", false);
        let held = take_over(kv.clone(), key, &gone, lease("a")).expect("the stopped lease");
        assert!(take_over(kv.clone(), key, &gone, lease("b")).is_none());
        assert_eq!(held.lease().upload, "a");
    }

    /// A store that swaps as Spin 4.0.2's SQLite does when each of a crowd
    /// looked before any wrote: the key seen missing, then set regardless.
    struct SwapsBlind(MemoryKv);

    impl Kv for SwapsBlind {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
            self.0.get(key)
        }
        fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
            self.0.set(key, value)
        }
        fn delete(&self, key: &str) -> Result<(), String> {
            self.0.delete(key)
        }
        fn keys(&self) -> Result<Vec<String>, String> {
            self.0.keys()
        }
        fn increment(&self, key: &str, delta: i64) -> Result<i64, String> {
            self.0.increment(key, delta)
        }
        fn swap_if(
            &self,
            key: &str,
            expect: &dyn Fn(Option<&[u8]>) -> bool,
            value: &[u8],
        ) -> Result<bool, String> {
            if !expect(None) {
                return Ok(false);
            }
            self.0.set(key, value).map(|()| true)
        }
    }

    #[test]
    fn a_crowd_that_finds_no_lease_lets_one_take_it() {
        let kv: Rc<dyn Kv> = Rc::new(SwapsBlind(MemoryKv::default()));
        let key = "cache/lease/s/sha256:0";
        let lease = |u: &str| Lease::new(crate::now(), u, "r", false);
        let first = take_lease(kv.clone(), key, lease("a")).expect("the first takes it");
        assert!(take_lease(kv.clone(), key, lease("b")).is_none());
        assert_eq!(kv.get(key).unwrap(), Some(first.lease().to_bytes()));
        drop(first);
        assert!(kv.keys().unwrap().is_empty(), "let go, gate closed");
        assert!(take_lease(kv.clone(), key, lease("c")).is_some());
    }
}
