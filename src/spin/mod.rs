//! The Spin adapter: a wasi-http request in, the proxy's answer streamed
//! out. Variables, the key-value store and outbound HTTP come from Spin.

mod respond;

use crate::proxy::{self, host};
use futures::{SinkExt, StreamExt};
use spin_sdk::http::{
    Fields, IncomingRequest, IncomingResponse, Method, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{ErrorCode, FutureIncomingResponse, RequestOptions};
use spin_sdk::wit::wasi::keyvalue;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use wasi::io::streams::{InputStream, StreamError};

type ChunkStream = Pin<Box<dyn futures::Stream<Item = Result<Vec<u8>, String>>>>;

/// A body stream, holding the response it belongs to: wasmtime cancels an
/// outbound request whose response handle is dropped.
pub struct Stream {
    chunks: ChunkStream,
    _response: Option<IncomingResponse>,
}

struct SpinHost {
    kv: Rc<SpinKv>,
    cache: Rc<SpinKv>,
    tally: proxy::Tally,
}

impl host::Host for SpinHost {
    type Stream = Stream;

    fn variable(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(name).ok()
    }

    fn kv(&self) -> Rc<dyn host::Kv> {
        self.kv.clone()
    }

    fn cache(&self) -> Rc<dyn host::Kv> {
        self.cache.clone()
    }

    fn tally(&self) -> &proxy::Tally {
        &self.tally
    }

    fn timer(&self) -> Rc<dyn host::Timer> {
        Rc::new(SpinTimer)
    }

    fn counters(&self) -> Rc<dyn host::Kv> {
        Rc::new(SpinKv::open("stats"))
    }

    async fn send(
        &self,
        request: host::OutboundRequest<Stream>,
    ) -> Result<host::Response<Stream>, host::SendError> {
        let outgoing = OutgoingRequest::new(fields(&request.headers));
        let method = match request.method.as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            other => Method::Other(other.to_string()),
        };
        let url = &request.url;
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
        if !set {
            return Err(host::SendError::Failed(
                "request rejected by the runtime".into(),
            ));
        }
        let body = match request.body {
            host::Body::Empty => None,
            host::Body::Bytes(b) => {
                Some(Box::pin(futures::stream::once(async { Ok(b) })) as ChunkStream)
            }
            host::Body::Stream(s) => Some(s.chunks),
            host::Body::Generated(g) => Some(g),
        };
        let response = match body {
            None => send(outgoing, request.timeout).await,
            Some(chunks) => {
                let sink = outgoing.take_body();
                let (response, _) =
                    futures::join!(send(outgoing, request.timeout), pump(chunks, sink));
                response
            }
        };
        let response = response.map_err(|e| match e {
            ErrorCode::HttpRequestDenied => host::SendError::Denied,
            other => host::SendError::Failed(format!("{other:?}")),
        })?;
        let status = response.status();
        let headers = headers_of(&response.headers());
        let body = response
            .consume()
            .map_err(|()| host::SendError::Failed("response body already taken".into()))?;
        let chunks = body_chunks(body.stream(), body)
            .map_err(|()| host::SendError::Failed("response body unreadable".into()))?;
        let body = host::Body::Stream(Stream {
            chunks,
            _response: Some(response),
        });
        Ok(host::Response {
            status,
            headers,
            body,
        })
    }
}

/// Waits on a `wasi:clocks` pollable through Spin's executor.
struct SpinTimer;

impl host::Timer for SpinTimer {
    fn sleep(
        &self,
        duration: std::time::Duration,
    ) -> Pin<Box<dyn std::future::Future<Output = ()>>> {
        use wasi::clocks::monotonic_clock;
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let deadline = monotonic_clock::now().saturating_add(nanos);
        // Held while pending: dropping it withdraws the waker.
        let mut _registration = None;
        Box::pin(futures::future::poll_fn(move |cx| {
            if monotonic_clock::now() >= deadline {
                return Poll::Ready(());
            }
            let pollable = monotonic_clock::subscribe_instant(deadline);
            let token = spin_executor::push_waker_and_get_token(pollable, cx.waker().clone());
            _registration = Some(spin_executor::CancelOnDropToken::from(token));
            Poll::Pending
        }))
    }
}

/// A store, opened once per request; an app without it gets an error on
/// use, not a trap. Its atomics go through `wasi:keyvalue`, which Spin
/// implements for every backend (SQLite transactions, Redis).
struct SpinKv {
    label: String,
    store: Result<Store, String>,
}

impl SpinKv {
    fn open(label: &str) -> Self {
        Self {
            label: label.to_string(),
            store: Store::open(label).map_err(|e| format!("key-value store {label:?}: {e}")),
        }
    }

    fn store(&self) -> Result<&Store, String> {
        self.store.as_ref().map_err(Clone::clone)
    }

    fn bucket(&self) -> Result<keyvalue::store::Bucket, String> {
        keyvalue::store::open(&self.label).map_err(|e| format!("{e:?}"))
    }
}

