//! The copy of an upstream blob into the blob storage, in fixed-size
//! parts: the pieces taken in (`absorb`), handed to the storage a batch at a
//! time (`next_batch`), and once the body has ended, read back and checked
//! against the digest, so that only a blob that matches is completed and
//! becomes visible. A corrupt upstream blob thus reaches the client that
//! asked (which checks digests itself) but never the cache, and the
//! followers of its copy fail. (SHA-256 in wasm runs at about 200 MiB/s: on
//! the way, it set the pace of every cold pull.) A copy that does not finish
//! is aborted; one that does counts against the cache's bound. `blob_tee`
//! runs the copy at the upstream's pace and hands its bytes to the client.

use crate::cache::blob_storage::{BlobStorage, StorageError, StoredBlob, Upload};
use crate::cache::bound::{self, Committed, Reservation};
use crate::cache::layout::BlobEntry;
use crate::cache::lease::HeldLease;
use crate::host::Kv;
use std::rc::Rc;

/// Bytes handed to the storage in one write, in whole parts (one at
/// least): a SQLite store commits (and syncs) once per write, so four 1 MiB
/// chunks at a time take about half as long. A bucket's parts are 5 MiB:
/// one at a time, so no more of them wait in memory.
const WRITE_BATCH: u64 = 4 << 20;

/// Bytes the copy reads on while a batch is written. A whole 5 MiB part
/// more (a bucket's) took a cold copy's component memory from 14.4 to
/// 22.2 MiB, and a three-node Garage paced the copy either way (1.34x and
/// 1.58x its own PUT, one run each).
const WRITE_OVERLAP: u64 = 1 << 20;

/// Bytes of stored parts kept in memory until the client has read them
/// (one part at least), so a client a little behind does not read its
/// copy back from the storage.
const KEPT_STORED: u64 = 2 << 20;

/// The most bytes handed to the client from memory at once: a part may be
/// megabytes, and each piece is a copy.
pub(super) const MEMORY_PIECE: usize = 1 << 20;

/// Marks a blob as the upstream's in one repository.
pub(super) fn remember(kv: &dyn Kv, seen_key: &str) {
    if let Err(e) = kv.set(seen_key, b"1") {
        eprintln!("cache: cannot store a blob's repository: {e}");
    }
}

/// Where the bytes from one offset on are.
pub(super) enum Held {
    /// In stored part `n`, from this offset in it.
    Stored(u64, usize),
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
    /// The cache's index: entries, leases, the bound.
    kv: Rc<dyn Kv>,
    pub(super) storage: Rc<dyn BlobStorage>,
    pub(super) upload: Upload,
    entry: BlobEntry,
    /// Whole parts from number `first_held` on: the stored ones the client
    /// has not read yet (at most [`KEPT_STORED`] bytes), then those not stored
    /// yet; then the part being filled.
    whole: std::collections::VecDeque<Rc<Vec<u8>>>,
    first_held: u64,
    buf: Vec<u8>,
    /// A released part's room, for the next part.
    spare: Option<Vec<u8>>,
    pub(super) received: u64,
    /// Parts stored so far; parts handed to the storage so far (a batch
    /// on its way, or one that failed part-way, may have left some).
    pub(super) stored: u64,
    handed: u64,
    /// False once the storage refused a write: the client still gets the blob.
    pub(super) storing: bool,
    pub(super) committed: bool,
    /// Its bytes in the bound while it is under way.
    reservation: Option<Reservation>,
}

