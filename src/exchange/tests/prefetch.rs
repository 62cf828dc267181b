//! Prefetch on the in-memory host: what it fetches of an index, what a
//! second one spares the upstream, what a deadline leaves, and pins.

use super::{digest, read, request};
use crate::cache::prefetch::{self, Prefetch};
use crate::exchange::handle;
use crate::host::memory::{Answer, MemoryHost, Sent};
use crate::host::{Body, Host};
use crate::oci::reference::{Reference, RepositoryName};
use crate::routing::target;
use futures::executor::block_on;
use serde_json::{Value, json};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `team/multi:v1`, an index over amd64 and arm64, each one config and
/// one layer: every object under its digest, the index under its tag.
pub(super) fn image() -> Vec<(String, Vec<u8>)> {
    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (config, layer) = (
            format!("config {arch}").into_bytes(),
            vec![arch.as_bytes()[1]; 5000],
        );
        let manifest = json!({"schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": "c", "digest": digest(&config), "size": config.len()},
            "layers": [{"mediaType": "l", "digest": digest(&layer), "size": layer.len()}]})
        .to_string()
        .into_bytes();
        entries.push(
            json!({"mediaType": MANIFEST, "digest": digest(&manifest), "size": manifest.len(),
            "platform": {"os": "linux", "architecture": arch}}),
        );
        objects.extend([config, layer, manifest].map(|b| (digest(&b), b)));
    }
    let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}).to_string();
    objects.push(("v1".into(), index.into_bytes()));
    objects
}

/// An upstream serving `objects` by the name each ends its URL with: JSON
/// under a tag is an index, under a digest a manifest, anything else a
/// blob. It has no referrers API.
pub(super) fn serving(objects: Vec<(String, Vec<u8>)>) -> MemoryHost {
    let host = MemoryHost::new(move |sent: &Sent| {
        let found = objects
            .iter()
            .find(|(d, _)| sent.url.ends_with(&format!("/{d}")));
        match found {
            Some((d, body)) if !sent.url.contains("/referrers/") => {
                let media_type = match (body.starts_with(b"{"), d.starts_with("sha256:")) {
                    (true, false) => INDEX,
                    (true, true) => MANIFEST,
                    (false, _) => "application/octet-stream",
                };
                Answer {
                    status: 200,
                    headers: vec![
                        ("content-type", media_type.into()),
                        ("docker-content-digest", digest(body)),
                    ],
                    body: body.clone(),
                }
            }
            _ => Answer {
                status: 404,
                headers: vec![],
                body: b"{}".to_vec(),
            },
        }
    });
    host.set_variable("default_upstream", "http://upstream.test");
    host.set_variable("admin_token", "t");
    host
}

/// The image's upstream, and its objects.
pub(super) fn upstream() -> (MemoryHost, Vec<(String, Vec<u8>)>) {
    let objects = image();
    (serving(objects.clone()), objects)
}

/// The lines of a prefetch answer, read while its copies run.
pub(super) fn lines_of(
    host: &MemoryHost,
    body: Body<crate::host::memory::MemoryStream>,
) -> Vec<Value> {
    block_on(async {
        let (text, ()) = futures::future::join(read(body), host.settle()).await;
        String::from_utf8(text)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    })
}

pub(super) fn prefetch_of(host: &MemoryHost, body: Value) -> Vec<Value> {
    let mut req = request(
        "POST",
        "/_registry-proxy/cache/prefetch",
        &[("authorization", "Bearer t")],
    );
    req.body = Body::Bytes(body.to_string().into_bytes());
    let (resp, _) = block_on(handle(host, req));
    assert_eq!(resp.status, 200);
    lines_of(host, resp.body)
}

fn outcome_of<'a>(lines: &'a [Value], digest: &str) -> Option<&'a str> {
    lines
        .iter()
        .find(|l| l["digest"] == digest)
        .and_then(|l| l["outcome"].as_str())
}

#[test]
fn a_prefetch_takes_the_platforms_named_and_a_second_asks_the_upstream_nothing() {
    let (host, objects) = upstream();
    let lines = prefetch_of(
        &host,
        json!({"image": "team/multi:v1", "platforms": ["linux/arm64"]}),
    );
    // The arm64 config, layer and manifest are objects 3..6.
    for (d, _) in &objects[3..6] {
        assert_eq!(outcome_of(&lines, d), Some("cached"), "{lines:#?}");
    }
    for (d, _) in &objects[..3] {
        assert_eq!(outcome_of(&lines, d), None, "amd64 was fetched: {lines:#?}");
    }
    let summary = lines.last().unwrap();
    assert_eq!(
        (summary["cached"].as_u64(), summary["complete"].as_bool()),
        (Some(4), Some(true))
    );
    let sent = host.upstream.sent.borrow().len();
    let again = prefetch_of(
        &host,
        json!({"image": "team/multi:v1", "platforms": ["linux/arm64"]}),
    );
    assert_eq!(again.last().unwrap()["already"], 4, "{again:#?}");
    let asked: Vec<_> = host.upstream.sent.borrow()[sent..]
        .iter()
        .map(|s| s.url.clone())
        .collect();
    assert!(asked.is_empty(), "asked again: {asked:?}");
}

