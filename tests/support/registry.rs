//! Debian's `docker-registry` (CNCF distribution) as the real upstream, and
//! pushes of test images into it through its API.

use super::http::{self, Body};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use super::watched::free_port;

/// Starts a registry on 127.0.0.1 with `auth` (a YAML `auth:` block, or
/// empty) over the shared storage in `dir`.
pub async fn start(dir: &Path, name: &str, auth: &str) -> SocketAddr {
    let port = free_port();
    let config = dir.join(format!("{name}.yml"));
    let storage = dir.join("storage");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
            storage.display()
        ),
    )
    .unwrap();
    let config_path = config.display().to_string();
    super::watched::spawn(
        "docker-registry",
        &["serve", &config_path],
        dir,
        &dir.join(format!("{name}.log")),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if http::send_with(
            "GET",
            &format!("http://{addr}/v2/"),
            &[],
            http::full(""),
            |_| {},
            false,
        )
        .await
        .is_ok()
        {
            return addr;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "registry {name} did not start; see {}",
        dir.join(format!("{name}.log")).display()
    );
}

/// Stops a registry started by `start` (its watchdog then exits too).
pub fn stop(dir: &Path, name: &str) {
    let config = dir.join(format!("{name}.yml"));
    let _ = std::process::Command::new("pkill")
        .arg("-f")
        .arg(format!("docker-registry serve {}", config.display()))
        .status();
}

/// Stops a registry started by `start` without ending it (`SIGSTOP`), as
/// a hung server: it holds its connections and answers nothing; `false`
/// lets it go on.
pub fn pause(dir: &Path, name: &str, paused: bool) {
    let config = dir.join(format!("{name}.yml"));
    let signal = if paused { "-STOP" } else { "-CONT" };
    let _ = std::process::Command::new("pkill")
        .arg(signal)
        .arg("-f")
        .arg(format!("docker-registry serve {}", config.display()))
        .status();
}

/// The requests a registry logged for `repository`, as "METHOD path".
pub fn access_log(dir: &Path, name: &str, repository: &str) -> Vec<String> {
    let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    let needle = format!("/v2/{repository}/");
    log.lines()
        .filter_map(|l| {
            // Combined log format: ... "GET /v2/... HTTP/1.1" 200 ...
            let request = l.split('"').nth(1)?;
            let mut parts = request.split(' ');
            let (method, path) = (parts.next()?, parts.next()?);
            path.starts_with(&needle)
                .then(|| format!("{method} {path}"))
        })
        .collect()
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// A blob upload: POST opens the session, one PUT with `digest=` sends it all.
pub async fn push_blob_body(registry: SocketAddr, name: &str, digest: &str, len: u64, body: Body) {
    let start = http::send(
        "POST",
        &format!("http://{registry}/v2/{name}/blobs/uploads/"),
        &[],
        "",
    )
    .await;
    assert_eq!(
        start.status,
        202,
        "upload session for {name}: {}",
        start.text()
    );
    let location = start.header("location").expect("upload location");
    let mut url = if location.starts_with('/') {
        format!("http://{registry}{location}")
    } else {
        location.to_string()
    };
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(&format!("digest={digest}"));
    let len = len.to_string();
    let r = http::send_with(
        "PUT",
        &url,
        &[
            ("content-type", "application/octet-stream"),
            ("content-length", &len),
        ],
        body,
        |_| {},
        true,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "blob upload {name} {digest}: {}", r.text());
}

pub async fn push_blob(registry: SocketAddr, name: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    push_blob_body(
        registry,
        name,
        &digest,
        data.len() as u64,
        http::full(Bytes::copy_from_slice(data)),
    )
    .await;
    digest
}

pub async fn push_manifest(
    registry: SocketAddr,
    name: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> String {
    let url = format!("http://{registry}/v2/{name}/manifests/{reference}");
    let r = http::send(
        "PUT",
        &url,
        &[("content-type", media_type)],
        Bytes::copy_from_slice(bytes),
    )
    .await;
    assert_eq!(r.status, 201, "manifest {name}:{reference}: {}", r.text());
    sha256(bytes)
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A pushed image: its manifest's digest and exact bytes.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub digest: String,
    pub manifest: Vec<u8>,
    pub layers: Vec<String>,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A tar archive of one regular file, as image layers are (dockerd and
/// podman unpack what they pull).
fn tar_of(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let field =
        |h: &mut [u8; 512], at: usize, value: &[u8]| h[at..at + value.len()].copy_from_slice(value);
    field(&mut header, 0, name.as_bytes());
    field(&mut header, 100, b"0000644\0");
    field(&mut header, 108, b"0000000\0");
    field(&mut header, 116, b"0000000\0");
    field(
        &mut header,
        124,
        format!("{:011o}\0", content.len()).as_bytes(),
    );
    field(&mut header, 136, b"00000000000\0");
    field(&mut header, 156, b"0");
    field(&mut header, 257, b"ustar\0");
    field(&mut header, 263, b"00");
    // The checksum counts its own field as spaces.
    field(&mut header, 148, b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    field(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    tar
}

/// Pushes a small single-platform OCI image whose layers hold `seed`-derived
/// bytes, tagged `tag`.
pub async fn push_image(
    registry: SocketAddr,
    name: &str,
    tag: &str,
    seed: &str,
    arch: &str,
) -> Pushed {
    let mut layers = Vec::new();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..2 {
        let content = format!("{seed}-{arch}-layer-{i}-").repeat(500 + i * 100);
        let tar = tar_of(&format!("layer-{i}.txt"), content.as_bytes());
        diff_ids.push(format!("sha256:{:x}", Sha256::digest(&tar)));
        let data = gzip(&tar);
        let d = push_blob(registry, name, &data).await;
        descriptors.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": data.len()}));
        layers.push(d);
    }
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {"Labels": {"seed": seed}}
    })
    .to_string();
    let config_digest = push_blob(registry, name, config.as_bytes()).await;
    let manifest = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descriptors,
    }))
    .unwrap();
    let digest = push_manifest(registry, name, tag, OCI_MANIFEST, &manifest).await;
    Pushed {
        digest,
        manifest,
        layers,
    }
}

/// Pushes a single-platform image of one layer holding `size` bytes of
/// pseudo-random data (a real gzipped tar, as clients unpack it).
pub async fn push_big_image(
    registry: SocketAddr,
    name: &str,
    tag: &str,
    seed: u64,
    size: u64,
) -> Pushed {
    let content: Vec<u8> = chunks(seed, size, 1 << 20).flatten().collect();
    let tar = tar_of("big.bin", &content);
    let diff_id = format!("sha256:{:x}", Sha256::digest(&tar));
    let data = gzip(&tar);
    let layer = push_blob(registry, name, &data).await;
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })
    .to_string();
    let config_digest = push_blob(registry, name, config.as_bytes()).await;
    let manifest = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": data.len()}],
    }))
    .unwrap();
    let digest = push_manifest(registry, name, tag, OCI_MANIFEST, &manifest).await;
    Pushed {
        digest,
        manifest,
        layers: vec![layer],
    }
}

