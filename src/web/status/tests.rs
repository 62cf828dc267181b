use super::session::session_valid;
use super::*;

const TOKEN: &str = "the-admin-token";
const NOW: u64 = 1_700_000_000;

fn headers(pairs: &[(&str, &str)]) -> Headers {
    let mut h = Headers::default();
    for (n, v) in pairs {
        h.push(n, *v);
    }
    h
}

fn set_cookie(r: &Response<()>) -> &str {
    r.headers.get("set-cookie").unwrap()
}

/// Finding 2: the cookie holds a signed session, never the admin token, and
/// the admin token itself is no longer a session.
#[test]
fn the_cookie_holds_a_signed_session_not_the_admin_token() {
    let value = new_session(TOKEN, NOW, [1, 2]);
    assert!(!value.contains(TOKEN), "{value}");
    let fields: Vec<&str> = value.split('.').collect();
    assert_eq!(fields[..2], ["v1", &(NOW + 12 * 3600).to_string()]);
    assert_eq!(fields[2], "00000000000000010000000000000002");
    assert_eq!(fields[3].len(), 64);
    assert!(session_valid(&value, TOKEN, NOW));
    assert!(session_valid(&value, TOKEN, NOW + 12 * 3600 - 1));
    // What the cookie held before: the raw admin token.
    assert!(!session_valid(TOKEN, TOKEN, NOW));
    assert_ne!(value, new_session(TOKEN, NOW, [1, 3]));
    let r: Response<()> = to_page("/_registry-proxy", "http://h", &value);
    let cookie = set_cookie(&r);
    assert!(
        cookie.starts_with(&format!("{COOKIE}={value};")),
        "{cookie}"
    );
    for flag in [
        "; Path=/_registry-proxy",
        "; HttpOnly",
        "; SameSite=Strict",
        "; Max-Age=43200",
    ] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"));
    let r: Response<()> = to_page("/p", "https://h", &value);
    assert!(set_cookie(&r).contains("; Secure"));
}

/// Finding 2: expired, altered, foreign (another admin token: rotation) or
/// malformed values are refused like no cookie.
#[test]
fn expired_forged_or_foreign_sessions_are_refused() {
    let value = new_session(TOKEN, NOW, [7, 8]);
    assert!(!session_valid(&value, TOKEN, NOW + 12 * 3600));
    assert!(!session_valid(&value, "a-new-admin-token", NOW));
    let (signed, tag) = value.rsplit_once('.').unwrap();
    let later = signed.replace(&(NOW + 43200).to_string(), &(NOW + 86400).to_string());
    assert!(!session_valid(
        &format!("{later}.{tag}"),
        TOKEN,
        NOW + 43200
    ));
    let flipped = if tag.starts_with('0') { "1" } else { "0" };
    let forged = format!("{signed}.{flipped}{}", &tag[1..]);
    assert!(!session_valid(&forged, TOKEN, NOW));
    assert!(!session_valid(&value.replacen("v1", "v2", 1), TOKEN, NOW));
    // A validly signed value that claims more than 12 hours.
    let long = new_session(TOKEN, NOW + 3600, [7, 8]);
    assert!(!session_valid(&long, TOKEN, NOW));
    for bad in ["", ".", "v1", "v1.1.2", "v1.x.y.zz", &format!("{value}.00")] {
        assert!(!session_valid(bad, TOKEN, NOW), "{bad:?}");
    }
    // Sign-out still clears the cookie.
    let out: Response<()> = sign_out(&Headers::default(), "/p", "http://h");
    assert!(set_cookie(&out).starts_with(&format!("{COOKIE}=;")));
    assert!(set_cookie(&out).contains("; Max-Age=0"));
}

