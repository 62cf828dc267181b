//! One request from the adapter's side: the proxy's answer, its body
//! counted on the way out, and, once it is out, the counters and one JSON
//! access log line on stderr (Spin's component log).

use crate::dispatch::{error_response, serve};
use crate::host::{Body, Host, Request, Response};
use crate::telemetry::metrics;
use crate::telemetry::stats;
use futures::StreamExt;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

/// What the access log says of a request once its answer is out.
pub struct Exchange {
    method: String,
    path: String,
    status: u16,
    started: Instant,
    bytes: Rc<Cell<u64>>,
}

/// The entry point for a host adapter: the proxy's answer to `req`, its
/// body counted as it goes out, and the record [`finish`] logs once it is.
/// An error anywhere below becomes its OCI error answer here.
pub async fn handle<H: Host>(host: &H, req: Request<H::Stream>) -> (Response<H::Stream>, Exchange) {
    let started = Instant::now();
    let method = req.method.clone();
    // Paths only: queries and headers may carry credentials.
    let path: String = req.path.chars().take(200).collect();
    let mut response = match serve(host, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    // Relayed and cached answers carry the upstream's Content-Type on the
    // proxy's origin: a browser must not sniff one into HTML or script.
    let headers = &mut response.headers.0;
    headers.retain(|(name, _)| !name.eq_ignore_ascii_case("x-content-type-options"));
    headers.push(("x-content-type-options".into(), "nosniff".into()));
    let bytes = Rc::new(Cell::new(0));
    response.body = counted(response.body, bytes.clone());
    let exchange = Exchange {
        method,
        path,
        status: response.status,
        started,
        bytes,
    };
    (response, exchange)
}

/// The body, adding what passes to `bytes`.
fn counted<S>(body: Body<S>, bytes: Rc<Cell<u64>>) -> Body<S>
where
    S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
{
    let chunks = match body.streamed() {
        Ok(chunks) => chunks,
        Err(Body::Bytes(b)) => {
            bytes.set(b.len() as u64);
            return Body::Bytes(b);
        }
        Err(whole) => return whole,
    };
    Body::Generated(Box::pin(chunks.inspect(move |c| {
        if let Ok(c) = c {
            bytes.set(bytes.get() + c.len() as u64);
        }
    })))
}

/// After the answer is out: counts what the request did and logs it, with
/// the component's linear memory then (its peak: it never shrinks) when the
/// host can tell.
pub fn finish<H: Host>(host: &H, exchange: Exchange, memory: Option<usize>) {
    let mut line = log_line(host, &exchange, memory);
    stats::flush(host, exchange.status, exchange.bytes.get());
    // One write: instances running at once share the log, and a line
    // written in pieces can interleave with another's.
    line.push('\n');
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

fn log_line<H: Host>(host: &H, e: &Exchange, memory: Option<usize>) -> String {
    let notes = host.tally().0.borrow();
    let unix_millis = crate::now_millis();
    let last = notes.upstream.last().map(|c| c.result.as_ref());
    let upstream_status = last.and_then(|r| r.ok().copied());
    // Why the last upstream call got no answer, in the OCI error's words.
    let upstream_error = last.and_then(|r| r.err());
    serde_json::json!({
        "time": metrics::rfc3339(unix_millis),
        "method": e.method,
        "path": e.path,
        "route": notes.route,
        "repository": notes.repository,
        "endpoint": notes.endpoint,
        "status": e.status,
        "bytes": e.bytes.get(),
        "duration_ms": (e.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        "cache": notes.outcomes.last().map(|o| o.name()),
        "upstream_status": upstream_status,
        "upstream_error": upstream_error,
        "memory": memory,
    })
    .to_string()
}

#[cfg(test)]
mod tests;
