//! One incoming request, start to end: read it, let the proxy answer, stream
//! the answer out beside the work it started (a blob's copy), then count
//! what happened.

use super::{ChunkStream, Platform, Stream, WasiHost, body, respond};
use crate::cache::key_budget;
use crate::{exchange, host};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use wasi::http::types::{IncomingRequest, Method, OutgoingResponse, ResponseOutparam};

/// Serves one incoming request: the proxy's answer streamed out beside the work
/// it started (a blob's copy), then counted once both are done.
pub async fn serve<P: Platform + 'static>(
    platform: P,
    req: IncomingRequest,
    out: ResponseOutparam,
) {
    let mut headers = body::headers_of(&req.headers());
    super::runtime_headers_only(&mut headers, platform.sets_spin_headers());
    // wasi-http carries the request's Host as its authority, not as a header.
    if headers.get("host").is_none()
        && let Some(authority) = req.authority()
    {
        headers.push("host", authority);
    }
    let method = method_name(req.method());
    let path_with_query = req.path_with_query().unwrap_or_else(|| "/".to_string());
    let (path, query) = match path_with_query.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (path_with_query, None),
    };
    let chunks = match req.consume() {
        Ok(incoming) => body::chunks(incoming.stream(), incoming, |e| e.to_debug_string())
            .unwrap_or_else(|()| Box::pin(futures::stream::empty())),
        Err(()) => Box::pin(futures::stream::empty()),
    };
    let host = host_of(platform);
    let request = host::Request {
        method: method.clone(),
        path,
        query,
        headers,
        body: host::Body::Stream(Stream {
            chunks,
            _response: None,
        }),
    };
    // Work beside the answer runs from the start, while the answer is made
    // too (a hosted copy is waited for before the answer's head).
    let answer = async {
        let (response, record) = exchange::handle(&host, request).await;
        host.alongside.close();
        send_answer(out, &method, response).await;
        record
    };
    let record = together(answer, host.alongside.run()).await;
    let pages = core::arch::wasm32::memory_size::<0>();
    exchange::finish(&host, record, Some(pages * 65536));
}

/// The request's host on `platform`: its stores, the cache's within the
/// key budget when one is set.
fn host_of<P: Platform + 'static>(platform: P) -> WasiHost<P> {
    // A budget that cannot be read is the hosted platforms' own limits,
    // never none: the store would refuse what goes past them anyway.
    let budget = |name: &str| match platform.variable(name) {
        Ok(value) => value,
        Err(e) => {
            eprintln!("variable {name} cannot be read, so the hosted limit holds: {e}");
            crate::variables::hosted_limit_of(name).map(String::from)
        }
    };
    let cache = key_budget::wrap(platform.store("cache"), budget);
    WasiHost {
        kv: platform.store("default"),
        cache,
        platform: std::rc::Rc::new(platform),
        tally: Default::default(),
        alongside: Default::default(),
        settings: Default::default(),
    }
}

/// The answer's head and body, out through the runtime.
async fn send_answer(out: ResponseOutparam, method: &str, response: host::Response<Stream>) {
    let outgoing = OutgoingResponse::new(body::fields(&response.headers));
    let _ = outgoing.set_status_code(response.status);
    let chunks: ChunkStream = match response.body {
        host::Body::Empty => Box::pin(futures::stream::empty()),
        host::Body::Bytes(b) => Box::pin(futures::stream::once(async { Ok(b) })),
        // A HEAD answer has headers only.
        host::Body::Stream(_) | host::Body::Generated(_) if method == "HEAD" => {
            Box::pin(futures::stream::empty())
        }
        host::Body::Stream(s) => s.chunks,
        host::Body::Generated(g) => g,
    };
    match respond::prefix(chunks).await {
        Ok(prefix) => respond::send(out, outgoing, prefix).await,
        Err(e) => {
            eprintln!("response body failed before its first byte: {e}");
            respond::send(out, outgoing, respond::Prefix::Whole(Vec::new())).await
        }
    }
}

/// Runs both to their end; the first's output. Spin's executor polls again
/// only once a pollable is ready, so a wake from one to the other (a copy
/// handing the client its next bytes, a copy's check letting the answer go
/// on) is acted on here, by polling both again at once.
async fn together<T>(first: impl Future<Output = T>, second: impl Future<Output = ()>) -> T {
    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let (mut first, mut second) = (pin!(first), pin!(second));
    let (mut first_out, mut second_done) = (None, false);
    poll_fn(|_| {
        loop {
            flag.0.store(false, Ordering::SeqCst);
            let mut cx = Context::from_waker(&waker);
            if first_out.is_none()
                && let Poll::Ready(out) = first.as_mut().poll(&mut cx)
            {
                first_out = Some(out);
            }
            second_done = second_done || second.as_mut().poll(&mut cx).is_ready();
            if second_done && let Some(out) = first_out.take() {
                return Poll::Ready(out);
            }
            if !flag.0.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
    })
    .await
}

fn method_name(method: Method) -> String {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(m) => return m,
    }
    .to_string()
}
