//! Trust boundaries: what one route, upstream account or client may reach
//! never reaches another, whichever host, path prefix or `ns=` picks the
//! route; writes never ride on the proxy's own account unasked; the proxy's
//! users' passwords never leave it.

use super::common::*;
use support::{HUB, OPEN, env, registry, rt, spin, token_server};

fn private_image() -> &'static registry::Pushed {
    static IMAGE: std::sync::OnceLock<registry::Pushed> = std::sync::OnceLock::new();
    IMAGE.get_or_init(|| {
        rt().block_on(registry::push_image(
            env().open,
            "private/account",
            "v1",
            "account",
            "amd64",
        ))
    })
}

#[test]
fn what_the_proxys_account_fetched_is_not_served_to_other_routes() {
    let e = env();
    let image = private_image();
    let host = [("host", "account.test"), ("accept", ACCEPT_ALL)];
    let paths = [
        "/v2/private/account/manifests/v1".to_string(),
        format!("/v2/private/account/blobs/{}", image.layers[0]),
    ];
    for path in &paths {
        let r = get(&format!("{}{path}", e.proxy(OPEN)), &host);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    // The same upstream, anonymously, through another route picked by a
    // path prefix: the upstream decides, not the account's cache.
    for path in &paths {
        let prefixed = path.replacen("/v2/", "/v2/registry-b.test/", 1);
        let r = get(
            &format!("{}{prefixed}", e.proxy(HUB)),
            &[("accept", ACCEPT_ALL)],
        );
        assert_eq!(
            (r.status, r.header("x-cache")),
            (401, None),
            "{prefixed}: {}",
            r.text()
        );
    }
}

#[test]
fn upstream_tokens_are_kept_per_account() {
    let e = env();
    private_image();
    let path = "/v2/private/account/manifests/v1";
    let r = get(
        &format!("{}{path}", e.proxy(OPEN)),
        &[("host", "account.test"), ("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // upstream2's password is wrong: upstream1's token must not stand in.
    let r = get(
        &format!("{}{path}", e.proxy(OPEN)),
        &[("host", "other-account.test"), ("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains("refused the route's credentials"),
        "{}",
        r.text()
    );
}

#[test]
fn anonymous_writes_never_use_the_routes_account() {
    let e = env();
    private_image();
    let before = e.token.seen.lock().unwrap().len();
    let r = send(
        "POST",
        &format!("{}/v2/private/account/blobs/uploads/", e.proxy(OPEN)),
        &[("host", "account.test")],
        "",
    );
    assert_eq!(r.status, 401, "{}", r.text());
    let asked: Vec<_> = e.token.seen.lock().unwrap()[before..]
        .iter()
        .filter(|s| s.query.contains("push") || s.form.contains("push"))
        .map(|s| s.query.clone())
        .collect();
    assert!(asked.is_empty(), "a push token was asked for: {asked:?}");
}

#[test]
fn a_deny_holds_for_docker_hubs_short_names() {
    let e = env();
    for name in ["alpine", "library/alpine"] {
        let r = get(
            &format!("{}/v2/{name}/manifests/latest", e.proxy(OPEN)),
            &[("host", "hub-deny.test"), ("accept", ACCEPT_ALL)],
        );
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (403, "DENIED"),
            "{name}"
        );
    }
}

#[test]
fn a_login_hosts_passwords_never_leave_the_proxy() {
    let e = env();
    let (user, password) = support::PROXY_USER;
    let basic = basic_auth(user, password);
    let before = e.token.seen.lock().unwrap().len();
    for query in [
        "service=registry-proxy&scope=repository:registry-b.test/private/account:pull",
        "service=registry-proxy&scope=repository:private/account:pull&ns=registry-b.test",
    ] {
        let r = get(
            &format!("{}/v2/auth?{query}", e.proxy(OPEN)),
            &[("host", "login.test"), ("authorization", &basic)],
        );
        assert_eq!(r.status, 200, "{query}: {}", r.text());
    }
    let relayed = e.token.seen.lock().unwrap()[before..]
        .iter()
        .filter(|s| s.authorization.as_deref() == Some(basic.as_str()))
        .count();
    assert_eq!(relayed, 0, "a proxy user's password went upstream");
    // A login route is not reached anonymously through another host.
    let r = get(
        &format!("{}/v2/login.test/test/single/manifests/v1", e.proxy(HUB)),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert_not_logged(password);
    assert_not_logged(token_server::PASSWORD);
}

#[test]
fn the_catalog_is_refused_where_it_would_show_too_much() {
    let e = env();
    for host in ["account.test", "hub-deny.test"] {
        let r = get(&format!("{}/v2/_catalog", e.proxy(OPEN)), &[("host", host)]);
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (403, "DENIED"),
            "{host}"
        );
    }
    // A login route asks for the login first, and refuses a logged-in user.
    let url = format!("{}/v2/_catalog", e.proxy(OPEN));
    assert_eq!(get(&url, &[("host", "login.test")]).status, 401);
    let token = login_token(
        e,
        "login.test",
        "repository:test/single:pull",
        support::PROXY_USER.1,
    );
    let bearer = format!("Bearer {}", token.json()["token"].as_str().unwrap());
    let r = get(&url, &[("host", "login.test"), ("authorization", &bearer)]);
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (403, "DENIED"),
        "{}",
        r.text()
    );
    let r = get(&format!("{}/v2/_catalog", e.proxy(OPEN)), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn errors_and_headers_repeat_no_client_text_and_list_no_stored_route() {
    let e = env();
    let r = get(
        &format!(
            "{}/v2/test/single/manifests/v1?ns=registry-a.test/junk%0d",
            e.proxy(HUB)
        ),
        &[("accept", ACCEPT_ALL)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("oci-namespace"), Some("registry-a.test"));
    let r = get(
        &format!("{}/v2/x/manifests/v1", e.proxy(OPEN)),
        &[("host", "nowhere.test")],
    );
    assert_eq!(r.status, 404);
    for stored in ["login.test", "account.test", &e.auth.to_string()] {
        assert!(
            !r.text().contains(stored),
            "the 404 names {stored}: {}",
            r.text()
        );
    }
}

#[test]
fn failed_logins_are_bounded_per_client() {
    let e = env();
    // An app of its own: its counters are no other test's.
    let dir = e.dir.join("throttle-app");
    let app = spin::derive_app(&dir, &spin::Store::Sqlite, true);
    let user = serde_json::json!({
        "password_hash": support::argon2_hash("right"),
        "access": [{"repository": "test/*", "actions": ["pull"]}],
    });
    spin::SqliteStore::of(&app, "default").set("user/carol", user.to_string().as_bytes());
    let proxy = spin::Instance::start(
        &app,
        "throttle",
        &[
            ("default_upstream", &format!("http://{}", e.open)),
            ("require_login", "true"),
            ("token_signing_key", support::SIGNING_KEY),
            ("admin_token", support::ADMIN_TOKEN),
        ],
    );
    let login = |password: &str| {
        get(
            &format!("{}/v2/auth?service=registry-proxy", proxy.url()),
            &[("authorization", &basic_auth("carol", password))],
        )
    };
    assert_eq!(login("right").status, 200);
    let statuses: Vec<u16> = (0..12).map(|_| login("wrong").status).collect();
    assert_eq!(statuses[..10], [401; 10]);
    assert_eq!(statuses[10..], [429; 2]);
    // Even the right password waits: no more Argon2 runs for this client now.
    let r = login("right");
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (429, "TOOMANYREQUESTS")
    );
    // The status page's sign-in form is held back too, and says so in HTML.
    let form = send(
        "POST",
        &format!("{}/_registry-proxy/login", proxy.url()),
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("token={}", support::ADMIN_TOKEN),
    );
    assert_eq!(form.status, 429);
    assert!(form.header("set-cookie").is_none());
    assert!(
        form.text().contains("too many failed logins"),
        "{}",
        form.text()
    );
    proxy.stop();
}

/// Spin puts a client's own `spin-client-addr` ahead of the one it sets:
/// the throttle counts the address Spin saw, so forging a fresh one for
/// each guess gains nothing, and the admin API and `/metrics` token checks
/// are bounded like logins.
#[test]
fn a_forged_client_address_gains_no_guesses_at_any_secret() {
    let e = env();
    let dir = e.dir.join("forged-address-app");
    let app = spin::derive_app(&dir, &spin::Store::Sqlite, true);
    let proxy = spin::Instance::start(
        &app,
        "forged-address",
        &[
            ("default_upstream", &format!("http://{}", e.open)),
            ("admin_token", support::ADMIN_TOKEN),
            ("metrics_token", "metrics-secret"),
        ],
    );
    let admin = format!("{}/_registry-proxy", proxy.url());
    let forged = |n: usize| format!("203.0.113.{}:{}", n % 250 + 1, 1000 + n);
    let guesses: Vec<u16> = (0..14)
        .map(|n| {
            let addr = forged(n);
            let headers = [
                ("spin-client-addr", addr.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ];
            send("POST", &format!("{admin}/login"), &headers, "token=wrong").status
        })
        .collect();
    assert_eq!(guesses[..10], [403; 10], "{guesses:?}");
    assert_eq!(guesses[10..], [429; 4], "{guesses:?}");
    let bearer = |token: &str| format!("Bearer {token}");
    for (path, token) in [("routes", "wrong"), ("metrics", "wrong")] {
        let addr = forged(99);
        let r = get(
            &format!("{admin}/{path}"),
            &[
                ("authorization", &bearer(token)),
                ("spin-client-addr", &addr),
            ],
        );
        assert_eq!((path, r.status), (path, 429), "{}", r.text());
    }
    proxy.stop();

    // On a fresh app the admin API alone is bounded the same way.
    let app = spin::derive_app(&e.dir.join("admin-guesses-app"), &spin::Store::Sqlite, true);
    let proxy = spin::Instance::start(
        &app,
        "admin-guesses",
        &[
            ("default_upstream", &format!("http://{}", e.open)),
            ("admin_token", support::ADMIN_TOKEN),
        ],
    );
    let routes = format!("{}/_registry-proxy/routes", proxy.url());
    let right = bearer(support::ADMIN_TOKEN);
    // Checks that pass are not failures.
    for _ in 0..12 {
        assert_eq!(get(&routes, &[("authorization", &right)]).status, 200);
    }
    let statuses: Vec<u16> = (0..12)
        .map(|_| get(&routes, &[("authorization", &bearer("guess"))]).status)
        .collect();
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 2], "{statuses:?}");
    assert_eq!(get(&routes, &[("authorization", &right)]).status, 429);
    proxy.stop();
}

/// A variables provider that cannot be reached (Vault away) leaves
/// `require_login` unreadable: that is a 503 naming it, never "off".
#[test]
fn an_unreadable_require_login_is_a_503_never_off() {
    let e = env();
    let dir = e.dir.join("vault-away-app");
    let app = spin::derive_app(&dir, &spin::Store::Sqlite, true);
    let config = dir.join("runtime-config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    // Nothing listens on port 1: every lookup there fails.
    text.push_str(
        "\n[[variables_provider]]\ntype = \"vault\"\nurl = \"http://127.0.0.1:1\"\ntoken = \"t\"\nmount = \"secret\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let proxy = spin::Instance::start(
        &app,
        "vault-away",
        &[("default_upstream", &format!("http://{}", e.open))],
    );
    let url = format!("{}/v2/test/single/manifests/v1", proxy.url());
    let r = get(&url, &[("accept", ACCEPT_ALL)]);
    proxy.stop();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("require_login"), "{}", r.text());
}
