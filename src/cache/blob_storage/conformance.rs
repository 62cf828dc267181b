//! The one suite every blob backend passes, as distribution's driver
//! `testsuites` is for its storage drivers: what the cache relies on, and
//! nothing about how a backend keeps its bytes.

use super::{BlobStorage, StoredBlob, Upload};
use crate::cache::layout::{self, Scope, UPLOAD_GRACE_SECS};
use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use std::rc::Rc;
use std::time::Duration;

/// Runs every check of the suite against `storage`; panics at the first that fails.
pub async fn run(storage: &dyn BlobStorage) {
    parts_read_back_while_the_upload_goes_on(storage).await;
    a_completed_upload_reads_whole_and_in_ranges(storage).await;
    an_aborted_upload_leaves_nothing(storage).await;
    a_deleted_blob_is_gone_and_another_upload_of_it_stays(storage).await;
    scopes_never_share_a_blob(storage).await;
    only_abandoned_uploads_are_collected(storage).await;
    presigned_urls_hold_no_secret(storage).await;
}

/// Bytes over two and a half parts, so ranges cross part ends.
fn blob_bytes(storage: &dyn BlobStorage, seed: u8) -> (Vec<u8>, u64) {
    let part = storage.part_size(4096);
    let size = part * 2 + part / 2 + 1;
    let bytes = (0..size).map(|i| (i % 251) as u8 ^ seed).collect();
    (bytes, part)
}

fn upload_of(scope: &str, bytes: &[u8], started: u64) -> Upload {
    Upload {
        scope: Scope::from_key_part(scope),
        digest: format!("sha256:{:x}", Sha256::digest(bytes)),
        id: layout::upload_id(started, crate::random_u64()),
    }
}

fn parts_of(bytes: &[u8], part: u64) -> Vec<Rc<Vec<u8>>> {
    bytes
        .chunks(part as usize)
        .map(|p| Rc::new(p.to_vec()))
        .collect()
}

/// Writes every part of `bytes` into `upload`: the blob it will be.
async fn put_all(storage: &dyn BlobStorage, upload: Upload, bytes: &[u8], part: u64) -> StoredBlob {
    storage
        .put_parts(&upload, 0, parts_of(bytes, part))
        .await
        .unwrap();
    StoredBlob {
        upload,
        size: bytes.len() as u64,
        part_size: part,
    }
}

/// Writes and completes `bytes` as one blob.
async fn stored(storage: &dyn BlobStorage, scope: &str, bytes: &[u8], part: u64) -> StoredBlob {
    let upload = upload_of(scope, bytes, crate::now());
    let blob = put_all(storage, upload, bytes, part).await;
    storage.complete(&blob).await.unwrap();
    blob
}

async fn read(storage: &dyn BlobStorage, blob: &StoredBlob, start: u64, end: u64) -> Vec<u8> {
    let mut chunks = storage.read(blob, start, end);
    let mut out = Vec::new();
    while let Some(chunk) = chunks.next().await {
        out.extend(chunk.unwrap());
    }
    out
}

/// Whether reading the blob fails (it is not there).
async fn unreadable(storage: &dyn BlobStorage, blob: &StoredBlob) -> bool {
    let mut chunks = storage.read(blob, 0, blob.size);
    let mut got = 0;
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(c) => got += c.len() as u64,
            Err(_) => return true,
        }
    }
    got < blob.size
}

