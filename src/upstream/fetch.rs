//! One logical upstream call: sent, with redirects followed under the route's
//! policy, and credentials kept to the origin they were sent to first.

use crate::host::{Body, Headers, Host, OutboundRequest, Response, SendError};
use crate::oci::error::{ErrorCode, RegistryError};
use crate::routing::policy::{self, origin_of};
use crate::routing::route::Route;
use crate::telemetry::stats;
use url::Url;

pub const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];

/// One call to the route's upstream: `url` must be an allowed host, and so
/// must every redirect target, followed up to five hops for `GET` and
/// `HEAD` only, with `authorization` sent only to the origin it was sent
/// to first.
pub async fn fetch<H: Host>(
    host: &H,
    route: &Route,
    method: &str,
    url: Url,
    headers: Headers,
    authorization: Option<&str>,
    body: Body<H::Stream>,
) -> Result<Response<H::Stream>, RegistryError> {
    // A realm is checked like a redirect target: it came from the upstream.
    policy::check_target(&url, &route.allowed).map_err(refused)?;
    let credential_origin = url.origin();
    let mut url = url;
    let mut authorization = authorization;
    let mut body = Some(body);
    let mut hops = 0;
    loop {
        let body = body.take().unwrap_or(Body::Empty);
        let response = once(host, method, &url, headers.clone(), authorization, body).await?;
        // Only reads follow redirects; anything else goes back to the client.
        let followable = matches!(method, "GET" | "HEAD") && REDIRECTS.contains(&response.status);
        let Some(location) = response.headers.get("location").filter(|_| followable) else {
            return Ok(response);
        };
        let next =
            policy::follow_redirect(&url, location, &credential_origin, &route.allowed, hops)
                .map_err(refused)?;
        url = next.url;
        if !next.send_authorization {
            authorization = None;
        }
        hops += 1;
    }
}

/// The same, with a redirect answered back as it came (a blob's signed CDN
/// URL, for the client to fetch itself).
pub async fn unfollowed<H: Host>(
    host: &H,
    route: &Route,
    method: &str,
    url: Url,
    headers: Headers,
    authorization: Option<&str>,
) -> Result<Response<H::Stream>, RegistryError> {
    policy::check_target(&url, &route.allowed).map_err(refused)?;
    once(host, method, &url, headers, authorization, Body::Empty).await
}

/// One request to a URL already checked, noted for the metrics.
async fn once<H: Host>(
    host: &H,
    method: &str,
    url: &Url,
    mut headers: Headers,
    authorization: Option<&str>,
    body: Body<H::Stream>,
) -> Result<Response<H::Stream>, RegistryError> {
    if let Some(a) = authorization {
        headers.push("authorization", a);
    }
    let request = OutboundRequest {
        method: method.to_string(),
        url: url.clone(),
        headers,
        body,
        timeout: upstream_timeout(host),
    };
    let started = std::time::Instant::now();
    let sent = host.send(request).await;
    stats::note_upstream(
        host,
        crate::host::notes::UpstreamCall {
            upstream: url[url::Position::BeforeHost..url::Position::AfterPort].to_string(),
            result: sent
                .as_ref()
                .map(|r| r.status)
                .map_err(SendError::to_string),
            micros: started.elapsed().as_micros() as u64,
        },
    );
    sent.map_err(|e| match e {
        SendError::Denied => refused(policy::PolicyError::HostNotAllowed(origin_of(url))),
        failed @ SendError::Failed { .. } => {
            RegistryError::bad_gateway(format!("upstream unreachable: {failed}"))
        }
    })
}

/// How long to wait on an upstream (the `upstream_timeout` variable).
fn upstream_timeout<H: Host>(host: &H) -> std::time::Duration {
    host.settings().upstream_timeout
}

/// A host or redirect the route does not allow, logged, as a 502 `DENIED`.
pub fn refused(e: policy::PolicyError) -> RegistryError {
    eprintln!("refused: {e}");
    RegistryError::new(502, ErrorCode::Denied, e.to_string())
}

/// A plain `GET` (realm discovery, token requests).
pub async fn get<H: Host>(
    host: &H,
    route: &Route,
    url: Url,
    authorization: Option<&str>,
) -> Result<Response<H::Stream>, RegistryError> {
    fetch(
        host,
        route,
        "GET",
        url,
        Headers::default(),
        authorization,
        Body::Empty,
    )
    .await
}
