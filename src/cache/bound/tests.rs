use super::*;
use crate::cache::blob_storage::memory::MemoryBlobs;
use crate::host::memory::MemoryKv;

#[test]
fn a_record_names_its_blob() {
    let c = Committed {
        blob_key: "b".into(),
        upload: "u".into(),
        chunk_prefix: "cache/chunk/s/sha256:d/u/".into(),
        chunks: 3,
        size: 10,
        manifest: false,
    };
    let blob = c.stored_blob().unwrap();
    assert_eq!(
        (blob.upload.scope.as_str(), blob.upload.digest.as_str()),
        ("s", "sha256:d")
    );
    assert_eq!((blob.upload.id.as_str(), blob.parts()), ("u", 3));
    assert!(
        Committed {
            manifest: true,
            ..c
        }
        .stored_blob()
        .is_none()
    );
}
#[test]
fn manifests_count_against_the_bound_and_are_evicted_oldest_first() {
    let kv = MemoryKv::default();
    let blobs = MemoryBlobs::default();
    for n in 0..5 {
        let key = format!("cache/manifest/s/r@sha256:{n}");
        kv.set(&key, b"manifest").unwrap();
        futures::executor::block_on(admit_manifest(&kv, &blobs, &key, 4 << 20, 10 << 20));
    }
    let kept: Vec<String> = kv
        .keys()
        .unwrap()
        .into_iter()
        .filter(|k| k.starts_with("cache/manifest/"))
        .collect();
    assert_eq!(
        kept,
        ["cache/manifest/s/r@sha256:3", "cache/manifest/s/r@sha256:4"]
    );
    assert_eq!(kv.increment(TOTAL_KEY, 0).unwrap(), 8 << 20);
}

#[test]
fn pinned_blobs_wait_at_the_newest_end_and_the_others_go() {
    let (kv, blobs) = (MemoryKv::default(), MemoryBlobs::default());
    let keys: Vec<String> = (0..8).map(|n| blob(&kv, n, &blobs)).collect();
    crate::cache::pins::pin(&kv, "p", &keys[..2], 8 << 20).unwrap();
    for n in 8..20 {
        blob(&kv, n, &blobs);
    }
    assert!(entry(&kv, &keys[0]).is_some() && entry(&kv, &keys[1]).is_some());
    assert!((2..8).all(|n| entry(&kv, &keys[n]).is_none()));
    assert_eq!(kv.increment(TOTAL_KEY, 0).unwrap(), 8 << 20);
}

/// Eight blobs of 1 MiB fill an 8 MiB cache; `n` as committed.
fn blob(kv: &MemoryKv, n: usize, blobs: &MemoryBlobs) -> String {
    committed(kv, n, blobs, 8 << 20)
}

/// Blob `n` of 1 MiB, committed and admitted to a bound of `max` bytes;
/// its entry's key.
pub(crate) fn committed(kv: &dyn Kv, n: usize, blobs: &MemoryBlobs, max: u64) -> String {
    let key = format!("cache/blob/s/sha256:{n}");
    let upload = layout::upload_id(crate::now(), n as u64);
    let mut entry = BlobEntry {
        size: 1 << 20,
        chunk_size: 1 << 20,
        upload: upload.clone(),
        private: false,
        media_type: String::new(),
        store: "memory".into(),
        queued: None,
        read: None,
    };
    kv.set(&key, &serde_json::to_vec(&entry).unwrap()).unwrap();
    let record = Committed {
        blob_key: key.clone(),
        upload: entry.upload.clone(),
        chunk_prefix: format!("cache/chunk/s/sha256:{n}/{upload}/"),
        chunks: 1,
        size: 1 << 20,
        manifest: false,
    };
    let position = futures::executor::block_on(admit(kv, blobs, &record, max)).unwrap();
    entry.queued = Some(position);
    kv.set(&key, &serde_json::to_vec(&entry).unwrap()).unwrap();
    key
}

fn entry(kv: &MemoryKv, key: &str) -> Option<BlobEntry> {
    kv.get(key)
        .unwrap()
        .map(|v| serde_json::from_slice(&v).unwrap())
}

#[test]
fn a_blob_in_use_is_evicted_after_the_unused_ones() {
    let kv = MemoryKv::default();
    let blobs = MemoryBlobs::default();
    let keys: Vec<String> = (0..8).map(|n| blob(&kv, n, &blobs)).collect();
    // The oldest is used: it moves to the newest end.
    touch(&kv, &entry(&kv, &keys[0]).unwrap());
    assert_eq!(entry(&kv, &keys[0]).unwrap().queued, Some(8));
    // One used while among the newest stays where it is.
    touch(&kv, &entry(&kv, &keys[7]).unwrap());
    assert_eq!(entry(&kv, &keys[7]).unwrap().queued, Some(7));
    blob(&kv, 8, &blobs);
    assert!(
        entry(&kv, &keys[0]).is_some(),
        "the blob in use was evicted"
    );
    assert!(
        entry(&kv, &keys[1]).is_none(),
        "the oldest unused blob stayed"
    );
    assert_eq!(kv.increment(TOTAL_KEY, 0).unwrap(), 8 << 20);
    // Its old place is gone, its new one evicts it in turn.
    for n in 9..17 {
        blob(&kv, n, &blobs);
    }
    assert!(entry(&kv, &keys[0]).is_none());
    assert_eq!(kv.increment(TOTAL_KEY, 0).unwrap(), 8 << 20);
}

/// Finding 1 of the third review: only committed blobs counted, so copies
/// under way could write any amount past the bound.
#[test]
fn a_copy_under_way_counts_before_it_starts_and_gives_its_room_back() {
    let (kv, blobs) = (Rc::new(MemoryKv::default()), MemoryBlobs::default());
    let keys: Vec<String> = (0..8).map(|n| blob(&kv, n, &blobs)).collect();
    let store: Rc<dyn Kv> = kv.clone();
    let reserve =
        |size: u64| futures::executor::block_on(reserve(store.clone(), &blobs, size, 8 << 20));
    // Room for a 2 MiB copy: the two oldest blobs go first.
    let copy = reserve(2 << 20).unwrap().expect("room");
    assert!(entry(&kv, &keys[0]).is_none() && entry(&kv, &keys[1]).is_none());
    assert!(entry(&kv, &keys[2]).is_some());
    assert_eq!(kv.increment(TOTAL_KEY, 0).unwrap(), 8 << 20);
    // Copies under way fill the bound: no room is made by evicting them.
    let whole = reserve(6 << 20)
        .unwrap()
        .expect("the other blobs make room");
    assert!(
        reserve(1 << 20).unwrap().is_none(),
        "copies under way fill it"
    );
    assert_eq!(kv.increment(TOTAL_KEY, 0).unwrap(), 8 << 20);
    // A copy that ends unfinished gives its room back.
    drop((copy, whole));
    assert_eq!(kv.increment(TOTAL_KEY, 0).unwrap(), 0);
}
