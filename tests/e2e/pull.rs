//! The pull proxy core (issue 2): byte-exact manifests and blobs, the token
//! flow, redirects and host policy, refusals, routes in the key-value store.

use super::common::*;
use super::support::http;
use super::support::registry::{OCI_INDEX, OCI_MANIFEST};
use super::support::{
    AUTH, AUTH_GET_ONLY, HUB, OPEN, REDIRECTING, env, registry, rt, token_server,
};

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
fn challenge_points_clients_at_the_proxy() {
    let e = env();
    let r = get(&format!("{}/v2/", e.proxy(AUTH)), &[]);
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap();
    assert_eq!(
        challenge,
        format!(
            r#"Bearer realm="{}/v2/auth",service="{}""#,
            e.proxy(AUTH),
            token_server::SERVICE
        )
    );
    let r = get(
        &format!("{}/v2/private/secret/manifests/v1", e.proxy(AUTH)),
        &[("x-forwarded-proto", "https")],
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        format!(
            r#"Bearer realm="https://{}/v2/auth",service="{}",scope="repository:private/secret:pull""#,
            e.proxies[AUTH].addr,
            token_server::SERVICE
        )
    );
}

/// An upstream without auth still gets a challenge on `/v2/` (a pull may name
/// another registry), answered by a token the proxy never sends upstream.
#[test]
fn open_upstreams_get_an_anonymous_token_that_stays_in_the_proxy() {
    let e = env();
    let r = get(&format!("{}/v2/", e.proxy(REDIRECTING)), &[]);
    assert_eq!(r.status, 401);
    assert_eq!(error_code(&r), "UNAUTHORIZED");
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        format!(
            r#"Bearer realm="{}/v2/auth",service="registry-proxy""#,
            e.proxy(REDIRECTING)
        )
    );
    let t = get(
        &format!(
            "{}/v2/auth?service=registry-proxy&scope=repository:test/multi:pull",
            e.proxy(REDIRECTING)
        ),
        &[],
    );
    assert_eq!(t.status, 200, "{}", t.text());
    let bearer = format!("Bearer {}", t.json()["token"].as_str().unwrap());
    let r = get(
        &format!("{}/v2/", e.proxy(REDIRECTING)),
        &[("authorization", &bearer)],
    );
    assert_eq!(r.status, 200);
    let r = get(
        &format!("{}/v2/test/multi/manifests/v1", e.proxy(REDIRECTING)),
        &[("authorization", &bearer), ("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200);
    let front = e.fronts.front_seen.lock().unwrap().clone();
    let multi: Vec<_> = front
        .iter()
        .filter(|s| s.path == "/v2/test/multi/manifests/v1")
        .collect();
    assert!(
        !multi.is_empty() && multi.iter().all(|s| s.authorization.is_none()),
        "{multi:?}"
    );
}

#[test]
fn authenticated_pull_forwards_credentials_and_refuses_a_wrong_password() {
    let e = env();
    let creds = format!("{}:{}", token_server::USER, token_server::PASSWORD);
    assert_eq!(
        pulled_digest(&e.proxy(AUTH), "private/secret:v1", Some(&creds), false),
        e.private.digest
    );
    let seen = e.token.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| s
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "))
            && s.query.contains("private%2Fsecret")),
        "token server never saw alice's Basic credentials: {seen:?}"
    );

    let (out, _) = skopeo_copy(
        &e.proxy(AUTH),
        "private/secret:v1",
        Some("alice:wrong"),
        false,
    );
    assert!(!out.status.success());
    let (out, _) = skopeo_copy(&e.proxy(AUTH), "private/secret:v1", None, false);
    assert!(
        !out.status.success(),
        "an anonymous client pulled a private image"
    );

    assert_not_logged(token_server::PASSWORD);

    // Public images need no credentials even behind token auth.
    assert_eq!(
        pulled_digest(&e.proxy(AUTH), "test/single:v1", None, false),
        e.single.digest
    );
}

