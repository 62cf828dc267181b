//! The processes the benchmark pulls through: registry-proxy under real
//! Spin, its memory read as it goes, and distribution's own pull-through
//! cache (`proxy.remoteurl`).

use super::logged;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use support::{registry, spin};

/// registry-proxy under real Spin with the project's own manifest and
/// runtime config (a fresh SQLite store each time), routing its own
/// address to the upstream.
pub struct ProxyProcess {
    spin: spin::Instance,
    pub addr: SocketAddr,
}

impl ProxyProcess {
    pub fn start(upstream: SocketAddr, dir: &Path, cache: bool) -> Self {
        Self::start_with(upstream, dir, cache, &[])
    }

    pub fn start_with(
        upstream: SocketAddr,
        dir: &Path,
        cache: bool,
        variables: &[(&str, &str)],
    ) -> Self {
        let app = dir.join(format!("app-{}", registry::free_port()));
        let app = spin::derive_app(&app, &spin::Store::Sqlite, true);
        let upstream = format!("http://{upstream}");
        let mut vars = vec![("default_upstream", upstream.as_str())];
        vars.extend_from_slice(variables);
        let spin = spin::Instance::start(&app, "bench", &vars);
        if !cache {
            let route = serde_json::json!({
                "upstream": upstream,
                "cache": {"manifests": false, "blobs": false},
            });
            spin::SqliteStore::of(&app, "default").set(
                &format!("route/{}", spin.addr),
                route.to_string().as_bytes(),
            );
        }
        let addr = spin.addr;
        ProxyProcess { spin, addr }
    }

    /// Peak resident memory of the Spin processes, in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.spin.rss_mib(spin::Rss::Peak)
    }

    /// Waits until every request so far is done, its copies checked.
    pub fn settle(&self, requests: usize) {
        logged::wait_for_requests(&self.spin, requests);
    }

    /// Peak linear memory of any component instance so far, in MiB (the
    /// component logs it after each answer).
    pub fn component_peak_mib(&self) -> f64 {
        logged::peak_memory_mib(&self.spin)
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.spin.stop();
    }
}

/// distribution's proxy mode, with fresh storage each repetition.
pub struct Distribution {
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Distribution {
    pub async fn start(upstream: SocketAddr, dir: &Path, rep: usize) -> Self {
        let dir = dir.join(format!("peer-{rep}"));
        std::fs::create_dir_all(&dir).unwrap();
        let addr = registry::start(
            &dir,
            "peer",
            &format!("proxy:\n  remoteurl: http://{upstream}\n"),
        )
        .await;
        Distribution { addr, dir }
    }

    pub fn stop(self) {
        registry::stop(&self.dir, "peer");
    }
}
