use super::*;
use crate::cache::blob_storage::kv_chunks::KvChunks;
use crate::cache::blob_storage::memory::MemoryBlobs;
use crate::cache::blob_storage::{BlobStorage, Upload};
use crate::cache::detached;
use crate::cache::layout::{BlobEntry, Scope};
use crate::cache::lease::{Lease, take_lease};
use crate::host::Kv;
use crate::host::memory::{MemoryKv, NoWait};
use futures::executor::block_on;

const CHUNK: u64 = 4;

struct Copying {
    kv: Rc<MemoryKv>,
    scope: Scope,
    digest: String,
}

/// The instance's detached-copy slots: four, as by default.
const SLOTS: u64 = 4;

/// A copy of `blob`, arriving in `pieces`, with its client's body and the
/// copy's task.
fn copying(blob: &[u8], pieces: usize) -> (Copying, Chunks, Tasks) {
    let digest = format!("sha256:{:x}", Sha256::digest(blob));
    copying_as(blob, pieces, &digest, None, Rc::new(MemoryKv::default()))
}

/// Into `storage`, else key-value chunks in the same store as the index;
/// `health` holds the instance's detached-copy slots.
fn copying_as(
    blob: &[u8],
    pieces: usize,
    digest: &str,
    storage: Option<Rc<dyn BlobStorage>>,
    health: Rc<MemoryKv>,
) -> (Copying, Chunks, Tasks) {
    copying_shaped(blob, pieces, digest, storage, health, Shape::default())
}

/// A timer that never fires: no beat, no grace runs out, so a pool of
/// the copy's tasks stalls where they wait on each other.
struct Never;

impl Timer for Never {
    fn sleep(&self, _: Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        Box::pin(std::future::pending())
    }
}

/// How a test's copy runs: its parts' size, its timer, and a count of the
/// pieces it read from the upstream.
struct Shape {
    chunk: u64,
    timer: Rc<dyn Timer>,
    pulled: Rc<std::cell::Cell<usize>>,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            chunk: CHUNK,
            timer: Rc::new(NoWait),
            pulled: Rc::default(),
        }
    }
}

/// [`copying_as`], on `timer`.
fn copying_timed(
    blob: &[u8],
    pieces: usize,
    digest: &str,
    storage: Option<Rc<dyn BlobStorage>>,
    health: Rc<MemoryKv>,
    timer: Rc<dyn Timer>,
) -> (Copying, Chunks, Tasks) {
    let shape = Shape {
        timer,
        ..Shape::default()
    };
    copying_shaped(blob, pieces, digest, storage, health, shape)
}

/// [`copying_as`], shaped.
fn copying_shaped(
    blob: &[u8],
    pieces: usize,
    digest: &str,
    storage: Option<Rc<dyn BlobStorage>>,
    health: Rc<MemoryKv>,
    shape: Shape,
) -> (Copying, Chunks, Tasks) {
    let digest = digest.to_string();
    let kv = Rc::new(MemoryKv::default());
    let storage = storage.unwrap_or_else(|| Rc::new(KvChunks::new(kv.clone())));
    let scope = Scope::of(&url::Url::parse("https://r.example").unwrap(), None);
    let store: Rc<dyn Kv> = kv.clone();
    let lease = Lease::new(crate::now(), "u1", "repo", false);
    let lease = take_lease(store.clone(), &scope.lease_key(&digest), lease).unwrap();
    let unread = Unread::new(health, store.clone(), SLOTS, lease.followers_key(), "u1");
    let entry = BlobEntry {
        size: blob.len() as u64,
        chunk_size: shape.chunk,
        upload: "u1".into(),
        private: false,
        media_type: "application/octet-stream".into(),
        store: storage.name(),
        queued: None,
        read: None,
    };
    let upload = Upload {
        scope: scope.clone(),
        digest: digest.clone(),
        id: "u1".into(),
    };
    let copy = BlobCopy::new(
        store,
        storage,
        upload,
        entry,
        scope.seen_key("repo", &digest),
        lease,
        1 << 20,
    );
    let parts: Vec<Result<Vec<u8>, String>> = blob
        .chunks(blob.len().div_ceil(pieces))
        .map(|p| Ok(p.to_vec()))
        .collect();
    let tasks = Tasks::default();
    let pulled = shape.pulled;
    let upstream = futures::stream::iter(parts).inspect(move |_| pulled.set(pulled.get() + 1));
    let body = start(copy, unread, upstream, tasks.clone(), shape.timer);
    // The answer is made: what runs beside it is all there.
    tasks.close();
    (Copying { kv, scope, digest }, body, tasks)
}

