//! Helpers the end-to-end tests share.

use support::http::{self, Reply};
use support::{OPEN, env, registry, rt, spin};

pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    rt().block_on(http::get(url, headers))
}

/// A GET that may fail on the way (a body cut short).
pub fn try_get(url: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
    rt().block_on(http::send_with(
        "GET",
        url,
        headers,
        http::full(""),
        |_| {},
        true,
    ))
}

/// The corrupting front's switch acts on every blob through it: the tests
/// that flip it take turns.
pub static FRONT_BLOBS: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    rt().block_on(http::send(method, url, headers, body.to_string()))
}

pub fn error_code(r: &Reply) -> String {
    r.json()["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// The component's log never holds credentials or signed URLs.
pub fn assert_not_logged(secret: &str) {
    let logs = env().component_logs();
    assert!(!logs.is_empty(), "no component log captured");
    assert!(!logs.contains(secret), "the component logged {secret:?}");
}

/// A skopeo run that must have worked, with its complaint if not.
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn skopeo(args: &[&str]) -> std::process::Output {
    std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo (apt-get install skopeo)")
}

/// The digest skopeo recorded in an OCI layout's index for `tag`.
pub fn layout_digest(dir: &std::path::Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn skopeo_copy(
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

/// Pulls with skopeo, which must work, and returns the manifest digest it
/// recorded.
pub fn pulled_digest(proxy: &str, image: &str, creds: Option<&str>, all: bool) -> String {
    let (out, dir) = skopeo_copy(proxy, image, creds, all);
    assert_success(&out);
    layout_digest(&dir)
}

pub fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// An `Authorization: Basic` value.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

pub fn login_token(e: &support::Env, host: &str, scope: &str, password: &str) -> Reply {
    let basic = basic_auth(support::PROXY_USER.0, password);
    get(
        &format!(
            "{}/v2/auth?service=registry-proxy&scope={scope}",
            e.proxy(OPEN)
        ),
        &[("host", host), ("authorization", &basic)],
    )
}

pub fn upstream_log(registry: &str, repository: &str) -> Vec<String> {
    registry::access_log(&env().dir, registry, repository)
}

/// The uploads (copies) with bytes stored for `digest`: chunks in the
/// cache store, or blob files in the app's `blobs/`.
pub fn chunk_uploads(cache: &spin::SqliteStore, digest: &str) -> Vec<String> {
    let mut uploads: Vec<String> = cache
        .keys()
        .iter()
        .filter(|k| k.starts_with("cache/chunk/") && k.contains(digest))
        .filter_map(|k| k.rsplit('/').nth(1).map(str::to_string))
        .chain(cache.blob_file_uploads(digest))
        .collect();
    uploads.sort();
    uploads.dedup();
    uploads
}

/// Waits for `done` (a copy's digest is checked after the answer, so what
/// it leaves shows a moment later), for at most ten seconds.
pub fn settles(what: &str, done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{what} did not happen within ten seconds");
}

/// Waits until a copied blob is committed: a request before that follows
/// the copy (COALESCED) rather than hitting.
pub fn wait_cached(cache: &spin::SqliteStore, digest: &str) {
    settles(&format!("committing {digest}"), || {
        cache
            .keys()
            .iter()
            .any(|k| k.starts_with("cache/blob/") && k.ends_with(digest))
    });
}

/// Prometheus text format: each series (name with labels) and its value.
pub fn metric_values(text: &str) -> std::collections::HashMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(series, v)| Some((series.to_string(), v.parse().ok()?)))
        .collect()
}

pub fn count(log: &[String], prefix: &str) -> usize {
    log.iter().filter(|l| l.starts_with(prefix)).count()
}
