//! Every real-client journey through the proxy under real Spin: dockerd,
//! containerd (`ctr` with `hosts.toml`) and podman pull each image the way
//! docs/clients.md tells their users to, and get the digest the upstream has.

use super::common::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use support::daemons::{self, Daemons};
use support::{AUTH, HUB, OPEN, env, registry, rt, spin, token_server};

pub(super) fn clients() -> &'static Daemons {
    static DAEMONS: OnceLock<Daemons> = OnceLock::new();
    DAEMONS.get_or_init(|| daemons::start(&env().dir, &env().proxy(HUB)))
}

/// How each client names one image, and what it must get.
pub(super) struct Journey<'a> {
    docker: &'a str,
    ctr: &'a str,
    podman: &'a str,
    /// `hosts.toml` directory for containerd (else plain http to the name).
    ctr_hosts: Option<PathBuf>,
    /// `registries.conf` for podman.
    podman_conf: Option<PathBuf>,
    /// `user:password` for the upstream, sent by each client.
    login: Option<(&'a str, &'a str)>,
    digest: &'a str,
}

fn succeeded(client: &str, out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{client}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Journey<'_> {
    pub(super) fn run(&self) {
        let c = clients();
        if let Some((user, password)) = self.login {
            let registry = self.docker.split('/').next().unwrap();
            let out = c.docker(&["login", "-u", user, "-p", password, registry]);
            succeeded("docker login", &out);
        }
        succeeded("docker pull", &c.docker(&["pull", self.docker]));
        let format = "{{join .RepoDigests \",\"}}";
        let digests = succeeded(
            "docker inspect",
            &c.docker(&["image", "inspect", "--format", format, self.docker]),
        );
        assert!(digests.contains(self.digest), "docker: {digests}");

        let user = self.login.map(|(u, p)| format!("{u}:{p}"));
        let out = c.ctr_pull(self.ctr, user.as_deref(), self.ctr_hosts.as_deref());
        let pulled = succeeded("ctr pull", &out);
        assert!(pulled.contains(self.digest), "ctr: {pulled}");

        let mut args = vec!["pull", "--tls-verify=false"];
        let creds = user.clone().unwrap_or_default();
        if self.login.is_some() {
            args.extend(["--creds", &creds]);
        }
        args.push(self.podman);
        succeeded("podman pull", &c.podman(&args, self.podman_conf.as_deref()));
        let out = c.podman(&["image", "inspect", "--format", format, self.podman], None);
        let digests = succeeded("podman inspect", &out);
        assert!(digests.contains(self.digest), "podman: {digests}");
    }
}

fn addr(i: usize) -> String {
    env().proxies[i].addr.to_string()
}

pub(super) fn plain<'a>(image: &'a str, digest: &'a str) -> Journey<'a> {
    Journey {
        docker: image,
        ctr: image,
        podman: image,
        ctr_hosts: None,
        podman_conf: None,
        login: None,
        digest,
    }
}

#[test]
fn anonymous_pull_through_a_host_route() {
    let image = format!("{}/test/single:v1", addr(OPEN));
    plain(&image, &env().single.digest).run();
}

#[test]
fn path_prefix_pull() {
    let image = format!("{}/registry-a.test/test/single:v2", addr(HUB));
    plain(&image, &env().single.digest).run();
}

/// containerd's `hosts.toml` and podman's `registries.conf` naming the
/// proxy as the mirror of `registry`.
fn mirror_files(dir: &Path, registry: &str, proxy: &str) -> (PathBuf, PathBuf) {
    let hosts = dir.join("hosts");
    std::fs::create_dir_all(hosts.join(registry)).unwrap();
    std::fs::write(
        hosts.join(registry).join("hosts.toml"),
        format!(
            "server = \"http://{registry}\"\n[host.\"http://{proxy}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ),
    )
    .unwrap();
    let conf = dir.join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"{registry}\"\n[[registry.mirror]]\nlocation = \"{proxy}\"\ninsecure = true\n"
        ),
    )
    .unwrap();
    (hosts, conf)
}

#[test]
fn mirror_pull() {
    // dockerd's registry-mirrors is the HUB proxy (Docker Hub names only);
    // containerd and podman mirror a registry name through `ns=` and
    // registries.conf.
    let e = env();
    let c = clients();
    succeeded("docker pull", &c.docker(&["pull", "alpine:latest"]));
    let digests = succeeded(
        "docker inspect",
        &c.docker(&[
            "image",
            "inspect",
            "--format",
            "{{join .RepoDigests \",\"}}",
            "alpine:latest",
        ]),
    );
    assert!(digests.contains(&e.alpine.digest), "docker: {digests}");
    let dir = c.dir().join("mirror");
    let (hosts, conf) = mirror_files(&dir, "registry-a.test", &addr(HUB));
    let image = "registry-a.test/test/single:v3";
    let out = c.ctr_pull(image, None, Some(&hosts));
    assert!(succeeded("ctr pull", &out).contains(&e.single.digest));
    succeeded("podman pull", &c.podman(&["pull", image], Some(&conf)));
    let out = c.podman(
        &[
            "image",
            "inspect",
            "--format",
            "{{join .RepoDigests \",\"}}",
            image,
        ],
        None,
    );
    assert!(succeeded("podman inspect", &out).contains(&e.single.digest));
}

