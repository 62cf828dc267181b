//! A front of a registry that sends blob bodies at a fixed pace and counts
//! the blob `GET`s it is still sending: an upstream link that copies
//! share, and what the proxy keeps fetching after its clients have gone.

use super::http::{self, Handler};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

/// The front's address, and the blob bodies it is sending now.
pub struct Paced {
    pub addr: SocketAddr,
    sending: Arc<AtomicUsize>,
}

impl Paced {
    /// Blob `GET`s whose bodies are still being sent (not ended, not hung up on).
    pub fn sending(&self) -> usize {
        self.sending.load(SeqCst)
    }
}

/// Counts one body in while it lives.
struct Sending(Arc<AtomicUsize>);

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Bytes sent in each step.
const STEP: usize = 64 << 10;

/// A front of `registry` sending each blob body at `bytes_per_second`.
pub async fn start(registry: SocketAddr, bytes_per_second: usize) -> Paced {
    let sending = Arc::new(AtomicUsize::new(0));
    let counter = sending.clone();
    let handler: Handler = Arc::new(move |req| {
        let counter = counter.clone();
        Box::pin(async move {
            let blob = req.uri().path().contains("/blobs/sha256:") && req.method() == "GET";
            let pq = req.uri().path_and_query().map(|p| p.to_string());
            let url = format!("http://{registry}{}", pq.unwrap_or_default());
            let r = http::get(&url, &[]).await;
            let mut answer = hyper::Response::builder().status(r.status);
            for (k, v) in r.headers.iter() {
                if k != "transfer-encoding" && k != "connection" {
                    answer = answer.header(k, v);
                }
            }
            if !blob || r.status != 200 {
                return answer.body(http::full(r.body)).unwrap();
            }
            counter.fetch_add(1, SeqCst);
            let body = paced(r.body, bytes_per_second, Sending(counter));
            answer.body(body).unwrap()
        })
    });
    Paced {
        addr: http::serve("127.0.0.1", handler).await,
        sending,
    }
}

/// `bytes` in [`STEP`]s, each after its share of a second; `guard` lives
/// as long as the body.
fn paced(bytes: Vec<u8>, bytes_per_second: usize, guard: Sending) -> http::Body {
    let pause = Duration::from_secs_f64(STEP as f64 / bytes_per_second as f64);
    let steps = futures::stream::unfold((bytes, 0, guard), move |(bytes, at, guard)| async move {
        if at >= bytes.len() {
            return None;
        }
        tokio::time::sleep(pause).await;
        let end = (at + STEP).min(bytes.len());
        let frame = hyper::body::Frame::data(Bytes::copy_from_slice(&bytes[at..end]));
        Some((Ok::<_, hyper::Error>(frame), (bytes, end, guard)))
    });
    BodyExt::boxed(http_body_util::StreamBody::new(steps))
}