async fn parts_read_back_while_the_upload_goes_on(storage: &dyn BlobStorage) {
    let (bytes, part) = blob_bytes(storage, 1);
    let upload = upload_of("https~parts.conformance.test", &bytes, crate::now());
    let parts = parts_of(&bytes, part);
    if !storage.reads_parts_back() {
        return parts_stay_hidden_until_completed(storage, upload, &bytes, part).await;
    }
    storage
        .put_parts(&upload, 0, parts[..1].to_vec())
        .await
        .unwrap();
    assert_eq!(
        storage.get_part(&upload, 0).await.unwrap().as_deref(),
        Some(&bytes[..part as usize])
    );
    assert_eq!(storage.get_part(&upload, 1).await.unwrap(), None);
    storage
        .put_parts(&upload, 1, parts[1..].to_vec())
        .await
        .unwrap();
    assert_eq!(
        storage.get_part(&upload, 2).await.unwrap().as_deref(),
        Some(&bytes[2 * part as usize..])
    );
    // A follower reads the very same parts, wherever they come from.
    for n in 0..3 {
        let followed = storage.follow_part(&upload, n).await.unwrap();
        assert_eq!(followed, storage.get_part(&upload, n).await.unwrap());
    }
    assert_eq!(storage.follow_part(&upload, 3).await.unwrap(), None);
    // A slow reader's piece of a part, and one that runs past its end.
    let p = part as usize;
    let inside = storage.get_part_range(&upload, 1, 7..p - 7).await.unwrap();
    assert_eq!(inside.as_deref(), Some(&bytes[p + 7..2 * p - 7]));
    let past = storage.get_part_range(&upload, 2, 3..p).await.unwrap();
    assert_eq!(past.as_deref(), Some(&bytes[2 * p + 3..]));
    let none = storage.get_part_range(&upload, 3, 0..p).await.unwrap();
    assert_eq!(none, None);
    storage.abort(&upload, 3).await.unwrap();
    assert_eq!(storage.follow_part(&upload, 0).await.unwrap(), None);
}

/// Where parts do not read back, none does, nor the blob, until the
/// upload is completed; then the blob reads whole.
async fn parts_stay_hidden_until_completed(
    storage: &dyn BlobStorage,
    upload: Upload,
    bytes: &[u8],
    part: u64,
) {
    let blob = put_all(storage, upload, bytes, part).await;
    for n in 0..3 {
        assert_eq!(storage.get_part(&blob.upload, n).await.unwrap(), None);
        assert_eq!(storage.follow_part(&blob.upload, n).await.unwrap(), None);
    }
    assert!(
        unreadable(storage, &blob).await,
        "an unchecked blob is served"
    );
    storage.complete(&blob).await.unwrap();
    assert!(read(storage, &blob, 0, blob.size).await == bytes);
    storage.delete(&blob).await.unwrap();
}

async fn a_completed_upload_reads_whole_and_in_ranges(storage: &dyn BlobStorage) {
    let (bytes, part) = blob_bytes(storage, 2);
    let blob = stored(storage, "https~ranges.conformance.test", &bytes, part).await;
    let size = bytes.len() as u64;
    assert_eq!(blob.parts(), 3);
    assert!(read(storage, &blob, 0, size).await == bytes, "whole blob");
    for (start, end) in [(1, part + 3), (part, 2 * part), (size - 1, size), (0, 1)] {
        let got = read(storage, &blob, start, end).await;
        assert!(
            got == bytes[start as usize..end as usize],
            "range {start}..{end}"
        );
    }
    storage.delete(&blob).await.unwrap();
    // A last part of a few bytes (a store may keep those apart).
    let short = &bytes[..part as usize + 100];
    let blob = stored(storage, "https~ranges.conformance.test", short, part).await;
    assert!(
        read(storage, &blob, 0, blob.size).await == short,
        "short last part"
    );
    storage.delete(&blob).await.unwrap();
}

async fn an_aborted_upload_leaves_nothing(storage: &dyn BlobStorage) {
    let (bytes, part) = blob_bytes(storage, 3);
    let upload = upload_of("https~abort.conformance.test", &bytes, crate::now());
    storage
        .put_parts(&upload, 0, parts_of(&bytes, part))
        .await
        .unwrap();
    storage.abort(&upload, 3).await.unwrap();
    for n in 0..3 {
        assert_eq!(storage.get_part(&upload, n).await.unwrap(), None);
    }
    let blob = StoredBlob {
        upload,
        size: bytes.len() as u64,
        part_size: part,
    };
    assert!(
        unreadable(storage, &blob).await,
        "an aborted blob is served"
    );
}

