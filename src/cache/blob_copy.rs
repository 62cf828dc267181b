//! The copy of an upstream blob into the cache, in fixed-size chunks: the
//! pieces taken in (`absorb`), stored a batch at a time (`store_full`), and
//! once the body has ended, read back and checked against the digest, so
//! that only a blob that matches becomes visible. A corrupt upstream blob
//! thus reaches the client that asked (which checks digests itself) but
//! never the cache, and the followers of its copy fail. (SHA-256 in wasm
//! runs at about 200 MiB/s: on the way, it set the pace of every cold pull.)
//! A copy that does not finish removes its chunks at once; one that does
//! counts against the cache's bound. `blob_tee` runs the copy at the
//! upstream's pace and hands its bytes to the client as they come.

use crate::cache::budget::{self as cache_budget, HeldLease};
use crate::cache::eviction::Committed;
use crate::cache::layout::{BlobEntry, Scope};
use crate::host::Kv;
use sha2::{Digest as _, Sha256};
use std::rc::Rc;

/// Chunks between renewals of the copy's lease.
const LEASE_RENEWAL: u64 = 8;

/// Chunks stored in one write: a SQLite store commits (and syncs) once per
/// write, so four 1 MiB chunks at a time take about half as long.
const WRITE_BATCH: usize = 4;

/// Stored chunks kept in memory until the client has read them, so a
/// client a little behind does not read its copy back from the store.
const KEPT_STORED: u64 = 2;

/// Marks a blob as the upstream's in one repository.
pub(super) fn remember(kv: &dyn Kv, seen_key: &str) {
    if let Err(e) = kv.set(seen_key, b"1") {
        eprintln!("cache: cannot store a blob's repository: {e}");
    }
}

/// Where the bytes from one offset on are.
pub(super) enum Held {
    /// In the stored chunk under this key, from this offset in it.
    Stored(String, usize),
    /// Still in memory: a copy of them.
    Memory(Vec<u8>),
    /// Not received yet.
    Ahead,
}

/// One copy under way; it holds the blob's lease until it ends.
pub struct BlobCopy {
    /// Marks the blob as the upstream's in the requested repository.
    seen_key: String,
    lease: HeldLease,
    max_size: u64,
    pub(super) kv: Rc<dyn Kv>,
    scope: Scope,
    digest: String,
    entry: BlobEntry,
    /// Whole chunks from chunk number `first_held` on: the stored ones the
    /// client has not read yet (at most [`KEPT_STORED`]), then those not
    /// stored yet; then the chunk being filled.
    whole: std::collections::VecDeque<Vec<u8>>,
    first_held: u64,
    buf: Vec<u8>,
    pub(super) received: u64,
    /// Chunks written so far.
    stored: u64,
    /// False once the store refused a write: the client still gets the blob.
    pub(super) storing: bool,
    committed: bool,
}

impl BlobCopy {
    pub fn new(
        kv: Rc<dyn Kv>,
        scope: Scope,
        digest: &str,
        entry: BlobEntry,
        seen_key: String,
        lease: HeldLease,
        max_size: u64,
    ) -> Self {
        Self {
            seen_key,
            lease,
            max_size,
            kv,
            scope,
            digest: digest.to_string(),
            entry,
            whole: Default::default(),
            first_held: 0,
            buf: Vec::new(),
            received: 0,
            stored: 0,
            storing: true,
            committed: false,
        }
    }

    pub(super) fn size(&self) -> u64 {
        self.entry.size
    }

    fn chunk_size(&self) -> usize {
        self.entry.chunk_size.max(1) as usize
    }

