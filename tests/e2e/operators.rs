//! What operators and visitors see (issue 16): Prometheus metrics, one JSON
//! access log line a request, the status page, signed into in a real
//! browser, and the home page.

use super::common::*;
use std::path::PathBuf;
use std::sync::OnceLock;
use support::browser::Browser;
use support::{ADMIN_TOKEN, AUTH, HUB, METRICS_TOKEN, OPEN, env, registry, rt, spin};

fn admin_url(path: &str) -> String {
    format!("{}/_registry-proxy{path}", env().proxy(OPEN))
}

fn scrape(token: &str) -> support::http::Reply {
    get(
        &admin_url("/metrics"),
        &[("authorization", &format!("Bearer {token}"))],
    )
}

#[test]
fn metrics_count_requests_cache_outcomes_upstreams_and_bytes() {
    let e = env();
    let image = rt().block_on(registry::push_image(
        e.open, "ops/one", "v1", "ops-one", "amd64",
    ));
    let host = [("host", "cache.test"), ("accept", ACCEPT_ALL)];
    let manifest = format!("{}/v2/ops/one/manifests/{}", e.proxy(OPEN), image.digest);
    for expected in ["MISS", "HIT"] {
        assert_eq!(get(&manifest, &host).header("x-cache"), Some(expected));
    }
    let r = scrape(ADMIN_TOKEN);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    // Counted once each answer was out: a moment after it.
    let series = |name: &str| {
        metric_values(&scrape(METRICS_TOKEN).text())
            .get(name)
            .copied()
            .unwrap_or_default()
    };
    let manifests =
        r#"registry_proxy_requests_total{route="cache.test",endpoint="manifest",status="2xx"}"#;
    settles("counting the manifest requests", || series(manifests) >= 2);
    assert!(series(r#"registry_proxy_cache_total{outcome="hit"}"#) >= 1);
    assert!(series(r#"registry_proxy_cache_total{outcome="miss"}"#) >= 1);
    let upstream = format!(
        r#"registry_proxy_upstream_requests_total{{upstream="{}",result="ok"}}"#,
        e.open
    );
    assert!(series(&upstream) >= 1);
    let upstream_time = format!(
        r#"registry_proxy_upstream_duration_microseconds_total{{upstream="{}"}}"#,
        e.open
    );
    assert!(series(&upstream_time) > 0);
    let cache_bytes = r#"registry_proxy_served_bytes_total{source="cache"}"#;
    assert!(series(cache_bytes) >= image.manifest.len() as u64);
    let text = scrape(ADMIN_TOKEN).text();
    assert!(text.contains("# TYPE registry_proxy_requests_total counter"));
    token_requests_are_counted_by_answer(&series);

    // Only the two tokens scrape; the metrics token opens nothing else.
    assert_eq!(scrape("wrong").status, 401);
    assert_eq!(get(&admin_url("/metrics"), &[]).status, 401);
    let bearer = format!("Bearer {METRICS_TOKEN}");
    let api = get(&admin_url("/routes"), &[("authorization", &bearer)]);
    assert_eq!(api.status, 401);
}

/// One of each way a token request is answered, counted with its status.
fn token_requests_are_counted_by_answer(series: &dyn Fn(&str) -> u64) {
    let e = env();
    let tokens = |answer: &str| {
        series(&format!(
            r#"registry_proxy_token_requests_total{{answer="{answer}",status="2xx"}}"#
        ))
    };
    let answers = ["login", "anonymous", "route_credentials", "relayed", "kept"];
    let before = answers.map(tokens);
    let password = support::PROXY_USER.1;
    let scope = "repository:test/single:pull";
    assert_eq!(login_token(e, "login.test", scope, password).status, 200);
    // The proxy holds account.test's credentials: clients get its placeholder,
    // and the proxy asks the realm itself.
    let token_url = format!("{}/v2/auth?service=x&scope={scope}", e.proxy(OPEN));
    assert_eq!(get(&token_url, &[("host", "account.test")]).status, 200);
    // A repository no other test pulls: its token is not yet held.
    let held = rt().block_on(registry::push_image(
        e.open, "ops/held", "v1", "ops-held", "amd64",
    ));
    let manifest = format!("{}/v2/ops/held/manifests/{}", e.proxy(OPEN), held.digest);
    let pulled = get(
        &manifest,
        &[("host", "account.test"), ("accept", ACCEPT_ALL)],
    );
    assert_eq!(pulled.status, 200);
    // An anonymous client's request goes to the realm, or gets the kept answer.
    assert_eq!(get(&token_url, &[("host", "registry-b.test")]).status, 200);
    let grew = |i: usize| tokens(answers[i]) > before[i];
    settles("counting the token requests", || {
        grew(0) && grew(1) && grew(2) && (grew(3) || grew(4))
    });
}

#[test]
fn the_access_log_is_one_json_line_a_request_without_secrets() {
    let e = env();
    let path = "/v2/test/single/manifests/v1";
    let url = format!("{}{path}?private=query-s3cret", e.proxy(OPEN));
    let r = get(
        &url,
        &[
            ("accept", ACCEPT_ALL),
            ("authorization", "Bearer header-s3cret"),
        ],
    );
    assert_eq!(r.status, 200);
    let line = || {
        e.proxies[OPEN]
            .access_log()
            .into_iter()
            .rev()
            .find(|l| l["path"] == path && l["status"] == 200)
    };
    settles("logging the request", || line().is_some());
    let l = line().unwrap();
    assert_eq!(l["method"], "GET");
    assert_eq!(l["route"], e.proxies[OPEN].addr.to_string());
    assert_eq!(l["repository"], "test/single");
    assert_eq!(l["endpoint"], "manifest");
    assert_eq!(l["bytes"], e.single.manifest.len() as u64);
    assert!(l["duration_ms"].as_f64().is_some_and(|d| d > 0.0), "{l}");
    assert!(l["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
    assert!(["hit", "miss", "revalidated"].contains(&l["cache"].as_str().unwrap_or_default()));
    assert!(l["memory"].as_u64().is_some());
    for secret in ["query-s3cret", "header-s3cret", ADMIN_TOKEN, METRICS_TOKEN] {
        assert_not_logged(secret);
    }
}

/// An app of its own for signing in: failed sign-ins count against the
/// client's address, and every other test's failed logins come from there too.
fn sign_in_app() -> &'static spin::Instance {
    static APP: OnceLock<spin::Instance> = OnceLock::new();
    APP.get_or_init(|| {
        let e = env();
        let app = spin::derive_app(&e.dir.join("sign-in-app"), &spin::Store::Sqlite, true);
        let store = spin::SqliteStore::of(&app, "default");
        let open = serde_json::json!({"upstream": format!("http://{}", e.open)});
        store.set("route/registry-a.test", open.to_string().as_bytes());
        store.set("route/down.test", br#"{"upstream":"http://127.0.0.1:1"}"#);
        let variables = [
            ("default_upstream", ""),
            ("admin_token", ADMIN_TOKEN),
            ("upstream_timeout", "3"),
        ];
        spin::Instance::start(&app, "sign-in", &variables)
    })
}

fn sign_in_url(path: &str) -> String {
    format!("{}/_registry-proxy{path}", sign_in_app().url())
}

#[test]
fn the_sign_in_cookie_is_secure_over_https() {
    let form = format!("token={ADMIN_TOKEN}");
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-forwarded-proto", "https"),
    ];
    let r = send("POST", &sign_in_url("/login"), &headers, &form);
    assert_eq!(r.status, 303);
    let cookie = r.header("set-cookie").unwrap();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/_registry-proxy",
    ] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let wrong = send("POST", &sign_in_url("/login"), &headers, "token=nope");
    assert_eq!(wrong.status, 403);
    assert!(wrong.header("set-cookie").is_none());
}

#[test]
fn the_status_page_signs_in_and_shows_routes_cache_and_errors_in_chromium() {
    let e = env();
    let proxy = &sign_in_app();
    // An upstream error and a cache hit for the page to show.
    let down = get(
        &format!("{}/v2/x/y/manifests/v1", proxy.url()),
        &[("host", "down.test")],
    );
    assert_eq!(down.status, 502);
    let hit = format!(
        "{}/v2/test/single/manifests/{}",
        proxy.url(),
        e.single.digest
    );
    let headers = [("accept", ACCEPT_ALL), ("host", "registry-a.test")];
    get(&hit, &headers);
    assert_eq!(get(&hit, &headers).header("x-cache"), Some("HIT"));

    let browser = Browser::start(&e.dir);
    browser.open(&sign_in_url("/"));
    browser.type_into("input[name=token]", "not-the-token");
    browser.click("button[type=submit]");
    assert!(browser.text("#message").contains("not the admin token"));

    browser.type_into("input[name=token]", ADMIN_TOKEN);
    browser.click("button[type=submit]");
    let routes = browser.text("#routes");
    assert!(
        routes.contains("down.test") && routes.contains("http://127.0.0.1:1/"),
        "{routes}"
    );
    assert!(routes.contains("registry-a.test"), "{routes}");
    assert!(browser.text("#cache").contains("hits"));
    let errors = browser.text("#errors");
    assert!(
        errors.contains("127.0.0.1:1") && errors.contains("down.test"),
        "{errors}"
    );
    // The sign-in app has default_upstream empty: the page says so.
    let default = browser.text("#default-upstream");
    assert!(default.contains("Default upstream: none"), "{default}");
    let source = browser.source();
    assert!(
        source.contains("<svg") && source.contains(">100%</text>"),
        "no chart with its scale"
    );
    // The hit above is on a bar of its own minute, with its figures.
    assert!(
        source.contains("% hit</title></rect>"),
        "no minute's figures"
    );
    assert!(!source.contains("<script"));
    let shot =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e-screenshots/status-page.png");
    browser.screenshot(&shot);
    println!("status page screenshot: {}", shot.display());

    let cookies = browser.cookies();
    let kept = cookies
        .iter()
        .find(|c| c["name"] == "registry_proxy_admin")
        .expect("the sign-in cookie");
    assert_eq!(kept["httpOnly"], true);
    assert_eq!(kept["sameSite"], "Strict");
    assert_eq!(kept["secure"], false, "served over http here");

    browser.click("form[action$='/logout'] button");
    // Signed out: the form is back.
    browser.element("input[name=token]");
}

/// Issue 35, item 6: the page warms the cache with a pin, streams the
/// walk as rows under a bar that ends full, lists the pin, and unpins it.
#[test]
fn the_status_page_prefetches_pins_and_unpins_in_chromium() {
    let e = env();
    let browser = Browser::start(&e.dir);
    browser.open(&sign_in_url("/"));
    browser.type_into("input[name=token]", ADMIN_TOKEN);
    browser.click("button[type=submit]");
    browser.type_into("#warm input[name=image]", "registry-a.test/test/multi:v1");
    browser.type_into("#warm input[name=platforms]", "linux/amd64");
    browser.click("#warm input[name=pin]");
    browser.click("#warm button[type=submit]");
    let summary = browser.text("#summary");
    assert!(
        summary.contains("All of the image is in the cache."),
        "{summary}"
    );
    assert!(summary.contains("Pinned:"), "{summary}");
    // The bar reached its end: every object walked is cached.
    let done = browser.text("#done");
    assert!(done.contains("5 of 5 cached"), "{done}");
    let walk = browser.text("#walk");
    let amd64 = &e.multi_platforms[0].digest;
    // A cell a line, as WebDriver reads the grid's text.
    assert!(
        walk.contains(&format!("manifest linux/amd64\n{}\n", &amd64[..19])),
        "{walk}"
    );
    let source = browser.source();
    assert!(
        source.contains("<progress value=\"5\" max=\"5\">"),
        "no full bar"
    );
    assert!(!source.contains("<script"));
    let shot =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e-screenshots/prefetch.png");
    browser.screenshot(&shot);
    println!("prefetch screenshot: {}", shot.display());

    browser.click("#back");
    let pins = browser.text("table#pins");
    assert!(pins.contains("registry-a.test/test/multi:v1"), "{pins}");
    let repositories = browser.text("#repositories");
    assert!(repositories.contains("test/multi"), "{repositories}");
    browser.click("#pins button");
    // Found once the page after the post has loaded: the table was a <table>.
    let pins = browser.text("p#pins");
    assert!(pins.contains("No pins."), "{pins}");
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
