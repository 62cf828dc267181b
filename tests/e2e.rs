#![cfg(not(target_arch = "wasm32"))]
//! End to end: the built component in the Spin stand-in, against Debian's
//! `docker-registry` with and without token auth, pulled by skopeo and by
//! plain HTTP requests.

mod support;

use support::http::{self, Reply};
use support::registry::{self, OCI_INDEX, OCI_MANIFEST};
use support::{AUTH, AUTH_GET_ONLY, HUB, OPEN, REDIRECTING, env, rt, token_server};

fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    rt().block_on(http::get(url, headers))
}

fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    rt().block_on(http::send(method, url, headers, body.to_string()))
}

fn error_code(r: &Reply) -> String {
    r.json()["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

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

/// The component's log never holds credentials or signed URLs.
fn assert_not_logged(secret: &str) {
    let logs = env().spin.app.logs.lock().unwrap();
    assert!(!logs.is_empty(), "no component log captured");
    assert!(!logs.contains(secret), "the component logged {secret:?}");
}

/// A skopeo run that must have worked, with its complaint if not.
fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn skopeo(args: &[&str]) -> std::process::Output {
    std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo (apt-get install skopeo)")
}

/// The digest skopeo recorded in an OCI layout's index for `tag`.
fn layout_digest(dir: &std::path::Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn skopeo_copy(
    proxy: &str,
    image: &str,
    creds: Option<&str>,
    all: bool,
) -> (std::process::Output, std::path::PathBuf) {
    let e = env();
    let dest = e.dir.join(format!(
        "oci-{}-{}",
        image.replace(['/', ':'], "_"),
        rand_suffix()
    ));
    let src = format!("docker://{}/{image}", proxy.trim_start_matches("http://"));
    let dst = format!("oci:{}:x", dest.display());
    let mut args = vec![
        "--insecure-policy",
        "copy",
        "--src-tls-verify=false",
        "--retry-times=0",
    ];
    if all {
        args.push("--all");
    }
    if let Some(c) = creds {
        args.extend(["--src-creds", c]);
    }
    args.extend([src.as_str(), dst.as_str()]);
    (skopeo(&args), dest)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn skopeo_pulls_single_platform_and_multi_arch_index() {
    let e = env();
    let (out, dir) = skopeo_copy(&e.proxy(OPEN), "test/single:v1", None, false);
    assert_success(&out);
    assert_eq!(layout_digest(&dir), e.single.digest);

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
            e.spin.addrs[AUTH],
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
    let (out, dir) = skopeo_copy(&e.proxy(AUTH), "private/secret:v1", Some(&creds), false);
    assert_success(&out);
    assert_eq!(layout_digest(&dir), e.private.digest);
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
    let (out, dir) = skopeo_copy(&e.proxy(AUTH), "test/single:v1", None, false);
    assert_success(&out);
    assert_eq!(layout_digest(&dir), e.single.digest);
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

/// An `Authorization: Basic` value.
fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
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
    let (out, dir) = skopeo_copy(&e.proxy(HUB), "alpine:latest", None, false);
    assert_success(&out);
    assert_eq!(layout_digest(&dir), e.alpine.digest);
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

    e.spin.app.kv_set(
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
    e.spin.app.kv_set(
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
        e.spin
            .app
            .outbound_denied
            .lock()
            .unwrap()
            .iter()
            .any(|d| d.contains("127.0.0.5"))
    );
}

#[test]
fn unreachable_upstream_and_catalog() {
    let e = env();
    let closed = registry::free_port();
    e.spin.app.kv_set(
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
        ("/v2/test/single/manifests/.bad", 400, "TAG_INVALID"),
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
    assert!(
        !front.iter().any(|s| s.path.contains("Test")
            || s.path.contains("..")
            || s.path.contains("nothing"))
    );
    drop(front);
    let r = send(
        "PATCH",
        &format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN)),
        &[],
        "",
    );
    assert_eq!((r.status, error_code(&r).as_str()), (405, "UNSUPPORTED"));
    let r = get(&format!("{}/v2/", e.proxy(OPEN)), &[("host", "bad host\"")]);
    assert_eq!(r.status, 400);
}

#[test]
fn malformed_route_is_a_clear_error_naming_its_key() {
    let e = env();
    e.spin.app.kv_set("route/broken.test", b"{not json");
    let r = get(
        &format!("{}/v2/", e.proxy(OPEN)),
        &[("host", "broken.test")],
    );
    assert_eq!(r.status, 500);
    assert!(r.text().contains("route/broken.test"), "{}", r.text());
    e.spin
        .app
        .kv_set("route/broken2.test", br#"{"upstream":"ftp://x"}"#);
    let r = get(
        &format!("{}/v2/", e.proxy(OPEN)),
        &[("host", "broken2.test")],
    );
    assert_eq!(r.status, 500);
    assert!(r.text().contains("route/broken2.test"), "{}", r.text());
}

#[test]
fn unknown_host_gets_404_with_the_route_list() {
    let e = env();
    let r = get(
        &format!("{}/v2/", e.proxy(OPEN)),
        &[("host", "nowhere.test")],
    );
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "NAME_UNKNOWN");
    let routes = r.json()["routes"].clone();
    assert_eq!(
        routes[e.spin.addrs[OPEN].to_string()],
        format!("http://{}", e.open)
    );
    assert_eq!(
        routes[e.spin.addrs[AUTH].to_string()],
        format!("http://{}", e.auth)
    );
}

#[test]
fn route_changes_apply_without_restart() {
    let e = env();
    let url = format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN));
    let host = [("host", "switch.test"), ("accept", ACCEPT_ALL)];
    assert_eq!(get(&url, &host).status, 404);
    e.spin.app.kv_set(
        "route/switch.test",
        format!(r#"{{"upstream":"http://{}"}}"#, e.open).as_bytes(),
    );
    assert_eq!(get(&url, &host).status, 200);
    e.spin.app.kv_set(
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
    e.spin.app.kv_delete("route/switch.test");
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
    assert!(html.contains(&format!("docker pull {}/library/alpine", e.spin.addrs[HUB])));
    assert!(html.contains("registry-mirrors") && html.contains("hosts.toml"));
    assert!(
        html.contains(&e.spin.addrs[AUTH].to_string()),
        "route table missing"
    );
    let t = get(&format!("{}/", e.proxy(HUB)), &[]);
    assert!(t.header("content-type").unwrap().starts_with("text/plain"));
}

/// The peak linear memory of the instance that served `path` (recorded when
/// the instance finishes, just after the response).
fn request_peak(path: &str) -> usize {
    for _ in 0..100 {
        if let Some((_, peak)) = env()
            .spin
            .app
            .peak_memory
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(p, _)| p == path)
        {
            return *peak;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no memory record for {path}");
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
        "big layer: {} MiB through the proxy in {secs:.2}s ({:.0} MiB/s); component peak linear memory {:.1} MiB (a small blob's: {:.1} MiB)",
        SIZE >> 20,
        (SIZE >> 20) as f64 / secs,
        peak as f64 / (1 << 20) as f64,
        small_peak as f64 / (1 << 20) as f64
    );
    assert!(
        peak < 16 << 20,
        "component memory grew to {peak} bytes for a {SIZE}-byte layer"
    );

    // Cached in chunks: served back whole and in part, without the upstream.
    let chunks = e
        .spin
        .app
        .kv
        .lock()
        .unwrap()
        .keys()
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

/// Through one proxy host, the registry named before the image.
#[test]
fn path_prefix_pulls_from_two_upstreams_through_one_host() {
    let e = env();
    let (out, dir) = skopeo_copy(&e.proxy(HUB), "registry-a.test/test/single:v1", None, false);
    assert_success(&out);
    assert_eq!(layout_digest(&dir), e.single.digest);

    let creds = format!("{}:{}", token_server::USER, token_server::PASSWORD);
    let (out, dir) = skopeo_copy(
        &e.proxy(HUB),
        "registry-b.test/private/secret:v1",
        Some(&creds),
        false,
    );
    assert_success(&out);
    assert_eq!(layout_digest(&dir), e.private.digest);
    let seen = e.token.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| s
            .query
            .contains("scope=repository%3Aprivate%2Fsecret%3Apull")),
        "the upstream realm never got the upstream's name: {seen:?}"
    );

    // The challenge names the registry, in the realm and the scope.
    let r = get(
        &format!(
            "{}/v2/registry-b.test/private/secret/manifests/v1",
            e.proxy(HUB)
        ),
        &[],
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        format!(
            r#"Bearer realm="{}/v2/auth?ns=registry-b.test",service="{}",scope="repository:registry-b.test/private/secret:pull""#,
            e.proxy(HUB),
            token_server::SERVICE
        )
    );
    let tags = get(
        &format!("{}/v2/registry-a.test/test/single/tags/list", e.proxy(HUB)),
        &[],
    );
    assert_eq!(tags.json()["name"], "registry-a.test/test/single");
}

#[test]
fn containerd_ns_parameter_routes_and_is_echoed() {
    let e = env();
    let r = get(
        &format!(
            "{}/v2/test/single/manifests/v1?ns=registry-a.test",
            e.proxy(HUB)
        ),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.single.manifest);
    assert_eq!(r.header("oci-namespace"), Some("registry-a.test"));

    let r = get(
        &format!(
            "{}/v2/private/secret/manifests/v1?ns=registry-b.test",
            e.proxy(HUB)
        ),
        &[],
    );
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap().to_string();
    assert!(
        challenge.contains(&format!(
            r#"realm="{}/v2/auth?ns=registry-b.test""#,
            e.proxy(HUB)
        )),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"scope="repository:private/secret:pull""#),
        "{challenge}"
    );

    // The token request containerd sends next reaches registry-b's realm.
    let form = format!(
        "grant_type=password&username={}&password={}&client_id=containerd&scope=repository%3Aprivate%2Fsecret%3Apull",
        token_server::USER,
        token_server::PASSWORD
    );
    let t = send(
        "POST",
        &format!("{}/v2/auth?ns=registry-b.test", e.proxy(HUB)),
        &[("content-type", "application/x-www-form-urlencoded")],
        &form,
    );
    assert_eq!(t.status, 200, "{}", t.text());
    let token = t.json()["access_token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {token}");
    let r = get(
        &format!(
            "{}/v2/private/secret/manifests/v1?ns=registry-b.test",
            e.proxy(HUB)
        ),
        &[("authorization", &bearer), ("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.private.manifest);

    let r = get(
        &format!(
            "{}/v2/test/single/tags/list?ns=registry-a.test&n=2",
            e.proxy(HUB)
        ),
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], "test/single");
}

/// A registry named by its own host is found through the route whose
/// upstream it is, when no route is stored under its name.
#[test]
fn a_registry_is_found_by_a_routes_upstream() {
    let e = env();
    let registry = e.open.to_string();
    let r = get(
        &format!("{}/v2/{registry}/test/single/manifests/v1", e.proxy(HUB)),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.single.manifest);
    let r = get(
        &format!("{}/v2/test/single/manifests/v1?ns={registry}", e.proxy(HUB)),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("oci-namespace"), Some(registry.as_str()));
}

#[test]
fn docker_mirror_requests_with_library() {
    let e = env();
    let r = get(
        &format!("{}/v2/library/alpine/manifests/latest", e.proxy(HUB)),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(e.alpine.digest.as_str())
    );
}

#[test]
fn repository_prefix_applies_to_paths_scopes_links_and_tag_lists() {
    let e = env();
    let host = [("host", "prefixed.test"), ("accept", ACCEPT_ALL)];
    let r = get(&format!("{}/v2/single/manifests/v1", e.proxy(OPEN)), &host);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.single.manifest);
    let tags = get(&format!("{}/v2/single/tags/list", e.proxy(OPEN)), &host);
    assert_eq!(tags.json()["name"], "single");
    assert_eq!(
        tags.header("content-length"),
        Some(tags.body.len().to_string().as_str())
    );

    let host = [("host", "prefixed-auth.test")];
    let r = get(&format!("{}/v2/secret/manifests/v1", e.proxy(OPEN)), &host);
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains(r#"scope="repository:secret:pull""#),
        "{:?}",
        r.header("www-authenticate")
    );
    let basic = basic_auth(token_server::USER, token_server::PASSWORD);
    let t = get(
        &format!("{}/v2/auth?scope=repository:secret:pull", e.proxy(OPEN)),
        &[("host", "prefixed-auth.test"), ("authorization", &basic)],
    );
    assert_eq!(t.status, 200, "{}", t.text());
    let token = format!("Bearer {}", t.json()["token"].as_str().unwrap());
    let r = get(
        &format!("{}/v2/secret/manifests/v1", e.proxy(OPEN)),
        &[
            ("host", "prefixed-auth.test"),
            ("authorization", &token),
            ("accept", ACCEPT_ALL),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.private.manifest);
}

#[test]
fn unconfigured_registries_and_mixed_scopes_are_refused() {
    let e = env();
    let before = e.spin.app.outbound_denied.lock().unwrap().len();
    for url in [
        format!("{}/v2/unknown.example/x/manifests/latest", e.proxy(HUB)),
        format!("{}/v2/x/manifests/latest?ns=unknown.example", e.proxy(HUB)),
    ] {
        let r = get(&url, &[]);
        assert_eq!(r.status, 404, "{url}: {}", r.text());
        assert_eq!(error_code(&r), "NAME_UNKNOWN");
        assert!(
            r.text().contains("unknown.example is not configured"),
            "{}",
            r.text()
        );
    }
    assert_eq!(
        e.spin.app.outbound_denied.lock().unwrap().len(),
        before,
        "an unconfigured registry was contacted"
    );
    let r = get(
        &format!(
            "{}/v2/auth?scope=repository:registry-a.test/a:pull&scope=repository:registry-b.test/b:pull",
            e.proxy(HUB)
        ),
        &[],
    );
    assert_eq!(r.status, 400);
    assert_eq!(error_code(&r), "DENIED");
}

#[test]
fn browsers_are_redirected_to_the_upstream_page_unless_turned_off() {
    let e = env();
    let html = [
        ("accept", "text/html,application/xhtml+xml"),
        ("host", "hub-browser.test"),
    ];
    e.spin.app.kv_set(
        "route/hub-browser.test",
        br#"{"upstream":"https://registry-1.docker.io"}"#,
    );
    let r = get(&format!("{}/alpine:3.20", e.proxy(OPEN)), &html);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://hub.docker.com/_/alpine")
    );
    let r = get(
        &format!("{}/v2/bitnami/redis/manifests/latest", e.proxy(OPEN)),
        &html,
    );
    assert_eq!(
        r.header("location"),
        Some("https://hub.docker.com/r/bitnami/redis")
    );
    let r = get(&format!("{}/ghcr.io/owner/image", e.proxy(OPEN)), &html);
    assert_eq!(r.header("location"), Some("https://ghcr.io/owner/image"));

    e.spin.app.kv_set(
        "route/hub-browser.test",
        br#"{"upstream":"https://registry-1.docker.io","browser_redirects":false}"#,
    );
    let r = get(&format!("{}/alpine", e.proxy(OPEN)), &html);
    assert_eq!(r.status, 404);
    // No browser, no redirect: a registry client gets the API.
    let r = get(
        &format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN)),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200);
}

/// Upstream credentials the proxy holds: the client sends nothing, the
/// upstream token is fetched once and shared, and the secret goes nowhere
/// but the token realm.
#[test]
fn proxy_held_credentials_pull_private_images_for_anonymous_clients() {
    let e = env();
    let scope_seen = || {
        e.token
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| {
                s.query.contains("private%2Fheld")
                    && s.authorization
                        .as_deref()
                        .is_some_and(|a| a.starts_with("Basic "))
            })
            .count()
    };
    let (out, dir) = skopeo_copy(&e.proxy(HUB), "held.test/private/held:v1", None, false);
    assert_success(&out);
    assert_eq!(layout_digest(&dir), e.held.digest);

    let url = format!("{}/v2/private/held/manifests/v1", e.proxy(OPEN));
    let mut replies = Vec::new();
    for _ in 0..5 {
        let r = get(&url, &[("host", "held.test"), ("accept", ACCEPT_ALL)]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.body, e.held.manifest);
        replies.push(r);
    }
    assert_eq!(
        scope_seen(),
        1,
        "the upstream token was not shared across requests"
    );
    let blob = get(
        &format!(
            "{}/v2/private/held/blobs/{}",
            e.proxy(OPEN),
            e.held.layers[0]
        ),
        &[("host", "held.test")],
    );
    assert_eq!(blob.status, 200, "{}", blob.text());
    assert_eq!(registry::sha256(&blob.body), e.held.layers[0]);

    // The token endpoint hands clients nothing of the route's.
    let t = get(
        &format!(
            "{}/v2/auth?scope=repository:private/held:pull",
            e.proxy(OPEN)
        ),
        &[("host", "held.test")],
    );
    assert_eq!(t.json()["token"], "registry-proxy-anonymous");
    let cdn = e.auth_fronts.cdn_seen.lock().unwrap().clone();
    assert!(
        !cdn.is_empty() && cdn.iter().all(|s| s.authorization.is_none()),
        "credentials reached the CDN: {cdn:?}"
    );
    let front = e.auth_fronts.front_seen.lock().unwrap().clone();
    let upstream_token = front
        .iter()
        .find_map(|s| s.authorization.clone().filter(|a| a.starts_with("Bearer ")))
        .expect("the upstream saw the proxy's token");
    assert!(front.iter().all(|s| {
        !s.authorization
            .as_deref()
            .unwrap_or_default()
            .starts_with("Basic")
    }));
    for r in replies.iter().chain([&blob, &t]) {
        let headers = format!("{:?}", r.headers);
        for secret in [
            token_server::PASSWORD,
            upstream_token.trim_start_matches("Bearer "),
        ] {
            assert!(
                !r.text().contains(secret) && !headers.contains(secret),
                "a response carried a secret"
            );
        }
    }
    assert_not_logged(token_server::PASSWORD);
    assert_not_logged(upstream_token.trim_start_matches("Bearer "));

    // A revoked cached token: the proxy re-authenticates on the 401, once.
    let key = e
        .spin
        .app
        .kv
        .lock()
        .unwrap()
        .keys()
        .find(|k| k.starts_with("token/") && k.ends_with("repository:private/held:pull"))
        .cloned()
        .expect("the upstream token is cached in the key-value store");
    e.spin
        .app
        .kv_set(&key, br#"{"token":"revoked","expires":99999999999}"#);
    let r = get(&url, &[("host", "held.test"), ("accept", ACCEPT_ALL)]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(scope_seen(), 2);
}

fn login_token(e: &support::Env, host: &str, scope: &str, password: &str) -> Reply {
    let basic = basic_auth(support::PROXY_USER.0, password);
    get(
        &format!(
            "{}/v2/auth?service=registry-proxy&scope={scope}",
            e.proxy(OPEN)
        ),
        &[("host", host), ("authorization", &basic)],
    )
}

#[test]
fn the_proxys_own_users_log_in_and_are_refused_correctly() {
    let e = env();
    let (user, password) = support::PROXY_USER;
    let v2 = format!("{}/v2/", e.proxy(OPEN));
    let r = get(&v2, &[("host", "login.test")]);
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains(r#"service="registry-proxy""#)
    );
    assert_eq!(
        login_token(e, "login.test", "repository:test/single:pull", "wrong").status,
        401
    );
    assert_eq!(
        get(
            &format!(
                "{}/v2/auth?scope=repository:test/single:pull",
                e.proxy(OPEN)
            ),
            &[("host", "login.test")]
        )
        .status,
        401,
        "a token without credentials"
    );

    let t = login_token(
        e,
        "login.test",
        "repository:test/single:pull,push",
        password,
    );
    assert_eq!(t.status, 200, "{}", t.text());
    let token = t.json()["token"].as_str().unwrap().to_string();
    let claims = decode_claims(&token);
    assert_eq!(
        claims["access"][0]["actions"],
        serde_json::json!(["pull"]),
        "push was granted without the right"
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        get(&v2, &[("host", "login.test"), ("authorization", &bearer)]).status,
        200
    );
    let manifest = |name: &str, auth: &str| {
        get(
            &format!("{}/v2/{name}/manifests/v1", e.proxy(OPEN)),
            &[
                ("host", "login.test"),
                ("authorization", auth),
                ("accept", ACCEPT_ALL),
            ],
        )
    };
    let ok = manifest("test/single", &bearer);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.body, e.single.manifest);

    // Another repository than the token's.
    let other = manifest("test/multi", &bearer);
    assert_eq!(other.status, 401);
    assert!(
        other
            .header("www-authenticate")
            .unwrap()
            .contains(r#"scope="repository:test/multi:pull",error="insufficient_scope""#)
    );
    // Outside the user's rights: the token comes back empty-handed.
    let t = login_token(e, "login.test", "repository:private/secret:pull", password);
    let no_rights = format!("Bearer {}", t.json()["token"].as_str().unwrap());
    assert_eq!(manifest("private/secret", &no_rights).status, 401);
    // Tampered and expired tokens.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_payload = {
        use base64::Engine;
        let mut c = claims.clone();
        c["access"][0]["name"] = "private/secret".into();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string())
    };
    parts[1] = &forged_payload;
    assert_eq!(
        manifest("private/secret", &format!("Bearer {}", parts.join("."))).status,
        401
    );
    let mut expired: registry_proxy::jwt::Claims = serde_json::from_value(claims.clone()).unwrap();
    expired.exp = 1;
    expired.nbf = 0;
    let expired = registry_proxy::jwt::sign(&expired, support::SIGNING_KEY.as_bytes());
    assert_eq!(
        manifest("test/single", &format!("Bearer {expired}")).status,
        401
    );
    assert_eq!(
        manifest("test/single", "Bearer registry-proxy-anonymous").status,
        401
    );

    // docker login + pull as a client does it, through a path prefix.
    let creds = format!("{user}:{password}");
    let (out, dir) = skopeo_copy(
        &e.proxy(HUB),
        "login.test/test/single:v1",
        Some(&creds),
        false,
    );
    assert_success(&out);
    assert_eq!(layout_digest(&dir), e.single.digest);
    let (out, _) = skopeo_copy(
        &e.proxy(HUB),
        "login.test/test/single:v1",
        Some(&format!("{user}:nope")),
        false,
    );
    assert!(!out.status.success());
    let (out, _) = skopeo_copy(&e.proxy(HUB), "login.test/test/single:v1", None, false);
    assert!(!out.status.success());
    assert_not_logged(password);
}

fn decode_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn allow_and_deny_lists_refuse_before_any_upstream_call() {
    let e = env();
    let host = [("host", "filtered.test"), ("accept", ACCEPT_ALL)];
    let r = get(
        &format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN)),
        &host,
    );
    assert_eq!(r.status, 200);
    for path in [
        "/v2/test/evil/manifests/denied-tag",
        "/v2/library/alpine/manifests/denied-tag",
    ] {
        let r = get(&format!("{}{path}", e.proxy(OPEN)), &host);
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(error_code(&r), "DENIED");
        assert!(r.text().contains("not served"), "{}", r.text());
    }
    assert!(
        !e.fronts
            .front_seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.path.contains("denied-tag"))
    );
}

