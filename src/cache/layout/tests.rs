use super::*;

#[test]
fn keys_round_trip() {
    let s = Scope::of(&Url::parse("http://127.0.0.1:5000").unwrap(), None);
    let m = s.manifest_key("library/alpine", "sha256:ab");
    assert_eq!(
        m,
        "cache/manifest/http~127.0.0.1:5000/library/alpine@sha256:ab"
    );
    assert_eq!(repository_of(&m), Some("library/alpine"));
    assert_eq!(repository_of(&s.seen_key("a/b", "sha256:ab")), Some("a/b"));
    let t = s.tag_key("a/b", "v1", Accepted::default());
    assert_eq!(repository_of(&t), Some("a/b"));
    assert_eq!(variants_key_of(&t), Some(s.tag_variants_key("a/b", "v1")));
    assert_ne!(
        variants_key_of(&s.tag_key("a/b", "v10", Accepted::default())),
        Some(s.tag_variants_key("a/b", "v1"))
    );
    let c = s.chunk_key("sha256:ab", "u1", 7);
    assert_eq!(
        chunk_of(&c),
        Some(("http~127.0.0.1:5000", "sha256:ab", "u1"))
    );
    assert_eq!(
        Scope::of(&Url::parse("https://ghcr.io").unwrap(), None).blob_key("d"),
        "cache/blob/https~ghcr.io/d"
    );
}

#[test]
fn uploads_age() {
    let id = upload_id(1000, 7);
    assert!(!upload_abandoned(&id, 1000 + UPLOAD_GRACE_SECS - 1));
    assert!(upload_abandoned(&id, 1000 + UPLOAD_GRACE_SECS));
    assert!(upload_abandoned("garbage", UPLOAD_GRACE_SECS));
}

#[test]
fn a_tag_key_holds_only_the_manifest_types_named() {
    let s = Scope::of(&Url::parse("https://x.io").unwrap(), None);
    let key = |accept: &str| s.tag_key("r", "t", Accepted::parse([accept]));
    let docker = "application/vnd.docker.distribution.manifest.v2+json";
    assert_eq!(key(docker), key(&format!("{docker}, application/x-junk-1")));
    assert_eq!(key("text/plain"), key("*/*"));
    assert_ne!(key(docker), key("application/vnd.oci.image.index.v1+json"));
}

#[test]
fn manifest_entries() {
    let e = ManifestEntry {
        media_type: "application/vnd.oci.image.index.v1+json".into(),
        private: true,
    };
    let v = e.encode(b"{\n \"x\": 1}\n");
    let (back, bytes) = ManifestEntry::decode(&v).unwrap();
    assert_eq!(back, e);
    assert_eq!(bytes, b"{\n \"x\": 1}\n");
    assert!(ManifestEntry::decode(b"garbage").is_none());
}

#[test]
fn tag_states() {
    let s = CacheSettings {
        tag_ttl: 10,
        stale_if_error: 100,
        ..Default::default()
    };
    let t = TagEntry::new("d", "m", 1, false, 1000, &s);
    assert_eq!(t.state(1005, &s), TagState::Fresh);
    assert_eq!(t.state(1010, &s), TagState::Stale);
    assert_eq!(t.state(1110, &s), TagState::Expired);
}

#[test]
fn settings() {
    assert!(CacheSettings::default().validate().is_ok());
    assert!(
        CacheSettings {
            chunk_size: 10,
            ..Default::default()
        }
        .validate()
        .is_err()
    );
    let partial: CacheSettings = serde_json::from_str(r#"{"tag_ttl": 5}"#).unwrap();
    assert_eq!(partial.tag_ttl, 5);
    assert!(partial.blobs);
    assert!(serde_json::from_str::<CacheSettings>(r#"{"bogus": 1}"#).is_err());
    let b = BlobEntry {
        size: 10,
        chunk_size: 4,
        upload: "u".into(),
        private: false,
        media_type: String::new(),
        store: kv_store(),
        queued: None,
        read: None,
    };
    assert_eq!(b.chunks(), 3);
}

/// Finding 9: an id goes into object keys (a presigned URL, a delete), so
/// only the generated shape is one.
#[test]
fn only_generated_upload_ids_are_ids() {
    assert!(is_upload_id(&upload_id(1000, 7)));
    assert!(is_upload_id(&upload_id(u64::MAX, u64::MAX)));
    for bad in [
        "",
        "u1",
        "garbage",
        "3e8-7",
        "3e8-000000000000000g",
        "3E8-0000000000000007",
        "-0000000000000007",
        "3e8-0000000000000007/..",
        "../../x-0000000000000007",
        "3e8-00000000000000007",
    ] {
        assert!(!is_upload_id(bad), "{bad:?}");
    }
}

/// Finding 9: a `cache/blob/` entry whose upload is not an id (a store
/// others can write) is no entry, so its id never reaches a key.
#[test]
fn a_blob_entry_with_a_foreign_upload_is_absent() {
    let kv = crate::host::memory::MemoryKv::default();
    let entry = |upload: &str| {
        serde_json::json!({"size": 1, "chunk_size": 1, "upload": upload,
            "private": false, "media_type": "", "store": "s3:x"})
        .to_string()
    };
    let good = upload_id(1000, 7);
    for (key, upload) in [("ok", good.as_str()), ("bad", "../../../other/key")] {
        crate::host::Kv::set(&kv, key, entry(upload).as_bytes()).unwrap();
    }
    assert_eq!(BlobEntry::load(&kv, "ok").unwrap().upload, good);
    assert_eq!(BlobEntry::load(&kv, "bad"), None);
}

/// Finding 9: a scope read back from a bucket's key is one the cache makes.
#[test]
fn scopes_parse_only_as_made() {
    let made = [
        Scope::of(&Url::parse("https://ghcr.io").unwrap(), None),
        Scope::of(&Url::parse("http://127.0.0.1:5000").unwrap(), Some("hub")),
        Scope::of(&Url::parse("https://[::1]:8443").unwrap(), Some("my_set2")),
    ];
    for scope in made {
        assert_eq!(Scope::parse(scope.as_str()), Some(scope));
    }
    for bad in [
        "",
        "foo",
        "x",
        "ftp~ghcr.io",
        "https~",
        "https~GHCR.io",
        "https~ghcr.io:443",
        "https~ghcr.io/..",
        "https~ghcr.io@",
        "https~ghcr.io@Bad",
        "https~ghcr.io@a@b",
        "https~user@ghcr.io",
    ] {
        assert_eq!(Scope::parse(bad), None, "{bad:?}");
    }
}