impl BlobCopy {
    /// A copy of the blob `entry` describes, written as `upload`; it holds `lease`
    /// until it ends and counts against the bound `max_size` once committed.
    pub fn new(
        kv: Rc<dyn Kv>,
        storage: Rc<dyn BlobStorage>,
        upload: Upload,
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
            storage,
            upload,
            entry,
            whole: Default::default(),
            first_held: 0,
            buf: Vec::new(),
            spare: None,
            received: 0,
            stored: 0,
            handed: 0,
            storing: true,
            committed: false,
            reservation: None,
        }
    }

    /// The copy, its bytes counted in the bound by `reservation` until it
    /// commits (then as a committed blob) or ends unfinished.
    pub fn reserving(self, reservation: Reservation) -> Self {
        Self {
            reservation: Some(reservation),
            ..self
        }
    }

    /// The blob's size, as the upstream announced it: the bytes the copy expects.
    pub(super) fn size(&self) -> u64 {
        self.entry.size
    }

    /// The blob as the storage holds it, to read its parts back.
    pub(super) fn stored_blob(&self) -> StoredBlob {
        StoredBlob {
            upload: self.upload.clone(),
            size: self.entry.size,
            part_size: self.part_size() as u64,
        }
    }

    pub(super) fn part_size(&self) -> usize {
        self.entry.chunk_size.max(1) as usize
    }

    /// Takes a piece of the body into whole parts; `next_batch` hands them
    /// to the storage.
    pub(super) fn absorb(&mut self, mut data: &[u8]) {
        self.received += data.len() as u64;
        let part = self.part_size();
        while !data.is_empty() {
            // Room for a whole part only from its second piece on: its
            // first comes with the end of the part before, while that one
            // is stored and the one before it may still be read.
            let start = self.received - (data.len() + self.buf.len()) as u64;
            let want = (self.entry.size.saturating_sub(start) as usize).min(part);
            if !self.buf.is_empty() && self.buf.capacity() < want {
                self.make_room(want);
            }
            let n = (part - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == part {
                self.whole.push_back(Rc::new(std::mem::take(&mut self.buf)));
            }
        }
    }

    /// Room for the rest of the part being filled: a released part's if
    /// there is one. Freed instead, that room was cut up by smaller
    /// allocations and the next part grew the memory: a copy into a bucket
    /// (5 MiB parts) peaked at 17.1–17.9 MiB with at most 11.5 MiB in use;
    /// reused, 13.8–14.2 MiB.
    fn make_room(&mut self, want: usize) {
        if let Some(mut room) = self.spare.take().filter(|r| r.capacity() >= want) {
            room.extend_from_slice(&self.buf);
            self.buf = room;
        }
        self.buf.reserve_exact(want.saturating_sub(self.buf.len()));
    }

    /// The oldest held part goes, its room kept for the next part once
    /// nothing else holds it.
    fn drop_front(&mut self) {
        let Some(part) = self.whole.pop_front() else {
            return;
        };
        self.first_held += 1;
        if let Ok(mut room) = Rc::try_unwrap(part) {
            room.clear();
            self.spare = Some(room);
        }
    }

    /// Where the bytes from `pos` on are.
    pub(super) fn held(&self, pos: u64) -> Held {
        let size = self.part_size() as u64;
        let (n, offset) = (pos / size, (pos % size) as usize);
        if pos >= self.received {
            return Held::Ahead;
        }
        if n < self.first_held {
            return Held::Stored(n, offset);
        }
        let index = (n - self.first_held) as usize;
        let part = self.whole.get(index).map_or(&self.buf, |p| p.as_ref());
        let end = part.len().min(offset + MEMORY_PIECE);
        Held::Memory(part[offset..end].to_vec())
    }

    /// The parts the client has read go (while storing, only stored ones).
    pub(super) fn release(&mut self, read: u64) {
        let size = self.part_size() as u64;
        while !self.whole.is_empty()
            && (self.first_held + 1) * size <= read
            && (!self.storing || self.first_held < self.stored)
        {
            self.drop_front();
        }
    }

    /// Stored parts past [`KEPT_STORED`] bytes go: a client that far behind
    /// reads them back from the storage.
    fn trim(&mut self) {
        let kept = (KEPT_STORED / self.part_size() as u64).max(1);
        while self.first_held + kept < self.stored && !self.whole.is_empty() {
            self.drop_front();
        }
    }

    /// Whole parts not stored yet.
    fn unstored(&self) -> usize {
        let stored_held = self.stored.saturating_sub(self.first_held) as usize;
        self.whole.len().saturating_sub(stored_held)
    }

    /// The next batch to store, from which part on: a full one, or with
    /// `all` (the body has ended) whatever is left, the last part too.
    /// Parts stored at once: [`WRITE_BATCH`] bytes, one part at least.
    fn batch_parts(&self) -> usize {
        (WRITE_BATCH / self.part_size() as u64).max(1) as usize
    }

    /// Bytes read but not stored, past which the reading waits for the
    /// write under way: a batch, and [`WRITE_OVERLAP`] more.
    pub(super) fn unstored_bound(&self) -> u64 {
        (self.batch_parts() * self.part_size()) as u64 + WRITE_OVERLAP
    }

    pub(super) fn next_batch(&mut self, all: bool) -> Option<(u64, Vec<Rc<Vec<u8>>>)> {
        if all {
            // No part is filled any more.
            self.spare = None;
            if !self.buf.is_empty() {
                self.whole.push_back(Rc::new(std::mem::take(&mut self.buf)));
            }
        }
        let batch = self.batch_parts();
        let ready = self.unstored() >= batch || all && self.unstored() > 0;
        if !self.storing || self.handed > self.stored || !ready {
            return None;
        }
        let take = self.unstored().min(batch);
        let skip = self.whole.len() - self.unstored();
        self.handed = self.stored + take as u64;
        let batch = self.whole.iter().skip(skip).take(take).cloned().collect();
        Some((self.stored, batch))
    }

    /// The batch handed out last was stored (or not).
    pub(super) fn batch_done(&mut self, parts: usize, result: Result<(), StorageError>) {
        if let Err(e) = result {
            // The client still gets every byte, from memory.
            eprintln!("cache: cannot store a blob part, streaming only: {e}");
            self.storing = false;
            return;
        }
        self.stored += parts as u64;
        self.trim();
        self.lease.stored(self.stored);
    }

    /// At the end of the upstream body: whether it had the blob's length.
    pub(super) fn end(&mut self) -> bool {
        if self.received != self.entry.size {
            eprintln!(
                "cache: upstream blob {} is not {} bytes long; not cached",
                self.upload.digest, self.entry.size
            );
            return false;
        }
        true
    }

    /// Whether part `n` is stored, for the check; false once storing
    /// stopped.
    pub(super) fn check_part(&self, n: u64) -> bool {
        self.storing && n < self.stored
    }

    /// Says in the lease that the copy is still under way.
    pub(super) fn beat(&mut self) {
        self.lease.renew();
    }

    /// Whether what was stored hashes to the digest; followers learn it
    /// from the lease.
    pub(super) fn matches(&mut self, hash: &str) -> bool {
        let matches = hash == self.upload.digest;
        match matches {
            true => self.lease.checked(),
            false => eprintln!(
                "cache: upstream blob {} does not match its digest; not cached",
                self.upload.digest
            ),
        }
        matches
    }

    /// Makes the completed blob visible in the index; what to admit to
    /// the bound. An error when the index refused it (the caller then
    /// removes the blob).
    pub(super) fn publish(&mut self) -> Result<Committed, String> {
        let entry = serde_json::to_vec(&self.entry).map_err(|e| e.to_string())?;
        let blob_key = self.upload.scope.blob_key(&self.upload.digest);
        self.kv.set(&blob_key, &entry)?;
        self.committed = true;
        // Its bytes leave the copies under way, to be admitted as a blob's.
        self.reservation = None;
        // A private copy is served only after its client's own HEAD, every
        // time: no mark says which layers its repository has.
        if !self.entry.private {
            remember(self.kv.as_ref(), &self.seen_key);
        }
        let (scope, digest, id) = (&self.upload.scope, &self.upload.digest, &self.upload.id);
        Ok(Committed {
            blob_key,
            upload: id.clone(),
            chunk_prefix: scope.chunk_prefix(digest, id),
            chunks: self.stored,
            size: self.entry.size,
            manifest: false,
        })
    }

    /// What the bound needs to admit a published blob.
    pub(super) fn bound(&self) -> (Rc<dyn Kv>, Rc<dyn BlobStorage>, u64) {
        (self.kv.clone(), self.storage.clone(), self.max_size)
    }

    /// The parts to remove when the copy ends unfinished.
    pub(super) fn leftover(&self) -> Option<(Upload, u64)> {
        let parts = self.handed;
        (!self.committed && parts > 0).then(|| (self.upload.clone(), parts))
    }
}