#[test]
fn admin_api_manages_routes() {
    let e = env();
    let api = format!("{}/_registry-proxy/routes", e.proxy(OPEN));
    let admin = format!("Bearer {}", support::ADMIN_TOKEN);
    let auth = [("authorization", admin.as_str())];
    assert_eq!(get(&api, &[]).status, 401);
    let wrong = get(&api, &[("authorization", "Bearer admin-s3cret-tokeN")]);
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("www-authenticate").is_some());

    let pull = |host: &str| {
        get(
            &format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN)),
            &[("host", host), ("accept", ACCEPT_ALL)],
        )
        .status
    };
    assert_eq!(pull("api.test"), 404);
    let body = format!(r#"{{"upstream":"http://{}"}}"#, e.open);
    let r = send("PUT", &format!("{api}/api.test"), &auth, &body);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        pull("api.test"),
        200,
        "a route added through the API is used by the next pull"
    );
    let r = get(&format!("{api}/api.test"), &auth);
    assert_eq!(r.json()["upstream"], format!("http://{}", e.open));
    let list = get(&api, &auth);
    assert_eq!(
        list.json()["routes"]["api.test"]["upstream"],
        format!("http://{}", e.open)
    );
    assert_eq!(
        send("PUT", &format!("{api}/api.test"), &auth, &body).status,
        200
    );

    let bad = send(
        "PUT",
        &format!("{api}/api.test"),
        &auth,
        r#"{"upstream":"ftp://x","allowed_hosts":["a/b"],"deny":["BAD"]}"#,
    );
    assert_eq!(bad.status, 400);
    let fields: Vec<String> = bad.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"]["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(fields, ["upstream", "allowed_hosts", "deny"]);
    let unknown = send(
        "PUT",
        &format!("{api}/api.test"),
        &auth,
        r#"{"upstream":"https://x.io","colour":"red"}"#,
    );
    assert_eq!(unknown.status, 400);
    assert!(unknown.text().contains("colour"), "{}", unknown.text());
    assert_eq!(
        pull("api.test"),
        200,
        "a refused update left the route alone"
    );
    assert_eq!(
        send("PUT", &format!("{api}/Bad%20Host"), &auth, &body).status,
        400
    );

    assert_eq!(
        send("DELETE", &format!("{api}/api.test"), &auth, "").status,
        204
    );
    assert_eq!(get(&format!("{api}/api.test"), &auth).status, 404);
    assert_eq!(pull("api.test"), 404);

    // Without the admin_token variable the API does not exist.
    let app = support::spin_host::load_app(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spin.toml"),
        "registry-proxy",
        &[],
    );
    let bare = rt().block_on(support::spin_host::serve(&support::wasm_path(), app, 1));
    let r = get(
        &format!("http://{}/_registry-proxy/routes", bare.addrs[0]),
        &auth,
    );
    assert_eq!(r.status, 404);
}

