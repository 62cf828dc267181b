//! The pull-through cache (issue 5), counted in the upstream's access log.

use super::common::*;
use support::http;
use support::http::Reply;
use support::{AUTH, HUB, OPEN, env, registry, rt, spin, token_server};

/// A second pull costs the upstream nothing within the TTL, a `HEAD` after
/// it, and a retag is seen once the TTL has passed.
#[test]
fn cached_pulls_spare_the_upstream_and_tags_revalidate_with_head() {
    let e = env();
    let first = rt().block_on(registry::push_image(
        e.open,
        "cache/one",
        "v1",
        "cache-one",
        "amd64",
    ));
    let pull = || {
        let (out, dir) = skopeo_copy(&e.proxy(HUB), "cache.test/cache/one:v1", None, false);
        assert_success(&out);
        layout_digest(&dir)
    };
    assert_eq!(pull(), first.digest);
    let after_first = upstream_log("open", "cache/one");
    assert!(
        count(&after_first, "GET /v2/cache/one/blobs/") >= 2,
        "{after_first:?}"
    );

    assert_eq!(pull(), first.digest);
    let after_second = upstream_log("open", "cache/one");
    assert_eq!(
        after_second.len(),
        after_first.len(),
        "the second pull reached the upstream: {:?}",
        &after_second[after_first.len()..]
    );

    std::thread::sleep(std::time::Duration::from_millis(2200));
    let url = format!("{}/v2/cache/one/manifests/v1", e.proxy(OPEN));
    let accept = "application/vnd.oci.image.manifest.v1+json";
    let r = get(&url, &[("host", "cache.test"), ("accept", accept)]);
    assert_eq!(r.status, 200);
    let new = upstream_log("open", "cache/one")[after_second.len()..].to_vec();
    assert_eq!(
        r.header("x-cache"),
        Some("REVALIDATED"),
        "a new Accept list that the cached manifest fits is answered from it"
    );
    let _ = new;
    let before = upstream_log("open", "cache/one").len();
    let r = get(&url, &[("host", "cache.test"), ("accept", accept)]);
    assert_eq!(r.header("x-cache"), Some("HIT"));
    assert_eq!(upstream_log("open", "cache/one").len(), before);

    std::thread::sleep(std::time::Duration::from_millis(2200));
    let before = upstream_log("open", "cache/one").len();
    assert_eq!(pull(), first.digest);
    let revalidation = upstream_log("open", "cache/one")[before..].to_vec();
    assert!(
        !revalidation.is_empty() && revalidation.iter().all(|l| l.starts_with("HEAD ")),
        "after the TTL only a HEAD: {revalidation:?}"
    );

    // Retagged upstream: seen after the TTL.
    let second = rt().block_on(registry::push_image(
        e.open,
        "cache/one",
        "v1",
        "cache-one-again",
        "amd64",
    ));
    assert_eq!(
        pull(),
        first.digest,
        "within the TTL the tag is answered from the cache"
    );
    std::thread::sleep(std::time::Duration::from_millis(2200));
    assert_eq!(pull(), second.digest);
    let r = get(
        &format!("{}/v2/cache/one/manifests/{}", e.proxy(OPEN), first.digest),
        &[("host", "cache.test")],
    );
    assert_eq!(
        (r.status, r.header("x-cache")),
        (200, Some("HIT")),
        "digests stay cached"
    );
    assert_eq!(r.body, first.manifest);
}

