//! A private registry the shipped manifest does not name, configured the
//! way docs/configuration.md tells a user: its hosts in the `private_registry` and
//! `private_registry_auth` variables, its account in `upstream1_*`. The app
//! here is derived without the tests' loopback allowance, so Spin itself
//! decides what the component may reach.

use super::common::*;
use support::{env, registry, rt, spin, token_server};

#[test]
fn a_private_registry_is_reached_through_the_private_registry_variables() {
    let e = env();
    let dir = e.dir.join("private-app");
    let app = spin::derive_app(&dir, &spin::Store::Sqlite, false);
    let registry = format!("http://{}", e.auth);
    let realm = format!("http://{}", e.token.addr);
    let account = [
        ("default_upstream", ""),
        ("upstream1_username", token_server::USER),
        ("upstream1_password", token_server::PASSWORD),
    ];
    let mut configured = account.to_vec();
    configured.extend([
        ("private_registry", registry.as_str()),
        ("private_registry_auth", realm.as_str()),
    ]);
    let with_hosts = spin::Instance::start(&app, "with-hosts", &configured);
    let without_hosts = spin::Instance::start(&app, "without-hosts", &account);
    let store = spin::SqliteStore::of(&app, "default");
    for instance in [&with_hosts, &without_hosts] {
        let route = serde_json::json!({
            "upstream": registry,
            "credentials": "upstream1",
            "allowed_hosts": [e.token.addr.to_string()],
        });
        store.set(
            &format!("route/{}", instance.addr),
            route.to_string().as_bytes(),
        );
    }

    // Anonymous client, the proxy's own account upstream.
    let image = rt().block_on(registry::push_image(
        e.open,
        "private/vars",
        "v1",
        "vars",
        "amd64",
    ));
    assert_eq!(
        pulled_digest(&with_hosts.url(), "private/vars:v1", None, false),
        image.digest
    );
    // Without the variables, Spin refuses the registry's host.
    let (out, _) = skopeo_copy(&without_hosts.url(), "private/vars:v1", None, false);
    assert!(!out.status.success(), "pulled without the host allowed");
    assert!(
        without_hosts
            .runtime_log()
            .contains(&format!("disallowed destination '{registry}")),
        "{}",
        without_hosts.runtime_log()
    );
    for instance in [&with_hosts, &without_hosts] {
        assert!(!instance.component_log().contains(token_server::PASSWORD));
        instance.stop();
    }
}
