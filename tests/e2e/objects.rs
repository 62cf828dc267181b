//! Blobs in an S3-compatible bucket (a real Garage) under real Spin: every
//! client pulls through it with the upstream gone, a cached blob is a
//! redirect to a presigned URL, a crowd on two instances sharing Redis and
//! one bucket costs one upstream GET, and a three-node cluster that loses a
//! node during pulls loses nothing.

use super::common::*;
use super::filling::{crowd, upstream_blob_gets};
use super::journeys::plain;
use std::path::PathBuf;
use std::sync::OnceLock;
use support::garage::Garage;
use support::{env, registry, rt, spin};

/// One Garage node for the tests of this module; each keeps to its own
/// key prefix.
pub(super) fn garage() -> &'static Garage {
    static GARAGE: OnceLock<Garage> = OnceLock::new();
    GARAGE.get_or_init(|| Garage::start(&env().dir.join("garage"), 1))
}

/// The variables that put blobs in `garage` (through node `node`) under
/// `prefix`.
pub(super) fn s3_variables(
    garage: &Garage,
    node: usize,
    prefix: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("blob_store", "s3".into()),
        ("s3_endpoint", garage.endpoints[node].clone()),
        ("s3_region", support::garage::REGION.into()),
        ("s3_bucket", support::garage::BUCKET.into()),
        ("s3_access_key_id", garage.key_id.clone()),
        ("s3_secret_access_key", garage.secret.clone()),
        ("s3_path_style", "true".into()),
        ("s3_prefix", prefix.into()),
    ]
}

pub(super) fn start(
    app: &std::path::Path,
    name: &str,
    vars: &[(&'static str, String)],
) -> spin::Instance {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spin::Instance::start(app, name, &vars)
}

/// A fresh image `objects/<name>` in the open registry, an app of its own,
/// and the variables that proxy the registry with blobs under `<name>/`.
fn open_image_and_app(name: &str) -> (registry::Pushed, PathBuf, Vec<(&'static str, String)>) {
    let e = env();
    let repo = format!("objects/{name}");
    let seed = format!("objects-{name}");
    let image = rt().block_on(registry::push_image(e.open, &repo, "v1", &seed, "amd64"));
    let app = spin::derive_app(&e.dir.join(&seed), &spin::Store::Sqlite, true);
    let mut vars = s3_variables(garage(), 0, &format!("{name}/"));
    vars.push(("default_upstream", format!("http://{}", e.open)));
    (image, app, vars)
}

/// The blobs under `prefix`, and the parts of copies left there.
fn stored(garage: &Garage, prefix: &str) -> (Vec<(String, u64)>, usize) {
    let blobs = garage.keys(0, &format!("{prefix}blobs/"));
    let parts = garage.keys(0, &format!("{prefix}uploads/")).len();
    (blobs, parts)
}

#[test]
fn every_client_pulls_from_the_bucket_with_the_upstream_gone() {
    let e = env();
    let g = garage();
    let down = rt().block_on(registry::start(&e.dir, "objects-down", ""));
    let image = rt().block_on(registry::push_image(
        down,
        "objects/down",
        "v1",
        "objects-down",
        "amd64",
    ));
    let app = spin::derive_app(&e.dir.join("objects-down"), &spin::Store::Sqlite, true);
    let mut vars = s3_variables(g, 0, "down/");
    vars.push(("default_upstream", format!("http://{down}")));
    let proxy = start(&app, "a", &vars);
    assert_eq!(
        pulled_digest(&proxy.url(), "objects/down:v1", None, false),
        image.digest
    );
    // Two layers and the config, each one object, once checked.
    settles("three blobs in the bucket", || {
        stored(g, "down/").0.len() == 3
    });
    registry::stop(&e.dir, "objects-down");
    let name = format!("{}/objects/down:v1", proxy.addr);
    plain(&name, &image.digest).run();
    let (blobs, parts) = stored(g, "down/");
    assert_eq!((blobs.len(), parts), (3, 0), "{blobs:?}");
    let layer = format!("{}/v2/objects/down/blobs/{}", proxy.url(), image.layers[0]);
    let r = get(&layer, &[]);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    assert_eq!(registry::sha256(&r.body), image.layers[0]);
    // Bytes in the bucket: the blobs', not a byte more.
    let kept: u64 = blobs
        .iter()
        .filter(|(k, _)| k.contains(&image.layers[0]))
        .map(|(_, size)| size)
        .sum();
    assert_eq!(kept, r.body.len() as u64);
    let ranged = get(&layer, &[("range", "bytes=10-19")]);
    assert_eq!((ranged.status, &ranged.body[..]), (206, &r.body[10..20]));
    let head = send("HEAD", &layer, &[], "");
    assert_eq!(
        head.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    proxy.stop();
}

#[test]
fn a_cached_blob_is_a_redirect_to_a_presigned_url() {
    let g = garage();
    // Two instances on one cache store and one bucket: one streams, one
    // redirects.
    let (image, app, mut vars) = open_image_and_app("redirect");
    let streams = start(&app, "stream", &vars);
    vars.push(("blob_delivery", "redirect".into()));
    let redirects = start(&app, "redirect", &vars);
    let path = format!("/v2/objects/redirect/blobs/{}", image.layers[1]);
    let r = get(&format!("{}{path}", streams.url()), &[]);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    settles("the blob in the bucket", || {
        stored(g, "redirect/").0.len() == 1
    });

    let before = upstream_blob_gets(&image.layers[1]);
    let r = get(&format!("{}{path}", redirects.url()), &[]);
    assert_eq!(r.status, 307, "{}", r.text());
    let location = r.header("location").unwrap().to_string();
    assert!(location.starts_with(&g.endpoints[0]), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert!(!location.contains(&g.secret), "the secret is in the URL");
    assert_eq!(r.header("x-cache"), Some("HIT"));
    let blob = get(&location, &[]);
    assert_eq!(blob.status, 200);
    assert_eq!(registry::sha256(&blob.body), image.layers[1]);
    assert_eq!(
        upstream_blob_gets(&image.layers[1]),
        before,
        "went upstream"
    );
    streams.stop();
    redirects.stop();
}

#[test]
fn a_crowd_on_two_instances_sharing_redis_and_a_bucket_fetches_once() {
    let e = env();
    let g = garage();
    let dir = e.dir.join("objects-crowd");
    let (redis, port) = support::redis::start(&dir);
    let app = spin::derive_app(&dir.join("app"), &spin::Store::Redis(port), true);
    let mut vars = s3_variables(g, 0, "crowd/");
    vars.push(("default_upstream", format!("http://{}", e.open)));
    let instances = [start(&app, "a", &vars), start(&app, "b", &vars)];
    let size = 48 << 20;
    let digest = rt().block_on(registry::push_big_blob(
        e.open,
        "objects/crowd",
        97,
        size as u64,
    ));
    let urls: Vec<String> = instances.iter().map(spin::Instance::url).collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let staged = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(staged_keys(port));
            }
            most
        })
    };
    crowd(&urls, "objects/crowd", &digest, size, 16);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        upstream_blob_gets(&digest),
        1,
        "the crowd fetched more than once"
    );
    settles("the blob in the bucket, its parts gone", || {
        let (blobs, parts) = stored(g, "crowd/");
        blobs.len() == 1 && parts == 0
    });
    assert_eq!(stored(g, "crowd/").0[0].1, size as u64);
    // The copy staged a bounded window in Redis for its followers (four
    // parts and the note that it is followed), and it went with the copy.
    let seen = staged.join().unwrap();
    assert!((1..=5).contains(&seen), "{seen} keys staged at once");
    settles("the staged parts gone from Redis", || {
        staged_keys(port) == 0
    });
    for i in &instances {
        let r = get(&format!("{}/v2/objects/crowd/blobs/{digest}", i.url()), &[]);
        assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
        assert_eq!(registry::sha256(&r.body), digest);
    }
    for i in &instances {
        i.stop();
    }
    redis.stop();
}

