//! What goes out besides the bodies: the headers every answer carries, the
//! ones a request upstream may carry, and who may sign the admin out.

use super::{Upstream, ask};

/// Finding 10: another site's page cannot sign the admin out: its post is
/// refused as a cross-site sign-in is, and the session cookie stays.
#[test]
fn a_cross_site_sign_out_is_refused() {
    let (host, _, _) = Upstream::new().host();
    host.set_variable("admin_token", "t");
    let logout = "/_registry-proxy/logout";
    for foreign in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ] {
        let (r, _) = ask(&host, "POST", logout, &[foreign]);
        assert_eq!(r.status, 403, "{foreign:?}");
        assert_eq!(r.headers.get("set-cookie"), None, "{foreign:?}");
    }
    let own = [
        ("sec-fetch-site", "same-origin"),
        ("origin", "http://proxy.test"),
    ];
    let (r, _) = ask(&host, "POST", logout, &own);
    assert_eq!(r.status, 303);
    assert!(r.headers.get("set-cookie").unwrap().contains("Max-Age=0"));
}
