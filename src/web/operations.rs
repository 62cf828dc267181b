//! The route management API: which operation a request asks for, and the
//! admin token check.

use crate::oci::digest::Digest;
use crate::oci::reference::RepositoryName;
use sha2::{Digest as _, Sha256};

/// Where the API lives unless the `admin_path` variable says otherwise.
pub const DEFAULT_PATH: &str = "/_registry-proxy";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// The status page, or the sign-in form in front of it.
    StatusPage,
    SignIn,
    SignOut,
    /// The status page's "Warm the cache" form: a prefetch shown as a page.
    PagePrefetch,
    /// The status page's "Unpin" button.
    PageUnpin,
    /// Prometheus metrics.
    Metrics,
    ListRoutes,
    GetRoute(String),
    PutRoute(String),
    DeleteRoute(String),
    CacheStats,
    CacheGc,
    /// Every cached manifest and tag of one repository.
    CacheDeleteRepository(String),
    /// One blob, wherever it was fetched from.
    CacheDeleteBlob(String),
    /// What is cached, by repository.
    CacheRepositories,
    /// An image fetched into the cache (the body names it).
    Prefetch,
    ListPins,
    /// An image (as pulled through the proxy) kept out of eviction.
    Pin(String),
    Unpin(String),
}

impl Operation {
    /// Whether it changes the store (and is lost where the store keeps
    /// nothing between requests).
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Operation::StatusPage
                | Operation::SignIn
                | Operation::SignOut
                | Operation::Metrics
                | Operation::ListRoutes
                | Operation::GetRoute(_)
                | Operation::CacheStats
                | Operation::CacheRepositories
                | Operation::ListPins
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationError {
    NotFound,
    MethodNotAllowed,
    /// A host, repository or digest in the path that is not one.
    BadSegment(String),
}

/// Parses the path below the API's prefix.
pub fn parse(method: &str, path: &str) -> Result<Operation, OperationError> {
    let path = path.trim_end_matches('/');
    if let Some(rest) = path.strip_prefix("/cache") {
        return cache_operation(method, rest);
    }
    match (method, path) {
        ("GET", "") => return Ok(Operation::StatusPage),
        ("POST", "/login") => return Ok(Operation::SignIn),
        ("POST", "/logout") => return Ok(Operation::SignOut),
        ("POST", "/prefetch") => return Ok(Operation::PagePrefetch),
        ("POST", "/unpin") => return Ok(Operation::PageUnpin),
        ("GET", "/metrics") => return Ok(Operation::Metrics),
        (_, "" | "/login" | "/logout" | "/prefetch" | "/unpin" | "/metrics") => {
            return Err(OperationError::MethodNotAllowed);
        }
        _ => {}
    }
    match path {
        "/routes" if method == "GET" => Ok(Operation::ListRoutes),
        "/routes" => Err(OperationError::MethodNotAllowed),
        p => {
            let host = p.strip_prefix("/routes/").ok_or(OperationError::NotFound)?;
            let valid = crate::routing::host_header::host_candidates(host).map(|h| h[0].clone());
            let host = valid
                .filter(|h| h == host)
                .ok_or_else(|| OperationError::BadSegment(host.chars().take(100).collect()))?;
            match method {
                "GET" => Ok(Operation::GetRoute(host)),
                "PUT" => Ok(Operation::PutRoute(host)),
                "DELETE" => Ok(Operation::DeleteRoute(host)),
                _ => Err(OperationError::MethodNotAllowed),
            }
        }
    }
}

fn cache_operation(method: &str, rest: &str) -> Result<Operation, OperationError> {
    let bad = |what: &str| OperationError::BadSegment(what.chars().take(100).collect());
    match (method, rest) {
        ("GET", "") => Ok(Operation::CacheStats),
        ("POST", "/gc") => Ok(Operation::CacheGc),
        ("GET", "/repositories") => Ok(Operation::CacheRepositories),
        ("POST", "/prefetch") => Ok(Operation::Prefetch),
        ("GET", "/pins") => Ok(Operation::ListPins),
        ("POST" | "DELETE", r) if r.starts_with("/pins/") => {
            let image = &r["/pins/".len()..];
            if image.is_empty() || image.len() > 512 || image.contains(char::is_whitespace) {
                return Err(bad(image));
            }
            Ok(match method {
                "POST" => Operation::Pin(image.to_string()),
                _ => Operation::Unpin(image.to_string()),
            })
        }
        ("DELETE", r) if r.starts_with("/repositories/") => {
            let name = &r["/repositories/".len()..];
            RepositoryName::parse(name)
                .map(|n| Operation::CacheDeleteRepository(n.to_string()))
                .map_err(|_| bad(name))
        }
        ("DELETE", r) if r.starts_with("/blobs/") => {
            let d = &r["/blobs/".len()..];
            Digest::parse(d)
                .map(|d| Operation::CacheDeleteBlob(d.to_string()))
                .map_err(|_| bad(d))
        }
        (_, "" | "/gc" | "/repositories" | "/prefetch" | "/pins") => {
            Err(OperationError::MethodNotAllowed)
        }
        _ => Err(OperationError::NotFound),
    }
}

/// Compares a presented `Authorization` value with the admin token in
/// constant time (over digests, so the length does not leak either).
pub fn authorized(authorization: Option<&str>, admin_token: &str) -> bool {
    let Some(given) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (
        Sha256::digest(given.trim().as_bytes()),
        Sha256::digest(admin_token.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_token<'a>(headers: impl Iterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The API's prefix from the `admin_path` variable: a path of its own,
/// never under `/v2/`.
pub fn prefix(variable: Option<String>) -> String {
    let p = variable
        .map(|p| p.trim().trim_end_matches('/').to_string())
        .filter(|p| !p.is_empty());
    match p {
        Some(p) if p.starts_with('/') && p != "/v2" && !p.starts_with("/v2/") => p,
        _ => DEFAULT_PATH.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_metrics_live_beside_the_api() {
        assert_eq!(parse("GET", "/"), Ok(Operation::StatusPage));
        assert_eq!(parse("GET", ""), Ok(Operation::StatusPage));
        assert_eq!(parse("POST", "/login"), Ok(Operation::SignIn));
        assert_eq!(parse("POST", "/logout"), Ok(Operation::SignOut));
        assert_eq!(parse("GET", "/metrics"), Ok(Operation::Metrics));
        assert_eq!(parse("POST", "/prefetch"), Ok(Operation::PagePrefetch));
        assert_eq!(parse("POST", "/unpin"), Ok(Operation::PageUnpin));
        assert!(Operation::PagePrefetch.writes() && Operation::PageUnpin.writes());
        assert_eq!(
            parse("GET", "/unpin"),
            Err(OperationError::MethodNotAllowed)
        );
        assert_eq!(
            parse("GET", "/login"),
            Err(OperationError::MethodNotAllowed)
        );
        assert_eq!(parse("DELETE", "/"), Err(OperationError::MethodNotAllowed));
        let cookies = ["a=1; registry_proxy_admin=s3cret", "b=2"];
        assert_eq!(
            cookie_token(cookies.into_iter(), "registry_proxy_admin"),
            Some("s3cret")
        );
        assert_eq!(
            cookie_token(["x=1"].into_iter(), "registry_proxy_admin"),
            None
        );
    }

    #[test]
    fn reads_and_writes_are_told_apart() {
        assert!(!parse("GET", "/routes").unwrap().writes());
        assert!(!parse("GET", "/routes/a.test").unwrap().writes());
        assert!(!parse("GET", "/cache").unwrap().writes());
        assert!(parse("PUT", "/routes/a.test").unwrap().writes());
        assert!(parse("DELETE", "/routes/a.test").unwrap().writes());
        assert!(parse("POST", "/cache/gc").unwrap().writes());
        assert!(parse("POST", "/cache/prefetch").unwrap().writes());
        assert!(!parse("GET", "/cache/repositories").unwrap().writes());
        assert_eq!(
            parse("POST", "/cache/pins/team/multi:v1"),
            Ok(Operation::Pin("team/multi:v1".into()))
        );
        assert_eq!(
            parse("DELETE", "/cache/pins/ghcr.io/o/i:1"),
            Ok(Operation::Unpin("ghcr.io/o/i:1".into()))
        );
        assert_eq!(
            parse("GET", "/cache/prefetch"),
            Err(OperationError::MethodNotAllowed)
        );
    }

    #[test]
    fn operations() {
        assert_eq!(parse("GET", "/routes"), Ok(Operation::ListRoutes));
        assert_eq!(parse("GET", "/routes/"), Ok(Operation::ListRoutes));
        assert_eq!(
            parse("PUT", "/routes/docker.example.com"),
            Ok(Operation::PutRoute("docker.example.com".into()))
        );
        assert_eq!(
            parse("DELETE", "/routes/localhost:3000"),
            Ok(Operation::DeleteRoute("localhost:3000".into()))
        );
        assert_eq!(
            parse("POST", "/routes/x.io"),
            Err(OperationError::MethodNotAllowed)
        );
        assert_eq!(
            parse("PUT", "/routes"),
            Err(OperationError::MethodNotAllowed)
        );
        assert_eq!(parse("GET", "/other"), Err(OperationError::NotFound));
        assert!(matches!(
            parse("GET", "/routes/a b"),
            Err(OperationError::BadSegment(_))
        ));
        assert!(matches!(
            parse("GET", "/routes/UPPER.io"),
            Err(OperationError::BadSegment(_))
        ));
        assert!(matches!(
            parse("GET", "/routes/a/b"),
            Err(OperationError::BadSegment(_))
        ));
    }

    #[test]
    fn token_check() {
        assert!(authorized(Some("Bearer s3cret"), "s3cret"));
        assert!(!authorized(Some("Bearer s3cre"), "s3cret"));
        assert!(!authorized(Some("Basic s3cret"), "s3cret"));
        assert!(!authorized(None, "s3cret"));
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix(None), DEFAULT_PATH);
        assert_eq!(prefix(Some("/admin/".into())), "/admin");
        assert_eq!(prefix(Some("/v2/x".into())), DEFAULT_PATH);
        assert_eq!(prefix(Some("admin".into())), DEFAULT_PATH);
    }
}
