//! What the end-to-end tests and the benchmark start and talk to, as a
//! library both share: real registries, the token server, the fronts,
//! Redis, Garage, the daemons, a browser, and the component under real Spin
//! or `wasmtime serve`.
//!
//! At its root, the end-to-end environment, started once per test binary:
//! the component under real Spin (one `spin up` per listener, all sharing
//! the app's SQLite store), with routes stored in its key-value store.

pub mod browser;
pub mod daemons;
pub mod fronts;
pub mod garage;
pub mod http;
pub mod paced;
pub mod redis;
pub mod registry;
pub mod spin;
pub mod token_server;
pub mod wasmtime;
pub mod watched;

use registry::Pushed;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub struct Env {
    pub dir: PathBuf,
    pub token: token_server::TokenServer,
    pub open: SocketAddr,
    pub auth: SocketAddr,
    pub fronts: fronts::Fronts,
    /// Fronts for the token-auth registry (blobs through the CDN).
    pub auth_fronts: fronts::Fronts,
    /// One Spin instance per listener; routes are keyed by their addresses.
    pub proxies: Vec<spin::Instance>,
    pub store: spin::SqliteStore,
    /// The store of the cache, upstream tokens and realms.
    pub cache: spin::SqliteStore,
    /// The app the instances run, for tests that start one of their own.
    pub app: PathBuf,
    pub single: Pushed,
    pub multi: Pushed,
    pub multi_platforms: Vec<Pushed>,
    pub alpine: Pushed,
    pub private: Pushed,
    pub held: Pushed,
    pub corrupting: fronts::Corrupting,
}

pub const ADMIN_TOKEN: &str = "admin-s3cret-token";
/// Scrapes metrics, and nothing else.
pub const METRICS_TOKEN: &str = "metrics-s3cret-token";
pub const SIGNING_KEY: &str = "test-signing-key";
/// The proxy's own user, with pull rights on `test/*`.
pub const PROXY_USER: (&str, &str) = ("bob", "hunter2-proxy");

/// Proxy listeners, one per route.
pub const OPEN: usize = 0;
pub const AUTH: usize = 1;
pub const HUB: usize = 2;
pub const REDIRECTING: usize = 3;
pub const AUTH_GET_ONLY: usize = 4;
const LISTENERS: usize = 5;

/// The registry-proxy project, whose `tests/support` this crate is: its
/// spin.toml, runtime-config.toml and built components.
fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support lies two levels below the project")
        .to_path_buf()
}

pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap()
    })
}

pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| rt().block_on(start()))
}

fn token_auth(realm: &str, cert: &std::path::Path) -> String {
    format!(
        "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
        token_server::SERVICE,
        token_server::ISSUER,
        cert.display()
    )
}

