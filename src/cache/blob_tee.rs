//! A copy run at the upstream's pace, beside the answer to the client that
//! started it. The copy reads the upstream as fast as it sends and stores
//! what it reads; the client reads from the copy: what is not stored yet
//! from memory, what is stored from the store. So a client that reads
//! slowly, or stops, no longer holds back the copy, nor the crowd that
//! follows it through the store; the copy goes on to the end, and commits,
//! after its first client has gone, while another request follows it or
//! in one of the instance's few detached slots
//! ([`crate::cache::detached`]); past
//! those it stops and is aborted.
//!
//! Only when the store refuses writes (nothing to follow, nothing to keep)
//! does the copy wait for its client, holding at most [`WINDOW`] bytes
//! ahead of it.
//!
//! The digest check (SHA-256 at about 200 MiB/s in wasm, on the one thread
//! that also writes the answer) waits until the first client has its last
//! byte, while it reads on at [`CHECK_PACE`] or faster: run at once, it
//! took the writer's turns and halved a cold pull (and capped at 2 s, a
//! 1 GiB cold GET into blob files ran at 0.42x the relay). A client slower
//! than that waits less than the followers waiting for the commit.

use crate::cache::blob_copy::{BlobCopy, Held};
use crate::cache::detached::Unread;
use crate::cache::lease;
use crate::host::{Chunks, Task, Tasks, Timer};
use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

/// Bytes the copy may hold ahead of a client it must wait for.
const WINDOW: u64 = 8 << 20;
/// Bytes the copy runs ahead of a client that keeps up: within them the
/// client reads from memory, as fast as the copy stores (a copy that ran
/// ahead made its client read it all back from the store: 0.14x direct).
/// Into blob files, a cold 200 MiB GET ran at 0.59x the relay with 4 MiB
/// and 0.74x with 12 (7 pairs each; 32 did no better), the component's
/// memory at 10 MiB either way: the parts go as the client reads them.
const LEAD: u64 = 12 << 20;
/// How long the copy waits for a client that is [`LEAD`] behind before it
/// goes on at the upstream's pace without it.
const READER_GRACE: Duration = Duration::from_millis(200);
/// The check waits for the first client to finish reading while it reads
/// at least [`CHECK_PACE`] bytes each of these.
const CHECK_DELAY: Duration = Duration::from_secs(2);
/// Bytes a client reads within [`CHECK_DELAY`] to keep the check waiting.
const CHECK_PACE: u64 = 8 << 20;

/// Where the upstream body stands.
enum Upstream {
    Coming,
    Whole,
    Failed(String),
}

/// What the copy and its client share.
struct Tee {
    copy: BlobCopy,
    upstream: Upstream,
    /// How far the client has read, and whether it is still there.
    read: u64,
    reader_gone: bool,
    /// Fell behind for a while: the copy no longer waits for it.
    reader_slow: bool,
    /// Whether the copy goes on once its client has gone.
    unread: Unread,
    /// The copy was checked (and committed, or not): a client waiting for
    /// the blob waits no more.
    settled: bool,
    reader: Option<Waker>,
    pump: Option<Waker>,
    /// The storing half of the copy, waiting for bytes or the end.
    storer: Option<Waker>,
    /// Bytes came since the storer last looked, or the reading ended.
    fresh: bool,
    reading_ended: bool,
    /// The digest of what was stored, hashed on the way: parts `0..hashed`.
    running: Sha256,
    hashed: u64,
}

impl Tee {
    fn new(copy: BlobCopy, unread: Unread, reader_gone: bool) -> Self {
        Self {
            copy,
            upstream: Upstream::Coming,
            read: 0,
            reader_gone,
            reader_slow: false,
            unread,
            settled: false,
            reader: None,
            pump: None,
            storer: None,
            fresh: false,
            reading_ended: false,
            running: Sha256::new(),
            hashed: 0,
        }
    }

    fn wake_reader(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }

    fn wake_pump(&mut self) {
        if let Some(w) = self.pump.take() {
            w.wake();
        }
    }

    fn wake_storer(&mut self) {
        self.fresh = true;
        if let Some(w) = self.storer.take() {
            w.wake();
        }
    }
}

/// Starts `copy` of `upstream` among `alongside`, going on `unread` once
/// its client has gone; the client's body.
pub fn start<S>(
    copy: BlobCopy,
    unread: Unread,
    upstream: S,
    alongside: Tasks,
    timer: Rc<dyn Timer>,
) -> Chunks
where
    S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
{
    let tee = Rc::new(RefCell::new(Tee::new(copy, unread, false)));
    alongside.push(beating_pump(tee.clone(), upstream, timer));
    reader(tee)
}

/// `copy` of `upstream` with no client reading it, as work to run: at the
/// upstream's pace, to its commit, if `unread` lets it go on.
pub fn unread<S>(copy: BlobCopy, unread: Unread, upstream: S, timer: Rc<dyn Timer>) -> Task
where
    S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
{
    let tee = Rc::new(RefCell::new(Tee::new(copy, unread, true)));
    beating_pump(tee, upstream, timer)
}

