//! Outbound requests through `wasi:http/outgoing-handler`, with timeouts.

use super::{ChunkStream, Stream, body, failure};
use crate::host::{self, Phase};
use std::task::Poll;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, FutureIncomingResponse, IncomingResponse, Method, OutgoingRequest, RequestOptions,
    Scheme,
};
use wasi::io::error::Error as IoError;

/// [`send`] as a handle for the proxy to keep.
pub struct Handle;

impl host::Outbound for Handle {
    fn send(
        &self,
        request: host::OutboundRequest<host::Chunks>,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<host::Response<host::Chunks>, host::SendError>>>,
    > {
        let request = host::OutboundRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: match request.body {
                host::Body::Empty => host::Body::Empty,
                host::Body::Bytes(b) => host::Body::Bytes(b),
                host::Body::Stream(c) | host::Body::Generated(c) => host::Body::Generated(c),
            },
            timeout: request.timeout,
        };
        Box::pin(async move {
            let response = send(request).await?;
            Ok(host::Response {
                status: response.status,
                headers: response.headers,
                body: host::into_chunks(response.body),
            })
        })
    }
}

/// Sends `request` through `wasi:http/outgoing-handler`, its body streamed out and
/// `timeout` on connect, head and each byte gap; `Denied` for a host not allowed.
pub async fn send(
    request: host::OutboundRequest<Stream>,
) -> Result<host::Response<Stream>, host::SendError> {
    let outgoing = prepare(&request.method, &request.url, &request.headers)?;
    let chunks = match request.body {
        host::Body::Empty => None,
        host::Body::Bytes(b) => {
            Some(Box::pin(futures::stream::once(async { Ok(b) })) as ChunkStream)
        }
        host::Body::Stream(s) => Some(s.chunks),
        host::Body::Generated(g) => Some(g),
    };
    let response = match chunks {
        None => answer(outgoing, request.timeout).await,
        Some(chunks) => {
            let sink = outgoing
                .body()
                .map_err(|()| runtime(&request.url, "its body was already taken"))?;
            let (response, _) =
                futures::join!(answer(outgoing, request.timeout), body::pump(chunks, sink));
            response
        }
    };
    let (url, timeout) = (request.url, request.timeout);
    let response = response.map_err(|e| failure::send_error(&url, e, Phase::FirstByte, timeout))?;
    let status = response.status();
    let headers = body::headers_of(&response.headers());
    let incoming = response
        .consume()
        .map_err(|()| runtime(&url, "its answer's body was already taken"))?;
    let cut = url.clone();
    let chunks = body::chunks(incoming.stream(), incoming, move |e| {
        cut_short(&cut, &e, timeout)
    })
    .map_err(|()| runtime(&url, "its answer's body cannot be read"))?;
    Ok(host::Response {
        status,
        headers,
        body: host::Body::Stream(Stream {
            chunks,
            _response: Some(response),
        }),
    })
}

/// The request's method, URL and headers as the runtime takes them.
fn prepare(
    method: &str,
    url: &url::Url,
    headers: &host::Headers,
) -> Result<OutgoingRequest, host::SendError> {
    let outgoing = OutgoingRequest::new(body::fields(headers));
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_string()),
    };
    let scheme = if url.scheme() == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let authority = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let set = outgoing.set_method(&method).is_ok()
        && outgoing.set_scheme(Some(&scheme)).is_ok()
        && outgoing.set_authority(Some(&authority)).is_ok()
        && outgoing.set_path_with_query(Some(path)).is_ok();
    if set {
        Ok(outgoing)
    } else {
        Err(runtime(url, "it took not the method, scheme, host or path"))
    }
}

/// A request the runtime would not take, and why.
fn runtime(url: &url::Url, why: &str) -> host::SendError {
    host::SendError::failed(url, host::Failure::Runtime(why.to_string()))
}

/// Why an answer's body stopped: a timeout here is one between bytes.
fn cut_short(url: &url::Url, e: &IoError, timeout: std::time::Duration) -> String {
    match wasi::http::types::http_error_code(e) {
        Some(code) => failure::send_error(url, code, Phase::BetweenBytes, timeout).to_string(),
        None => e.to_debug_string(),
    }
}

/// Sends a request with timeouts and waits for its answer's head.
fn answer(
    request: OutgoingRequest,
    timeout: std::time::Duration,
) -> impl std::future::Future<Output = Result<IncomingResponse, ErrorCode>> {
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let options = RequestOptions::new();
    // A host that does not support one of them leaves it unset.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));
    // The waker registration lives as long as the future: dropping the
    // future (a client gone) cancels it.
    struct Pending {
        future: Result<FutureIncomingResponse, ErrorCode>,
        cancel: Option<spin_executor::CancelOnDropToken>,
    }
    impl Drop for Pending {
        fn drop(&mut self) {
            // The registration goes before the future it watches.
            drop(self.cancel.take());
        }
    }
    let mut pending = Pending {
        future: outgoing_handler::handle(request, Some(options)),
        cancel: None,
    };
    futures::future::poll_fn(move |cx| match &pending.future {
        Ok(f) => match f.get() {
            Some(Ok(result)) => Poll::Ready(result),
            Some(Err(())) => Poll::Ready(Err(ErrorCode::InternalError(Some(
                "response taken twice".into(),
            )))),
            None => {
                let token =
                    spin_executor::push_waker_and_get_token(f.subscribe(), cx.waker().clone());
                pending.cancel = Some(spin_executor::CancelOnDropToken::from(token));
                Poll::Pending
            }
        },
        Err(e) => Poll::Ready(Err(e.clone())),
    })
}
