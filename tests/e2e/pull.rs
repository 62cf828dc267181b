//! The pulls (issue 2): byte-exact manifests and blobs, skopeo on one platform
//! and a multi-arch index, Docker Hub's `library/`, tag list pages, big layers.

use super::common::*;
use support::http;
use support::registry::{OCI_INDEX, OCI_MANIFEST};
use support::{HUB, OPEN, REDIRECTING, env, registry, rt};

#[test]
fn manifests_are_byte_exact_with_digest_and_head_length() {
    let e = env();
    let url = format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN));
    let r = get(&url, &[("accept", ACCEPT_ALL)]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.single.manifest);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(e.single.digest.as_str())
    );
    assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));

    let h = send("HEAD", &url, &[("accept", ACCEPT_ALL)], "");
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(
        h.header("content-length"),
        Some(e.single.manifest.len().to_string().as_str())
    );
    assert_eq!(
        h.header("docker-content-digest"),
        Some(e.single.digest.as_str())
    );

    let by_digest = get(
        &format!(
            "{}/v2/test/single/manifests/{}",
            e.proxy(OPEN),
            e.single.digest
        ),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(by_digest.body, e.single.manifest);

    let index = get(
        &format!("{}/v2/test/multi/manifests/v1", e.proxy(OPEN)),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(index.header("content-type"), Some(OCI_INDEX));
    assert_eq!(index.body, e.multi.manifest);
    assert_eq!(
        index.header("docker-content-digest"),
        Some(e.multi.digest.as_str())
    );
}

#[test]
fn blobs_stream_with_head_and_range() {
    let e = env();
    let layer = &e.single.layers[0];
    let url = format!("{}/v2/test/single/blobs/{layer}", e.proxy(OPEN));
    let r = get(&url, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(registry::sha256(&r.body), *layer);
    let h = send("HEAD", &url, &[], "");
    assert_eq!(h.status, 200);
    assert_eq!(
        h.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let part = get(&url, &[("range", "bytes=10-19")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, r.body[10..20]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-19/{}", r.body.len()).as_str())
    );
    let missing = get(
        &format!(
            "{}/v2/test/single/blobs/sha256:{}",
            e.proxy(OPEN),
            "0".repeat(64)
        ),
        &[],
    );
    assert_eq!(missing.status, 404);
    assert_eq!(error_code(&missing), "BLOB_UNKNOWN");
}

#[test]
fn skopeo_pulls_single_platform_and_multi_arch_index() {
    let e = env();
    assert_eq!(
        pulled_digest(&e.proxy(OPEN), "test/single:v1", None, false),
        e.single.digest
    );

    let (out, dir) = skopeo_copy(&e.proxy(OPEN), "test/multi:v1", None, true);
    assert_success(&out);
    assert_eq!(layout_digest(&dir), e.multi.digest);
    for p in &e.multi_platforms {
        let blob = dir
            .join("blobs/sha256")
            .join(p.digest.trim_start_matches("sha256:"));
        assert_eq!(std::fs::read(blob).unwrap(), p.manifest);
    }
}

#[test]
fn docker_hub_route_adds_library_transparently() {
    let e = env();
    let r = get(
        &format!("{}/v2/alpine/manifests/latest", e.proxy(HUB)),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.alpine.manifest);
    assert_eq!(
        pulled_digest(&e.proxy(HUB), "alpine:latest", None, false),
        e.alpine.digest
    );
}

#[test]
fn tag_list_pagination_keeps_the_query_and_rewrites_link() {
    let e = env();
    let r = get(
        &format!("{}/v2/test/single/tags/list?n=2", e.proxy(REDIRECTING)),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["tags"], serde_json::json!(["v1", "v2"]));
    // The upstream's absolute link becomes a path on the proxy.
    assert_eq!(
        r.header("link"),
        Some(r#"</v2/test/single/tags/list?last=v2&n=2>; rel="next""#)
    );
    let next = get(
        &format!(
            "{}/v2/test/single/tags/list?last=v2&n=2",
            e.proxy(REDIRECTING)
        ),
        &[],
    );
    assert_eq!(next.json()["tags"], serde_json::json!(["v3", "v4"]));
    let hub = get(&format!("{}/v2/alpine/tags/list", e.proxy(HUB)), &[]);
    assert_eq!(hub.status, 200);
    assert_eq!(hub.json()["tags"], serde_json::json!(["latest"]));
}

/// The peak linear memory of the instance that served `path`, as the
/// component logged it once the answer was out and the copy checked.
fn request_peak(path: &str) -> u64 {
    let peak = || env().proxies[OPEN].request_memory(path);
    settles(&format!("a memory record for {path}"), || peak().is_some());
    peak().unwrap_or_default()
}

#[test]
fn a_256_mib_layer_streams_with_bounded_component_memory() {
    let e = env();
    const SIZE: u64 = 256 << 20;
    let digest = rt().block_on(registry::push_big_blob(e.open, "test/big", 7, SIZE));
    let small = format!("/v2/test/single/blobs/{}", e.single.layers[0]);
    assert_eq!(get(&format!("{}{small}", e.proxy(OPEN)), &[]).status, 200);
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut len = 0u64;
    let url = format!("{}/v2/test/big/blobs/{digest}", e.proxy(OPEN));
    let started = std::time::Instant::now();
    let r = rt()
        .block_on(http::send_with(
            "GET",
            &url,
            &[],
            http::full(""),
            |c| {
                sha2::Digest::update(&mut hasher, c);
                len += c.len() as u64;
            },
            false,
        ))
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(r.status, 200);
    assert_eq!(len, SIZE);
    assert_eq!(
        format!("sha256:{:x}", sha2::Digest::finalize(hasher)),
        digest
    );
    let peak = request_peak(&format!("/v2/test/big/blobs/{digest}"));
    let small_peak = request_peak(&small);
    eprintln!(
        "big layer: {} MiB through the proxy in {secs:.2}s ({:.0} MiB/s); component peak linear memory {:.1} MiB (a small blob's: {:.1} MiB); Spin's peak RSS {:.0} MiB",
        SIZE >> 20,
        (SIZE >> 20) as f64 / secs,
        peak as f64 / (1 << 20) as f64,
        small_peak as f64 / (1 << 20) as f64,
        e.proxies[OPEN].rss_mib(support::spin::Rss::Peak)
    );
    assert!(
        peak < 16 << 20,
        "component memory grew to {peak} bytes for a {SIZE}-byte layer"
    );

    // Cached as blob files (the README's `spin up`), a file a 1 MiB part,
    // none in the key-value store: served back whole and in part, without
    // the upstream.
    wait_cached(&e.cache, &digest);
    let in_store = e
        .cache
        .keys()
        .iter()
        .filter(|k| k.starts_with("cache/chunk/") && k.contains(digest.as_str()))
        .count();
    let uploads = e.cache.blob_file_uploads(&digest);
    assert_eq!((in_store, uploads.len()), (0, 1), "{uploads:?}");
    let scope = std::fs::read_dir(e.app.join("blobs/blobs"))
        .unwrap()
        .flatten()
        .find(|s| s.path().join(&digest).exists())
        .unwrap();
    let parts = std::fs::read_dir(scope.path().join(&digest).join(&uploads[0]))
        .unwrap()
        .count();
    assert_eq!(parts, 256, "1 MiB part files");
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let r = rt()
        .block_on(http::send_with(
            "GET",
            &url,
            &[],
            http::full(""),
            |c| sha2::Digest::update(&mut hasher, c),
            false,
        ))
        .unwrap();
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    assert_eq!(
        format!("sha256:{:x}", sha2::Digest::finalize(hasher)),
        digest
    );
    let part = get(&url, &[("range", "bytes=1048570-2097160")]);
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 1048570-2097160/{SIZE}").as_str())
    );
    let whole: Vec<u8> = registry::chunks(7, 3 << 20, 1 << 20).flatten().collect();
    assert!(
        part.body == whole[1048570..=2097160],
        "a range across chunks came back wrong"
    );
    assert_eq!(
        count(&upstream_log("open", "test/big"), "GET /v2/test/big/blobs/"),
        1
    );
}
