//! Who may do what through which route: the route's allow/deny lists and
//! methods, the proxy's own login, and whose credentials go upstream.

use crate::auth::challenge::ANONYMOUS_TOKEN;
use crate::auth::login;
use crate::host::{Host, Request, Response};
use crate::oci::endpoint::Endpoint;
use crate::oci::error::{ErrorCode, RegistryError};
use crate::routing::target::{self, Incoming, Target};

/// Whether the route serves the repository (by either of its names) and
/// the endpoint takes the method.
pub fn admissible(endpoint: &Endpoint, target: &Target, method: &str) -> Result<(), RegistryError> {
    if let Some(n) = endpoint.name()
        && let Some(upstream) = target.mapping.to_upstream(n)
        && !target.route.serves(n.as_str(), upstream.as_str())
    {
        return Err(RegistryError::new(
            403,
            ErrorCode::Denied,
            format!("repository {n} is not served by this proxy"),
        ));
    }
    let allowed = match endpoint {
        Endpoint::Manifest { .. } => matches!(method, "GET" | "HEAD" | "PUT" | "DELETE"),
        Endpoint::Blob { .. } => matches!(method, "GET" | "HEAD" | "DELETE"),
        Endpoint::BlobUpload { .. } => {
            matches!(method, "GET" | "POST" | "PATCH" | "PUT" | "DELETE")
        }
        _ => matches!(method, "GET" | "HEAD"),
    };
    if !allowed {
        return Err(RegistryError::new(
            405,
            ErrorCode::Unsupported,
            format!("{method} is not supported here"),
        ));
    }
    Ok(())
}

/// Whose credentials a request uses upstream, or the answer the proxy
/// gives it itself.
pub enum Decided<S> {
    Auth(UpstreamAuth),
    Answer(Response<S>),
}

/// Whose credentials go upstream, after the proxy's login where it applies;
/// `Answer` for a logged-in `/v2/`, `Err` for a refused login, write or catalog.
pub fn upstream_auth<H: Host>(
    host: &H,
    incoming: &Incoming,
    target: &Target,
    endpoint: &Endpoint,
    req: &Request<H::Stream>,
) -> Result<Decided<H::Stream>, RegistryError> {
    let writes = !matches!(req.method.as_str(), "GET" | "HEAD");
    let login = login_applies(host, incoming, target)?;
    let auth = if login {
        let client_name = endpoint
            .name()
            .map(|n| target.mapping.full_name(n.as_str()));
        let actions = actions_for(&req.method);
        let authorization = req.headers.get("authorization");
        let name = client_name.as_deref();
        login::check(host, target, &incoming.origin, name, actions, authorization)?;
        if matches!(endpoint, Endpoint::Base) {
            return Ok(Decided::Answer(login::base_ok()));
        }
        // The user may write here; the route's account only if it says so.
        if writes && target.route.credentials.is_some() && !target.route.credentials_for_writes {
            return Err(RegistryError::new(
                403,
                ErrorCode::Denied,
                "this route pulls only with its upstream credentials (credentials_for_writes is off)",
            ));
        }
        UpstreamAuth::Proxy
    } else {
        // The proxy's own anonymous token means "no credentials".
        match req
            .headers
            .get("authorization")
            .filter(|a| !is_anonymous_token(a))
        {
            Some(a) => UpstreamAuth::Client(a.to_string()),
            // A write never rides on the route's account for an anonymous
            // client: the upstream's challenge asks the client for its own.
            None if writes => UpstreamAuth::Anonymous,
            None => UpstreamAuth::Proxy,
        }
    };
    // The catalog lists what the upstream shows the caller: refused where it
    // would show the route's account's, or names the lists or rights hide.
    let route = &target.route;
    let account = matches!(auth, UpstreamAuth::Proxy) && route.credentials.is_some();
    if matches!(endpoint, Endpoint::Catalog)
        && (login || account || !route.allow.is_empty() || !route.deny.is_empty())
    {
        return Err(RegistryError::new(
            403,
            ErrorCode::Denied,
            "the catalog is not listed through this route",
        ));
    }
    Ok(Decided::Auth(auth))
}

/// Whose credentials go upstream.
pub enum UpstreamAuth {
    /// The client's own, passed through.
    Client(String),
    /// The route's, held by the proxy (or none).
    Proxy,
    /// None at all.
    Anonymous,
}

/// Whether the proxy's own login guards this request: the target route's,
/// or that of the host the client talks to, whatever registry it names
/// through it (so a login host never relays its users' passwords, and a
/// login route is not reached without it through another host).
pub fn login_applies<H: Host>(
    host: &H,
    incoming: &Incoming,
    target: &Target,
) -> Result<bool, RegistryError> {
    if login::required(host, &target.route)? {
        return Ok(true);
    }
    if target.namespace.is_none() {
        return Ok(false);
    }
    match target::for_host(host, &incoming.hosts)? {
        Some((_, route)) => login::required(host, &route),
        None => Ok(false),
    }
}

fn is_anonymous_token(authorization: &str) -> bool {
    authorization
        .strip_prefix("Bearer ")
        .is_some_and(|t| t.trim() == ANONYMOUS_TOKEN)
}

/// The token actions (Docker token spec) a request method needs.
pub fn actions_for(method: &str) -> &'static str {
    match method {
        "GET" | "HEAD" => "pull",
        "DELETE" => "delete",
        _ => "pull,push",
    }
}
