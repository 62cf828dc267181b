//! Blobs delivered by redirect (`blob_delivery = "redirect"`), for the
//! hosted platforms that cap a response body (Fermyon Cloud, Akamai
//! Functions: 10 MiB). Docker Hub, GHCR, Quay, GCR, ECR Public and MCR
//! answer a blob `GET` with a redirect to a signed CDN URL: the proxy asks
//! with its own or the client's credentials and hands the client that URL,
//! which carries no credential of either. A blob the upstream serves itself
//! streams if it fits the body limit, and is refused with the limit named if
//! its length says it does not; without a length, the stream is cut once
//! it passes the limit.

use super::Call;
use crate::host::{Body, Chunks, Headers, Host, Response};
use crate::oci::digest::Digest;
use crate::oci::error::{ErrorCode, RegistryError};
use crate::routing::blob_delivery::BlobDelivery;
use crate::routing::policy;
use crate::upstream::fetch::{REDIRECTS, refused};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The route's delivery, else the `blob_delivery` variable's.
pub fn mode<H: Host>(call: &Call<'_, H>) -> BlobDelivery {
    call.target.route.blob_delivery.unwrap_or_else(|| {
        BlobDelivery::parse(&call.host.settings().blob_delivery).unwrap_or(BlobDelivery::Stream)
    })
}

/// The largest body this proxy may send (`body_limit`).
fn body_limit<H: Host>(host: &H) -> u64 {
    host.settings().body_limit
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
    served_itself(call, resp, digest)
}

/// A blob the upstream serves itself: refused up front when its length is
/// known to be over the body limit; else passed back, its body cut once it
/// passes the limit, since a chunked answer tells its length only by ending.
fn served_itself<H: Host>(
    call: &Call<'_, H>,
    resp: Response<H::Stream>,
    digest: &Digest,
) -> Result<Response<H::Stream>, RegistryError> {
    let size = resp
        .headers
        .get("content-length")
        .and_then(|l| l.parse::<u64>().ok());
    let limit = body_limit(call.host);
    if let Some(size) = size
        && resp.status == 200
        && size > limit
    {
        return Err(RegistryError::new(
            501,
            ErrorCode::Unsupported,
            format!(
                "blob {digest} is {size} bytes, over this proxy's body limit of {limit} \
                 (variable body_limit), and its upstream serves it without a redirect: \
                 pull it from the upstream directly, or use a proxy with blob_delivery = \"stream\""
            ),
        ));
    }
    let mut resp = call.pass_back(resp);
    let chunks = match std::mem::replace(&mut resp.body, Body::Empty).streamed() {
        Ok(chunks) => chunks,
        Err(small) => {
            resp.body = small;
            return Ok(resp);
        }
    };
    resp.body = Body::Generated(Box::pin(Bounded::new(chunks, limit, digest.to_string())));
    Ok(resp)
}

/// A body stream that ends with an error once more than `limit` bytes
/// have passed: the client sees a cut body, and the log says why, where a
/// hosted platform would otherwise cut it with no word at its own cap.
pub(super) struct Bounded {
    inner: Option<Chunks>,
    passed: u64,
    limit: u64,
    digest: String,
}

impl Bounded {
    /// `inner` passed on up to `limit` bytes; `digest` names the blob in the error.
    pub(super) fn new(inner: Chunks, limit: u64, digest: String) -> Self {
        Self {
            inner: Some(inner),
            passed: 0,
            limit,
            digest,
        }
    }
}

impl Stream for Bounded {
    type Item = Result<Vec<u8>, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let chunk = match inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => chunk,
            other => return other,
        };
        self.passed += chunk.len() as u64;
        if self.passed <= self.limit {
            return Poll::Ready(Some(Ok(chunk)));
        }
        // Ends here: the upstream is not read further.
        self.inner = None;
        let why = format!(
            "blob {} passed this proxy's body limit of {} bytes (variable body_limit) \
             with no Content-Length from its upstream, which serves it without a redirect: \
             the body is cut",
            self.digest, self.limit
        );
        eprintln!("{why}");
        Poll::Ready(Some(Err(why)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(sizes: &[usize]) -> Chunks {
        let list: Vec<Result<Vec<u8>, String>> = sizes.iter().map(|&n| Ok(vec![7; n])).collect();
        Box::pin(futures::stream::iter(list))
    }

    fn collect(stream: Bounded) -> Vec<Result<usize, String>> {
        let items = futures::executor::block_on(stream.collect::<Vec<_>>());
        items.into_iter().map(|c| c.map(|c| c.len())).collect()
    }

    /// Finding 4: a stream past the body limit ends with an error, and
    /// nothing after that is read.
    #[test]
    fn a_body_past_the_limit_is_cut_with_an_error() {
        let out = collect(Bounded::new(chunks(&[4, 4, 4, 4]), 10, "sha256:x".into()));
        assert_eq!(out[..2], [Ok(4), Ok(4)]);
        assert_eq!(out.len(), 3, "{out:?}");
        let why = out[2].as_ref().unwrap_err();
        assert!(
            why.contains("sha256:x") && why.contains("body_limit"),
            "{why}"
        );
    }

    #[test]
    fn a_body_within_the_limit_passes_whole() {
        let out = collect(Bounded::new(chunks(&[4, 4, 2]), 10, "d".into()));
        assert_eq!(out, [Ok(4), Ok(4), Ok(2)]);
        let out = collect(Bounded::new(chunks(&[]), 0, "d".into()));
        assert!(out.is_empty());
        // An upstream error passes through as it is.
        let failing: Chunks = Box::pin(futures::stream::iter([Err("reset".to_string())]));
        let out = collect(Bounded::new(failing, 10, "d".into()));
        assert_eq!(out, [Err("reset".to_string())]);
    }
}
