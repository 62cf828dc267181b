//! Debian's `redis-server` on a free loopback port, for the tests of
//! several instances sharing one store.

use super::registry::free_port;
use super::watched::{self, Watched};
use std::path::Path;

pub fn start(dir: &Path) -> (Watched, u16) {
    let port = free_port();
    (start_on(dir, port), port)
}

/// A Redis on `port`: a fresh one, or one back where it was stopped.
pub fn start_on(dir: &Path, port: u16) -> Watched {
    std::fs::create_dir_all(dir).unwrap();
    let port_arg = port.to_string();
    let redis = watched::spawn(
        "redis-server",
        &[
            "--port",
            &port_arg,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        dir,
        &dir.join("redis.log"),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return redis;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("redis-server did not start (apt-get install redis-server)");
}