#[test]
fn private_image_with_the_clients_login() {
    let image = format!("{}/private/secret:v1", addr(AUTH));
    let mut journey = plain(&image, &env().private.digest);
    journey.login = Some((token_server::USER, token_server::PASSWORD));
    journey.run();
}

#[test]
fn private_image_with_the_proxys_own_credentials() {
    // Not private/held, whose upstream token requests another test counts.
    let image = format!("{}/held.test/private/secret:v1", addr(HUB));
    plain(&image, &env().private.digest).run();
}

#[test]
fn multi_arch_index_one_platform() {
    let image = format!("{}/test/multi:v1", addr(OPEN));
    plain(&image, &env().multi.digest).run();
}

#[test]
fn upstream_down_image_cached() {
    let e = env();
    let down = rt().block_on(registry::start(&e.dir, "journey-down", ""));
    let image = rt().block_on(registry::push_image(
        down,
        "journey/down",
        "v1",
        "down",
        "amd64",
    ));
    let proxy = spin::Instance::start(&e.app, "journey-down", &[("default_upstream", "")]);
    e.store.set(
        &format!("route/{}", proxy.addr),
        serde_json::json!({"upstream": format!("http://{down}")})
            .to_string()
            .as_bytes(),
    );
    let name = format!("{}/journey/down:v1", proxy.addr);
    assert_eq!(
        pulled_digest(&proxy.url(), "journey/down:v1", None, false),
        image.digest
    );
    registry::stop(&e.dir, "journey-down");
    plain(&name, &image.digest).run();
    proxy.stop();
}

#[test]
fn two_instances_sharing_redis() {
    let e = env();
    let (redis, port) = support::redis::start(&e.dir.join("journey-redis"));
    let app = spin::derive_app(
        &e.dir.join("journey-redis/app"),
        &spin::Store::Redis(port),
        true,
    );
    let vars = [
        ("default_upstream", ""),
        ("admin_token", support::ADMIN_TOKEN),
    ];
    let (a, b) = (
        spin::Instance::start(&app, "a", &vars),
        spin::Instance::start(&app, "b", &vars),
    );
    let image = rt().block_on(registry::push_image(
        e.open,
        "journey/shared",
        "v1",
        "shared",
        "amd64",
    ));
    // A route stored through a serves on b; the cache a fills answers b.
    let admin = format!("Bearer {}", support::ADMIN_TOKEN);
    let route = serde_json::json!({"upstream": format!("http://{}", e.open)}).to_string();
    for i in [&a, &b] {
        let put = send(
            "PUT",
            &format!("{}/_registry-proxy/routes/{}", a.url(), i.addr),
            &[("authorization", admin.as_str())],
            &route,
        );
        assert_eq!(put.status, 201, "{}", put.text());
    }
    assert_eq!(
        pulled_digest(&a.url(), "journey/shared:v1", None, false),
        image.digest
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = upstream_log("open", "journey/shared").len();
    plain(&format!("{}/journey/shared:v1", b.addr), &image.digest).run();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let blobs_after = upstream_log("open", "journey/shared")[before..]
        .iter()
        .filter(|l| l.contains("/blobs/"))
        .count();
    a.stop();
    b.stop();
    redis.stop();
    assert_eq!(blobs_after, 0, "b fetched blobs a had cached");
}

/// docker, containerd and podman each list other manifest types; once one
/// of them pulled a tag, the others are answered from the cache: one
/// upstream `GET` for each manifest, none by tag after the first.
#[test]
fn docker_containerd_and_podman_cost_one_upstream_manifest_get() {
    let e = env();
    let image = rt().block_on(registry::push_image(
        e.open,
        "journey/accept",
        "v1",
        "journey-accept",
        "amd64",
    ));
    let name = format!("{}/journey/accept:v1", addr(OPEN));
    plain(&name, &image.digest).run();
    let log = upstream_log("open", "journey/accept");
    let manifest_gets: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("GET ") && l.contains("/manifests/"))
        .collect();
    let mut paths = manifest_gets.clone();
    paths.sort();
    paths.dedup();
    assert_eq!(
        paths.len(),
        manifest_gets.len(),
        "a manifest fetched twice: {log:?}"
    );
    let by_tag = log
        .iter()
        .filter(|l| !l.starts_with("PUT ") && l.ends_with("/manifests/v1"))
        .count();
    assert!(by_tag <= 1, "the tag asked {by_tag} times: {log:?}");
}