async fn a_deleted_blob_is_gone_and_another_upload_of_it_stays(storage: &dyn BlobStorage) {
    let (bytes, part) = blob_bytes(storage, 4);
    let first = stored(storage, "https~delete.conformance.test", &bytes, part).await;
    let second = stored(storage, "https~delete.conformance.test", &bytes, part).await;
    assert_eq!(first.upload.digest, second.upload.digest);
    storage.delete(&first).await.unwrap();
    assert!(
        unreadable(storage, &first).await,
        "a deleted blob is served"
    );
    assert!(read(storage, &second, 0, second.size).await == bytes);
    storage.delete(&second).await.unwrap();
}

async fn scopes_never_share_a_blob(storage: &dyn BlobStorage) {
    let (bytes, part) = blob_bytes(storage, 5);
    let mine = stored(storage, "https~scope.conformance.test@one", &bytes, part).await;
    let theirs = StoredBlob {
        upload: Upload {
            scope: Scope::from_key_part("https~scope.conformance.test@two"),
            ..mine.upload.clone()
        },
        ..mine.clone()
    };
    assert!(
        unreadable(storage, &theirs).await,
        "one partition's blob is read from another"
    );
    storage.delete(&mine).await.unwrap();
}

async fn only_abandoned_uploads_are_collected(storage: &dyn BlobStorage) {
    let (bytes, part) = blob_bytes(storage, 6);
    let long_ago = crate::now() - UPLOAD_GRACE_SECS - 60;
    let abandoned = upload_of("https~gc.conformance.test", &bytes, long_ago);
    let going_on = upload_of("https~gc.conformance.test", &bytes, crate::now());
    let completed_old = upload_of("https~gc.conformance.test", &bytes[1..], long_ago);
    // Completed long ago, but in no index entry (its entry was lost).
    let orphan = upload_of("https~gc.conformance.test", &bytes[2..], long_ago);
    for upload in [&abandoned, &going_on, &completed_old, &orphan] {
        storage
            .put_parts(upload, 0, parts_of(&bytes, part)[..2].to_vec())
            .await
            .unwrap();
    }
    let completed = StoredBlob {
        upload: completed_old.clone(),
        size: 2 * part,
        part_size: part,
    };
    storage.complete(&completed).await.unwrap();
    let orphan = StoredBlob {
        upload: orphan,
        ..completed.clone()
    };
    storage.complete(&orphan).await.unwrap();
    let is_completed = |u: &Upload| *u == completed_old;
    let removed = storage
        .collect_abandoned(crate::now(), &is_completed)
        .await
        .unwrap();
    assert!(removed >= 1, "nothing collected");
    assert!(unreadable(storage, &orphan).await, "an orphaned blob stays");
    assert!(read(storage, &completed, 0, 2 * part).await == bytes[..2 * part as usize]);
    let two_parts = |upload: &Upload| StoredBlob {
        upload: upload.clone(),
        ..completed.clone()
    };
    if storage.reads_parts_back() {
        assert_eq!(storage.get_part(&abandoned, 0).await.unwrap(), None);
        assert!(storage.get_part(&going_on, 1).await.unwrap().is_some());
        storage.abort(&going_on, 2).await.unwrap();
    } else {
        // Parts that do not read back show what was collected by whether
        // the upload still completes.
        let abandoned = two_parts(&abandoned);
        assert!(storage.complete(&abandoned).await.is_err(), "not collected");
        let going_on = two_parts(&going_on);
        storage.complete(&going_on).await.unwrap();
        storage.delete(&going_on).await.unwrap();
    }
    storage.delete(&completed).await.unwrap();
}

async fn presigned_urls_hold_no_secret(storage: &dyn BlobStorage) {
    let (bytes, part) = blob_bytes(storage, 7);
    let blob = stored(storage, "https~presigned.conformance.test", &bytes, part).await;
    if let Some(url) = storage.presigned_get(&blob, Duration::from_secs(60)) {
        assert!(url.query().is_some_and(|q| q.contains("X-Amz-Signature=")));
    }
    storage.delete(&blob).await.unwrap();
}