#[test]
fn a_platform_the_index_lacks_fails_and_the_rest_goes_on() {
    let (host, _) = upstream();
    let lines = prefetch_of(
        &host,
        json!({"image": "team/multi:v1", "platforms": ["linux/s390x", "linux/amd64"]}),
    );
    let failed: Vec<_> = lines.iter().filter(|l| l["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{lines:#?}");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("linux/s390x")
    );
    let summary = lines.last().unwrap();
    assert_eq!(
        (summary["cached"].as_u64(), summary["complete"].as_bool()),
        (Some(4), Some(false))
    );
}

#[test]
fn past_its_deadline_a_prefetch_says_what_is_left_and_a_second_call_goes_on() {
    let (host, objects) = upstream();
    let job = |deadline| Prefetch {
        target: target::for_request(&host, &["proxy.test".to_string()], None).unwrap(),
        origin: "http://proxy.test".into(),
        name: RepositoryName::parse("team/multi").unwrap(),
        reference: Reference::Tag("v1".into()),
        platforms: None,
        referrers: false,
        pin: false,
        deadline,
    };
    let lines = lines_of(
        &host,
        Body::Generated(prefetch::progress(host.clone(), job(Some(0)))),
    );
    let summary = lines.last().unwrap();
    // The index is read; the manifests it lists are left.
    assert_eq!(
        (summary["cached"].as_u64(), summary["left"].as_u64()),
        (Some(1), Some(2)),
        "{lines:#?}"
    );
    assert!(summary["next"].is_string());
    let lines = lines_of(
        &host,
        Body::Generated(prefetch::progress(host.clone(), job(None))),
    );
    let summary = lines.last().unwrap();
    assert_eq!(
        (summary["already"].as_u64(), summary["cached"].as_u64()),
        (Some(1), Some(6))
    );
    assert_eq!(objects.len(), 7);
}

#[test]
fn a_pinned_image_is_listed_with_its_repository() {
    let (host, _) = upstream();
    let lines = prefetch_of(&host, json!({"image": "team/multi:v1", "pin": true}));
    assert_eq!(lines.last().unwrap()["pin"]["pinned"], true, "{lines:#?}");
    let listed = crate::cache::repositories::gather(&host).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].pinned && listed[0].tags.contains("v1") && listed[0].bytes > 10_000);
    assert!(crate::cache::pins::unpin(host.cache().as_ref(), "default/team/multi:v1").unwrap());
    assert!(!crate::cache::repositories::gather(&host).unwrap()[0].pinned);
}

#[test]
fn referrers_come_from_the_fallback_tag_where_the_upstream_has_no_api() {
    let (signature, sig_layer) = (b"signature config".to_vec(), b"signature".to_vec());
    let referrer = json!({"schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "c", "digest": digest(&signature), "size": signature.len()},
        "layers": [{"mediaType": "l", "digest": digest(&sig_layer), "size": sig_layer.len()}]})
    .to_string()
    .into_bytes();
    let objects = image();
    let index_digest = digest(&objects[6].1);
    let referrers = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": MANIFEST, "digest": digest(&referrer), "size": referrer.len()}]})
    .to_string()
    .into_bytes();
    let fallback_tag = index_digest.replacen(':', "-", 1);
    let mut served = objects;
    served.extend([signature, sig_layer, referrer.clone()].map(|b| (digest(&b), b)));
    served.push((fallback_tag, referrers));
    let host = serving(served);
    let lines = prefetch_of(
        &host,
        json!({"image": "team/multi:v1", "platforms": ["linux/amd64"], "referrers": true}),
    );
    let referred: Vec<_> = lines.iter().filter(|l| l["kind"] == "referrer").collect();
    assert_eq!(referred.len(), 1, "{lines:#?}");
    assert_eq!(referred[0]["digest"], digest(&referrer).as_str());
    assert_eq!(referred[0]["outcome"], "cached");
    assert_eq!(lines.last().unwrap()["complete"], true, "{lines:#?}");
}
