//! What the copy's client reads back once the copy no longer holds it:
//! the stored part, or the completed blob.

use super::Tee;
use crate::cache::blob_copy;
use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;

/// A piece of part `n` from `offset` on, read back: from the part, or from
/// the blob once completed (a backend may remove parts then, or have kept
/// them to itself until then).
pub(super) async fn stored_piece(
    tee: &Rc<RefCell<Tee>>,
    n: u64,
    offset: usize,
) -> Result<Vec<u8>, String> {
    let (storage, blob) = {
        let t = tee.borrow();
        (t.copy.storage.clone(), t.copy.stored_blob())
    };
    let range = offset..offset + blob_copy::MEMORY_PIECE;
    let piece = match storage.get_part_range(&blob.upload, n, range).await {
        Ok(Some(piece)) => piece,
        Ok(None) if committed(tee, !storage.reads_parts_back()).await => {
            let start = n * blob.part_size + offset as u64;
            let end = (start + blob_copy::MEMORY_PIECE as u64).min(blob.size);
            blob_copy::completed_range(storage.as_ref(), &blob, start..end).await?
        }
        Ok(None) if !storage.reads_parts_back() => {
            return Err("the copy stopped before its blob was complete".to_string());
        }
        other => return Err(format!("a copy's stored part went missing ({other:?})")),
    };
    match piece.is_empty() {
        false => Ok(piece),
        true => Err(format!("a copy's stored part {n} is short")),
    }
}

/// Whether the copy is committed; with `wait`, once it is settled.
async fn committed(tee: &Rc<RefCell<Tee>>, wait: bool) -> bool {
    poll_fn(|cx| {
        let mut t = tee.borrow_mut();
        if t.copy.committed || !wait || t.settled {
            return Poll::Ready(t.copy.committed);
        }
        t.reader = Some(cx.waker().clone());
        Poll::Pending
    })
    .await
}