/// Finding 2: another site's form post is refused (before the login
/// throttle counts anything); the proxy's own page, and clients that are not
/// browsers, are let through.
#[test]
fn cross_site_sign_ins_are_refused() {
    let own = "http://127.0.0.1:3000";
    let refused = |pairs: &[(&str, &str)]| {
        refuse_cross_site::<()>(&headers(pairs), "/p", own, "sign-in").map(|r| r.status)
    };
    assert_eq!(refused(&[]), None);
    assert_eq!(refused(&[("sec-fetch-site", "same-origin")]), None);
    assert_eq!(refused(&[("sec-fetch-site", "none")]), None);
    assert_eq!(refused(&[("origin", "http://127.0.0.1:3000")]), None);
    assert_eq!(refused(&[("origin", "HTTP://127.0.0.1:3000")]), None);
    let same = [("sec-fetch-site", "same-origin"), ("origin", own)];
    assert_eq!(refused(&same), None);
    assert_eq!(refused(&[("sec-fetch-site", "cross-site")]), Some(403));
    assert_eq!(refused(&[("sec-fetch-site", "same-site")]), Some(403));
    assert_eq!(refused(&[("origin", "https://evil.example")]), Some(403));
    // Behind a TLS front the proxy may see http where the browser saw
    // https: the host is what tells another site.
    assert_eq!(refused(&[("origin", "https://127.0.0.1:3000")]), None);
    assert_eq!(refused(&[("origin", "http://127.0.0.2:3000")]), Some(403));
    assert_eq!(refused(&[("origin", "null")]), Some(403));
    let mixed = [("sec-fetch-site", "same-origin"), ("origin", "http://x")];
    assert_eq!(refused(&mixed), Some(403));
    // The default port is the same origin, as browsers leave it out.
    let r = refuse_cross_site::<()>(
        &headers(&[("origin", "https://r.example.com")]),
        "/p",
        "https://r.example.com:443",
        "sign-in",
    );
    assert!(r.is_none());
    let page =
        refuse_cross_site::<()>(&headers(&[("origin", "http://x")]), "/p", own, "sign-in").unwrap();
    assert!(page.headers.get("set-cookie").is_none());
}

// The page itself.

use crate::host::Kv;
use crate::host::memory::{Answer, MemoryHost};
use crate::routing::route;
use crate::telemetry::metrics::{CACHE, REQUESTS};
use crate::web::status_page::{RepositoryRow, RouteRow};

/// 14:05 UTC on 14 November 2023, a minute's start.
const MINUTE: u64 = 1_699_970_700;

fn repository(name: &str, bytes: u64, last_read: Option<u64>, pinned: bool) -> RepositoryRow {
    RepositoryRow {
        name: name.into(),
        tags: vec!["latest".into(), "v1".into()],
        bytes,
        last_read,
        pinned,
    }
}

/// An hour with lookups in its last minute only.
fn status() -> Status {
    let mut minutes: Vec<Minute> = (0..60)
        .map(|i| Minute {
            at: MINUTE - (59 - i) * 60,
            ..Minute::default()
        })
        .collect();
    minutes[59].lookups = 4;
    minutes[59].hits = 3;
    Status {
        admin_path: "/_registry-proxy".into(),
        version: "9.8.7",
        default_upstream: "https://registry-1.docker.io".into(),
        routes: vec![RouteRow {
            name: "ghcr.example.com".into(),
            upstream: "https://ghcr.io/".into(),
            kind: "stored",
            requests: 12,
        }],
        cache_bytes: 3 << 20,
        cache_max: 10 << 30,
        repositories: Vec::new(),
        pins: Vec::new(),
        totals: stats::Stats {
            hits: 3,
            misses: 1,
            ..Default::default()
        },
        minutes,
        errors: vec![RecentError {
            time: MINUTE + 50,
            upstream: "<b>quay.io</b>".into(),
            route: Some("quay.example.com".into()),
            error: "status 503".into(),
        }],
        now: MINUTE + 60,
        store_kind: "redis".into(),
        blob_store: "s3".into(),
        blob_files_off: None,
        stores: vec![("routes", Ok(())), ("cache", Err("refused".into()))],
    }
}

/// The chart's SVG alone: the page's own `<title>` is not a bar's.
fn svg(html: &str) -> &str {
    let start = html.find("<svg").expect("a chart");
    &html[start..start + html[start..].find("</svg>").unwrap()]
}