    /// Takes a piece of the body into whole chunks; `store_full` stores
    /// them.
    pub(super) fn absorb(&mut self, mut data: &[u8]) {
        self.received += data.len() as u64;
        let chunk = self.chunk_size();
        while !data.is_empty() {
            let n = (chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == chunk {
                let whole = std::mem::replace(&mut self.buf, Vec::with_capacity(chunk));
                self.whole.push_back(whole);
            }
        }
    }

    /// Where the bytes from `pos` on are.
    pub(super) fn held(&self, pos: u64) -> Held {
        let size = self.chunk_size() as u64;
        let (n, offset) = (pos / size, (pos % size) as usize);
        if pos >= self.received {
            return Held::Ahead;
        }
        if n < self.first_held {
            let key = self.scope.chunk_key(&self.digest, &self.entry.upload, n);
            return Held::Stored(key, offset);
        }
        let index = (n - self.first_held) as usize;
        let chunk = self.whole.get(index).unwrap_or(&self.buf);
        Held::Memory(chunk[offset..].to_vec())
    }

    /// The chunks the client has read go (while storing, only stored ones).
    pub(super) fn release(&mut self, read: u64) {
        let size = self.chunk_size() as u64;
        while !self.whole.is_empty()
            && (self.first_held + 1) * size <= read
            && (!self.storing || self.first_held < self.stored)
        {
            self.whole.pop_front();
            self.first_held += 1;
        }
    }

    /// Stored chunks past [`KEPT_STORED`] go: a client that far behind
    /// reads them back from the store.
    fn trim(&mut self) {
        while self.first_held + KEPT_STORED < self.stored && !self.whole.is_empty() {
            self.whole.pop_front();
            self.first_held += 1;
        }
    }

    /// Whole chunks not stored yet.
    fn unstored(&self) -> usize {
        let stored_held = self.stored.saturating_sub(self.first_held) as usize;
        self.whole.len().saturating_sub(stored_held)
    }

    /// Stores the whole chunks taken so far, a batch at a time (`all`: the
    /// rest too, and the last part chunk).
    pub(super) fn store_full(&mut self, all: bool) {
        if all && !self.buf.is_empty() {
            self.whole.push_back(std::mem::take(&mut self.buf));
        }
        while self.storing && (self.unstored() >= WRITE_BATCH || all && self.unstored() > 0) {
            let take = self.unstored().min(WRITE_BATCH);
            let skip = self.whole.len() - self.unstored();
            let group: Vec<(String, Vec<u8>)> = (self.stored..)
                .zip(self.whole.iter().skip(skip).take(take))
                .map(|(n, bytes)| {
                    let key = self.scope.chunk_key(&self.digest, &self.entry.upload, n);
                    (key, bytes.clone())
                })
                .collect();
            match self.kv.set_many(group) {
                Ok(()) => self.stored_batch(take),
                Err(e) => {
                    // The client still gets every byte, from memory.
                    eprintln!("cache: cannot store a blob chunk, streaming only: {e}");
                    self.storing = false;
                }
            }
        }
    }

    fn stored_batch(&mut self, take: usize) {
        let before = self.stored;
        self.stored += take as u64;
        self.trim();
        if before / LEASE_RENEWAL != self.stored / LEASE_RENEWAL {
            self.lease.renew();
        }
    }

    /// At the end of the upstream body: whether it had the blob's length;
    /// if so, its last chunk is stored.
    pub(super) fn end(&mut self) -> bool {
        if self.received != self.entry.size {
            eprintln!(
                "cache: upstream blob {} is not {} bytes long; not cached",
                self.digest, self.entry.size
            );
            return false;
        }
        self.store_full(true);
        true
    }

    /// Chunk `n` as stored, for the check; `None` once storing stopped.
    pub(super) fn stored_chunk(&mut self, n: u64) -> Option<Result<Vec<u8>, String>> {
        if !self.storing || n >= self.stored {
            return None;
        }
        if (n + 1).is_multiple_of(LEASE_RENEWAL) {
            self.lease.renew();
        }
        let key = self.scope.chunk_key(&self.digest, &self.entry.upload, n);
        Some(match self.kv.get(&key) {
            Ok(Some(chunk)) => Ok(chunk),
            other => Err(format!("a copy's chunk {n} went missing ({other:?})")),
        })
    }

    /// Makes the blob visible if what was stored hashes to its digest.
    pub(super) fn commit_if(&mut self, hasher: Sha256) {
        if format!("sha256:{:x}", hasher.finalize()) != self.digest {
            eprintln!(
                "cache: upstream blob {} does not match its digest; not cached",
                self.digest
            );
            return;
        }
        let entry = serde_json::to_vec(&self.entry).map_err(|e| e.to_string());
        match entry.and_then(|v| self.kv.set(&self.scope.blob_key(&self.digest), &v)) {
            Ok(()) => self.commit(),
            Err(e) => eprintln!("cache: cannot commit a blob: {e}"),
        }
    }

    /// The blob is visible: it counts against the bound from now on.
    fn commit(&mut self) {
        self.committed = true;
        // A private copy is served only after its client's own HEAD, every
        // time: no mark says which layers its repository has.
        if !self.entry.private {
            remember(self.kv.as_ref(), &self.seen_key);
        }
        let record = Committed {
            blob_key: self.scope.blob_key(&self.digest),
            upload: self.entry.upload.clone(),
            chunk_prefix: self.scope.chunk_prefix(&self.digest, &self.entry.upload),
            chunks: self.stored,
            size: self.entry.size,
            manifest: false,
        };
        if let Err(e) = cache_budget::admit(self.kv.as_ref(), &record, self.max_size) {
            eprintln!("cache: cannot keep the cache within its bound: {e}");
        }
    }
}

impl Drop for BlobCopy {
    /// An unfinished or refused copy leaves nothing behind, and the next
    /// request may copy the blob at once.
    fn drop(&mut self) {
        if !self.committed {
            for n in 0..self.stored {
                let key = self.scope.chunk_key(&self.digest, &self.entry.upload, n);
                if let Err(e) = self.kv.delete(&key) {
                    eprintln!("cache: cannot remove an unfinished copy's chunk: {e}");
                }
            }
        }
        // The lease goes with the copy (`HeldLease` removes it when dropped).
    }
}
