//! What goes out besides the bodies: the headers every answer carries, the
//! ones a request upstream may carry, and who may sign the admin out.

use super::{DOCKER, Upstream, answer, ask, request};
use crate::host::Body;

/// Finding 10: answers of every kind, relayed, cached or the proxy's own
/// errors, tell browsers not to sniff their type (an upstream's
/// `text/html` would otherwise render on the proxy's origin).
#[test]
fn every_answer_says_nosniff() {
    let (host, index, blob) = Upstream::new().host();
    let tag = "/v2/library/app/manifests/v1";
    let by_digest = format!("/v2/library/app/manifests/{index}");
    let blob = format!("/v2/library/app/blobs/{blob}");
    let asked = [
        ("GET", tag),
        ("GET", tag),
        ("HEAD", by_digest.as_str()),
        ("GET", blob.as_str()),
        ("GET", blob.as_str()),
        ("GET", "/v2/library/app/manifests/missing"),
        ("GET", "/v2/not//a/path"),
        ("GET", "/v2/"),
    ];
    for (method, path) in asked {
        let (r, _) = ask(&host, method, path, &[("accept", DOCKER)]);
        let said: Vec<&str> = r.headers.get_all("x-content-type-options").collect();
        assert_eq!(said, ["nosniff"], "{method} {path}: {}", r.status);
    }
}

/// Finding 10: a GET or HEAD goes upstream without the body headers a
/// client put on it; a request with a body still says how long it is.
#[test]
fn only_requests_with_a_body_take_body_headers_upstream() {
    let (host, _, blob) = Upstream::new().host();
    let claims = [
        ("content-length", "10"),
        ("content-range", "0-9"),
        ("content-type", "text/plain"),
    ];
    let blob = format!("/v2/library/app/blobs/{blob}");
    for (method, path) in [
        ("GET", "/v2/library/app/manifests/v1"),
        ("HEAD", "/v2/library/app/manifests/v2"),
        ("HEAD", blob.as_str()),
        ("GET", blob.as_str()),
    ] {
        ask(&host, method, path, &claims);
    }
    let mut patch = request("PATCH", "/v2/library/app/blobs/uploads/u1", &claims);
    patch.body = Body::Stream(futures::stream::iter(vec![Ok(b"0123456789".to_vec())]));
    answer(&host, patch);
    let sent = host.upstream.sent.borrow();
    let reads: Vec<_> = sent
        .iter()
        .filter(|s| matches!(s.method.as_str(), "GET" | "HEAD"))
        .collect();
    assert!(reads.len() >= 4, "{reads:?}");
    for read in reads {
        for (name, _) in claims {
            assert_eq!(read.headers.get(name), None, "{} {}", read.method, read.url);
        }
    }
    let patch = sent.iter().find(|s| s.method == "PATCH").unwrap();
    for (name, value) in claims {
        assert_eq!(patch.headers.get(name), Some(value));
    }
}

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
