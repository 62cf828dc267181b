//! The copy of an upstream blob into the cache, made while the blob streams
//! to the client in fixed-size chunks. The client gets every byte as it
//! arrives; the digest is checked after the last one, over the chunks read
//! back from the store, and only a blob that matches becomes visible. So a
//! corrupt upstream blob reaches the client that asked (which checks
//! digests itself) but never the cache, and the followers of its copy fail.
//! (SHA-256 in wasm runs at about 200 MiB/s: on the way, it set the pace of
//! every cold pull.) A copy that does not finish (the client went away, the
//! length or digest did not match) removes its chunks at once; one that
//! does counts against the cache's bound.

use crate::cache::budget::{self as cache_budget, HeldLease};
use crate::cache::eviction::Committed;
use crate::cache::layout::{BlobEntry, Scope};
use crate::host::{Chunks, Kv, Later};
use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use std::rc::Rc;

/// Chunks between renewals of the copy's lease.
const LEASE_RENEWAL: u64 = 8;

/// Chunks stored in one write: a SQLite store commits (and syncs) once per
/// write, so four 1 MiB chunks at a time take about half as long.
const WRITE_BATCH: usize = 4;

/// Marks a blob as the upstream's in one repository.
pub(super) fn remember(kv: &dyn Kv, seen_key: &str) {
    if let Err(e) = kv.set(seen_key, b"1") {
        eprintln!("cache: cannot store a blob's repository: {e}");
    }
}

/// One copy under way; it holds the blob's lease until it ends.
pub struct BlobCopy {
    /// Marks the blob as the upstream's in the requested repository.
    seen_key: String,
    lease: HeldLease,
    max_size: u64,
    kv: Rc<dyn Kv>,
    scope: Scope,
    digest: String,
    entry: BlobEntry,
    /// The chunk being filled, and whole ones not yet stored.
    buf: Vec<u8>,
    whole: Vec<Vec<u8>>,
    received: u64,
    /// Chunks written so far.
    stored: u64,
    /// False once the store refused a write: the client still gets the blob.
    storing: bool,
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
            buf: Vec::new(),
            whole: Vec::new(),
            received: 0,
            stored: 0,
            storing: true,
            committed: false,
        }
    }

    /// Takes a piece of the body into whole chunks; `store_full` stores
    /// them.
    fn absorb(&mut self, mut data: &[u8]) {
        self.received += data.len() as u64;
        let chunk = self.entry.chunk_size as usize;
        while self.storing && !data.is_empty() {
            let n = (chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == chunk {
                let whole = std::mem::replace(&mut self.buf, Vec::with_capacity(chunk));
                self.whole.push(whole);
            }
        }
    }

    /// Stores the whole chunks taken so far, a batch at a time (`all`: the
    /// rest too, and the last part chunk).
    fn store_full(&mut self, all: bool) {
        if all && !self.buf.is_empty() {
            self.whole.push(std::mem::take(&mut self.buf));
        }
        while self.storing && (self.whole.len() >= WRITE_BATCH || all && !self.whole.is_empty()) {
            let take = self.whole.len().min(WRITE_BATCH);
            let group: Vec<(String, Vec<u8>)> = self
                .whole
                .drain(..take)
                .zip(self.stored..)
                .map(|(bytes, n)| {
                    (
                        self.scope.chunk_key(&self.digest, &self.entry.upload, n),
                        bytes,
                    )
                })
                .collect();
            match self.kv.set_many(group) {
                Ok(()) => {
                    let before = self.stored;
                    self.stored += take as u64;
                    if before / LEASE_RENEWAL != self.stored / LEASE_RENEWAL {
                        self.lease.renew();
                    }
                }
                Err(e) => {
                    eprintln!("cache: cannot store a blob chunk, streaming only: {e}");
                    self.storing = false;
                    self.whole.clear();
                }
            }
        }
    }

    /// At the end of the upstream body: whether it had the blob's length;
    /// if so, its last chunk is stored.
    fn end(&mut self) -> bool {
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

    /// After the answer: reads the chunks back, and makes the blob visible
    /// if they are the blob asked for.
    async fn verify(mut self) {
        if !self.storing {
            return;
        }
        let mut hasher = Sha256::new();
        for n in 0..self.stored {
            let key = self.scope.chunk_key(&self.digest, &self.entry.upload, n);
            match self.kv.get(&key) {
                Ok(Some(chunk)) => hasher.update(&chunk),
                other => {
                    eprintln!("cache: a copy's chunk {n} went missing ({other:?}); not cached");
                    return;
                }
            }
            if (n + 1).is_multiple_of(LEASE_RENEWAL) {
                self.lease.renew();
            }
        }
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
        remember(self.kv.as_ref(), &self.seen_key);
        let record = Committed {
            blob_key: self.scope.blob_key(&self.digest),
            upload: self.entry.upload.clone(),
            chunk_prefix: self.scope.chunk_prefix(&self.digest, &self.entry.upload),
            chunks: self.stored,
            size: self.entry.size,
        };
        if let Err(e) = cache_budget::admit(self.kv.as_ref(), &record, self.max_size) {
            eprintln!("cache: cannot keep the cache within its bound: {e}");
        }
    }

    /// The upstream body as the client gets it, copied on the way; the
    /// check and the commit are left for after the answer.
    pub fn into_stream<S>(self, upstream: S, later: Later) -> Chunks
    where
        S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
    {
        struct State<S> {
            tee: Option<BlobCopy>,
            upstream: S,
            later: Later,
        }
        let state = State {
            tee: Some(self),
            upstream,
            later,
        };
        Box::pin(futures::stream::unfold(state, |mut st| async move {
            let mut tee = st.tee.take()?;
            // What the client was handed last goes into the store while the
            // runtime sends it.
            tee.store_full(false);
            match st.upstream.next().await {
                Some(Ok(data)) => {
                    tee.absorb(&data);
                    st.tee = Some(tee);
                    Some((Ok(data), st))
                }
                Some(Err(e)) => Some((Err(e), st)),
                None if tee.end() => {
                    st.later.push(Box::pin(tee.verify()));
                    None
                }
                None => Some((
                    Err("the upstream blob is not as long as it said".to_string()),
                    st,
                )),
            }
        }))
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