/// Keys staged for followers in the cache store (database 1 of the Redis on
/// `port`).
fn staged_keys(port: u16) -> usize {
    let port = port.to_string();
    let scan = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &port,
            "-n",
            "1",
            "--scan",
            "--pattern",
            "cache/stage/*",
        ])
        .output()
        .expect("redis-cli");
    assert!(scan.status.success(), "redis-cli failed");
    String::from_utf8_lossy(&scan.stdout).lines().count()
}

#[test]
fn a_three_node_cluster_that_loses_a_node_during_pulls_loses_nothing() {
    let e = env();
    let cluster = Garage::start(&e.dir.join("garage-cluster"), 3);
    let app = spin::derive_app(&e.dir.join("objects-cluster"), &spin::Store::Sqlite, true);
    let mut vars = s3_variables(&cluster, 0, "cluster/");
    vars.push(("default_upstream", format!("http://{}", e.open)));
    let proxy = start(&app, "a", &vars);
    let size = 32 << 20;
    let digest = rt().block_on(registry::push_big_blob(
        e.open,
        "objects/cluster",
        93,
        size as u64,
    ));
    let url = proxy.url();
    std::thread::scope(|s| {
        let pulls = s.spawn(|| {
            crowd(
                std::slice::from_ref(&url),
                "objects/cluster",
                &digest,
                size,
                6,
            )
        });
        std::thread::sleep(std::time::Duration::from_millis(150));
        cluster.nodes[2].stop();
        pulls.join().unwrap();
    });
    // A request to the cluster may wait out the lost node (bounded by the
    // proxy's 30 s for each bucket request). Committed: in the bucket and
    // in the index (a HEAD that hits).
    let blob_url = format!("{url}/v2/objects/cluster/blobs/{digest}");
    let committed = || {
        cluster.keys(0, "cluster/blobs/").len() == 1
            && send("HEAD", &blob_url, &[], "").header("x-cache") == Some("HIT")
    };
    for _ in 0..400 {
        if committed() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = proxy.component_log();
    assert!(committed(), "{:?} {log}", cluster.keys(0, "cluster/"));
    // Read back with the node still gone: two of three answer for it.
    let r = get(&blob_url, &[]);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    assert_eq!(registry::sha256(&r.body), digest);
    proxy.stop();
    for node in &cluster.nodes {
        node.stop();
    }
}

#[test]
fn a_missing_bucket_setting_is_named_and_manifests_still_serve() {
    let e = env();
    let app = spin::derive_app(&e.dir.join("objects-unset"), &spin::Store::Sqlite, true);
    let upstream = format!("http://{}", e.open);
    let vars = [
        ("default_upstream", upstream.as_str()),
        ("blob_store", "s3"),
        ("s3_endpoint", "http://127.0.0.1:1"),
    ];
    let proxy = spin::Instance::start(&app, "a", &vars);
    let single = &e.single;
    let r = get(
        &format!("{}/v2/test/single/blobs/{}", proxy.url(), single.layers[0]),
        &[],
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("s3_region"), "{}", r.text());
    let m = get(
        &format!("{}/v2/test/single/manifests/v1", proxy.url()),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(m.status, 200);
    proxy.stop();
}

#[test]
fn the_hosted_profile_copies_a_miss_into_the_bucket_then_redirects() {
    let g = garage();
    let (image, app, mut vars) = open_image_and_app("hosted");
    vars.push(("blob_delivery", "redirect".into()));
    vars.push(("kv_max_keys", "1000".into()));
    let proxy = start(&app, "a", &vars);
    let url = format!(
        "{}/v2/objects/hosted/blobs/{}",
        proxy.url(),
        image.layers[0]
    );
    for outcome in ["MISS", "HIT"] {
        let r = get(&url, &[]);
        assert_eq!(
            (r.status, r.header("x-cache")),
            (307, Some(outcome)),
            "{}",
            r.text()
        );
        let location = r.header("location").unwrap().to_string();
        assert!(location.starts_with(&g.endpoints[0]), "{location}");
        let blob = get(&location, &[]);
        assert_eq!(registry::sha256(&blob.body), image.layers[0]);
    }
    assert_eq!(
        upstream_blob_gets(&image.layers[0]),
        1,
        "more than the copy went upstream"
    );
    assert_eq!(stored(g, "hosted/"), (stored(g, "hosted/").0, 0));
    proxy.stop();
}

#[test]
fn the_hosted_profile_prefetches_into_the_bucket_within_its_time_limit() {
    let e = env();
    let g = garage();
    let image = rt().block_on(registry::push_image(
        e.open,
        "objects/warm",
        "v1",
        "objects-warm",
        "amd64",
    ));
    // Each blob takes 1.2 s to come: past a 1 s limit after the first.
    let slow = rt().block_on(support::fronts::slow(
        e.open,
        std::time::Duration::from_millis(1200),
    ));
    let app = spin::derive_app(&e.dir.join("objects-warm"), &spin::Store::Sqlite, true);
    let mut vars = s3_variables(g, 0, "warm/");
    vars.extend([
        ("default_upstream", format!("http://{slow}")),
        ("blob_delivery", "redirect".into()),
        ("kv_max_keys", "1000".into()),
        ("prefetch_time_limit", "1".into()),
        ("admin_token", support::ADMIN_TOKEN.into()),
    ]);
    let proxy = start(&app, "a", &vars);
    let prefetch = || {
        let r = send(
            "POST",
            &format!("{}/_registry-proxy/cache/prefetch", proxy.url()),
            &[("authorization", &format!("Bearer {}", support::ADMIN_TOKEN))],
            r#"{"image": "objects/warm:v1"}"#,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let last = r.text().lines().last().unwrap().to_string();
        serde_json::from_str::<serde_json::Value>(&last).unwrap()
    };
    // Three calls: each starts what it can within its second and says
    // what is left; the next goes on from there.
    let first = prefetch();
    assert_eq!(
        (first["complete"].as_bool(), first["left"].as_u64()),
        (Some(false), Some(2)),
        "{first}"
    );
    assert!(first["next"].is_string());
    let second = prefetch();
    assert_eq!(
        (second["already"].as_u64(), second["left"].as_u64()),
        (Some(2), Some(1)),
        "{second}"
    );
    let third = prefetch();
    assert_eq!(
        (
            third["already"].as_u64(),
            third["cached"].as_u64(),
            third["complete"].as_bool()
        ),
        (Some(3), Some(1), Some(true)),
        "{third}"
    );
    settles("three blobs in the bucket", || {
        stored(g, "warm/").0.len() == 3
    });
    for layer in &image.layers {
        let r = get(
            &format!("{}/v2/objects/warm/blobs/{layer}", proxy.url()),
            &[],
        );
        assert_eq!(
            (r.status, r.header("x-cache")),
            (307, Some("HIT")),
            "{}",
            r.text()
        );
    }
    proxy.stop();
}