fn upstream_log(registry: &str, repository: &str) -> Vec<String> {
    registry::access_log(&env().dir, registry, repository)
}

fn count(log: &[String], prefix: &str) -> usize {
    log.iter().filter(|l| l.starts_with(prefix)).count()
}

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
        Some("MISS"),
        "a new Accept list is a new tag entry"
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
    registry::stop(&e.dir, "stoppable");
    std::thread::sleep(std::time::Duration::from_millis(1200));
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

#[test]
fn a_corrupt_upstream_blob_fails_the_pull_and_is_not_cached() {
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
    assert!(
        result.is_err() || digest != *layer,
        "a corrupt blob reached the client whole and verified"
    );
    assert!(
        result.is_err(),
        "the client was not told: {:?}",
        result.map(|r| r.status)
    );
    let cached = e
        .spin
        .app
        .kv
        .lock()
        .unwrap()
        .keys()
        .any(|k| k.starts_with("cache/blob/") && k.ends_with(layer.as_str()));
    assert!(!cached, "a corrupt blob was cached");

    e.corrupting
        .corrupt
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let r = get(&url, &host);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    assert_eq!(registry::sha256(&r.body), *layer);
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
}

#[test]
fn cache_administration() {
    let e = env();
    let admin = format!("Bearer {}", support::ADMIN_TOKEN);
    let auth = [("authorization", admin.as_str())];
    let api = format!("{}/_registry-proxy/cache", e.proxy(OPEN));
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

    // Orphan chunks and an expired tag go; committed blobs stay.
    e.spin.app.kv_set(
        &format!(
            "cache/chunk/http~127.0.0.1:1/sha256:{}/0-dead/0",
            "0".repeat(64)
        ),
        b"x",
    );
    e.spin.app.kv_set(
        "cache/tag/http~127.0.0.1:1/gone/x:v1#00",
        br#"{"digest":"sha256:00","checked":0,"expires":1}"#,
    );
    let gc = send("POST", &format!("{api}/gc"), &auth, "");
    assert_eq!(gc.status, 200);
    assert!(
        gc.json()["removed"]["chunks"].as_u64().unwrap() >= 1
            && gc.json()["removed"]["tags"].as_u64().unwrap() >= 1,
        "{}",
        gc.text()
    );
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

#[test]
fn proxy_held_credentials_use_the_oauth2_password_grant_where_get_is_refused() {
    let e = env();
    let r = get(
        &format!("{}/v2/private/held/manifests/v1", e.proxy(OPEN)),
        &[("host", "held-post.test"), ("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, e.held.manifest);
    let seen = e.token.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| s.method == "POST"
            && s.form.contains("grant_type=password")
            && s.form.contains("private%2Fheld")),
        "no password grant: {seen:?}"
    );
    assert_not_logged(token_server::PASSWORD);
}

fn skopeo_push(
    layout: &std::path::Path,
    proxy: &str,
    image: &str,
    creds: Option<&str>,
) -> std::process::Output {
    let src = format!("oci:{}:x", layout.display());
    let dst = format!("docker://{}/{image}", proxy.trim_start_matches("http://"));
    let mut args = vec![
        "--insecure-policy",
        "copy",
        "--dest-tls-verify=false",
        "--retry-times=0",
    ];
    if let Some(c) = creds {
        args.extend(["--dest-creds", c]);
    }
    args.extend([src.as_str(), dst.as_str()]);
    skopeo(&args)
}

/// Pushes pass through to the upstream, bodies streaming, upload locations
/// pointing back at the proxy; what a push replaces is not served stale.
#[test]
fn pushes_pass_through_and_replace_cached_tags() {
    let e = env();
    let (out, single) = skopeo_copy(&e.proxy(HUB), "registry-a.test/test/single:v1", None, false);
    assert_success(&out);
    let out = skopeo_push(
        &single,
        &e.proxy(HUB),
        "registry-a.test/pushed/image:v1",
        None,
    );
    assert_success(&out);
    let direct = get(
        &format!("http://{}/v2/pushed/image/manifests/v1", e.open),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(
        direct.header("docker-content-digest"),
        Some(e.single.digest.as_str())
    );
    let upstream = upstream_log("open", "pushed/image");
    assert!(
        upstream.iter().any(
            |l| l.starts_with("PATCH ") || l.starts_with("PUT /v2/pushed/image/blobs/uploads/")
        ),
        "{upstream:?}"
    );

    // The layer is cached from test/single: for pushed/image the upstream
    // only confirms it has it there (a HEAD), no bytes move.
    let layer = &e.single.layers[0];
    let before = upstream_log("open", "pushed/image").len();
    let r = get(
        &format!(
            "{}/v2/registry-a.test/pushed/image/blobs/{layer}",
            e.proxy(HUB)
        ),
        &[],
    );
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    assert_eq!(registry::sha256(&r.body), *layer);
    let asked = upstream_log("open", "pushed/image")[before..].to_vec();
    assert!(asked.iter().all(|l| l.starts_with("HEAD ")), "{asked:?}");

    // Cached by tag through the proxy, then replaced through the proxy.
    let url = format!(
        "{}/v2/registry-a.test/pushed/image/manifests/v1",
        e.proxy(HUB)
    );
    let r = get(&url, &[("accept", ACCEPT_ALL)]);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(e.single.digest.as_str())
    );
    let (out, alpine) = skopeo_copy(&e.proxy(HUB), "alpine:latest", None, false);
    assert_success(&out);
    let out = skopeo_push(
        &alpine,
        &e.proxy(HUB),
        "registry-a.test/pushed/image:v1",
        None,
    );
    assert_success(&out);
    let r = get(&url, &[("accept", ACCEPT_ALL)]);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(e.alpine.digest.as_str()),
        "a stale tag after a push"
    );

    // The proxy's own users need the push right.
    let (user, password) = support::PROXY_USER;
    let out = skopeo_push(
        &single,
        &e.proxy(HUB),
        "login.test/test/pushed:v1",
        Some(&format!("{user}:{password}")),
    );
    assert!(
        !out.status.success(),
        "a user without the push right pushed"
    );
    let t = login_token(
        e,
        "login.test",
        "repository:test/pushed:pull,push",
        password,
    );
    let bearer = format!("Bearer {}", t.json()["token"].as_str().unwrap());
    let r = send(
        "POST",
        &format!("{}/v2/test/pushed/blobs/uploads/", e.proxy(OPEN)),
        &[("host", "login.test"), ("authorization", &bearer)],
        "",
    );
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope"),
        "{:?}",
        r.header("www-authenticate")
    );
}
