//! The answer written into the runtime's response. What is at hand goes into the
//! body before the response is handed over, and a body that is whole is
//! finished there too, so Spin's server writes head and body at once. Handed
//! the head alone, it sent it in a segment of its own, and a kept-alive
//! client then saw the body only after its delayed ACK (40 ms, Nagle).

use super::ChunkStream;
use super::body::Writer;
use futures::StreamExt;
use wasi::http::types::{OutgoingBody, OutgoingResponse, ResponseOutparam};

/// The body's first chunk when the rest is known to be empty, or the
/// first chunk and the stream still to come.
pub enum Prefix {
    Whole(Vec<u8>),
    Head(Vec<u8>, ChunkStream),
}

/// Takes what the body has at hand: all of it when it is a single piece.
pub async fn prefix(mut chunks: ChunkStream) -> Result<Prefix, String> {
    let first = chunks.next().await.transpose()?.unwrap_or_default();
    Ok(match futures::FutureExt::now_or_never(chunks.next()) {
        Some(None) => Prefix::Whole(first),
        Some(Some(next)) => {
            let rest = futures::stream::once(async { next }).chain(chunks);
            Prefix::Head(first, Box::pin(rest))
        }
        None => Prefix::Head(first, chunks),
    })
}

/// Sends `response` with `prefix` as the start of its body.
pub async fn send(out: ResponseOutparam, response: OutgoingResponse, prefix: Prefix) {
    let (first, rest) = match prefix {
        Prefix::Whole(b) => (b, None),
        Prefix::Head(b, rest) => (b, Some(rest)),
    };
    // A fresh response always has a writable body.
    let Ok(body) = response.body() else {
        return ResponseOutparam::set(out, Ok(response));
    };
    let Ok(stream) = body.write() else {
        return ResponseOutparam::set(out, Ok(response));
    };
    // The runtime buffers one write without a reader; never wait on it here.
    let taken = match stream.check_write() {
        Ok(n) => usize::try_from(n).unwrap_or(usize::MAX).min(first.len()),
        Err(_) => 0,
    };
    let written = taken == 0 || stream.write(&first[..taken]).is_ok();
    if !written || (taken == first.len() && rest.is_none()) {
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
        ResponseOutparam::set(out, Ok(response));
        return;
    }
    ResponseOutparam::set(out, Ok(response));
    let mut writer = Writer { stream };
    let mut result = writer.write_all(&first[taken..]).await;
    if let Some(mut rest) = rest {
        while result.is_ok() {
            match rest.next().await {
                Some(Ok(chunk)) => result = writer.write_all(&chunk).await,
                Some(Err(e)) => result = Err(e),
                None => break,
            }
        }
    }
    if result.is_ok() {
        result = writer.flush().await;
    }
    drop(writer);
    // The status is already sent: a failure now can only cut the body short,
    // which the client sees as a length or digest mismatch.
    match result {
        Ok(()) => {
            let _ = OutgoingBody::finish(body, None);
        }
        Err(e) => eprintln!("response body cut short: {e}"),
    }
}