#[test]
fn the_page_shows_routes_cache_and_errors() {
    let html = status_page::render(&status());
    assert!(html.contains(
        "<td><code>ghcr.example.com</code></td><td>stored</td><td><code>https://ghcr.io/</code></td><td class=\"n\">12</td>"
    ), "{html}");
    assert!(html.contains("3.0 MiB of 10.0 GiB"), "{html}");
    assert!(html.contains("hit ratio 75%"));
    assert!(html.contains("10s ago") && html.contains("&lt;b&gt;quay.io&lt;/b&gt;"));
    assert!(html.contains("cache: <strong>down</strong> (refused)"));
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("<link"));
}

#[test]
fn the_chart_has_a_scale_a_time_axis_and_a_titled_bar_a_minute() {
    let html = status_page::render(&status());
    let chart = svg(&html);
    for label in [
        ">0%<",
        ">50%<",
        ">100%<",
        ">60 min ago<",
        ">30 min ago<",
        ">now<",
    ] {
        assert!(chart.contains(label), "{label} missing: {chart}");
    }
    assert_eq!(chart.matches("<rect").count(), 60);
    assert_eq!(chart.matches("<title>").count(), 60);
    assert_eq!(chart.matches("</title></rect>").count(), 60);
    // The last minute's figures, at its UTC time; 75% of 100 px tall.
    assert!(
        chart.contains("height=\"75.0\"><title>14:05 UTC: 4 lookups, 3 hits, 75% hit</title>"),
        "{chart}"
    );
    assert!(chart.contains("<rect class=\"none\""));
    assert!(
        chart.contains("<title>13:06 UTC: no lookups</title>"),
        "{chart}"
    );
    assert_eq!(chart.matches("no lookups").count(), 59);
}

#[test]
fn the_page_names_the_default_upstream_or_none() {
    let html = status_page::render(&status());
    assert!(html.contains(
        "<p id=\"default-upstream\">Default upstream: <code>https://registry-1.docker.io</code></p>"
    ));
    let mut s = status();
    s.default_upstream = String::new();
    let html = status_page::render(&s);
    assert!(
        html.contains("<p id=\"default-upstream\">Default upstream: none"),
        "{html}"
    );
}

#[test]
fn the_page_names_its_version_and_the_stores_it_uses() {
    let html = status_page::render(&status());
    assert!(html.contains("<p id=\"version\">Version 9.8.7</p>"));
    assert!(html.contains("in <code>redis</code> stores"), "{html}");
    assert!(html.contains("blobs in <code>s3</code>"), "{html}");
    let host = MemoryHost::new(|_| unreachable_upstream());
    let s = gather(&host, "/p");
    assert_eq!(s.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        (s.store_kind.as_str(), s.blob_store.as_str()),
        ("spin", "files")
    );
    host.set_variable("stores", " redis ");
    host.set_variable("blob_store", "s3");
    let s = gather(&host, "/p");
    assert_eq!(
        (s.store_kind.as_str(), s.blob_store.as_str()),
        ("redis", "s3")
    );
    assert!(s.repositories.is_empty());
}

#[test]
fn a_blob_directory_that_cannot_be_written_is_said_on_the_page() {
    let mut host = MemoryHost::new(|_| unreachable_upstream());
    host.blob_directory = Some(std::env::temp_dir().join("registry-proxy-never-mounted"));
    let storage = crate::cache::blob_storage::open(&host).unwrap().unwrap();
    assert_eq!(storage.name(), "kv", "blobs go to the cache store instead");
    let html = status_page::render(&gather(&host, "/p"));
    assert!(
        html.contains("<strong>Blob files are off</strong>"),
        "{html}"
    );
    assert!(
        html.contains("--direct-mounts --allow-transient-write"),
        "{html}"
    );
    // Asked for by name, kv is not a fallback to warn of.
    host.set_variable("blob_store", "kv");
    assert!(!status_page::render(&gather(&host, "/p")).contains("Blob files are off"));
}

