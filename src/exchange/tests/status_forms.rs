//! The status page's "Warm the cache" form and "Unpin" buttons, through
//! the whole exchange on the in-memory host: signed-in only, refused from
//! another site's page, a prefetch streamed as a page.

use super::prefetch::{prefetch_of, upstream};
use super::{answer, ask, request};
use crate::cache::pins;
use crate::host::memory::MemoryHost;
use crate::host::{Body, Host, Response};
use serde_json::json;

const PAGE: &str = "/_registry-proxy/";
const SAME_SITE: (&str, &str) = ("sec-fetch-site", "same-origin");

/// A session cookie, as the sign-in form sets it.
fn signed_in(host: &MemoryHost) -> String {
    let (r, _) = post(host, "/_registry-proxy/login", &[SAME_SITE], "token=t");
    assert_eq!(r.status, 303);
    let set = r.headers.get("set-cookie").unwrap();
    set.split(';').next().unwrap().to_string()
}

fn post(
    host: &MemoryHost,
    path: &str,
    headers: &[(&str, &str)],
    form: &str,
) -> (Response<()>, String) {
    let mut headers = headers.to_vec();
    headers.push(("content-type", "application/x-www-form-urlencoded"));
    let mut req = request("POST", path, &headers);
    req.body = Body::Bytes(form.as_bytes().to_vec());
    let (r, body) = answer(host, req);
    (r, String::from_utf8(body).unwrap())
}

fn page(host: &MemoryHost, cookie: &str) -> String {
    let (r, body) = ask(host, "GET", PAGE, &[("cookie", cookie)]);
    assert_eq!(r.status, 200);
    String::from_utf8(body).unwrap()
}

fn pin_ids(host: &MemoryHost) -> Vec<String> {
    pins::records(host.cache().as_ref())
        .unwrap()
        .into_keys()
        .collect()
}

#[test]
fn the_form_and_the_pins_show_only_when_signed_in() {
    let (host, _) = upstream();
    prefetch_of(&host, json!({"image": "team/multi:v1", "pin": true}));
    let (_, form) = ask(&host, "GET", PAGE, &[]);
    let form = String::from_utf8(form).unwrap();
    assert!(form.contains("name=\"token\""));
    assert!(
        !form.contains("/prefetch") && !form.contains("Unpin"),
        "{form}"
    );
    let html = page(&host, &signed_in(&host));
    assert!(
        html.contains("action=\"/_registry-proxy/prefetch\""),
        "{html}"
    );
    for field in ["name=\"image\"", "name=\"platforms\"", "name=\"pin\""] {
        assert!(html.contains(field), "{field}");
    }
    let pins = &html[html.find("<table id=\"pins\">").expect("a pins table")..];
    assert!(
        pins.contains("<code>default/team/multi:v1</code>"),
        "{pins}"
    );
    assert!(pins.contains("action=\"/_registry-proxy/unpin\""), "{pins}");
    assert!(pins.contains("value=\"default/team/multi:v1\""), "{pins}");
}

#[test]
fn cross_site_or_signed_out_posts_are_refused_and_start_nothing() {
    let (host, _) = upstream();
    prefetch_of(&host, json!({"image": "team/multi:v1", "pin": true}));
    let cookie = signed_in(&host);
    let sent = host.upstream.sent.borrow().len();
    let warm = "image=team%2Fmulti%3Av1&pin=on";
    let unpin = "pin=default%2Fteam%2Fmulti%3Av1";
    for foreign in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ] {
        let headers = [("cookie", cookie.as_str()), foreign];
        let (r, body) = post(&host, "/_registry-proxy/prefetch", &headers, warm);
        assert_eq!(r.status, 403, "{foreign:?}");
        assert!(
            body.contains("not sent from this proxy&#39;s own page"),
            "{body}"
        );
        let (r, _) = post(&host, "/_registry-proxy/unpin", &headers, unpin);
        assert_eq!(r.status, 403, "{foreign:?}");
    }
    // No session: the sign-in form, and nothing done either.
    let (r, body) = post(&host, "/_registry-proxy/prefetch", &[SAME_SITE], warm);
    assert_eq!(r.status, 403);
    assert!(body.contains("Sign in first"), "{body}");
    let (r, _) = post(&host, "/_registry-proxy/unpin", &[SAME_SITE], unpin);
    assert_eq!(r.status, 403);
    assert_eq!(host.upstream.sent.borrow().len(), sent, "a walk started");
    assert_eq!(pin_ids(&host), ["default/team/multi:v1"]);
}