#[test]
fn a_stopped_upstream_still_serves_cached_images() {
    let e = env();
    let image = rt().block_on(registry::push_image(
        e.open,
        "cache/two",
        "v1",
        "cache-two",
        "amd64",
    ));
    let pull = |reference: &str| {
        skopeo_copy(
            &e.proxy(HUB),
            &format!("stoppable.test/cache/two{reference}"),
            None,
            false,
        )
    };
    let (out, _) = pull(":v1");
    assert_success(&out);
    let direct = format!("{}/v2/cache/two/manifests/v1", e.proxy(OPEN));
    let r = get(
        &direct,
        &[("host", "stoppable.test"), ("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200);
    // A host whose own route is the stoppable upstream: there the client's
    // `/v2/` ping and token round trip meet the stopped upstream too.
    let host_route = spin::Instance::start(&e.app, "stoppable-host", &[("default_upstream", "")]);
    let stoppable = upstream_of(e, "route/stoppable.test");
    e.store.set(
        &format!("route/{}", host_route.addr),
        serde_json::json!({"upstream": stoppable})
            .to_string()
            .as_bytes(),
    );
    registry::stop(&e.dir, "stoppable");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (out, dir) = skopeo_copy(&host_route.url(), "cache/two:v1", None, false);
    host_route.stop();
    assert!(
        out.status.success(),
        "through its host route: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(layout_digest(&dir), image.digest);
    let (out, dir) = pull(":v1");
    assert!(
        out.status.success(),
        "by tag: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(layout_digest(&dir), image.digest);
    let (out, dir) = pull(&format!("@{}", image.digest));
    assert!(
        out.status.success(),
        "by digest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(layout_digest(&dir), image.digest);
    let r = get(
        &direct,
        &[("host", "stoppable.test"), ("accept", ACCEPT_ALL)],
    );
    assert_eq!((r.status, r.header("x-cache")), (200, Some("STALE")));
    // Never cached: the upstream's absence shows.
    let r = get(
        &format!("{}/v2/cache/two/manifests/never", e.proxy(OPEN)),
        &[("host", "stoppable.test")],
    );
    assert_eq!(r.status, 502);
}

/// A stored route's upstream, read back from the store.
fn upstream_of(e: &support::Env, key: &str) -> String {
    let route: serde_json::Value = serde_json::from_slice(&e.store.get(key).unwrap()).unwrap();
    route["upstream"].as_str().unwrap().to_string()
}

#[test]
fn a_corrupt_upstream_blob_never_verifies_and_is_not_cached() {
    let e = env();
    let image = rt().block_on(registry::push_image(
        e.open,
        "cache/three",
        "v1",
        "cache-three",
        "amd64",
    ));
    let layer = &image.layers[0];
    let url = format!("{}/v2/cache/three/blobs/{layer}", e.proxy(OPEN));
    let host = [("host", "corrupt.test")];
    let _turn = FRONT_BLOBS.lock().unwrap_or_else(|p| p.into_inner());
    e.corrupting
        .corrupt
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let result = rt().block_on(http::send_with(
        "GET",
        &url,
        &host,
        http::full(""),
        |c| sha2::Digest::update(&mut hasher, c),
        false,
    ));
    let digest = format!("sha256:{:x}", sha2::Digest::finalize(hasher));
    // The client that asked gets the bytes as they came (it checks the
    // digest itself); the copy is checked after the answer.
    assert!(
        result.is_err() || digest != *layer,
        "a corrupt blob reached the client whole and verified"
    );
    settles("removing the corrupt copy's chunks", || {
        chunk_uploads(&e.cache, layer).is_empty()
    });
    let cached = e
        .cache
        .keys()
        .iter()
        .any(|k| k.starts_with("cache/blob/") && k.ends_with(layer.as_str()));
    assert!(!cached, "a corrupt blob was cached");

    e.corrupting
        .corrupt
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let r = get(&url, &host);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    assert_eq!(registry::sha256(&r.body), *layer);
    wait_cached(&e.cache, layer);
    let r = get(&url, &host);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    assert_eq!(registry::sha256(&r.body), *layer);
}

#[test]
fn private_content_is_not_served_from_the_cache_to_others() {
    let e = env();
    let image = rt().block_on(registry::push_image(
        e.open,
        "private/cached",
        "v1",
        "private-cached",
        "amd64",
    ));
    let basic = basic_auth(token_server::USER, token_server::PASSWORD);
    let t = get(
        &format!(
            "{}/v2/auth?scope=repository:private/cached:pull",
            e.proxy(AUTH)
        ),
        &[("authorization", &basic)],
    );
    let alice = format!("Bearer {}", t.json()["token"].as_str().unwrap());
    let manifest = format!(
        "{}/v2/private/cached/manifests/{}",
        e.proxy(AUTH),
        image.digest
    );
    let blob = format!(
        "{}/v2/private/cached/blobs/{}",
        e.proxy(AUTH),
        image.layers[0]
    );
    for (url, first) in [
        (&manifest, "MISS"),
        (&manifest, "HIT"),
        (&blob, "MISS"),
        (&blob, "HIT"),
    ] {
        let r = get(url, &[("authorization", &alice), ("accept", ACCEPT_ALL)]);
        assert_eq!((r.status, r.header("x-cache")), (200, Some(first)), "{url}");
        if url == &blob {
            wait_cached(&e.cache, &image.layers[0]);
        }
    }
    for url in [&manifest, &blob] {
        let r = get(url, &[("accept", ACCEPT_ALL)]);
        assert_eq!(
            r.status, 401,
            "an anonymous client got private content from the cache: {url}"
        );
        let anonymous = get(
            &format!(
                "{}/v2/auth?scope=repository:private/cached:pull",
                e.proxy(AUTH)
            ),
            &[],
        );
        let token = format!("Bearer {}", anonymous.json()["token"].as_str().unwrap());
        assert_eq!(
            get(url, &[("authorization", &token), ("accept", ACCEPT_ALL)]).status,
            401,
            "{url}"
        );
    }
    // Nothing says which layers the private repository has.
    let marks: Vec<String> = e
        .cache
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("cache/seen/") && k.contains("/private/cached@"))
        .collect();
    assert!(marks.is_empty(), "marks of a private repository: {marks:?}");
}

/// distribution deletes a blob from one repository: the cached blob stays
/// for the others, and is not served again for the one it left.
#[test]
fn a_blob_deleted_in_one_repository_stays_cached_for_the_others() {
    let e = env();
    let push = |repo| {
        rt().block_on(registry::push_image(
            e.open,
            repo,
            "v1",
            "cache-del",
            "amd64",
        ))
    };
    let (a, _) = (push("cache/del-a"), push("cache/del-b"));
    let url = |repo: &str| format!("{}/v2/{repo}/blobs/{}", e.proxy(OPEN), a.layers[0]);
    assert_eq!(
        get(&url("cache/del-a"), &[]).header("x-cache"),
        Some("MISS")
    );
    wait_cached(&e.cache, &a.layers[0]);
    assert_eq!(get(&url("cache/del-b"), &[]).header("x-cache"), Some("HIT"));
    let deleted = send("DELETE", &url("cache/del-a"), &[], "");
    assert_eq!(deleted.status, 202, "{}", deleted.text());
    let b = get(&url("cache/del-b"), &[]);
    assert_eq!((b.status, b.header("x-cache")), (200, Some("HIT")));
    assert_eq!(get(&url("cache/del-a"), &[]).status, 404);
}

#[test]
fn cache_administration() {
    let e = env();
    let admin = format!("Bearer {}", support::ADMIN_TOKEN);
    let auth = [("authorization", admin.as_str())];
    // Counters are per instance here (in memory): ask the one that pulled.
    let api = format!("{}/_registry-proxy/cache", e.proxy(HUB));
    let image = rt().block_on(registry::push_image(
        e.open,
        "cache/four",
        "v1",
        "cache-four",
        "amd64",
    ));
    let (out, _) = skopeo_copy(&e.proxy(HUB), "cache.test/cache/four:v1", None, false);
    assert_success(&out);
    let figures = get(&api, &auth).json();
    assert!(
        figures["entries"]["manifests"].as_u64().unwrap() >= 1,
        "{figures}"
    );
    assert!(
        figures["entries"]["blobs"].as_u64().unwrap() >= 2,
        "{figures}"
    );
    assert!(
        figures["blob_bytes"].as_u64().unwrap() > 0 && figures["misses"].as_u64().unwrap() > 0,
        "{figures}"
    );
    assert_eq!(get(&api, &[]).status, 401);

    // An abandoned copy's chunks and an expired tag go; committed blobs stay.
    let abandoned = e.app.join(format!(
        "blobs/uploads/http~127.0.0.1:1/sha256:{}/1-000000000000dead",
        "0".repeat(64)
    ));
    std::fs::create_dir_all(&abandoned).unwrap();
    std::fs::write(abandoned.join("0"), b"x").unwrap();
    e.cache.set(
        "cache/tag/http~127.0.0.1:1/gone/x:v1#00",
        br#"{"digest":"sha256:00","checked":0,"expires":1}"#,
    );
    let gc = send("POST", &format!("{api}/gc"), &auth, "");
    assert_eq!(gc.status, 200);
    assert!(
        gc.json()["removed"]["uploads"].as_u64().unwrap() >= 1
            && gc.json()["removed"]["tags"].as_u64().unwrap() >= 1,
        "{}",
        gc.text()
    );
    assert!(!abandoned.exists(), "an abandoned copy's files stay");
    let url = format!("{}/v2/cache/four/blobs/{}", e.proxy(OPEN), image.layers[0]);
    assert_eq!(
        get(&url, &[("host", "cache.test")]).header("x-cache"),
        Some("HIT")
    );

    let r = send(
        "DELETE",
        &format!("{api}/repositories/cache/four"),
        &auth,
        "",
    );
    assert!(r.json()["removed"].as_u64().unwrap() >= 2, "{}", r.text());
    let m = get(
        &format!("{}/v2/cache/four/manifests/v1", e.proxy(OPEN)),
        &[("host", "cache.test"), ("accept", ACCEPT_ALL)],
    );
    assert_eq!(m.header("x-cache"), Some("MISS"));
    let r = send(
        "DELETE",
        &format!("{api}/blobs/{}", image.layers[0]),
        &auth,
        "",
    );
    assert!(r.json()["removed"].as_u64().unwrap() >= 2, "{}", r.text());
    assert_eq!(
        get(&url, &[("host", "cache.test")]).header("x-cache"),
        Some("MISS")
    );
}

/// The throttling and hanging switches of the corrupting front act on every
/// manifest request: the tests that flip them take turns.
static FRONT_MANIFESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Caches a tag of a new image through the corrupting front, lets the TTL
/// pass, and asks again with one of the front's manifest switches on.
fn ask_again_with(
    switch: &std::sync::atomic::AtomicBool,
    repository: &str,
) -> (registry::Pushed, Reply, std::time::Duration) {
    use std::sync::atomic::Ordering::SeqCst;
    let e = env();
    let image = rt().block_on(registry::push_image(
        e.open, repository, "v1", repository, "amd64",
    ));
    let url = format!("{}/v2/{repository}/manifests/v1", e.proxy(OPEN));
    let headers = [("host", "corrupt.test"), ("accept", ACCEPT_ALL)];
    assert_eq!(get(&url, &headers).header("x-cache"), Some("MISS"));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    switch.store(true, SeqCst);
    let started = std::time::Instant::now();
    let r = get(&url, &headers);
    let waited = started.elapsed();
    switch.store(false, SeqCst);
    (image, r, waited)
}

#[test]
fn a_rate_limited_upstream_gets_the_cached_tag_with_its_limit_headers() {
    let _front = FRONT_MANIFESTS.lock().unwrap_or_else(|p| p.into_inner());
    let (image, r, _) = ask_again_with(&env().corrupting.throttle, "cache/five");
    assert_eq!((r.status, r.header("x-cache")), (200, Some("STALE")));
    assert_eq!(r.body, image.manifest);
    assert_eq!(r.header("ratelimit-remaining"), Some("0;w=21600"));
}

/// containerd resolves tags with `HEAD`: those are cached too, before any
/// `GET` by tag.
#[test]
fn tag_resolution_by_head_is_cached() {
    let e = env();
    let image = rt().block_on(registry::push_image(
        e.open,
        "cache/six",
        "v1",
        "cache-six",
        "amd64",
    ));
    let url = format!("{}/v2/cache/six/manifests/v1", e.proxy(OPEN));
    let headers = [("host", "cache.test"), ("accept", ACCEPT_ALL)];
    let first = send("HEAD", &url, &headers, "");
    assert_eq!(first.status, 200);
    let before = upstream_log("open", "cache/six").len();
    let second = send("HEAD", &url, &headers, "");
    assert_eq!(
        (second.status, second.header("x-cache")),
        (200, Some("HIT"))
    );
    assert_eq!(
        second.header("docker-content-digest"),
        Some(image.digest.as_str())
    );
    assert_eq!(
        second.header("content-length"),
        Some(image.manifest.len().to_string().as_str())
    );
    assert_eq!(
        upstream_log("open", "cache/six").len(),
        before,
        "the second HEAD reached the upstream"
    );
    // A GET by tag still fetches the manifest itself once.
    let r = get(&url, &headers);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    assert_eq!(r.body, image.manifest);
}

#[test]
fn a_hanging_upstream_times_out_and_the_cached_tag_is_served() {
    let _front = FRONT_MANIFESTS.lock().unwrap_or_else(|p| p.into_inner());
    let (image, r, waited) = ask_again_with(&env().corrupting.hang, "cache/seven");
    assert_eq!((r.status, r.header("x-cache")), (200, Some("STALE")));
    assert_eq!(r.body, image.manifest);
    assert!(
        waited < std::time::Duration::from_secs(10),
        "waited {waited:?} for a hanging upstream"
    );
}

/// A tag's cache key holds only the manifest types a client names: junk
/// appended to `Accept` neither adds keys nor asks the upstream again.
#[test]
fn two_hundred_accept_lists_cost_a_handful_of_keys_and_upstream_requests() {
    let e = env();
    let image = rt().block_on(registry::push_image(
        e.open,
        "cache/accept",
        "v1",
        "cache-accept",
        "amd64",
    ));
    let keys = || {
        e.cache
            .keys()
            .into_iter()
            .filter(|k| k.contains("cache/accept"))
            .count()
    };
    let (keys_before, log_before) = (keys(), upstream_log("open", "cache/accept").len());
    let url = format!("{}/v2/cache/accept/manifests/v1", e.proxy(OPEN));
    let oci = "application/vnd.oci.image.manifest.v1+json";
    for n in 0..200 {
        let accept = format!("{oci}, application/vnd.junk.{n}+json");
        let r = send("HEAD", &url, &[("accept", &accept)], "");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("docker-content-digest"),
            Some(image.digest.as_str())
        );
    }
    let added_keys = keys() - keys_before;
    let upstream = upstream_log("open", "cache/accept").len() - log_before;
    assert!(added_keys <= 3, "{added_keys} keys for one tag");
    assert!(upstream <= 2, "{upstream} upstream requests for one tag");
}