fn unreachable_upstream() -> Answer {
    Answer {
        status: 599,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// The bug: a proxy that routes by default_upstream (or built-in names)
/// alone listed no route at all.
#[test]
fn routes_seen_in_the_counters_are_listed_with_their_requests() {
    let host = MemoryHost::new(|_| unreachable_upstream());
    host.set_variable("default_upstream", "https://up.example");
    host.set_variable("custom_domain", "example.com");
    let stored = br#"{"upstream":"https://a.example"}"#;
    host.kv_set(&route::key_for("registry-a.test"), stored)
        .unwrap();
    let count = |labels: [&str; 3], n: i64| {
        let key = metrics::key(&REQUESTS, &labels);
        host.counters.increment(&key, n).unwrap();
    };
    count(["default", "manifest", "2xx"], 3);
    count(["default", "blob", "2xx"], 2);
    count(["default", "manifest", "4xx"], 1);
    count(["ghcr.io", "manifest", "2xx"], 4);
    count(["quay.example.com", "blob", "2xx"], 2);
    count(["registry-a.test", "manifest", "2xx"], 1);
    count(["none", "other", "4xx"], 9);
    host.counters
        .increment(&metrics::key(&CACHE, &["hit"]), 50)
        .unwrap();
    let s = gather(&host, "/p");
    assert_eq!(s.default_upstream, "https://up.example");
    let rows: Vec<(&str, &str, &str, u64)> = s
        .routes
        .iter()
        .map(|r| (r.name.as_str(), r.kind, r.upstream.as_str(), r.requests))
        .collect();
    assert_eq!(
        rows,
        [
            ("default", "default", "https://up.example", 6),
            ("ghcr.io", "built-in", "https://ghcr.io", 4),
            ("quay.example.com", "built-in", "https://quay.io", 2),
            ("registry-a.test", "stored", "https://a.example/", 1),
        ]
    );
    let html = status_page::render(&s);
    assert!(html.contains(
        "<td><code>default</code></td><td>default</td><td><code>https://up.example</code></td><td class=\"n\">6</td>"
    ), "{html}");
    assert!(html.contains("<code>ghcr.io</code></td><td>built-in</td>"));
}

#[test]
fn repositories_show_in_the_order_given_with_size_last_read_and_pin() {
    let mut s = status();
    let now = s.now;
    // Smallest first: the page must not re-sort what the caller sorted.
    s.repositories = vec![
        repository("library/small", 512, None, false),
        repository("library/big", 3 << 30, Some(now - 600), true),
    ];
    let html = status_page::render(&s);
    let small = html.find("library/small").expect("small listed");
    let big = html.find("library/big").expect("big listed");
    assert!(small < big, "the order given");
    assert!(html.contains(
        "<td><code>library/big</code></td><td><code>latest</code>, <code>v1</code></td><td class=\"n\">3.0 GiB</td><td>10 min ago</td><td>pinned</td>"
    ), "{html}");
    assert!(html.contains(
        "<td><code>library/small</code></td><td><code>latest</code>, <code>v1</code></td><td class=\"n\">512.0 B</td><td>never</td><td></td>"
    ), "{html}");
    assert!(!status_page::render(&status()).contains("<table id=\"repositories\""));
    assert!(status_page::render(&status()).contains("Nothing cached yet"));
}

#[test]
fn everything_the_page_embeds_is_escaped() {
    let mut s = status();
    s.default_upstream = "https://x/<i>".into();
    s.routes[0].name = "<r>".into();
    s.routes[0].upstream = "invalid: \"<u>\"".into();
    s.repositories = vec![repository("<repo>", 1, None, false)];
    s.repositories[0].tags = vec!["<tag>".into()];
    s.store_kind = "<kind>".into();
    s.version = "<v>";
    let html = status_page::render(&s);
    for raw in [
        "<i>", "<r>", "<u>", "<repo>", "<tag>", "<kind>", "<v>", "<b>",
    ] {
        assert!(!html.contains(raw), "{raw} unescaped");
    }
    for escaped in [
        "&lt;i&gt;",
        "&lt;r&gt;",
        "&quot;&lt;u&gt;&quot;",
        "&lt;repo&gt;",
        "&lt;tag&gt;",
    ] {
        assert!(html.contains(escaped), "{escaped} missing");
    }
}

#[test]
fn sign_in_posts_the_token_and_escapes_its_message() {
    let html = status_page::sign_in("/admin", Some("<wrong>"));
    assert!(html.contains("action=\"/admin/login\""));
    assert!(html.contains("type=\"password\" name=\"token\""));
    assert!(html.contains("&lt;wrong&gt;"));
}