impl Copying {
    fn committed(&self) -> bool {
        self.kv
            .get(&self.scope.blob_key(&self.digest))
            .unwrap()
            .is_some()
    }

    fn chunks_left(&self) -> usize {
        let keys = self.kv.keys().unwrap();
        keys.iter()
            .filter(|k| k.starts_with("cache/chunk/"))
            .count()
    }
}

async fn read_all(body: Chunks) -> Result<Vec<u8>, String> {
    let pieces: Vec<_> = body.collect().await;
    pieces
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.concat())
}

#[test]
fn the_client_gets_every_byte_and_the_copy_commits() {
    let blob: Vec<u8> = (0..=200u8).collect();
    let (copying, body, tasks) = copying(&blob, 7);
    let (read, ()) = block_on(futures::future::join(read_all(body), tasks.run()));
    assert_eq!(read.unwrap(), blob);
    assert!(copying.committed());
}

#[test]
fn a_client_that_never_reads_holds_back_no_copy() {
    let blob: Vec<u8> = (0..=200u8).rev().collect();
    let (copying, body, tasks) = copying(&blob, 9);
    // The client stops at once: the copy goes on at the upstream's pace.
    drop(body);
    block_on(tasks.run());
    assert!(copying.committed());
    assert_eq!(
        copying.chunks_left() as u64,
        (blob.len() as u64).div_ceil(CHUNK)
    );
}

/// A copy of `blob` on an instance whose detached-copy slots are all held
/// (by the slots returned).
fn copying_with_the_slots_taken(blob: &[u8]) -> (Copying, Chunks, Tasks, Vec<detached::Slot>) {
    let digest = format!("sha256:{:x}", Sha256::digest(blob));
    let health = Rc::new(MemoryKv::default());
    let others: Vec<_> = (0..SLOTS)
        .map(|n| detached::take(health.clone(), SLOTS, &format!("other{n}")).unwrap())
        .collect();
    let (copying, body, tasks) = copying_as(blob, 9, &digest, None, health);
    (copying, body, tasks, others)
}

#[test]
fn a_copy_whose_client_left_stops_and_keeps_nothing_when_the_slots_are_taken() {
    let blob: Vec<u8> = (0..=200u8).collect();
    let (copying, body, tasks, others) = copying_with_the_slots_taken(&blob);
    drop(body);
    block_on(tasks.run());
    assert!(!copying.committed());
    assert_eq!(copying.chunks_left(), 0, "its upload is aborted");
    let lease = copying.scope.lease_key(&copying.digest);
    assert_eq!(copying.kv.get(&lease).unwrap(), None, "its lease let go");
    drop(others);
}

#[test]
fn a_followed_copy_goes_on_after_its_client_without_a_slot() {
    let blob: Vec<u8> = (0..=200u8).rev().collect();
    let (copying, body, tasks, _others) = copying_with_the_slots_taken(&blob);
    let lease_key = copying.scope.lease_key(&copying.digest);
    let followers = crate::cache::layout::lease_followers_key(&lease_key, "u1");
    let store: Rc<dyn Kv> = copying.kv.clone();
    let _follower = detached::count_in(store, followers, &lease_key, "u1");
    drop(body);
    block_on(tasks.run());
    assert!(copying.committed());
}

#[test]
fn a_client_far_behind_reads_back_from_the_store() {
    let blob: Vec<u8> = (0..=250u8).collect();
    let (copying, body, tasks) = copying(&blob, 50);
    // The copy runs to its end before the client reads its first byte.
    block_on(tasks.run());
    assert!(copying.committed());
    assert_eq!(block_on(read_all(body)).unwrap(), blob);
}

#[test]
fn a_client_far_behind_reads_the_completed_blob_once_its_parts_are_gone() {
    // The in-memory backend, like a bucket, keeps no parts once complete.
    let blob: Vec<u8> = (0..=250u8).rev().collect();
    let digest = format!("sha256:{:x}", Sha256::digest(&blob));
    let (copying, body, tasks) = copying_as(
        &blob,
        50,
        &digest,
        Some(Rc::new(MemoryBlobs::default())),
        Default::default(),
    );
    block_on(tasks.run());
    assert!(copying.committed());
    assert_eq!(block_on(read_all(body)).unwrap(), blob);
}

