//! Blobs delivered by redirect (`blob_delivery = "redirect"`), for the
//! hosted platforms that cap a response body (Fermyon Cloud, Akamai
//! Functions: 10 MiB). Docker Hub, GHCR, Quay, GCR, ECR Public and MCR
//! answer a blob `GET` with a redirect to a signed CDN URL: the proxy asks
//! with its own or the client's credentials and hands the client that URL,
//! which carries no credential of either. A blob the upstream serves itself
//! streams if it fits the body limit, and is refused with the limit named if
//! not.

use super::Call;
use crate::host::{Body, Headers, Host, Response};
use crate::oci::digest::Digest;
use crate::oci::error::{ErrorCode, RegistryError};
use crate::routing::delivery::BlobDelivery;
use crate::routing::policy;
use crate::upstream::fetch::{REDIRECTS, refused};

/// The route's delivery, else the `blob_delivery` variable's.
pub fn mode<H: Host>(call: &Call<'_, H>) -> BlobDelivery {
    call.target.route.blob_delivery.unwrap_or_else(|| {
        let variable = call.host.variable("blob_delivery").unwrap_or_default();
        BlobDelivery::parse(&variable).unwrap_or(BlobDelivery::Stream)
    })
}

/// The largest body this proxy may send (`body_limit`, default 10 MiB).
fn body_limit<H: Host>(host: &H) -> u64 {
    host.variable("body_limit")
        .and_then(|v| crate::variables::parse_size(&v))
        .unwrap_or(10 << 20)
}

/// A blob `GET`, answered with where to fetch it.
pub async fn redirect<H: Host>(
    call: &Call<'_, H>,
    digest: &Digest,
) -> Result<Response<H::Stream>, RegistryError> {
    let resp = call.upstream_unfollowed("GET").await?;
    if REDIRECTS.contains(&resp.status)
        && let Some(location) = resp.headers.get("location")
    {
        let target = call
            .upstream_url()?
            .join(location)
            .map_err(|e| RegistryError::bad_gateway(format!("upstream redirect: {e}")))?;
        // The client goes there on the upstream's word: only to hosts the
        // route may reach itself, and never with credentials in the URL.
        policy::check_target(&target, &call.target.route.allowed).map_err(refused)?;
        if !target.username().is_empty() || target.password().is_some() {
            return Err(RegistryError::bad_gateway(
                "the upstream redirected to a URL with credentials in it",
            ));
        }
        let mut headers = Headers::default();
        headers.push("location", target.as_str());
        headers.push("docker-content-digest", digest.as_str());
        headers.push("cache-control", "no-store");
        return Ok(Response {
            status: 307,
            headers,
            body: Body::Empty,
        });
    }
    let size = resp
        .headers
        .get("content-length")
        .and_then(|l| l.parse::<u64>().ok());
    let limit = body_limit(call.host);
    match size {
        Some(size) if resp.status == 200 && size > limit => Err(RegistryError::new(
            501,
            ErrorCode::Unsupported,
            format!(
                "blob {digest} is {size} bytes, over this proxy's body limit of {limit} \
                 (variable body_limit), and its upstream serves it without a redirect: \
                 pull it from the upstream directly, or use a proxy with blob_delivery = \"stream\""
            ),
        )),
        _ => Ok(call.pass_back(resp)),
    }
}