impl host::Kv for SpinKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.store()?.get(key).map_err(|e| e.to_string())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.store()?.set(key, value).map_err(|e| e.to_string())
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.store()?.delete(key).map_err(|e| e.to_string())
    }

    fn keys(&self) -> Result<Vec<String>, String> {
        self.store()?.get_keys().map_err(|e| e.to_string())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, String> {
        keyvalue::atomics::increment(&self.bucket()?, key, delta).map_err(|e| format!("{e:?}"))
    }

    fn swap_if(
        &self,
        key: &str,
        expect: &dyn Fn(Option<&[u8]>) -> bool,
        value: &[u8],
    ) -> Result<bool, String> {
        let cas =
            keyvalue::atomics::Cas::new(&self.bucket()?, key).map_err(|e| format!("{e:?}"))?;
        if !expect(cas.current().map_err(|e| format!("{e:?}"))?.as_deref()) {
            return Ok(false);
        }
        match keyvalue::atomics::swap(cas, value) {
            Ok(()) => Ok(true),
            // Spin 4.0.2's Redis store reports every swap as failed (its
            // UNWATCH takes an argument Redis refuses) after the value was
            // written: what the store holds now decides. Values written
            // through here are unique (a copy's lease names its upload).
            Err(_) => Ok(self.get(key)?.as_deref() == Some(value)),
        }
    }
}

impl futures::Stream for Stream {
    type Item = Result<Vec<u8>, String>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.chunks.as_mut().poll_next(cx)
    }
}

/// Sends a request with timeouts (the SDK's `send` sets none).
fn send(
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

/// Largest read from an incoming body: whatever is buffered, up to this.
/// The SDK's own reader takes 16 KiB at a time, and each piece then costs a
/// write and a flush on the way out.
const READ_SIZE: u64 = 1 << 20;

/// An incoming body (request or response) as a stream of chunks. `body` is
/// the body resource the stream belongs to: it must outlive the stream.
fn body_chunks<B: 'static>(stream: Result<InputStream, ()>, body: B) -> Result<ChunkStream, ()> {
    struct Incoming {
        stream: Option<InputStream>,
        body: Option<Box<dyn std::any::Any>>,
        cancel: Option<spin_executor::CancelOnDropToken>,
    }
    impl Drop for Incoming {
        fn drop(&mut self) {
            // A child resource goes before its parent.
            drop(self.cancel.take());
            drop(self.stream.take());
            drop(self.body.take());
        }
    }
    let mut incoming = Incoming {
        stream: Some(stream?),
        body: Some(Box::new(body)),
        cancel: None,
    };
    Ok(Box::pin(futures::stream::poll_fn(move |cx| {
        let Some(stream) = &incoming.stream else {
            return Poll::Ready(None);
        };
        match stream.read(READ_SIZE) {
            Ok(buf) if buf.is_empty() => {
                let token =
                    spin_executor::push_waker_and_get_token(stream.subscribe(), cx.waker().clone());
                incoming.cancel = Some(spin_executor::CancelOnDropToken::from(token));
                Poll::Pending
            }
            Ok(buf) => Poll::Ready(Some(Ok(buf))),
            Err(StreamError::Closed) => Poll::Ready(None),
            Err(StreamError::LastOperationFailed(e)) => Poll::Ready(Some(Err(e.to_debug_string()))),
        }
    })))
}

/// Copies a stream into a wasi body; the body is finished when the sink drops.
async fn pump<Si>(mut chunks: ChunkStream, mut sink: Si) -> Result<(), String>
where
    Si: futures::Sink<Vec<u8>> + Unpin,
    Si::Error: std::fmt::Debug,
{
    while let Some(chunk) = chunks.next().await {
        sink.send(chunk?).await.map_err(|e| format!("{e:?}"))?;
    }
    Ok(())
}

fn headers_of(fields: &Fields) -> host::Headers {
    host::Headers(
        fields
            .entries()
            .into_iter()
            .filter_map(|(n, v)| String::from_utf8(v).ok().map(|v| (n, v)))
            .collect(),
    )
}

/// Headers the runtime refuses (forbidden names, bad bytes) are left out
/// rather than failing the whole response.
fn fields(headers: &host::Headers) -> Fields {
    let fields = Fields::new();
    for (n, v) in &headers.0 {
        let _ = fields.append(n, &v.clone().into_bytes());
    }
    fields
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let mut headers = headers_of(&req.headers());
    // wasi-http carries the request's Host as its authority, not as a header.
    if headers.get("host").is_none()
        && let Some(authority) = req.authority()
    {
        headers.push("host", authority);
    }
    let method = req.method().to_string();
    let path_with_query = req.path_with_query().unwrap_or_else(|| "/".to_string());
    let (path, query) = match path_with_query.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (path_with_query, None),
    };
    let chunks = match req.consume() {
        Ok(body) => {
            body_chunks(body.stream(), body).unwrap_or_else(|()| Box::pin(futures::stream::empty()))
        }
        Err(()) => Box::pin(futures::stream::empty()),
    };
    let body = host::Body::Stream(Stream {
        chunks,
        _response: None,
    });
    let host = SpinHost {
        kv: Rc::new(SpinKv::open("default")),
        cache: Rc::new(SpinKv::open("cache")),
        tally: Default::default(),
    };
    let request = host::Request {
        method: method.clone(),
        path,
        query,
        headers,
        body,
    };
    let (response, exchange) = proxy::handle(&host, request).await;

    let outgoing = OutgoingResponse::new(fields(&response.headers));
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
    let pages = core::arch::wasm32::memory_size::<0>();
    proxy::finish(&host, exchange, Some(pages * 65536));
}
