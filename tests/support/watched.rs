//! Servers the tests start (docker-registry, Spin, redis-server), each in a
//! process group of its own under a watchdog shell that ends the group when
//! the test process is gone, so no run leaves servers behind.

use std::path::Path;
use std::process::{Command, Stdio};

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Which resident memory figure.
#[derive(Clone, Copy)]
pub enum Rss {
    Peak,
    #[allow(
        dead_code,
        reason = "the benchmark's soak samples it; the e2e tests read peaks"
    )]
    Now,
}

/// A started server: its process group.
pub struct Watched {
    pub pgid: u32,
}

/// Runs `program args` in `cwd`, its output in `log`.
pub fn spawn(program: &str, args: &[&str], cwd: &Path, log: &Path) -> Watched {
    spawn_with(program, args, &[], cwd, log)
}

/// [`spawn`] with `env` set for the server.
pub fn spawn_with(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    cwd: &Path,
    log: &Path,
) -> Watched {
    let log = std::fs::File::create(log).unwrap();
    // `setsid` makes the server a group leader; the group is what stops.
    let script = r#"p=$1; shift; setsid "$@" >&2 & c=$!; echo $c; exec >/dev/null; while kill -0 "$p" 2>/dev/null && kill -0 $c 2>/dev/null; do sleep 0.5; done; kill -- -$c 2>/dev/null"#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let pgid = line.trim().parse().expect("the watchdog names its server");
    drop(out);
    std::thread::spawn(move || child.wait());
    Watched { pgid }
}

impl Watched {
    /// Stops the server without ending it (`SIGSTOP`): it holds its
    /// connections and answers nothing, as a hung server does, until
    /// [`Watched::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.pgid)])
            .status();
    }

    /// Ends the server and everything it started.
    pub fn stop(&self) {
        self.signal("-KILL");
    }

    /// The group's resident memory (sum over its processes, MiB).
    pub fn rss_mib(&self, figure: Rss) -> f64 {
        self.status_mib(match figure {
            Rss::Peak => "VmHWM:",
            Rss::Now => "VmRSS:",
        })
    }

    /// A `/proc/<pid>/status` figure in kB, summed over the group, in MiB.
    fn status_mib(&self, field: &str) -> f64 {
        let pids = std::fs::read_dir("/proc").unwrap().filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Field 5 (after the parenthesised name) is the process group.
            let after = stat.rsplit_once(')')?.1;
            let pgrp: u32 = after.split_whitespace().nth(2)?.parse().ok()?;
            (pgrp == self.pgid).then_some(pid)
        });
        let kib: u64 = pids
            .filter_map(|pid| {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let line = status.lines().find(|l| l.starts_with(field))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .sum();
        kib as f64 / 1024.0
    }
}

/// A fresh working directory `<tmp>/<prefix><pid>`, after removing those of
/// earlier runs whose process is gone (a test binary never drops its
/// environment, and a benchmark's holds gigabytes).
pub fn work_dir(prefix: &str) -> std::path::PathBuf {
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(prefix) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = tmp.join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