/// Pushes an index over two platform images.
pub async fn push_index(registry: SocketAddr, name: &str, tag: &str) -> (Pushed, Vec<Pushed>) {
    let mut platforms = Vec::new();
    let mut descriptors = Vec::new();
    for arch in ["amd64", "arm64"] {
        let p = push_image(registry, name, &format!("{tag}-{arch}"), "multi", arch).await;
        descriptors.push(serde_json::json!({"mediaType": OCI_MANIFEST, "digest": p.digest, "size": p.manifest.len(), "platform": {"architecture": arch, "os": "linux"}}));
        platforms.push(p);
    }
    let index = serde_json::to_vec(
        &serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}),
    )
    .unwrap();
    let digest = push_manifest(registry, name, tag, OCI_INDEX, &index).await;
    (
        Pushed {
            digest,
            manifest: index,
            layers: Vec::new(),
        },
        platforms,
    )
}

/// Deterministic pseudo-random bytes (xorshift), generated chunk by chunk.
pub fn chunks(seed: u64, total: u64, chunk: usize) -> impl Iterator<Item = Vec<u8>> {
    // Spread the seed so that nearby seeds give unrelated streams.
    let mut state = (seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1;
    let mut left = total;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = (chunk as u64).min(left) as usize;
        left -= n as u64;
        let mut buf = Vec::with_capacity(n);
        while buf.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            buf.extend_from_slice(&state.to_le_bytes());
        }
        buf.truncate(n);
        Some(buf)
    })
}

/// Pushes a large blob without holding it: hashed in one pass, streamed in a second.
pub async fn push_big_blob(registry: SocketAddr, name: &str, seed: u64, size: u64) -> String {
    let mut h = Sha256::new();
    for c in chunks(seed, size, 1 << 20) {
        h.update(&c);
    }
    let digest = format!("sha256:{:x}", h.finalize());
    let stream = futures_stream(chunks(seed, size, 1 << 20));
    push_blob_body(registry, name, &digest, size, stream).await;
    digest
}

pub fn futures_stream(it: impl Iterator<Item = Vec<u8>> + Send + Sync + 'static) -> Body {
    let frames =
        futures::stream::iter(it.map(|c| Ok::<_, hyper::Error>(Frame::data(Bytes::from(c)))));
    StreamBody::new(frames).boxed()
}
