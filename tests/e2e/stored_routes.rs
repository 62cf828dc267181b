//! Routes in the key-value store (issue 2): an unknown host's 404 names no
//! stored route, and route changes apply without a restart.

use super::common::*;
use support::{OPEN, env};

#[test]
fn unknown_host_gets_404_naming_no_stored_route() {
    let e = env();
    let r = get(
        &format!("{}/v2/x/manifests/v1", e.proxy(OPEN)),
        &[("host", "nowhere.test")],
    );
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "NAME_UNKNOWN");
    // Stored routes may point at internal hosts or need a login: a stranger
    // learns none of them.
    let text = r.text();
    for stored in [
        e.proxies[OPEN].addr.to_string(),
        e.open.to_string(),
        e.auth.to_string(),
    ] {
        assert!(!text.contains(&stored), "the 404 lists {stored}: {text}");
    }
}

#[test]
fn route_changes_apply_without_restart() {
    let e = env();
    let url = format!("{}/v2/test/single/manifests/v1", e.proxy(OPEN));
    let host = [("host", "switch.test"), ("accept", ACCEPT_ALL)];
    assert_eq!(get(&url, &host).status, 404);
    e.store.set(
        "route/switch.test",
        format!(r#"{{"upstream":"http://{}"}}"#, e.open).as_bytes(),
    );
    assert_eq!(get(&url, &host).status, 200);
    e.store.set(
        "route/switch.test",
        format!(r#"{{"upstream":"http://{}"}}"#, e.auth).as_bytes(),
    );
    let r = get(&url, &host);
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("realm=\"http://switch.test/v2/auth\"")
    );
    e.store.delete("route/switch.test");
    assert_eq!(get(&url, &host).status, 404);
}