async fn start() -> Env {
    let dir = watched::work_dir("registry-proxy-e2e-");
    let token = token_server::start().await;
    let cert = dir.join("token-cert.pem");
    std::fs::write(&cert, &token.cert_pem).unwrap();
    let open = registry::start(&dir, "open", "").await;
    let auth = registry::start(&dir, "auth", &token_auth(&token.realm(), &cert)).await;
    let get_only_realm = format!("http://{}/token-get-only", token.addr);
    let auth_get_only =
        registry::start(&dir, "auth-get-only", &token_auth(&get_only_realm, &cert)).await;
    let post_only_realm = format!("http://{}/token-post-only", token.addr);
    let auth_post_only =
        registry::start(&dir, "auth-post-only", &token_auth(&post_only_realm, &cert)).await;

    // Every image goes into the shared storage through the open registry.
    let single = registry::push_image(open, "test/single", "v1", "single", "amd64").await;
    for t in ["v2", "v3", "v4", "v5"] {
        registry::push_manifest(
            open,
            "test/single",
            t,
            registry::OCI_MANIFEST,
            &single.manifest,
        )
        .await;
    }
    let (multi, multi_platforms) = registry::push_index(open, "test/multi", "v1").await;
    let alpine = registry::push_image(open, "library/alpine", "latest", "alpine", "amd64").await;
    let private = registry::push_image(open, "private/secret", "v1", "secret", "amd64").await;
    registry::push_image(open, "test/evil", "v1", "evil", "amd64").await;
    let held = registry::push_image(open, "private/held", "v1", "held", "amd64").await;

    let forbidden_realm = format!("127.0.0.3:{}", token.addr.port());
    let fronts = fronts::start(open, open, &forbidden_realm).await;
    let auth_fronts = fronts::start(auth, open, &forbidden_realm).await;
    let corrupting = fronts::corrupting(open).await;
    let app = spin::derive_app(&dir.join("app"), &spin::Store::Sqlite, true);
    let variables = [
        ("default_upstream", ""),
        ("admin_token", ADMIN_TOKEN),
        ("metrics_token", METRICS_TOKEN),
        ("token_signing_key", SIGNING_KEY),
        ("upstream1_username", token_server::USER),
        ("upstream1_password", token_server::PASSWORD),
        // Another account at the same token service, whose password is wrong.
        ("upstream2_username", token_server::USER),
        ("upstream2_password", "not-the-password"),
        ("upstream_timeout", "3"),
        // For routes with blob_delivery = "redirect" (tests/e2e/hosted.rs).
        ("body_limit", "4MiB"),
    ];
    let proxies: Vec<spin::Instance> = std::thread::scope(|s| {
        let started: Vec<_> = (0..LISTENERS)
            .map(|i| {
                let app = &app;
                s.spawn(move || spin::Instance::start(app, &i.to_string(), &variables))
            })
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let store = spin::SqliteStore::of(&app, "default");
    let cache = spin::SqliteStore::of(&app, "cache");
    let route = |i: usize, json: serde_json::Value| {
        store.set(
            &format!("route/{}", proxies[i].addr),
            json.to_string().as_bytes(),
        )
    };
    let token_host = token.addr.to_string();
    route(
        OPEN,
        serde_json::json!({"upstream": format!("http://{open}")}),
    );
    route(
        AUTH,
        serde_json::json!({"upstream": format!("http://{auth}"), "allowed_hosts": [token_host]}),
    );
    route(
        AUTH_GET_ONLY,
        serde_json::json!({"upstream": format!("http://{auth_get_only}"), "allowed_hosts": [token_host]}),
    );
    route(
        HUB,
        serde_json::json!({"upstream": format!("http://{open}"), "docker_hub": true}),
    );
    route(
        REDIRECTING,
        // Uncached: the tests of this route watch every upstream request.
        serde_json::json!({
            "upstream": format!("http://{}", fronts.redirecting),
            "allowed_hosts": [format!("127.0.0.2:{}", fronts.cdn.port())],
            "cache": {"manifests": false, "blobs": false},
        }),
    );
    // Registries clients name in the path or with `ns=`, stored under their names.
    let kv = |key: &str, json: serde_json::Value| store.set(key, json.to_string().as_bytes());
    kv(
        "route/registry-a.test",
        serde_json::json!({"upstream": format!("http://{open}")}),
    );
    kv(
        "route/registry-b.test",
        serde_json::json!({"upstream": format!("http://{auth}"), "allowed_hosts": [token_host]}),
    );
    kv(
        "route/prefixed.test",
        serde_json::json!({"upstream": format!("http://{open}"), "repository_prefix": "test"}),
    );
    kv(
        "route/prefixed-auth.test",
        serde_json::json!({"upstream": format!("http://{auth}"), "repository_prefix": "private", "allowed_hosts": [token_host]}),
    );
    // A route whose upstream credentials the proxy holds; blobs go to a CDN.
    kv(
        "route/held.test",
        serde_json::json!({
            "upstream": format!("http://{}", auth_fronts.redirecting),
            "credentials": "upstream1",
            "cache": {"manifests": false, "blobs": false},
            "allowed_hosts": [token_host, format!("127.0.0.2:{}", auth_fronts.cdn.port())],
        }),
    );
    // The same credentials against a realm that takes only OAuth2 POSTs.
    kv(
        "route/held-post.test",
        serde_json::json!({
            "upstream": format!("http://{auth_post_only}"),
            "credentials": "upstream1",
            "allowed_hosts": [token_host],
            "cache": {"manifests": false, "blobs": false},
        }),
    );
    // Trust boundaries: one upstream through the proxy's two accounts, and a
    // Docker Hub route denying a repository by its upstream name.
    kv(
        "route/account.test",
        serde_json::json!({"upstream": format!("http://{auth}"), "credentials": "upstream1", "allowed_hosts": [token_host]}),
    );
    kv(
        "route/other-account.test",
        serde_json::json!({"upstream": format!("http://{auth}"), "credentials": "upstream2", "allowed_hosts": [token_host], "cache": {"manifests": false, "blobs": false}}),
    );
    kv(
        "route/hub-deny.test",
        serde_json::json!({"upstream": format!("http://{open}"), "docker_hub": true, "deny": ["library/alpine"]}),
    );
    // Only the proxy's own users, through a host and through a path prefix.
    kv(
        "route/login.test",
        serde_json::json!({"upstream": format!("http://{open}"), "require_login": true}),
    );
    kv(
        "user/bob",
        serde_json::json!({"password_hash": argon2_hash(PROXY_USER.1), "access": [{"repository": "test/*", "actions": ["pull"]}]}),
    );
    // Cached routes with short tag TTLs; one whose upstream can be stopped.
    kv(
        "route/cache.test",
        serde_json::json!({"upstream": format!("http://{open}"), "cache": {"tag_ttl": 2}}),
    );
    let stoppable = registry::start(&dir, "stoppable", "").await;
    kv(
        "route/stoppable.test",
        serde_json::json!({"upstream": format!("http://{stoppable}"), "cache": {"tag_ttl": 1}}),
    );
    kv(
        "route/corrupt.test",
        serde_json::json!({"upstream": format!("http://{}", corrupting.addr), "cache": {"tag_ttl": 1}}),
    );
    kv(
        "route/filtered.test",
        serde_json::json!({"upstream": format!("http://{}", fronts.redirecting), "allow": ["test/**"], "deny": ["test/evil"]}),
    );
    Env {
        dir,
        token,
        open,
        auth,
        fronts,
        proxies,
        store,
        cache,
        app,
        single,
        multi,
        multi_platforms,
        alpine,
        private,
        held,
        auth_fronts,
        corrupting,
    }
}

pub fn argon2_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"e2e-fixed-salt!!").unwrap();
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

impl Env {
    pub fn proxy(&self, i: usize) -> String {
        self.proxies[i].url()
    }

    /// Everything the component logged, on every instance.
    pub fn component_logs(&self) -> String {
        self.proxies.iter().map(|p| p.component_log()).collect()
    }

    /// Outbound requests Spin refused, on every instance.
    pub fn outbound_denied(&self) -> usize {
        self.proxies.iter().map(|p| p.outbound_denied()).sum()
    }
}
