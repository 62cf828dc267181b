//! The component under real Spin: `spin up` with the project's own
//! spin.toml and runtime-config.toml. The copies the tests run differ from
//! them only where a test must: the built component's absolute path,
//! loopback upstreams allowed, and (for several instances) Redis as the
//! store.

use super::project;
pub use super::watched::Rss;
use super::watched::{self, Watched};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `spin` from PATH, else the Spin 4.0.2 CLI beside the project.
pub fn binary() -> PathBuf {
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("spin"))
            .find(|p| p.is_file())
    }) {
        return found;
    }
    let shared = project().join("../shared/tools/spin");
    assert!(
        shared.exists(),
        "no `spin` on PATH and no {}: install Spin 3.x or 4.x",
        shared.display()
    );
    shared
}

pub fn wasm_path() -> PathBuf {
    let p = project().join("target/wasm32-wasip2/release/registry_proxy.wasm");
    assert!(
        p.exists(),
        "{} missing: build it with `cargo build --target wasm32-wasip2 --release` (the README's test command does)",
        p.display()
    );
    p
}

/// Where the app keeps its key-value stores.
pub enum Store {
    /// The shipped runtime-config.toml: SQLite in the app's directory.
    Sqlite,
    /// Every store in one Redis (`redis://127.0.0.1:port`, one database each).
    Redis(u16),
}

