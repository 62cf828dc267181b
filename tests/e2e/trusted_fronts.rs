//! The login throttle behind a front (finding 2 of the third review):
//! every connection comes from 127.0.0.1, as behind a TLS front on the
//! same machine. Named in `trusted_proxies`, the front's `X-Forwarded-For`
//! tells the clients apart; not named, it is ignored.

use super::common::*;
use support::{env, spin};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn behind_a_trusted_front_one_clients_guesses_throttle_only_that_client() {
    let e = env();
    let app = spin::derive_app(&e.dir.join("trusted-front-app"), &spin::Store::Sqlite, true);
    let proxy = spin::Instance::start(
        &app,
        "trusted-front",
        &[
            ("default_upstream", &format!("http://{}", e.open)),
            ("admin_token", support::ADMIN_TOKEN),
            ("metrics_token", support::METRICS_TOKEN),
            ("trusted_proxies", "127.0.0.1, 10.0.0.0/8"),
        ],
    );
    let admin = format!("{}/_registry-proxy", proxy.url());
    let routes = format!("{admin}/routes");
    // Mallory's guesses, each with a forged address left of the front's.
    let statuses: Vec<u16> = (0..12)
        .map(|n| {
            let xff = format!("203.0.113.{n}, 198.51.100.66");
            let h = [("authorization", bearer("guess")), ("x-forwarded-for", xff)];
            get(&routes, &pairs(&h)).status
        })
        .collect();
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 2], "{statuses:?}");
    // Through a second trusted hop, still Mallory.
    let chained = [
        ("authorization", bearer(support::ADMIN_TOKEN)),
        ("x-forwarded-for", "198.51.100.66, 10.1.2.3".to_string()),
    ];
    assert_eq!(get(&routes, &pairs(&chained)).status, 429);
    // The operator, another client behind the same front, gets in.
    let operator = |token: &str| {
        [
            ("authorization", bearer(token)),
            ("x-forwarded-for", "192.0.2.10".to_string()),
        ]
    };
    let right = get(&routes, &pairs(&operator(support::ADMIN_TOKEN)));
    assert_eq!(right.status, 200, "{}", right.text());
    let metrics = get(
        &format!("{admin}/metrics"),
        &pairs(&operator(support::METRICS_TOKEN)),
    );
    assert_eq!(metrics.status, 200);
    // RFC 7239's Forwarded, from a front that writes that instead.
    let forwarded = [
        ("authorization", bearer(support::ADMIN_TOKEN)),
        (
            "forwarded",
            "for=\"[2001:db8::10]:4711\";proto=https".to_string(),
        ),
    ];
    assert_eq!(get(&routes, &pairs(&forwarded)).status, 200);
    proxy.stop();
}

#[test]
fn without_trusted_proxies_a_fresh_forwarded_address_gains_nothing() {
    let e = env();
    let app = spin::derive_app(
        &e.dir.join("untrusted-front-app"),
        &spin::Store::Sqlite,
        true,
    );
    let proxy = spin::Instance::start(
        &app,
        "untrusted-front",
        &[
            ("default_upstream", &format!("http://{}", e.open)),
            ("admin_token", support::ADMIN_TOKEN),
        ],
    );
    let routes = format!("{}/_registry-proxy/routes", proxy.url());
    let statuses: Vec<u16> = (0..12)
        .map(|n| {
            let h = [
                ("authorization", bearer("guess")),
                ("x-forwarded-for", format!("198.51.100.{n}")),
                ("forwarded", format!("for=198.51.100.{n}")),
            ];
            get(&routes, &pairs(&h)).status
        })
        .collect();
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 2], "{statuses:?}");
    proxy.stop();
}

#[test]
fn a_trusted_proxies_list_that_does_not_parse_is_named_never_off() {
    let e = env();
    let app = spin::derive_app(&e.dir.join("bad-front-app"), &spin::Store::Sqlite, true);
    let proxy = spin::Instance::start(
        &app,
        "bad-front",
        &[
            ("default_upstream", &format!("http://{}", e.open)),
            ("admin_token", support::ADMIN_TOKEN),
            ("trusted_proxies", "127.0.0.1, front.internal"),
        ],
    );
    let routes = format!("{}/_registry-proxy/routes", proxy.url());
    let r = get(&routes, &[("authorization", &bearer(support::ADMIN_TOKEN))]);
    assert_eq!(r.status, 503);
    let text = r.text();
    assert!(
        text.contains("front.internal") && text.contains("is neither"),
        "{text}"
    );
    proxy.stop();
}

fn pairs<'a>(headers: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