#[test]
fn token_endpoint_get_and_oauth2_post_with_get_fallback() {
    let e = env();
    let basic = basic_auth(token_server::USER, token_server::PASSWORD);
    let r = get(
        &format!(
            "{}/v2/auth?service=x&scope=repository:private/secret:pull&scope=repository:../x:pull",
            e.proxy(AUTH)
        ),
        &[("authorization", &basic)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["token"].is_string());
    let last = e
        .token
        .seen
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s.method == "GET")
        .cloned()
        .unwrap();
    assert!(
        last.query
            .contains(&format!("service={}", token_server::SERVICE)),
        "{last:?}"
    );
    assert!(
        !last.query.contains(".."),
        "an invalid scope reached the realm: {last:?}"
    );

    let wrong = basic_auth(token_server::USER, "nope");
    let r = get(
        &format!(
            "{}/v2/auth?scope=repository:private/secret:pull",
            e.proxy(AUTH)
        ),
        &[("authorization", &wrong)],
    );
    assert_eq!(r.status, 401);

    let form = format!(
        "grant_type=password&username={}&password={}&service=x&client_id=containerd&scope=repository%3Aprivate%2Fsecret%3Apull",
        token_server::USER,
        token_server::PASSWORD
    );
    let ct = [("content-type", "application/x-www-form-urlencoded")];
    let r = send("POST", &format!("{}/v2/auth", e.proxy(AUTH)), &ct, &form);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["access_token"].is_string());

    // A realm without POST support: the proxy retries as GET with Basic.
    let r = send(
        "POST",
        &format!("{}/v2/auth", e.proxy(AUTH_GET_ONLY)),
        &ct,
        &form,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["access_token"].is_string());
    let seen = e.token.seen.lock().unwrap().clone();
    let n = seen.len();
    assert!(
        seen[n - 2]
            .form
            .contains("scope=repository%3Aprivate%2Fsecret%3Apull"),
        "{:?}",
        seen[n - 2]
    );
    assert!(
        seen[n - 2].method == "POST"
            && seen[n - 1].method == "GET"
            && seen[n - 1].authorization.as_deref() == Some(basic.as_str()),
        "{:?}",
        &seen[n - 2..]
    );
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
fn redirected_blobs_keep_method_and_range_and_drop_authorization() {
    let e = env();
    let layer = &e.single.layers[1];
    let url = format!("{}/v2/test/single/blobs/{layer}", e.proxy(REDIRECTING));
    let full = get(&url, &[("authorization", "Bearer client-token")]);
    assert_eq!(full.status, 200, "{}", full.text());
    assert_eq!(registry::sha256(&full.body), *layer);
    let part = get(
        &url,
        &[
            ("authorization", "Bearer client-token"),
            ("range", "bytes=5-14"),
        ],
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, full.body[5..15]);
    let head = send(
        "HEAD",
        &url,
        &[("authorization", "Bearer client-token")],
        "",
    );
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(full.body.len().to_string().as_str())
    );

    let cdn: Vec<_> = e
        .fronts
        .cdn_seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path.ends_with(layer.as_str()))
        .cloned()
        .collect();
    assert!(
        cdn.iter().all(|s| s.authorization.is_none()),
        "credentials reached the CDN: {cdn:?}"
    );
    assert!(
        cdn.iter().any(|s| s.range.as_deref() == Some("bytes=5-14")),
        "{cdn:?}"
    );
    assert!(cdn.iter().any(|s| s.method == "HEAD"), "{cdn:?}");
    let front = e.fronts.front_seen.lock().unwrap().clone();
    assert!(front.iter().any(|s| s.path.ends_with(layer.as_str())
        && s.authorization.as_deref() == Some("Bearer client-token")));
}

