use super::*;
use crate::cache::layout::{self, Scope};
use crate::host::Kv;
use crate::host::memory::MemoryKv;

/// A fresh directory under the system's temporary one.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "registry-proxy-{name}-{:016x}",
        crate::random_u64()
    ));
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn conforms() {
    let root = scratch("conforms");
    let files = open(&root, &MemoryKv::default()).unwrap();
    futures::executor::block_on(super::super::conformance::run(&files));
    // Every blob and upload the suite made is gone, folders and all.
    assert!(
        paths::abandoned(&root, paths::Folder::Blobs, u64::MAX)
            .unwrap()
            .is_empty()
    );
    let left: Vec<_> = fs::read_dir(root.join("blobs")).unwrap().collect();
    assert!(left.is_empty(), "folders left behind: {left:?}");
    fs::remove_dir_all(root).unwrap();
}

#[test]
fn the_directory_keeps_its_name_and_a_read_only_one_is_said_once() {
    let root = scratch("named");
    let first = open(&root, &MemoryKv::default()).unwrap();
    let again = open(&root, &MemoryKv::default()).unwrap();
    assert_eq!(first.name(), again.name(), "the id is the directory's");
    let other = scratch("other");
    assert_ne!(
        open(&other, &MemoryKv::default()).unwrap().name(),
        first.name()
    );

    let missing = root.join("not-mounted");
    let health = MemoryKv::default();
    let why = open(&missing, &health)
        .err()
        .expect("a missing directory is refused");
    assert!(
        why.contains("not writable") && why.contains("--direct-mounts"),
        "{why}"
    );
    // The verdict is kept: the directory is not tried again by this instance.
    fs::create_dir_all(&missing).unwrap();
    assert!(open(&missing, &health).is_err());
    assert_eq!(probe::verdict(&health), Some(Err(why)));
    for dir in [root, other] {
        fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn a_part_is_seen_whole_or_not_at_all_and_foreign_folders_stay() {
    let root = scratch("partial");
    let files = open(&root, &MemoryKv::default()).unwrap();
    let long_ago = crate::now() - layout::UPLOAD_GRACE_SECS - 60;
    let upload = Upload {
        scope: Scope::from_key_part("https~partial.test"),
        digest: format!("sha256:{}", "a".repeat(64)),
        id: layout::upload_id(long_ago, 7),
    };
    let dir = paths::upload_dir(&root, paths::Folder::Uploads, &upload);
    fs::create_dir_all(&dir).unwrap();
    // A part cut short while written: under its draft name only.
    fs::write(dir.join("0.partial"), b"half").unwrap();
    let part = futures::executor::block_on(files.get_part(&upload, 0)).unwrap();
    assert_eq!(part, None);
    // Somebody else's folder in the directory is not the cache's to remove.
    let foreign = root.join("uploads/notes/sha256:x/y");
    fs::create_dir_all(&foreign).unwrap();
    let removed = futures::executor::block_on(files.collect_abandoned(crate::now(), &|_| false));
    assert_eq!(removed, Ok(1));
    assert!(!dir.exists() && foreign.exists());
    fs::remove_dir_all(root).unwrap();
}

#[test]
fn a_store_without_the_verdict_reads_none() {
    assert_eq!(probe::verdict(&MemoryKv::default()), None);
    let health = MemoryKv::default();
    health.set("blob-files/state", b"garbage").unwrap();
    assert_eq!(probe::verdict(&health), None);
}
