//! The copy of an upstream blob into the cache, made while the blob streams
//! to the client: fixed-size chunks, its sha256 computed on the way. The
//! blob becomes visible only when the stream completed and the digest
//! matched, and the last bytes reach the client only then, so a corrupt
//! upstream blob fails the client's pull too. A copy that does not finish
//! (the client went away, the digest did not match) removes its chunks at
//! once; one that does counts against the cache's bound.

use super::cache_budget::{self, HeldLease};
use super::host::{Chunks, Kv};
use crate::cache::{BlobEntry, Scope};
use crate::eviction::Committed;
use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use std::rc::Rc;

/// Chunks between renewals of the copy's lease.
const LEASE_RENEWAL: u64 = 8;

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
    hasher: Sha256,
    buf: Vec<u8>,
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
            hasher: Sha256::new(),
            buf: Vec::new(),
            received: 0,
            stored: 0,
            storing: true,
            committed: false,
        }
    }

    fn absorb(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.received += data.len() as u64;
        if !self.storing {
            return;
        }
        self.buf.extend_from_slice(data);
        let chunk = self.entry.chunk_size as usize;
        while self.buf.len() >= chunk {
            let rest = self.buf.split_off(chunk);
            let full = std::mem::replace(&mut self.buf, rest);
            self.store_chunk(&full);
        }
    }

    fn store_chunk(&mut self, bytes: &[u8]) {
        let key = self
            .scope
            .chunk_key(&self.digest, &self.entry.upload, self.stored);
        match self.kv.set(&key, bytes) {
            Ok(()) => {
                self.stored += 1;
                if self.stored.is_multiple_of(LEASE_RENEWAL) {
                    self.lease.renew();
                }
            }
            Err(e) => {
                eprintln!("cache: cannot store a blob chunk, streaming only: {e}");
                self.storing = false;
            }
        }
    }

    /// At the end of the upstream body: whether it is the blob asked for;
    /// if so and every chunk is stored, the blob becomes visible.
    fn finish(&mut self) -> bool {
        let hasher = std::mem::take(&mut self.hasher);
        let verified = self.received == self.entry.size
            && format!("sha256:{:x}", hasher.finalize()) == self.digest;
        if verified && self.storing {
            if !self.buf.is_empty() {
                let last = std::mem::take(&mut self.buf);
                self.store_chunk(&last);
            }
            if self.storing
                && let Ok(v) = serde_json::to_vec(&self.entry)
            {
                match self.kv.set(&self.scope.blob_key(&self.digest), &v) {
                    Ok(()) => self.commit(),
                    Err(e) => eprintln!("cache: cannot commit a blob: {e}"),
                }
            }
        }
        if !verified {
            eprintln!(
                "cache: upstream blob {} does not match its digest or length; not cached",
                self.digest
            );
        }
        verified
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

    pub fn into_stream<S>(self, upstream: S) -> Chunks
    where
        S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
    {
        // The latest piece is held back until the next arrives, so the last
        // one goes out only once the digest is known to match.
        struct State<S> {
            tee: BlobCopy,
            upstream: S,
            pending: Option<Vec<u8>>,
            done: bool,
        }
        let state = State {
            tee: self,
            upstream,
            pending: None,
            done: false,
        };
        Box::pin(futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            loop {
                match st.upstream.next().await {
                    Some(Ok(data)) => {
                        st.tee.absorb(&data);
                        if let Some(previous) = st.pending.replace(data) {
                            return Some((Ok(previous), st));
                        }
                    }
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                    None => {
                        st.done = true;
                        if !st.tee.finish() {
                            return Some((
                                Err("the upstream blob does not match its digest".to_string()),
                                st,
                            ));
                        }
                        return st.pending.take().map(|last| (Ok(last), st));
                    }
                }
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