/// Part `n` read from the completed blob (a backend may remove the parts
/// once it completes an upload).
pub(super) async fn completed_part(
    storage: &dyn BlobStorage,
    blob: &StoredBlob,
    n: u64,
) -> Result<Vec<u8>, String> {
    let start = (n * blob.part_size).min(blob.size);
    let end = (start + blob.part_size).min(blob.size);
    completed_range(storage, blob, start..end).await
}

/// Bytes `range` of the completed blob, in one piece.
pub(super) async fn completed_range(
    storage: &dyn BlobStorage,
    blob: &StoredBlob,
    range: std::ops::Range<u64>,
) -> Result<Vec<u8>, String> {
    use futures::StreamExt;
    let mut pieces = storage.read(blob, range.start, range.end);
    let mut bytes = Vec::with_capacity(range.end.saturating_sub(range.start) as usize);
    while let Some(piece) = pieces.next().await {
        bytes.extend(piece?);
    }
    Ok(bytes)
}

/// Admits a published blob to the bound (evicting the least recently
/// used past it), and notes its place in the queue in its entry.
pub(super) async fn admit(copy: (Rc<dyn Kv>, Rc<dyn BlobStorage>, u64), record: Committed) {
    let (kv, storage, max) = copy;
    let placed = bound::admit(kv.as_ref(), storage.as_ref(), &record, max)
        .await
        .and_then(|position| {
            let entry = kv
                .get(&record.blob_key)?
                .and_then(|v| serde_json::from_slice::<BlobEntry>(&v).ok())
                .filter(|e| e.upload == record.upload);
            let Some(entry) = entry else {
                return Ok(());
            };
            let entry = BlobEntry {
                queued: Some(position),
                ..entry
            };
            let value = serde_json::to_vec(&entry).map_err(|e| e.to_string())?;
            kv.set(&record.blob_key, &value)
        });
    if let Err(e) = placed {
        eprintln!("cache: cannot keep the cache within its bound: {e}");
    }
}
