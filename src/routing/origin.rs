//! The proxy's own origin (`scheme://host[:port]`), as clients reach it: it
//! goes into the challenges and pages the proxy sends.

/// `public_url` (a Spin variable) wins; otherwise the scheme comes from
/// `X-Forwarded-Proto` (a TLS-terminating front) or the full URL Spin passes
/// in `spin-full-url`, and the host from the validated `Host` header.
pub fn proxy_origin(
    public_url: Option<&str>,
    forwarded_proto: Option<&str>,
    full_url: Option<&str>,
    host: &str,
) -> String {
    if let Some(u) = public_url.map(str::trim).filter(|u| !u.is_empty()) {
        return u.trim_end_matches('/').to_string();
    }
    let forwarded = forwarded_proto
        .and_then(|p| p.split(',').next())
        .map(|p| p.trim().to_ascii_lowercase());
    let from_url = full_url
        .and_then(|u| u.split_once("://"))
        .map(|(s, _)| s.to_ascii_lowercase());
    let scheme = match forwarded.or(from_url).as_deref() {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        assert_eq!(
            proxy_origin(Some("https://r.example.com/"), Some("http"), None, "h"),
            "https://r.example.com"
        );
        assert_eq!(
            proxy_origin(Some(" "), Some("https, http"), Some("http://h/v2/"), "h:1"),
            "https://h:1"
        );
        assert_eq!(
            proxy_origin(None, None, Some("https://h/v2/"), "h"),
            "https://h"
        );
        assert_eq!(proxy_origin(None, Some("gopher"), None, "h"), "http://h");
        assert_eq!(
            proxy_origin(None, None, None, "localhost:3000"),
            "http://localhost:3000"
        );
    }
}