#[test]
fn realm_and_redirect_outside_allowed_hosts_are_refused() {
    let e = env();
    let evil_layer = {
        let r = get(
            &format!("{}/v2/test/evil/manifests/v1", e.proxy(REDIRECTING)),
            &[("accept", ACCEPT_ALL)],
        );
        assert_eq!(r.status, 200);
        r.json()["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let r = get(
        &format!("{}/v2/test/evil/blobs/{evil_layer}", e.proxy(REDIRECTING)),
        &[],
    );
    assert_eq!(r.status, 502);
    assert_eq!(error_code(&r), "DENIED");
    assert!(r.text().contains("127.0.0.3"), "{}", r.text());

    e.store.set(
        "route/bad-realm.test",
        format!(r#"{{"upstream":"http://{}"}}"#, e.fronts.bad_realm).as_bytes(),
    );
    let r = get(
        &format!("{}/v2/auth?scope=repository:a:pull", e.proxy(OPEN)),
        &[("host", "bad-realm.test")],
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(error_code(&r), "DENIED");
    assert!(
        !e.token
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.query.contains("elsewhere")),
        "the forbidden realm was contacted"
    );
}

#[test]
fn spin_refuses_hosts_outside_allowed_outbound_hosts() {
    let e = env();
    e.store.set(
        "route/outside.test",
        br#"{"upstream":"http://127.0.0.5:9"}"#,
    );
    let r = get(
        &format!("{}/v2/a/manifests/b", e.proxy(OPEN)),
        &[("host", "outside.test")],
    );
    assert_eq!(r.status, 502);
    assert_eq!(error_code(&r), "DENIED");
    assert!(
        e.proxies.iter().any(|p| p
            .runtime_log()
            .contains("disallowed destination 'http://127.0.0.5")),
        "Spin itself refused the host"
    );
}

#[test]
fn unreachable_upstream_and_catalog() {
    let e = env();
    let closed = registry::free_port();
    e.store.set(
        "route/closed.test",
        format!(r#"{{"upstream":"http://127.0.0.1:{closed}"}}"#).as_bytes(),
    );
    let r = get(
        &format!("{}/v2/a/manifests/b", e.proxy(OPEN)),
        &[("host", "closed.test")],
    );
    assert_eq!(r.status, 502);
    assert_eq!(error_code(&r), "UNKNOWN");
    assert!(r.text().contains("unreachable"), "{}", r.text());

    let r = get(&format!("{}/v2/_catalog?n=100", e.proxy(OPEN)), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let repos = r.json()["repositories"].clone();
    assert!(
        repos.as_array().unwrap().iter().any(|x| x == "test/single"),
        "{repos}"
    );
}

#[test]
fn bad_names_and_references_are_refused_before_any_upstream_call() {
    let e = env();
    let cases = [
        ("/v2/Test/single/manifests/v1", 400, "NAME_INVALID"),
        ("/v2/test/../single/manifests/v1", 400, "NAME_INVALID"),
        ("/v2/test//single/manifests/v1", 400, "NAME_INVALID"),
        ("/v2/test/%2e%2e/manifests/v1", 400, "NAME_INVALID"),
        // Outside the tag grammar: no such manifest, as distribution and
        // the OCI conformance tests have it.
        ("/v2/test/single/manifests/.bad", 404, "MANIFEST_UNKNOWN"),
        (
            "/v2/test/single/manifests/.INVALID_MANIFEST_NAME",
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "/v2/test/single/manifests/sha256:abc",
            400,
            "DIGEST_INVALID",
        ),
        ("/v2/test/single/blobs/latest", 400, "DIGEST_INVALID"),
        ("/v2/test/single/nothing/x", 404, "UNSUPPORTED"),
    ];
    for (path, status, code) in cases {
        let r = get(&format!("{}{path}", e.proxy(REDIRECTING)), &[]);
        assert_eq!(
            (r.status, error_code(&r)),
            (status, code.to_string()),
            "{path}: {}",
            r.text()
        );
    }
    let long = format!("/v2/{}/manifests/v1", "a/".repeat(2000));
    assert_eq!(get(&format!("{}{long}", e.proxy(OPEN)), &[]).status, 414);
    let front = e.fronts.front_seen.lock().unwrap();
    assert!(!front.iter().any(|s| s.path.contains("Test")
        || s.path.contains("..")
        || s.path.contains("INVALID")
        || s.path.contains("nothing")));
    drop(front);
    let r = send(
        "PATCH",
        &format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN)),
        &[],
        "",
    );
    assert_eq!((r.status, error_code(&r).as_str()), (405, "UNSUPPORTED"));
    // Spin itself drops a request whose Host is no authority at all
    // ("bad host"); these reach the component, which refuses them.
    for bad in ["bad_host", "x:notaport"] {
        let r = get(&format!("{}/v2/", e.proxy(OPEN)), &[("host", bad)]);
        assert_eq!(r.status, 400, "{bad}");
    }
}

#[test]
fn malformed_route_is_a_clear_error_naming_its_key() {
    let e = env();
    e.store.set("route/broken.test", b"{not json");
    let r = get(
        &format!("{}/v2/", e.proxy(OPEN)),
        &[("host", "broken.test")],
    );
    assert_eq!(r.status, 500);
    assert!(r.text().contains("route/broken.test"), "{}", r.text());
    e.store
        .set("route/broken2.test", br#"{"upstream":"ftp://x"}"#);
    let r = get(
        &format!("{}/v2/", e.proxy(OPEN)),
        &[("host", "broken2.test")],
    );
    assert_eq!(r.status, 500);
    assert!(r.text().contains("route/broken2.test"), "{}", r.text());
}

#[test]
fn unknown_host_gets_404_naming_no_stored_route() {
    let e = env();
    let r = get(
        &format!("{}/v2/x/manifests/v1", e.proxy(OPEN)),
        &[("host", "nowhere.test")],
    );
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "NAME_UNKNOWN");
    // Stored routes may point at internal hosts or need a login: a stranger
    // learns none of them.
    let text = r.text();
    for stored in [
        e.proxies[OPEN].addr.to_string(),
        e.open.to_string(),
        e.auth.to_string(),
    ] {
        assert!(!text.contains(&stored), "the 404 lists {stored}: {text}");
    }
}

#[test]
fn route_changes_apply_without_restart() {
    let e = env();
    let url = format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN));
    let host = [("host", "switch.test"), ("accept", ACCEPT_ALL)];
    assert_eq!(get(&url, &host).status, 404);
    e.store.set(
        "route/switch.test",
        format!(r#"{{"upstream":"http://{}"}}"#, e.open).as_bytes(),
    );
    assert_eq!(get(&url, &host).status, 200);
    e.store.set(
        "route/switch.test",
        format!(r#"{{"upstream":"http://{}"}}"#, e.auth).as_bytes(),
    );
    let r = get(&url, &host);
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("realm=\"http://switch.test/v2/auth\"")
    );
    e.store.delete("route/switch.test");
    assert_eq!(get(&url, &host).status, 404);
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

#[test]
fn home_page_for_browsers_and_text_for_others() {
    let e = env();
    let r = get(
        &format!("{}/", e.proxy(HUB)),
        &[("accept", "text/html,application/xhtml+xml")],
    );
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let html = r.text();
    assert!(html.contains(&format!(
        "docker pull {}/library/alpine",
        e.proxies[HUB].addr
    )));
    assert!(html.contains("registry-mirrors") && html.contains("hosts.toml"));
    // The page shows its own route, never the other stored ones.
    assert!(
        html.contains(&e.open.to_string()),
        "this host's upstream missing"
    );
    assert!(
        !html.contains(&e.proxies[AUTH].addr.to_string()),
        "another stored route is listed"
    );
    let t = get(&format!("{}/", e.proxy(HUB)), &[]);
    assert!(t.header("content-type").unwrap().starts_with("text/plain"));
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
        e.proxies[OPEN].rss_mib(super::support::spin::Rss::Peak)
    );
    assert!(
        peak < 16 << 20,
        "component memory grew to {peak} bytes for a {SIZE}-byte layer"
    );

    // Cached in chunks: served back whole and in part, without the upstream.
    wait_cached(&e.cache, &digest);
    let chunks = e
        .cache
        .keys()
        .iter()
        .filter(|k| k.starts_with("cache/chunk/") && k.contains(digest.as_str()))
        .count();
    assert_eq!(chunks, 256, "1 MiB chunks");
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