/// The pump, beating in the copy's lease until it ends.
fn beating_pump<S>(tee: Rc<RefCell<Tee>>, upstream: S, timer: Rc<dyn Timer>) -> Task
where
    S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
{
    Box::pin(async move {
        let work = pump(tee.clone(), upstream, timer.clone());
        let beat = || {
            let mut t = tee.borrow_mut();
            t.copy.beat();
            t.unread.beat();
        };
        lease::beating(work, timer.as_ref(), beat).await
    })
}

/// Reads the upstream into the copy until it ends, then checks the copy;
/// an unfinished copy is aborted.
async fn pump<S>(tee: Rc<RefCell<Tee>>, upstream: S, timer: Rc<dyn Timer>)
where
    S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
{
    if copy_in::copy_in(&tee, upstream, &timer).await {
        if !check::hashed_all(&tee.borrow()) {
            reader_done_or_slow(&tee, timer.as_ref()).await;
        }
        check::verify(&tee).await;
    }
    {
        let mut t = tee.borrow_mut();
        t.settled = true;
        t.wake_reader();
    }
    abort_unfinished(&tee).await;
}

/// Waits until the first client has read all, gone, or read less than
/// [`CHECK_PACE`] in a [`CHECK_DELAY`].
async fn reader_done_or_slow(tee: &Rc<RefCell<Tee>>, timer: &dyn Timer) {
    loop {
        let before = tee.borrow().read;
        let read_all = poll_fn(|cx| {
            let mut t = tee.borrow_mut();
            if t.reader_gone || t.read >= t.copy.size() {
                return Poll::Ready(());
            }
            t.pump = Some(cx.waker().clone());
            Poll::Pending
        });
        let waited = futures::future::select(Box::pin(read_all), timer.sleep(CHECK_DELAY)).await;
        if matches!(waited, futures::future::Either::Left(_))
            || tee.borrow().read < before + CHECK_PACE
        {
            return;
        }
    }
}

/// Removes what a copy that did not complete stored, once its client no
/// longer reads it.
async fn abort_unfinished(tee: &Rc<RefCell<Tee>>) {
    let Some((upload, parts)) = tee.borrow().copy.leftover() else {
        return;
    };
    poll_fn(|cx| {
        let mut t = tee.borrow_mut();
        if t.reader_gone || t.read >= t.copy.received {
            return Poll::Ready(());
        }
        t.pump = Some(cx.waker().clone());
        Poll::Pending
    })
    .await;
    let storage = tee.borrow().copy.storage.clone();
    if let Err(e) = storage.abort(&upload, parts).await {
        eprintln!("cache: cannot remove an unfinished copy: {e}");
    }
}

/// Lets the other futures of the request run once.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// The client's side: the copy's bytes in order, as they are there.
struct Reader(Rc<RefCell<Tee>>);

impl Drop for Reader {
    fn drop(&mut self) {
        let mut t = self.0.borrow_mut();
        t.reader_gone = true;
        t.wake_pump();
    }
}

/// Ends after the first error: the client's body is cut there.
fn reader(tee: Rc<RefCell<Tee>>) -> Chunks {
    let pieces = futures::stream::unfold(Reader(tee), |r| async move {
        let next = next_piece(&r.0).await?;
        Some((next, r))
    });
    let mut failed = false;
    Box::pin(pieces.take_while(move |piece| {
        let go_on = !failed;
        failed |= piece.is_err();
        std::future::ready(go_on)
    }))
}

/// The next piece for the client, `None` at the end.
async fn next_piece(tee: &Rc<RefCell<Tee>>) -> Option<Result<Vec<u8>, String>> {
    loop {
        let held = {
            let t = tee.borrow();
            t.copy.held(t.read)
        };
        let piece = match held {
            Held::Memory(bytes) => Ok(bytes),
            Held::Stored(n, offset) => read_back::stored_piece(tee, n, offset).await,
            Held::Ahead => match ahead(tee).await {
                Some(end) => return end,
                None => continue,
            },
        };
        if let Ok(bytes) = &piece {
            // The pump waits on the reader for room, and for its end.
            let mut t = tee.borrow_mut();
            t.read += bytes.len() as u64;
            let read = t.read;
            t.copy.release(read);
            t.wake_pump();
        }
        return Some(piece);
    }
}

/// Waits while the client has read all there is: `None` when there is
/// more, else the body's end or its error.
async fn ahead(tee: &Rc<RefCell<Tee>>) -> Option<Option<Result<Vec<u8>, String>>> {
    poll_fn(|cx| {
        let mut t = tee.borrow_mut();
        let read = t.read;
        if t.copy.received > read {
            return Poll::Ready(None);
        }
        match &t.upstream {
            Upstream::Failed(e) => Poll::Ready(Some(Some(Err(e.clone())))),
            Upstream::Whole if read >= t.copy.size() => Poll::Ready(Some(None)),
            _ => {
                t.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await
}

mod check;
mod copy_in;
mod read_back;
#[cfg(test)]
mod tests;