#[test]
fn a_store_that_refuses_writes_still_streams_and_keeps_nothing() {
    let blob: Vec<u8> = (0..100u8).collect();
    let (copying, body, tasks) = copying(&blob, 5);
    copying.kv.refuse_writes(true);
    let (read, ()) = block_on(futures::future::join(read_all(body), tasks.run()));
    assert_eq!(read.unwrap(), blob);
    copying.kv.refuse_writes(false);
    assert!(!copying.committed());
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_not_kept() {
    let blob: Vec<u8> = (0..64u8).collect();
    let wrong = format!("sha256:{}", "0".repeat(64));
    let (copying, body, tasks) = copying_as(&blob, 3, &wrong, None, Default::default());
    let (read, ()) = block_on(futures::future::join(read_all(body), tasks.run()));
    assert!(read.is_ok());
    assert!(!copying.committed());
}

#[test]
fn a_copy_into_a_bucket_is_checked_on_the_way() {
    // The in-memory backend stands for a bucket: hashed as it is stored.
    let blob: Vec<u8> = (0..=220u8).collect();
    let right = format!("sha256:{:x}", Sha256::digest(&blob));
    let wrong = format!("sha256:{}", "0".repeat(64));
    for (digest, kept) in [(right, true), (wrong, false)] {
        let bucket = Some(Rc::new(MemoryBlobs::default()) as Rc<dyn BlobStorage>);
        let (copying, body, tasks) = copying_as(&blob, 7, &digest, bucket, Default::default());
        let (read, ()) = block_on(futures::future::join(read_all(body), tasks.run()));
        assert_eq!(read.unwrap(), blob);
        assert_eq!(copying.committed(), kept, "{digest}");
    }
}

#[test]
fn the_copy_reads_on_while_a_batch_is_written() {
    // 16 MiB in 1 MiB parts and pieces: batches of four parts.
    let blob: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    let digest = format!("sha256:{:x}", Sha256::digest(&blob));
    let pulled = Rc::new(std::cell::Cell::new(0));
    let slow = Rc::new(SlowWrites {
        inner: MemoryBlobs::default(),
        pulled: pulled.clone(),
        seen: RefCell::default(),
    });
    let storage = Some(slow.clone() as Rc<dyn BlobStorage>);
    let shape = Shape {
        chunk: 1 << 20,
        pulled,
        ..Shape::default()
    };
    let (copying, body, tasks) =
        copying_shaped(&blob, 16, &digest, storage, Default::default(), shape);
    let (read, ()) = block_on(futures::future::join(read_all(body), tasks.run()));
    assert_eq!(read.unwrap(), blob);
    assert!(copying.committed());
    // Each write of four parts ended after more than those four were read.
    let seen = slow.seen.borrow().clone();
    assert!(seen.len() >= 4, "{seen:?}");
    assert!(
        seen[0] > 4 && seen[1] > 8,
        "the reading waited on the writes: {seen:?}"
    );
}

#[test]
fn a_client_behind_parts_that_do_not_read_back_waits_for_the_blob() {
    // Past what the copy keeps in memory for its client (2 MiB).
    let blob: Vec<u8> = (0..(5u32 << 19)).map(|i| (i % 251) as u8).collect();
    let digest = format!("sha256:{:x}", Sha256::digest(&blob));
    let (answer, answered) = futures::channel::oneshot::channel();
    let bucket = Rc::new(MemoryBlobs::multipart(answered));
    let (copying, body, tasks) = copying_timed(
        &blob,
        5,
        &digest,
        Some(bucket),
        Default::default(),
        Rc::new(Never),
    );
    let mut pool = futures::executor::LocalPool::new();
    use futures::task::LocalSpawnExt;
    pool.spawner()
        .spawn_local(async move { tasks.run().await })
        .unwrap();
    // The copy stored every part and waits for the bucket's completion.
    pool.run_until_stalled();
    let read = Rc::new(RefCell::new(None));
    let into = read.clone();
    let client = async move { *into.borrow_mut() = Some(read_all(body).await) };
    pool.spawner().spawn_local(client).unwrap();
    pool.run_until_stalled();
    assert!(read.borrow().is_none(), "the client did not wait");
    answer.send(()).unwrap();
    pool.run();
    assert!(copying.committed());
    assert_eq!(read.borrow_mut().take().unwrap().unwrap(), blob);
}

mod slow_writes;
use slow_writes::SlowWrites;
