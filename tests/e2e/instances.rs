//! Several Spin instances sharing one Redis, as SpinKube or two `spin up`s
//! behind a load balancer run them: a route stored through one serves on
//! the other, the cache one filled answers on the other, and the counters
//! add up across them.

use super::common::*;
use support::{env, registry, rt, spin};

/// How the instances reach the Redis they share.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// Spin's key-value store on Redis (runtime-config.toml's Redis tables).
    KeyValue,
    /// `stores = redis` at an IP address: a socket of the component's own.
    Socket,
    /// `stores = redis` at a host name: Spin's outbound Redis.
    Outbound,
}

#[test]
fn two_instances_sharing_redis_share_routes_cache_and_counters() {
    share_through_redis(Via::KeyValue);
}

#[test]
fn two_instances_on_stores_redis_share_routes_cache_and_counters() {
    share_through_redis(Via::Socket);
}

#[test]
fn two_instances_on_stores_redis_by_host_name_share_routes_cache_and_counters() {
    share_through_redis(Via::Outbound);
}

fn share_through_redis(via: Via) {
    let e = env();
    let dir = e.dir.join(format!("instances-{via:?}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (redis, port) = support::redis::start(&dir);
    // The start's own probe of the port is one.
    let time_waits = time_wait_to(port);
    let store = match via {
        Via::KeyValue => spin::Store::Redis(port),
        Via::Socket | Via::Outbound => spin::Store::Sqlite,
    };
    let app = spin::derive_app(&dir.join("app"), &store, true);
    let address = match via {
        Via::Outbound => format!("localhost:{port}"),
        _ => format!("127.0.0.1:{port}"),
    };
    let mut variables = vec![
        ("default_upstream", ""),
        ("admin_token", support::ADMIN_TOKEN),
    ];
    if !matches!(via, Via::KeyValue) {
        variables.extend([("stores", "redis"), ("redis_address", address.as_str())]);
    }
    let a = spin::Instance::start(&app, "a", &variables);
    let b = spin::Instance::start(&app, "b", &variables);
    let admin = format!("Bearer {}", support::ADMIN_TOKEN);
    let auth = [("authorization", admin.as_str())];

    // A route stored through a's admin API serves on b.
    let route = serde_json::json!({"upstream": format!("http://{}", e.open)}).to_string();
    let put = send(
        "PUT",
        &format!("{}/_registry-proxy/routes/shared.test", a.url()),
        &auth,
        &route,
    );
    assert_eq!(put.status, 201, "{}", put.text());
    // Each way its own repository: the upstream's log counts per name.
    let repo = match via {
        Via::KeyValue => "shared/one",
        Via::Socket => "shared/two",
        Via::Outbound => "shared/three",
    };
    let image = rt().block_on(registry::push_image(e.open, repo, "v1", repo, "amd64"));
    let host = [("host", "shared.test"), ("accept", ACCEPT_ALL)];
    let manifest = format!("/v2/{repo}/manifests/{}", image.digest);
    let blob = format!("/v2/{repo}/blobs/{}", image.layers[0]);

    // The cache a fills answers on b, without the upstream.
    for path in [&manifest, &blob] {
        let r = get(&format!("{}{path}", a.url()), &host);
        assert_eq!(
            (r.status, r.header("x-cache")),
            (200, Some("MISS")),
            "{path}"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let upstream_before = upstream_log("open", repo).len();
    for path in [&manifest, &blob] {
        let r = get(&format!("{}{path}", b.url()), &host);
        assert_eq!(
            (r.status, r.header("x-cache")),
            (200, Some("HIT")),
            "{path}"
        );
    }
    let r = get(&format!("{}{manifest}", b.url()), &host);
    assert_eq!(r.body, image.manifest);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        upstream_log("open", repo).len(),
        upstream_before,
        "b went upstream for what a had cached"
    );

    // Both instances count into the same counters: 2 misses, 3 hits.
    let figures =
        |i: &spin::Instance| get(&format!("{}/_registry-proxy/cache", i.url()), &auth).json();
    for i in [&a, &b] {
        let f = figures(i);
        assert_eq!(
            (f["misses"].as_u64(), f["hits"].as_u64()),
            (Some(2), Some(3)),
            "{f}"
        );
    }
    // And their metrics are the same, whichever instance is scraped.
    for i in [&a, &b] {
        let m = metric_values(&get(&format!("{}/_registry-proxy/metrics", i.url()), &auth).text());
        let value = |k: &str| m.get(k).copied();
        assert_eq!(
            value(r#"registry_proxy_cache_total{outcome="hit"}"#),
            Some(3)
        );
        assert_eq!(
            value(r#"registry_proxy_cache_total{outcome="miss"}"#),
            Some(2)
        );
        let manifests = r#"registry_proxy_requests_total{route="shared.test",endpoint="manifest",status="2xx"}"#;
        assert_eq!(value(manifests), Some(3));
    }
    // Over a socket, Redis closes each request's connection (QUIT), so
    // the proxy's side keeps no TIME-WAIT, which would hold an ephemeral
    // port for a minute per request. Spin's outbound Redis closes from
    // the proxy's side.
    if let Via::Socket = via {
        assert!(
            time_wait_to(port) <= time_waits,
            "connections the proxy closed: {} TIME-WAIT",
            time_wait_to(port)
        );
    }
    a.stop();
    b.stop();
    redis.stop();
}

/// Connections to local port `port` the connecting side closed first, from
/// /proc/net/tcp (FIN-WAIT-1, FIN-WAIT-2 and TIME-WAIT: states 04 to 06;
/// the remote address is the third column).
fn time_wait_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            Some((*cols.get(2)?, *cols.get(3)?))
        })
        .filter(|&(peer, state)| peer == remote && ["04", "05", "06"].contains(&state))
        .count()
}
