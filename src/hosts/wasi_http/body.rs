//! Bodies and headers between wasi:http resources and the proxy's types.

use super::ChunkStream;
use crate::host;
use futures::StreamExt;
use std::task::Poll;
use wasi::http::types::{Fields, OutgoingBody};
use wasi::io::error::Error as IoError;
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// Largest read from an incoming body: whatever is buffered, up to this.
/// A reader of 16 KiB pieces (the SDK's) costs a write and a flush on the
/// way out for each.
const READ_SIZE: u64 = 1 << 20;

/// An incoming body (request or response) as a stream of chunks, a failed
/// read in the words of `describe`. `body` is the body resource the stream
/// belongs to: it must outlive the stream.
pub fn chunks<B: 'static>(
    stream: Result<InputStream, ()>,
    body: B,
    describe: impl Fn(IoError) -> String + 'static,
) -> Result<ChunkStream, ()> {
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
            Err(StreamError::LastOperationFailed(e)) => Poll::Ready(Some(Err(describe(e)))),
        }
    })))
}

/// Copies a stream into an outgoing body and finishes it; a body left
/// unfinished tells the peer it was cut short.
pub async fn pump(mut chunks: ChunkStream, body: OutgoingBody) -> Result<(), String> {
    let stream = body
        .write()
        .map_err(|()| "request body already taken".to_string())?;
    let mut writer = Writer { stream };
    while let Some(chunk) = chunks.next().await {
        writer.write_all(&chunk?).await?;
    }
    writer.flush().await?;
    drop(writer);
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))
}

/// An output stream written as fast as the runtime takes it.
pub struct Writer {
    pub stream: OutputStream,
}

impl Writer {
    /// Writes all of `bytes`, waiting while the stream is full; `Err` when the
    /// peer went away or a write failed.
    pub async fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            let n = self.ready().await?.min(bytes.len());
            self.stream.write(&bytes[..n]).map_err(describe)?;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Flushes what was written and waits until the stream has taken it.
    pub async fn flush(&mut self) -> Result<(), String> {
        self.stream.flush().map_err(describe)?;
        self.ready().await.map(|_| ())
    }

    /// Waits until the stream takes bytes, and says how many.
    async fn ready(&mut self) -> Result<usize, String> {
        let mut cancel = None;
        futures::future::poll_fn(|cx| match self.stream.check_write() {
            Ok(0) => {
                let token = spin_executor::push_waker_and_get_token(
                    self.stream.subscribe(),
                    cx.waker().clone(),
                );
                cancel = Some(spin_executor::CancelOnDropToken::from(token));
                Poll::Pending
            }
            Ok(n) => Poll::Ready(Ok(usize::try_from(n).unwrap_or(usize::MAX))),
            Err(e) => Poll::Ready(Err(describe(e))),
        })
        .await
    }
}

fn describe(e: StreamError) -> String {
    match e {
        StreamError::Closed => "the peer went away".to_string(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

/// The runtime's header fields as [`host::Headers`]; values that are not UTF-8
/// are left out.
pub fn headers_of(fields: &Fields) -> host::Headers {
    host::Headers(
        fields
            .entries()
            .into_iter()
            .filter_map(|(n, v)| String::from_utf8(v).ok().map(|v| (n, v)))
            .collect(),
    )
}

/// Headers the runtime refuses (forbidden names, bad bytes) are left out
/// rather than failing the whole message.
pub fn fields(headers: &host::Headers) -> Fields {
    let fields = Fields::new();
    for (n, v) in &headers.0 {
        let _ = fields.append(n, &v.clone().into_bytes());
    }
    fields
}
