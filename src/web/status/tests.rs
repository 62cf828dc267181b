use super::*;

const TOKEN: &str = "the-admin-token";
const NOW: u64 = 1_700_000_000;

fn headers(pairs: &[(&str, &str)]) -> Headers {
    let mut h = Headers::default();
    for (n, v) in pairs {
        h.push(n, *v);
    }
    h
}

fn set_cookie(r: &Response<()>) -> &str {
    r.headers.get("set-cookie").unwrap()
}

/// Finding 2: the cookie holds a signed session, never the admin token, and
/// the admin token itself is no longer a session.
#[test]
fn the_cookie_holds_a_signed_session_not_the_admin_token() {
    let value = new_session(TOKEN, NOW, [1, 2]);
    assert!(!value.contains(TOKEN), "{value}");
    let fields: Vec<&str> = value.split('.').collect();
    assert_eq!(fields[..2], ["v1", &(NOW + 12 * 3600).to_string()]);
    assert_eq!(fields[2], "00000000000000010000000000000002");
    assert_eq!(fields[3].len(), 64);
    assert!(session_valid(&value, TOKEN, NOW));
    assert!(session_valid(&value, TOKEN, NOW + 12 * 3600 - 1));
    // What the cookie held before: the raw admin token.
    assert!(!session_valid(TOKEN, TOKEN, NOW));
    assert_ne!(value, new_session(TOKEN, NOW, [1, 3]));
    let r: Response<()> = to_page("/_registry-proxy", "http://h", &value);
    let cookie = set_cookie(&r);
    assert!(
        cookie.starts_with(&format!("{COOKIE}={value};")),
        "{cookie}"
    );
    for flag in [
        "; Path=/_registry-proxy",
        "; HttpOnly",
        "; SameSite=Strict",
        "; Max-Age=43200",
    ] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"));
    let r: Response<()> = to_page("/p", "https://h", &value);
    assert!(set_cookie(&r).contains("; Secure"));
}

/// Finding 2: expired, altered, foreign (another admin token: rotation) or
/// malformed values are refused like no cookie.
#[test]
fn expired_forged_or_foreign_sessions_are_refused() {
    let value = new_session(TOKEN, NOW, [7, 8]);
    assert!(!session_valid(&value, TOKEN, NOW + 12 * 3600));
    assert!(!session_valid(&value, "a-new-admin-token", NOW));
    let (signed, tag) = value.rsplit_once('.').unwrap();
    let later = signed.replace(&(NOW + 43200).to_string(), &(NOW + 86400).to_string());
    assert!(!session_valid(
        &format!("{later}.{tag}"),
        TOKEN,
        NOW + 43200
    ));
    let flipped = if tag.starts_with('0') { "1" } else { "0" };
    let forged = format!("{signed}.{flipped}{}", &tag[1..]);
    assert!(!session_valid(&forged, TOKEN, NOW));
    assert!(!session_valid(&value.replacen("v1", "v2", 1), TOKEN, NOW));
    // A validly signed value that claims more than 12 hours.
    let long = new_session(TOKEN, NOW + 3600, [7, 8]);
    assert!(!session_valid(&long, TOKEN, NOW));
    for bad in ["", ".", "v1", "v1.1.2", "v1.x.y.zz", &format!("{value}.00")] {
        assert!(!session_valid(bad, TOKEN, NOW), "{bad:?}");
    }
    // Sign-out still clears the cookie.
    let out: Response<()> = sign_out("/p", "http://h");
    assert!(set_cookie(&out).starts_with(&format!("{COOKIE}=;")));
    assert!(set_cookie(&out).contains("; Max-Age=0"));
}

/// Finding 2: another site's form post is refused (before the login
/// throttle counts anything); the proxy's own page, and clients that are not
/// browsers, are let through.
#[test]
fn cross_site_sign_ins_are_refused() {
    let own = "http://127.0.0.1:3000";
    let refused = |pairs: &[(&str, &str)]| {
        refuse_cross_site::<()>(&headers(pairs), "/p", own).map(|r| r.status)
    };
    assert_eq!(refused(&[]), None);
    assert_eq!(refused(&[("sec-fetch-site", "same-origin")]), None);
    assert_eq!(refused(&[("sec-fetch-site", "none")]), None);
    assert_eq!(refused(&[("origin", "http://127.0.0.1:3000")]), None);
    assert_eq!(refused(&[("origin", "HTTP://127.0.0.1:3000")]), None);
    let same = [("sec-fetch-site", "same-origin"), ("origin", own)];
    assert_eq!(refused(&same), None);
    assert_eq!(refused(&[("sec-fetch-site", "cross-site")]), Some(403));
    assert_eq!(refused(&[("sec-fetch-site", "same-site")]), Some(403));
    assert_eq!(refused(&[("origin", "https://evil.example")]), Some(403));
    // Behind a TLS front the proxy may see http where the browser saw
    // https: the host is what tells another site.
    assert_eq!(refused(&[("origin", "https://127.0.0.1:3000")]), None);
    assert_eq!(refused(&[("origin", "http://127.0.0.2:3000")]), Some(403));
    assert_eq!(refused(&[("origin", "null")]), Some(403));
    let mixed = [("sec-fetch-site", "same-origin"), ("origin", "http://x")];
    assert_eq!(refused(&mixed), Some(403));
    // The default port is the same origin, as browsers leave it out.
    let r = refuse_cross_site::<()>(
        &headers(&[("origin", "https://r.example.com")]),
        "/p",
        "https://r.example.com:443",
    );
    assert!(r.is_none());
    let page = refuse_cross_site::<()>(&headers(&[("origin", "http://x")]), "/p", own).unwrap();
    assert!(page.headers.get("set-cookie").is_none());
}
