//! Garage, a real distributed S3 server (built once per machine by
//! `scripts/test.sh` with `cargo install garage --locked`), as one node or a
//! cluster on loopback, with a bucket and a key for the proxy. Shared by the
//! S3 backend's conformance test and the end-to-end tests.

use super::watched::{self, Watched, free_port};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const REGION: &str = "garage";
pub const BUCKET: &str = "blobs";

pub struct Garage {
    pub nodes: Vec<Watched>,
    /// Each node's S3 origin, `http://127.0.0.1:<port>`.
    pub endpoints: Vec<String>,
    pub key_id: String,
    pub secret: String,
    configs: Vec<PathBuf>,
}

/// The binary: `$GARAGE`, else where `scripts/test.sh` keeps it.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("GARAGE") {
        return path.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    let kept = Path::new(&home).join(".cache/garage/bin/garage");
    assert!(
        kept.exists(),
        "Garage is not built: scripts/test.sh builds it (cargo install garage --locked --root ~/.cache/garage), or set GARAGE"
    );
    kept
}

fn config(dir: &Path, rpc: u16, s3: u16, replication: usize) -> String {
    format!(
        r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = {replication}
compression_level = "none"
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed"
[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"
"#,
        dir = dir.display()
    )
}

fn wait_for_port(port: u16, what: &str) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start");
}

impl Garage {
    /// `nodes` nodes, each holding every object (replication = nodes).
    pub fn start(dir: &Path, nodes: usize) -> Garage {
        let mut garage = Garage {
            nodes: Vec::new(),
            endpoints: Vec::new(),
            key_id: String::new(),
            secret: String::new(),
            configs: Vec::new(),
        };
        for i in 0..nodes {
            let node_dir = dir.join(format!("garage-{i}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let (rpc, s3) = (free_port(), free_port());
            let path = node_dir.join("garage.toml");
            std::fs::write(&path, config(&node_dir, rpc, s3, nodes)).unwrap();
            let args = ["-c", path.to_str().unwrap(), "server"];
            let log = node_dir.join("server.log");
            let binary = binary();
            garage.nodes.push(watched::spawn(
                binary.to_str().unwrap(),
                &args,
                &node_dir,
                &log,
            ));
            wait_for_port(s3, "garage server");
            garage.endpoints.push(format!("http://127.0.0.1:{s3}"));
            garage.configs.push(path);
        }
        garage.form_cluster();
        garage.make_bucket();
        garage
    }

    /// Node `i` stopped at once (SIGKILL), as a crash would.
    pub fn kill(&self, i: usize) {
        self.nodes[i].stop();
    }

    /// Node `i` stopped without ending it (`SIGSTOP`): it holds its
    /// connections and answers nothing, as a hung bucket does.
    pub fn pause(&self, i: usize) {
        self.nodes[i].pause();
    }

    pub fn resume(&self, i: usize) {
        self.nodes[i].resume();
    }

    /// Node `i` started again on its own data and ports.
    pub fn restart(&mut self, i: usize) {
        let path = self.configs[i].clone();
        let dir = path.parent().unwrap().to_path_buf();
        let args = ["-c", path.to_str().unwrap(), "server"];
        let node = watched::spawn(
            binary().to_str().unwrap(),
            &args,
            &dir,
            &dir.join("server.log"),
        );
        self.nodes[i] = node;
        let port = self.endpoints[i]
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        wait_for_port(port, "garage server");
    }

    /// `garage <args>` against node 0; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(binary())
            .arg("-c")
            .arg(&self.configs[0])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "garage {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    fn node_id(&self, i: usize) -> String {
        let out = Command::new(binary())
            .arg("-c")
            .arg(&self.configs[i])
            .args(["node", "id", "-q"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn form_cluster(&self) {
        let ids: Vec<String> = (0..self.configs.len()).map(|i| self.node_id(i)).collect();
        for id in &ids[1..] {
            self.cli(&["node", "connect", id]);
        }
        for id in &ids {
            let short = id.split('@').next().unwrap();
            self.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", short]);
        }
        self.cli(&["layout", "apply", "--version", "1"]);
    }

    fn make_bucket(&mut self) {
        let key = self.cli(&["key", "create", "proxy-key"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in {key}"))
        };
        self.key_id = field("Key ID:");
        self.secret = field("Secret key:");
        self.cli(&["bucket", "create", BUCKET]);
        let allow = ["bucket", "allow", "--read", "--write", "--owner", BUCKET];
        self.cli(&[&allow[..], &["--key", "proxy-key"]].concat());
    }

    /// Node `i`'s log: a line for each request it took.
    pub fn log(&self, i: usize) -> String {
        let dir = self.configs[i].parent().unwrap();
        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
    }

    /// Every key under `prefix` in the bucket with its size, as node
    /// `node` lists them.
    pub fn keys(&self, node: usize, prefix: &str) -> Vec<(String, u64)> {
        let url = format!(
            "{}/{BUCKET}?list-type=2&prefix={}",
            self.endpoints[node],
            prefix.replace('/', "%2F")
        );
        let out = Command::new("curl")
            .args(["-sf", "--aws-sigv4", &format!("aws:amz:{REGION}:s3")])
            .args(["--user", &format!("{}:{}", self.key_id, self.secret)])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", &url])
            .output()
            .unwrap();
        assert!(out.status.success(), "listing the bucket: {out:?}");
        let xml = String::from_utf8_lossy(&out.stdout);
        let listing = rusty_s3::actions::ListObjectsV2::parse_response(&xml).unwrap();
        assert!(listing.next_continuation_token.is_none(), "over one page");
        listing
            .contents
            .into_iter()
            .map(|c| (c.key, c.size.unwrap_or_default()))
            .collect()
    }
}
