//! Prefetch against an upstream that lies or lists too much: sizes are the
//! cache's, not the manifest's; a pin holds only what is still cached; a
//! walk has bounds on what it goes through and on its time.

use super::prefetch::{image, lines_of, prefetch_of, serving, upstream};
use super::{digest, request};
use crate::cache::layout::Scope;
use crate::exchange::handle;
use crate::host::Body;
use crate::host::memory::{MemoryHost, advance_clock};
use futures::executor::block_on;
use serde_json::{Value, json};
use std::time::Duration;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A manifest whose three 16 MiB layers each claim `size: 1`, served by
/// digest; the manifest's digest.
fn understating() -> (MemoryHost, String) {
    let config = b"{}".to_vec();
    let layers: Vec<Vec<u8>> = (1..=3u8).map(|n| vec![n; 16 << 20]).collect();
    let described: Vec<Value> = layers
        .iter()
        .map(|l| json!({"mediaType": "l", "digest": digest(l), "size": 1}))
        .collect();
    let manifest = json!({"schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "c", "digest": digest(&config), "size": config.len()},
        "layers": described})
    .to_string()
    .into_bytes();
    let manifest_digest = digest(&manifest);
    let mut objects: Vec<(String, Vec<u8>)> = layers.into_iter().map(|l| (digest(&l), l)).collect();
    objects.extend([config, manifest].map(|b| (digest(&b), b)));
    let host = serving(objects);
    host.set_variable("cache_max_size", "20MiB");
    (host, manifest_digest)
}

#[test]
fn a_blob_larger_than_its_descriptor_fails_and_the_plan_counts_its_real_size() {
    let (host, manifest) = understating();
    let lines = prefetch_of(&host, json!({"image": format!("team/lies@{manifest}")}));
    let failed: Vec<&Value> = lines.iter().filter(|l| l["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 3, "{lines:#?}");
    let reason = |n: usize| failed[n]["reason"].as_str().unwrap_or_default();
    assert!(
        reason(0).contains("16777216 bytes, its descriptor says 1"),
        "{}",
        reason(0)
    );
    // Two 16 MiB layers committed: a third would pass the 20 MiB bound,
    // whatever the manifest says, and is not fetched.
    assert!(
        reason(2).contains("larger than cache_max_size"),
        "{}",
        reason(2)
    );
    assert_eq!(
        host.sent_count("GET", "/blobs/"),
        3,
        "config and two layers"
    );
    assert_eq!(lines.last().unwrap()["complete"], false);
}

#[test]
fn a_pin_of_an_image_whose_first_objects_its_own_commits_evicted_is_refused() {
    let (host, _) = upstream();
    // Room for the blobs (10,026 bytes) but not for the manifests besides:
    // the index, committed first, is evicted by the blobs after it.
    host.set_variable("cache_max_size", "10100");
    // The pin's reason is what `POST <admin>/cache/pins/<image>` answers
    // 409 with (web::prefetch::pin).
    let lines = prefetch_of(&host, json!({"image": "team/multi:v1", "pin": true}));
    let pin = &lines.last().unwrap()["pin"];
    assert_eq!(pin["pinned"], false, "{lines:#?}");
    let reason = pin["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("of the image's 7 objects are no longer cached"),
        "{reason}"
    );
    let upstream = url::Url::parse("http://upstream.test").unwrap();
    let index = Scope::of(&upstream, None).manifest_key("team/multi", &digest(&image()[6].1));
    assert!(!crate::cache::pins::is_pinned(host.cache.as_ref(), &index));
}

#[test]
fn an_index_longer_than_the_bound_is_walked_no_further() {
    let entries: Vec<Value> = (0..1001)
        .map(|n| {
            let d = digest(format!("missing {n}").as_bytes());
            json!({"mediaType": MANIFEST, "digest": d, "size": 10})
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries});
    let host = serving(vec![("v1".into(), index.to_string().into_bytes())]);
    let lines = prefetch_of(&host, json!({"image": "team/wide:v1"}));
    assert_eq!(host.sent_count("GET", "/manifests/sha256:"), 1000);
    let bound = lines
        .iter()
        .find(|l| l["kind"] == "index" && l["outcome"] == "failed");
    let reason = bound.map(|l| l["reason"].to_string()).unwrap_or_default();
    assert!(
        reason.contains("1001 entries: a prefetch walks the first 1000"),
        "{lines:#?}"
    );
}

#[test]
fn a_prefetch_has_a_time_limit_without_the_variable() {
    let (host, _) = upstream();
    let mut req = request(
        "POST",
        "/_registry-proxy/cache/prefetch",
        &[("authorization", "Bearer t")],
    );
    req.body = Body::Bytes(json!({"image": "team/multi:v1"}).to_string().into_bytes());
    let (resp, _) = block_on(handle(&host, req));
    assert_eq!(resp.status, 200);
    // The walk runs as its answer is read: ten minutes and a second on.
    advance_clock(Duration::from_secs(601));
    let lines = lines_of(&host, resp.body);
    let summary = lines.last().unwrap();
    assert_eq!(
        (summary["cached"].as_u64(), summary["left"].as_u64()),
        (Some(1), Some(2)),
        "{lines:#?}"
    );
}
