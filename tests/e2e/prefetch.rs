//! Warming the cache before a rollout (issue 24): a prefetch through the
//! admin API, pulled by docker, containerd and podman once the upstream is
//! gone; pins that outlive eviction; `blob_ttl` collected by `gc`; bad
//! requests named by field.

use super::common::*;
use super::journeys::{clients, plain};
use serde_json::{Value, json};
use support::{ADMIN_TOKEN, OPEN, env, registry, rt, spin};

fn admin(proxy: &str, method: &str, path: &str, body: &str) -> support::http::Reply {
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    send(
        method,
        &format!("{proxy}/_registry-proxy{path}"),
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        body,
    )
}

/// A prefetch's lines, each checked to be JSON.
fn prefetch(proxy: &str, body: Value) -> Vec<Value> {
    let r = admin(proxy, "POST", "/cache/prefetch", &body.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    r.text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn summary(lines: &[Value]) -> &Value {
    let last = lines.last().expect("a summary line");
    assert_eq!(last["kind"], "summary", "{lines:#?}");
    last
}

fn outcomes(lines: &[Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|l| l["kind"] != "summary")
        .map(|l| {
            (
                l["kind"].as_str().unwrap().into(),
                l["outcome"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn prefetched_images_are_pulled_by_every_client_with_the_upstream_stopped() {
    let e = env();
    let up = rt().block_on(registry::start(&e.dir, "prefetch-up", ""));
    let (index, platforms) = rt().block_on(registry::push_index(up, "team/multi", "v1"));
    let big = rt().block_on(registry::push_big_image(up, "team/big", "v1", 24, 24 << 20));
    let app = spin::derive_app(&e.dir.join("prefetch-app"), &spin::Store::Sqlite, true);
    let upstream = format!("http://{up}");
    let vars = [
        ("default_upstream", upstream.as_str()),
        ("admin_token", ADMIN_TOKEN),
    ];
    let proxy = spin::Instance::start(&app, "prefetch", &vars);

    let body =
        json!({"image": format!("{}/team/multi:v1", proxy.addr), "platforms": ["linux/amd64"]});
    let lines = prefetch(&proxy.url(), body.clone());
    let amd64 = &platforms[0];
    assert_eq!(
        outcomes(&lines),
        [
            ("index", "cached"),
            ("manifest", "cached"),
            ("blob", "cached"),
            ("blob", "cached"),
            ("blob", "cached"),
        ]
        .map(|(k, o)| (k.to_string(), o.to_string())),
        "{lines:#?}"
    );
    assert_eq!(lines[0]["digest"], index.digest.as_str());
    assert_eq!(lines[1]["digest"], amd64.digest.as_str());
    assert_eq!(lines[1]["platform"], "linux/amd64");
    let s = summary(&lines);
    assert_eq!(
        (s["complete"].as_bool(), s["failed"].as_u64()),
        (Some(true), Some(0))
    );
    assert!(s["bytes"].as_u64().unwrap() > 0);
    assert!(
        !lines
            .iter()
            .any(|l| l["digest"] == platforms[1].digest.as_str())
    );

    // Again: all there already, and not one upstream GET more.
    let gets = || {
        registry::access_log(&e.dir, "prefetch-up", "team/multi")
            .iter()
            .filter(|l| l.starts_with("GET"))
            .count()
    };
    let before = gets();
    let again = prefetch(&proxy.url(), body);
    assert!(
        outcomes(&again).iter().all(|(_, o)| o == "already"),
        "{again:#?}"
    );
    assert_eq!(gets(), before, "a second prefetch asked the upstream again");

    let lines = prefetch(
        &proxy.url(),
        json!({"image": format!("{}/team/big:v1", proxy.addr)}),
    );
    assert_eq!(summary(&lines)["complete"], true, "{lines:#?}");
    assert!(summary(&lines)["bytes"].as_u64().unwrap() > 24 << 20);

    registry::stop(&e.dir, "prefetch-up");
    let multi = format!("{}/team/multi:v1", proxy.addr);
    plain(&multi, &index.digest).run();
    plain(&format!("{}/team/big:v1", proxy.addr), &big.digest).run();

    // What was not prefetched fails, cleanly.
    let arm64 = format!(
        "{}/v2/team/multi/manifests/{}",
        proxy.url(),
        platforms[1].digest
    );
    let r = get(&arm64, &[("accept", ACCEPT_ALL)]);
    assert!(r.status >= 500, "{} {}", r.status, r.text());
    assert!(!error_code(&r).is_empty(), "no OCI error: {}", r.text());
    let out = clients().docker(&["pull", "--platform", "linux/arm64", &multi]);
    assert!(!out.status.success(), "pulled a platform never cached");
    proxy.stop();
}

#[test]
fn pins_outlive_an_eviction_and_unread_blobs_go_at_gc() {
    let e = env();
    let up = rt().block_on(registry::start(&e.dir, "pins-up", ""));
    let kept = rt().block_on(registry::push_big_image(
        up,
        "pins/kept",
        "v1",
        31,
        800 << 10,
    ));
    let others: Vec<_> = (0..3)
        .map(|i| {
            rt().block_on(registry::push_big_image(
                up,
                "pins/other",
                &format!("v{i}"),
                40 + i,
                800 << 10,
            ))
        })
        .collect();
    let app = spin::derive_app(&e.dir.join("pins-app"), &spin::Store::Sqlite, true);
    let upstream = format!("http://{up}");
    let vars = [
        ("default_upstream", upstream.as_str()),
        ("admin_token", ADMIN_TOKEN),
        ("cache_max_size", "2MiB"),
    ];
    let proxy = spin::Instance::start(&app, "pins", &vars);
    let cache = spin::SqliteStore::of(&app, "cache");
    let cached = |digest: &str| {
        cache
            .keys()
            .iter()
            .any(|k| k.starts_with("cache/blob/") && k.ends_with(digest))
    };

    let r = admin(&proxy.url(), "POST", "/cache/pins/pins/kept:v1", "");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["pin"]["pinned"], true);
    // A pin the bound cannot hold beside it is refused.
    let r = admin(&proxy.url(), "POST", "/cache/pins/pins/other:v0", "");
    let r2 = admin(&proxy.url(), "POST", "/cache/pins/pins/other:v1", "");
    assert!(
        r.status == 201 && r2.status == 409,
        "{} {}",
        r.status,
        r2.text()
    );
    assert!(r2.text().contains("cache_max_size"), "{}", r2.text());
    assert_eq!(
        admin(&proxy.url(), "DELETE", "/cache/pins/pins/other:v0", "").status,
        204
    );

    // Pulling the others (three times the bound) evicts all but the pin.
    for i in 0..others.len() {
        let lines = prefetch(&proxy.url(), json!({"image": format!("pins/other:v{i}")}));
        assert!(summary(&lines)["failed"] == 0, "{lines:#?}");
    }
    settles("evicting the first of the others", || {
        !cached(&others[0].layers[0])
    });
    assert!(cached(&kept.layers[0]), "the pinned layer was evicted");

    // blob_ttl: unread blobs go at gc, pinned ones stay.
    let route = json!({"upstream": upstream, "cache": {"blob_ttl": 1}});
    let r = admin(
        &proxy.url(),
        "PUT",
        &format!("/routes/{}", proxy.addr),
        &route.to_string(),
    );
    assert!(r.status < 300, "{}", r.text());
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = admin(&proxy.url(), "POST", "/cache/gc", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let freed = &r.json()["freed"];
    assert!(freed["objects"].as_u64().unwrap() >= 1, "{}", r.text());
    assert!(
        freed["bytes"].as_u64().unwrap() >= 800 << 10,
        "{}",
        r.text()
    );
    assert!(!cached(&others[2].layers[0]), "an unread blob stayed");
    assert!(cached(&kept.layers[0]), "gc removed the pinned layer");

    let listed = admin(&proxy.url(), "GET", "/cache/repositories", "").json();
    let repos = listed["repositories"].as_array().unwrap();
    let kept_repo = repos
        .iter()
        .find(|r| r["name"] == "pins/kept")
        .expect("listed");
    assert_eq!(
        (kept_repo["pinned"].as_bool(), kept_repo["tags"][0].as_str()),
        (Some(true), Some("v1"))
    );

    registry::stop(&e.dir, "pins-up");
    let manifest = format!("{}/v2/pins/kept/manifests/v1", proxy.url());
    assert_eq!(get(&manifest, &[("accept", ACCEPT_ALL)]).status, 200);
    let layer = format!("{}/v2/pins/kept/blobs/{}", proxy.url(), kept.layers[0]);
    let r = get(&layer, &[]);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    proxy.stop();
}

#[test]
fn a_prefetch_refuses_bad_input_naming_the_field() {
    let e = env();
    let route = json!({"upstream": format!("http://{}", e.open), "deny": ["secret/**"]});
    e.store
        .set("route/denies.test", route.to_string().as_bytes());
    let proxy = e.proxy(OPEN);
    for (body, field) in [
        (json!({"image": "Team/x:1"}), "image"),
        (
            json!({"image": "test/single:v1", "platforms": ["linux/x86_64"]}),
            "platforms[0]",
        ),
        (json!({"image": "nowhere.test/x/y:1"}), "image"),
        (json!({"image": "denies.test/secret/x:1"}), "image"),
        (json!({"image": "test/single:v1", "pinned": true}), "pinned"),
        (json!({"platforms": []}), "image"),
        (
            json!({"image": "test/single:v1", "referrers": "yes"}),
            "referrers",
        ),
    ] {
        let r = admin(&proxy, "POST", "/cache/prefetch", &body.to_string());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(
            r.json()["errors"][0]["detail"]["field"],
            field,
            "{body}: {}",
            r.text()
        );
    }
    let r = admin(&proxy, "POST", "/cache/prefetch", "{not json");
    assert_eq!(
        (r.status, r.json()["errors"][0]["detail"]["field"].as_str()),
        (400, Some("body"))
    );
    let r = send(
        "POST",
        &format!("{proxy}/_registry-proxy/cache/prefetch"),
        &[],
        "{}",
    );
    assert_eq!(r.status, 401);
}