#[test]
fn a_prefetch_from_the_page_streams_a_row_an_object_and_the_summary() {
    let (host, objects) = upstream();
    let cookie = signed_in(&host);
    let headers = [("cookie", cookie.as_str()), SAME_SITE];
    let form = "image=team%2Fmulti%3Av1&platforms=linux%2Farm64&pin=on";
    let (r, html) = post(&host, "/_registry-proxy/prefetch", &headers, form);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        r.headers
            .get("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(!html.contains("<script"));
    assert!(
        html.contains("<h1>Warming <code>team/multi:v1</code></h1>"),
        "{html}"
    );
    // The index, then the arm64 manifest, config and layer: a row and a bar each.
    assert_eq!(
        html.matches("<div class=\"row\"><span>").count(),
        4,
        "{html}"
    );
    assert_eq!(html.matches("<p class=\"meter\"").count(), 5, "{html}");
    let (arm_layer, _) = &objects[4];
    let short = &arm_layer[..19];
    assert!(
        html.contains(&format!("<code title=\"{arm_layer}\">{short}</code>")),
        "{html}"
    );
    assert!(html.contains("<span>manifest linux/arm64</span>"), "{html}");
    assert_eq!(
        html.matches("<span class=\"cached\">fetched</span>")
            .count(),
        4
    );
    assert!(html.contains("4 of 4 cached"), "{html}");
    assert!(html.contains("<progress value=\"4\" max=\"4\">"), "{html}");
    assert!(html.contains("All of the image is in the cache."), "{html}");
    assert!(html.contains("<p id=\"pin\">Pinned: "), "{html}");
    assert!(html.contains("href=\"/_registry-proxy/\""), "{html}");
    assert_eq!(pin_ids(&host), ["default/team/multi:v1"]);
    // Listed as cached and pinned on the page at once.
    let page = page(&host, &cookie);
    let listed = "<code>http://upstream.test/team/multi</code></td><td><code>v1</code>";
    assert!(page.contains(listed), "{page}");
}

#[test]
fn the_forms_mistakes_are_sentences_on_a_page() {
    let (host, _) = upstream();
    let cookie = signed_in(&host);
    let headers = [("cookie", cookie.as_str()), SAME_SITE];
    let form = "image=team%2FMulti%3Av1&platforms=linux%2Farm64%2C+linux%2Fpdp11";
    let (r, html) = post(&host, "/_registry-proxy/prefetch", &headers, form);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.headers.get("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        html.contains("<li>platforms: &quot;pdp11&quot; is not an architecture (GOARCH)</li>"),
        "{html}"
    );
    let (_, html) = post(
        &host,
        "/_registry-proxy/prefetch",
        &headers,
        "image=team%2FMulti",
    );
    assert!(
        html.contains("<li>image: &quot;team/Multi&quot;: invalid repository name component"),
        "{html}"
    );
    assert!(!html.contains("BadComponent"), "{html}");
    assert_eq!(host.upstream.sent.borrow().len(), 0);
}

#[test]
fn unpin_removes_the_pin_and_goes_back_to_the_page() {
    let (host, _) = upstream();
    prefetch_of(&host, json!({"image": "team/multi:v1", "pin": true}));
    let cookie = signed_in(&host);
    let headers = [("cookie", cookie.as_str()), SAME_SITE];
    let unpin = "pin=default%2Fteam%2Fmulti%3Av1";
    let (r, _) = post(&host, "/_registry-proxy/unpin", &headers, unpin);
    assert_eq!(r.status, 303);
    assert_eq!(r.headers.get("location"), Some(PAGE));
    assert!(pin_ids(&host).is_empty());
    assert!(page(&host, &cookie).contains("<p id=\"pins\">No pins.</p>"));
    let (r, html) = post(&host, "/_registry-proxy/unpin", &headers, unpin);
    assert_eq!(r.status, 404);
    assert!(
        html.contains("There is no pin &quot;default/team/multi:v1&quot;"),
        "{html}"
    );
}
