//! The digest check of a copy, before it is completed and committed.
//!
//! Into a bucket, the copy hashes each batch while its PUT is on its way,
//! so the check is done when the last part is stored: followers get their
//! last bytes at once, and nothing is read back (the parts of a multipart
//! upload cannot be). Under a crowd of 16 on two instances, reading back
//! and hashing after the copy took 2.0–2.4 s of its 10.
//!
//! Into the key-value store, the stored parts are read back and hashed
//! after the answer: hashing on the way takes the client's turns (a cold
//! pull into the store took twice as long).

use super::{Tee, yield_now};
use crate::cache::blob_copy;
use crate::cache::blob_storage::{BlobStorage, StorageError, Upload};
use sha2::{Digest as _, Sha256};
use std::cell::RefCell;
use std::rc::Rc;

/// Bytes hashed between turns of the PUT and the client.
const HASH_PIECE: usize = 256 << 10;

/// Stores a batch; where the store says so, hashes it meanwhile.
pub(super) async fn store_batch(
    tee: &Rc<RefCell<Tee>>,
    storage: &dyn BlobStorage,
    upload: &Upload,
    first: u64,
    parts: Vec<Rc<Vec<u8>>>,
) -> Result<(), StorageError> {
    if !storage.check_on_the_way() {
        return storage.put_parts(upload, first, parts).await;
    }
    let hashing = hash_parts(tee, first, parts.clone());
    let (stored, ()) =
        futures::future::join(storage.put_parts(upload, first, parts), hashing).await;
    stored
}

/// Adds parts `first..` to the running digest, if it has come that far.
async fn hash_parts(tee: &Rc<RefCell<Tee>>, first: u64, parts: Vec<Rc<Vec<u8>>>) {
    if tee.borrow().hashed != first {
        return;
    }
    for part in &parts {
        for piece in part.chunks(HASH_PIECE) {
            tee.borrow_mut().running.update(piece);
            yield_now().await;
        }
    }
    tee.borrow_mut().hashed += parts.len() as u64;
}

/// Whether the running digest covers every stored part.
pub(super) fn hashed_all(t: &Tee) -> bool {
    t.hashed > 0 && t.hashed == t.copy.stored
}

/// Checks the stored parts and completes the blob if they match; other
/// work of the request runs meanwhile.
pub(super) async fn verify(tee: &Rc<RefCell<Tee>>) {
    let (storage, blob) = {
        let t = tee.borrow();
        (t.copy.storage.clone(), t.copy.stored_blob())
    };
    let hash = if hashed_all(&tee.borrow()) {
        let running = std::mem::take(&mut tee.borrow_mut().running);
        format!("sha256:{:x}", running.finalize())
    } else {
        match read_back(tee, storage.as_ref()).await {
            Some(hash) => hash,
            None => return,
        }
    };
    if !tee.borrow().copy.storing || !tee.borrow_mut().copy.matches(&hash) {
        return;
    }
    if let Err(e) = storage.complete(&blob).await {
        return eprintln!("cache: cannot complete a blob: {e}");
    }
    let published = tee.borrow_mut().copy.publish();
    // A client behind what the copy held waits for the blob.
    tee.borrow_mut().wake_reader();
    match published {
        Ok(record) => {
            let bound = tee.borrow().copy.bound();
            blob_copy::admit(bound, record).await;
        }
        Err(e) => {
            eprintln!("cache: cannot commit a blob: {e}");
            if let Err(e) = storage.delete(&blob).await {
                eprintln!("cache: cannot remove an uncommitted blob: {e}");
            }
        }
    }
}

/// The digest of the stored parts, read back; `None` when one is missing.
async fn read_back(tee: &Rc<RefCell<Tee>>, storage: &dyn BlobStorage) -> Option<String> {
    let upload = tee.borrow().copy.upload.clone();
    let mut hasher = Sha256::new();
    for n in 0.. {
        if !tee.borrow_mut().copy.check_part(n) {
            break;
        }
        match storage.get_part(&upload, n).await {
            Ok(Some(part)) => hasher.update(&part),
            other => {
                eprintln!("cache: a copy's part {n} went missing ({other:?}); not cached");
                return None;
            }
        }
        yield_now().await;
    }
    Some(format!("sha256:{:x}", hasher.finalize()))
}
