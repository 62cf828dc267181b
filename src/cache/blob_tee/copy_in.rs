//! The copy's filling half: it reads the upstream body as fast as it comes
//! (within [`LEAD`] of a client that keeps up) and stores it, the reading
//! going on while a batch is written.

use super::{LEAD, READER_GRACE, Tee, Upstream, WINDOW, check};
use crate::host::Timer;
use futures::StreamExt;
use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;

/// Reads and stores the upstream body, the reading going on while a batch
/// is being written (a bucket's PUT, an asynchronous write); whether all
/// of it was stored.
pub(super) async fn copy_in<S>(tee: &Rc<RefCell<Tee>>, upstream: S, timer: &Rc<dyn Timer>) -> bool
where
    S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
{
    let reading = async {
        let whole = read_in(tee, upstream, timer).await;
        let mut t = tee.borrow_mut();
        t.reading_ended = true;
        t.wake_storer();
        whole
    };
    let (whole, ()) = futures::future::join(reading, store_as_read(tee)).await;
    whole && tee.borrow().copy.storing
}

/// Reads the upstream body into the copy, at most a batch and a little
/// ahead of what is stored; whether it came whole.
async fn read_in<S>(tee: &Rc<RefCell<Tee>>, mut upstream: S, timer: &Rc<dyn Timer>) -> bool
where
    S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
{
    loop {
        if !room(tee, timer).await {
            return false;
        }
        written_behind(tee).await;
        let next = upstream.next().await;
        let mut t = tee.borrow_mut();
        match next {
            Some(Ok(data)) => t.copy.absorb(&data),
            Some(Err(e)) => t.upstream = Upstream::Failed(e),
            None if t.copy.end() => t.upstream = Upstream::Whole,
            None => {
                let short = "the upstream blob is not as long as it said";
                t.upstream = Upstream::Failed(short.into())
            }
        }
        t.wake_reader();
        t.wake_storer();
        match t.upstream {
            Upstream::Coming => {}
            Upstream::Whole => return true,
            Upstream::Failed(_) => return false,
        }
    }
}

/// Waits while the bytes read but not yet stored reach the copy's
/// `unstored_bound`: the memory a slow store may cost is bounded.
async fn written_behind(tee: &Rc<RefCell<Tee>>) {
    poll_fn(|cx| {
        let mut t = tee.borrow_mut();
        let stored = t.copy.stored * t.copy.part_size() as u64;
        if !t.copy.storing || t.copy.received < stored + t.copy.unstored_bound() {
            return Poll::Ready(());
        }
        t.pump = Some(cx.waker().clone());
        Poll::Pending
    })
    .await
}

/// Stores the batches as the reading fills them, and the rest once the
/// body came whole.
async fn store_as_read(tee: &Rc<RefCell<Tee>>) {
    loop {
        let ended = poll_fn(|cx| {
            let mut t = tee.borrow_mut();
            if std::mem::take(&mut t.fresh) {
                return Poll::Ready(t.reading_ended);
            }
            t.storer = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let whole = matches!(tee.borrow().upstream, Upstream::Whole);
        store(tee, ended && whole).await;
        tee.borrow_mut().wake_pump();
        if ended {
            return;
        }
    }
}

/// Hands the storage every batch that is ready (with `all`, the rest).
async fn store(tee: &Rc<RefCell<Tee>>, all: bool) {
    loop {
        let batch = tee.borrow_mut().copy.next_batch(all);
        let Some((first, parts)) = batch else {
            return;
        };
        let (storage, upload) = {
            let t = tee.borrow();
            (t.copy.storage.clone(), t.copy.upload.clone())
        };
        let count = parts.len();
        let result = check::store_batch(tee, storage.as_ref(), &upload, first, parts).await;
        let mut t = tee.borrow_mut();
        t.copy.batch_done(count, result);
        t.wake_reader();
    }
}

/// Waits until the copy may read on. While it stores: once its client is
/// within [`LEAD`], or at once for a client that has fallen behind for
/// [`READER_GRACE`] (slow, it reads back from the store from then on), or
/// gone, if it may go on unread. Otherwise once its client is within
/// [`WINDOW`]. False when there is no point going on.
async fn room(tee: &Rc<RefCell<Tee>>, timer: &Rc<dyn Timer>) -> bool {
    let storing = tee.borrow().copy.storing;
    let near = poll_fn(|cx| {
        let mut t = tee.borrow_mut();
        let lead = if t.copy.storing { LEAD } else { WINDOW };
        if t.copy.storing && t.reader_gone {
            return Poll::Ready(t.unread.may_go_on());
        }
        if t.copy.storing && t.reader_slow {
            return Poll::Ready(true);
        }
        if t.reader_gone {
            return Poll::Ready(false);
        }
        if t.copy.received < t.read + lead {
            return Poll::Ready(true);
        }
        t.pump = Some(cx.waker().clone());
        Poll::Pending
    });
    if !storing {
        return near.await;
    }
    match futures::future::select(Box::pin(near), timer.sleep(READER_GRACE)).await {
        futures::future::Either::Left((go_on, _)) => go_on,
        futures::future::Either::Right(_) => {
            tee.borrow_mut().reader_slow = true;
            true
        }
    }
}
