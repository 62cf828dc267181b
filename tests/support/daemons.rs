//! Real clients for the journey tests, from Debian's packages: containerd
//! (driven with `ctr`) and dockerd on sockets and state of their own, with
//! no bridge and no iptables, and podman with storage of its own
//! (../shared/notes/real-clients.md). Started once per test binary.

use super::watched::{self, Watched};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub struct Daemons {
    dir: PathBuf,
    containerd: PathBuf,
    docker: PathBuf,
    _processes: Vec<Watched>,
}

fn wait_for(socket: &Path, log: &Path) {
    for _ in 0..300 {
        if socket.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{} did not appear: {}",
        socket.display(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// containerd, and dockerd on it with `mirror` in `registry-mirrors`.
pub fn start(dir: &Path, mirror: &str) -> Daemons {
    let dir = dir.join("daemons");
    let ctrd = dir.join("containerd");
    std::fs::create_dir_all(&ctrd).unwrap();
    let socket = ctrd.join("containerd.sock");
    let config = format!(
        "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{1}\"\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_tcp_service = true\n",
        ctrd.display(),
        socket.display()
    );
    std::fs::write(ctrd.join("config.toml"), config).unwrap();
    let config = ctrd.join("config.toml").display().to_string();
    let log = ctrd.join("log");
    let containerd = watched::spawn("containerd", &["--config", &config], &ctrd, &log);
    wait_for(&socket, &log);

    let docker = dir.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let docker_socket = docker.join("docker.sock");
    let settings = serde_json::json!({
        "data-root": docker.join("root"), "exec-root": docker.join("exec"),
        "pidfile": docker.join("docker.pid"),
        "hosts": [format!("unix://{}", docker_socket.display())],
        "storage-driver": "vfs", "iptables": false, "ip-masq": false, "bridge": "none",
        "registry-mirrors": [mirror], "insecure-registries": ["127.0.0.0/8"],
    });
    std::fs::write(docker.join("daemon.json"), settings.to_string()).unwrap();
    let settings = docker.join("daemon.json").display().to_string();
    let log = docker.join("log");
    let dockerd = watched::spawn(
        "dockerd",
        &[
            "--config-file",
            &settings,
            "--containerd",
            socket.to_str().unwrap(),
        ],
        &docker,
        &log,
    );
    wait_for(&docker_socket, &log);
    let daemons = Daemons {
        dir: dir.clone(),
        containerd: socket,
        docker: docker_socket,
        _processes: vec![containerd, dockerd],
    };
    // The socket appears before the API answers.
    for _ in 0..100 {
        if daemons.docker(&["info"]).status.success() {
            return daemons;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "dockerd does not answer: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

fn run(mut command: Command) -> Output {
    command
        .output()
        .expect("client binary (apt-get install docker.io containerd podman)")
}

impl Daemons {
    /// Debian's docker CLI (another `docker` may come first on PATH), with
    /// a login store of its own.
    pub fn docker(&self, args: &[&str]) -> Output {
        let mut c = Command::new("/usr/bin/docker");
        c.env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .arg("-H")
            .arg(format!("unix://{}", self.docker.display()))
            .args(args);
        run(c)
    }

    /// `ctr images pull` over plain http, with `hosts.toml` files from
    /// `hosts_dir` when given.
    pub fn ctr_pull(&self, image: &str, user: Option<&str>, hosts_dir: Option<&Path>) -> Output {
        let mut c = Command::new("ctr");
        c.arg("-a").arg(&self.containerd).args([
            "-n",
            "journeys",
            "images",
            "pull",
            "--snapshotter",
            "native",
        ]);
        match hosts_dir {
            Some(d) => c.arg("--hosts-dir").arg(d),
            None => c.arg("--plain-http"),
        };
        if let Some(u) = user {
            c.args(["--user", u]);
        }
        c.arg(image);
        run(c)
    }

    /// podman with its own storage; `registries_conf` for a mirror.
    pub fn podman(&self, args: &[&str], registries_conf: Option<&Path>) -> Output {
        let root = self.dir.join("podman");
        let mut c = Command::new("podman");
        if let Some(conf) = registries_conf {
            c.env("CONTAINERS_REGISTRIES_CONF", conf);
        }
        c.arg("--root")
            .arg(root.join("root"))
            .arg("--runroot")
            .arg(root.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        run(c)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
