//! One logical upstream call: sent, with redirects followed under the route's
//! policy, and credentials kept to the origin they were sent to first.

use crate::host::{Body, Headers, Host, OutboundRequest, Response, SendError};
use crate::oci::error::{ErrorCode, RegistryError};
use crate::routing::policy::{self, origin_of};
use crate::routing::route::Route;
use crate::telemetry::stats;
use url::Url;

const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];

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
    let timeout = upstream_timeout(host);
    let mut hops = 0;
    loop {
        let mut h = headers.clone();
        if let Some(a) = authorization {
            h.push("authorization", a);
        }
        let request = OutboundRequest {
            method: method.to_string(),
            url: url.clone(),
            headers: h,
            body: body.take().unwrap_or(Body::Empty),
            timeout,
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
                    .map_err(|e| format!("{e:?}")),
                micros: started.elapsed().as_micros() as u64,
            },
        );
        let response = sent.map_err(|e| match e {
            SendError::Denied => refused(policy::PolicyError::HostNotAllowed(origin_of(&url))),
            SendError::Failed(why) => RegistryError::bad_gateway(format!(
                "upstream {} unreachable: {why}",
                origin_of(&url)
            )),
        })?;
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

/// Seconds to wait on an upstream (the `upstream_timeout` variable).
const DEFAULT_TIMEOUT_SECS: u64 = 30;

fn upstream_timeout<H: Host>(host: &H) -> std::time::Duration {
    let secs = host
        .variable("upstream_timeout")
        .and_then(|v| v.trim().parse().ok())
        .filter(|&s: &u64| s > 0);
    std::time::Duration::from_secs(secs.unwrap_or(DEFAULT_TIMEOUT_SECS))
}

fn refused(e: policy::PolicyError) -> RegistryError {
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