/// Writes the app the tests run into `dir`: the project's spin.toml and
/// runtime-config.toml, changed only as the module comment says (loopback
/// only when `loopback`).
pub fn derive_app(dir: &Path, store: &Store, loopback: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let manifest = std::fs::read_to_string(project().join("spin.toml")).unwrap();
    let mut doc: toml::Table = manifest.parse().expect("spin.toml is TOML");
    let component = doc["component"]["registry-proxy"]
        .as_table()
        .cloned()
        .expect("spin.toml has component registry-proxy");
    let mut component = component;
    component.insert("source".into(), wasm_path().display().to_string().into());
    component.remove("build");
    let hosts = component["allowed_outbound_hosts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // 127.0.0.0 to 127.0.0.3: upstreams, CDN fronts and a realm no route allows.
    let mut allowed = Vec::new();
    if loopback {
        allowed.push(toml::Value::from("http://127.0.0.0/30:*"));
    }
    allowed.extend(hosts);
    component.insert("allowed_outbound_hosts".into(), allowed.into());
    doc["component"]
        .as_table_mut()
        .unwrap()
        .insert("registry-proxy".into(), component.into());
    std::fs::write(dir.join("spin.toml"), toml::to_string(&doc).unwrap()).unwrap();
    // spin.toml mounts the app's blobs/ (blob_store = files), as a clone has it.
    std::fs::create_dir_all(dir.join("blobs")).unwrap();

    let runtime = std::fs::read_to_string(project().join("runtime-config.toml")).unwrap();
    let mut config: toml::Table = runtime.parse().expect("runtime-config.toml is TOML");
    if let Store::Redis(port) = store {
        let stores = config["key_value_store"].as_table_mut().unwrap();
        for (label, db) in [("default", 0), ("cache", 1), ("stats", 2)] {
            let mut table = toml::Table::new();
            table.insert("type".into(), "redis".into());
            table.insert(
                "url".into(),
                format!("redis://127.0.0.1:{port}/{db}").into(),
            );
            stores.insert(label.into(), table.into());
        }
    }
    std::fs::write(
        dir.join("runtime-config.toml"),
        toml::to_string(&config).unwrap(),
    )
    .unwrap();
    dir.to_path_buf()
}

/// The README's `spin up` flags that make the app's `blobs/` the real,
/// writable directory (blob_store = files).
pub const MOUNT_FLAGS: &[&str] = &["--direct-mounts", "--allow-transient-write"];

/// One `spin up` of an app, on its own port.
pub struct Instance {
    pub addr: SocketAddr,
    process: Watched,
    log_dir: PathBuf,
    output: PathBuf,
}

impl Instance {
    /// Starts `spin up` on a free port with `variables`, and waits until it
    /// answers.
    pub fn start(app: &Path, name: &str, variables: &[(&str, &str)]) -> Instance {
        Self::start_with(app, name, variables, &[])
    }

    /// [`Instance::start`] with `env` set for Spin (an allocator setting).
    pub fn start_with(
        app: &Path,
        name: &str,
        variables: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Instance {
        Self::start_mounted(app, name, variables, env, MOUNT_FLAGS)
    }

    /// [`Instance::start`] without the README's mount flags: Spin mounts
    /// a read-only copy of the app's `blobs/`.
    pub fn start_read_only_blobs(app: &Path, name: &str, variables: &[(&str, &str)]) -> Instance {
        Self::start_mounted(app, name, variables, &[], &[])
    }

    fn start_mounted(
        app: &Path,
        name: &str,
        variables: &[(&str, &str)],
        env: &[(&str, &str)],
        flags: &[&str],
    ) -> Instance {
        let addr: SocketAddr = format!("127.0.0.1:{}", super::registry::free_port())
            .parse()
            .unwrap();
        let log_dir = app.join(format!("logs-{name}"));
        let output = app.join(format!("spin-{name}.log"));
        let listen = addr.to_string();
        let mut args = vec![
            "up".to_string(),
            "--from".into(),
            app.join("spin.toml").display().to_string(),
            "--runtime-config-file".into(),
            app.join("runtime-config.toml").display().to_string(),
            "--listen".into(),
            listen,
            "--log-dir".into(),
            log_dir.display().to_string(),
        ];
        args.extend(flags.iter().map(|f| f.to_string()));
        for (k, v) in variables {
            args.push("--variable".into());
            args.push(format!("{k}={v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let spin = binary();
        let process = watched::spawn_with(spin.to_str().unwrap(), &args, env, app, &output);
        let instance = Instance {
            addr,
            process,
            log_dir,
            output,
        };
        instance.wait_until_serving();
        instance
    }

    fn wait_until_serving(&self) {
        for _ in 0..600 {
            if std::net::TcpStream::connect(self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "spin up did not serve on {}: {}",
            self.addr,
            std::fs::read_to_string(&self.output).unwrap_or_default()
        );
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the component wrote to stderr.
    pub fn component_log(&self) -> String {
        std::fs::read_to_string(self.log_dir.join("registry-proxy_stderr.txt")).unwrap_or_default()
    }

    /// What Spin itself printed (its refusals of outbound hosts among it).
    pub fn runtime_log(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Outbound requests Spin refused (`allowed_outbound_hosts`).
    pub fn outbound_denied(&self) -> usize {
        self.runtime_log()
            .matches("tried to make an outbound network connection to disallowed destination")
            .count()
    }

    /// The component's linear memory when it finished the last request for
    /// `path` (it never shrinks, so this is the request's peak).
    pub fn request_memory(&self, path: &str) -> Option<u64> {
        self.access_log()
            .iter()
            .rev()
            .find(|e| e["path"] == path)
            .and_then(|e| e["memory"].as_u64())
    }

    /// The component's access log: a JSON object a request.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        self.component_log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Resident memory of the instance's processes, MiB.
    pub fn rss_mib(&self, figure: Rss) -> f64 {
        self.process.rss_mib(figure)
    }

    pub fn stop(&self) {
        self.process.stop();
    }
}

/// The SQLite file behind one of the app's stores, opened beside Spin,
/// and the app it belongs to.
pub struct SqliteStore(PathBuf, String, PathBuf);

impl SqliteStore {
    /// The store `label` ("default", "cache") of the app in `app`.
    pub fn of(app: &Path, label: &str) -> SqliteStore {
        let config: toml::Table = std::fs::read_to_string(app.join("runtime-config.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let path = config["key_value_store"][label]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("the {label} store is a SQLite file"));
        SqliteStore(app.join(path), label.to_string(), app.to_path_buf())
    }

    /// The uploads (copies under way, and blobs) of `digest` that the app
    /// keeps as blob files (blob_store = files) in its `blobs/`.
    pub fn blob_file_uploads(&self, digest: &str) -> Vec<String> {
        let names = |dir: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(dir)
                .map(|entries| entries.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        };
        let mut uploads = Vec::new();
        for folder in ["uploads", "blobs"] {
            for scope in names(&self.2.join("blobs").join(folder)) {
                for upload in names(&scope.join(digest)) {
                    let name = upload.file_name().unwrap().to_string_lossy();
                    uploads.push(name.into_owned());
                }
            }
        }
        uploads
    }

    /// Spin's table names each row's store by its label.
    fn label(&self) -> &str {
        &self.1
    }

    fn open(&self) -> rusqlite::Connection {
        if let Some(dir) = self.0.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        let c = rusqlite::Connection::open(&self.0).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        // Spin creates the table on first use; the tests may come first.
        c.execute(
            "CREATE TABLE IF NOT EXISTS spin_key_value (store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key))",
            [],
        )
        .unwrap();
        c
    }

    pub fn set(&self, key: &str, value: &[u8]) {
        self.open()
            .execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?3, ?1, ?2) ON CONFLICT(store, key) DO UPDATE SET value = ?2",
                rusqlite::params![key, value, self.label()],
            )
            .unwrap();
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let c = self.open();
        let mut q = c
            .prepare("SELECT value FROM spin_key_value WHERE store = ?2 AND key = ?1")
            .unwrap();
        let mut rows = q.query([key, self.label()]).unwrap();
        rows.next().unwrap().map(|r| r.get(0).unwrap())
    }

    pub fn delete(&self, key: &str) {
        self.open()
            .execute(
                "DELETE FROM spin_key_value WHERE store = ?2 AND key = ?1",
                [key, self.label()],
            )
            .unwrap();
    }

    pub fn keys(&self) -> Vec<String> {
        let c = self.open();
        let mut q = c
            .prepare("SELECT key FROM spin_key_value WHERE store = ?1")
            .unwrap();
        q.query_map([self.label()], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}
