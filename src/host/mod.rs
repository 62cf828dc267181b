//! What the proxy needs from the runtime it runs in (Spin in production, a
//! fake in unit tests): variables, a key-value store and outbound HTTP whose
//! bodies it passes along without looking at them.

#[cfg(test)]
pub mod memory;
pub mod notes;
pub mod redis_marks;
pub mod resp;
pub mod send_error;
pub mod settings;
pub mod stores;

use futures::StreamExt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use url::Url;

pub use send_error::{Failure, Phase, SendError, Target, Tls};

/// Header list in order; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of header `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Appends a header, keeping any others of the same name.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_string(), value.into()));
    }
}

/// Body chunks the proxy produces itself (a blob read from the cache, or an
/// upstream body copied into it on the way).
pub type Chunks = Pin<Box<dyn futures::Stream<Item = Result<Vec<u8>, String>>>>;

/// A body: nothing, a few bytes the proxy made, the runtime's stream passed
/// through unread, or chunks the proxy produces.
pub enum Body<S> {
    Empty,
    Bytes(Vec<u8>),
    Stream(S),
    Generated(Chunks),
}

impl<S> Body<S>
where
    S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
{
    /// A body that streams, as chunks; a body held whole (or none) back as
    /// it is, for the caller to answer with.
    pub fn streamed(self) -> Result<Chunks, Body<S>> {
        match self {
            Body::Stream(s) => Ok(Box::pin(s)),
            Body::Generated(g) => Ok(g),
            whole => Err(whole),
        }
    }
}

pub struct Request<S> {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Headers,
    pub body: Body<S>,
}

pub struct Response<S> {
    pub status: u16,
    pub headers: Headers,
    pub body: Body<S>,
}

impl<S> Response<S> {
    /// A JSON answer the proxy makes itself; nothing in it is for caches.
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        let mut headers = Headers::default();
        headers.push("content-type", "application/json");
        headers.push("cache-control", "no-store");
        Response {
            status,
            headers,
            body: Body::Bytes(body),
        }
    }
}

pub struct OutboundRequest<S> {
    pub method: String,
    pub url: Url,
    pub headers: Headers,
    pub body: Body<S>,
    /// For connecting, for the first byte of the answer and between bytes:
    /// a hanging upstream fails like an unreachable one.
    pub timeout: std::time::Duration,
}

/// Outbound HTTP as a handle that body streams and work beside the answer
/// can keep (a blob store's requests), with bodies as chunks either way.
pub trait Outbound {
    fn send(
        &self,
        request: OutboundRequest<Chunks>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Chunks>, SendError>>>>;
}

/// A body of the runtime's stream as chunks.
pub fn into_chunks<S>(body: Body<S>) -> Body<Chunks>
where
    S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
{
    match body.streamed() {
        Ok(chunks) => Body::Generated(chunks),
        Err(Body::Bytes(b)) => Body::Bytes(b),
        Err(_) => Body::Empty,
    }
}

/// A key-value store, as a handle that body streams can keep.
pub trait Kv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), String>;
    /// Sets several keys in one store operation (not atomically).
    fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        entries.iter().try_for_each(|(k, v)| self.set(k, v))
    }
    fn delete(&self, key: &str) -> Result<(), String>;
    fn keys(&self) -> Result<Vec<String>, String>;
    /// Adds `delta` to a counter atomically and returns its new value. A
    /// counter is never written any other way (stores encode it their way).
    fn increment(&self, key: &str, delta: i64) -> Result<i64, String>;
    /// Whether the store answers: `Err` says why not (a Redis that refuses
    /// the connection). A store whose calls fail later still counts as up.
    fn reachable(&self) -> Result<(), String> {
        Ok(())
    }
    /// Whether the store has room for blob chunks (a key budget has not).
    fn holds_blobs(&self) -> bool {
        true
    }
    /// How many committed blobs and manifests the size bound may keep
    /// records of: a key budget's share for them; none without one.
    fn max_records(&self) -> Option<u64> {
        None
    }
    /// Sets `key` to `value` only if its current value passes `expect`,
    /// atomically across instances; false when it did not, or another
    /// instance changed it first.
    fn swap_if(
        &self,
        key: &str,
        expect: &dyn Fn(Option<&[u8]>) -> bool,
        value: &[u8],
    ) -> Result<bool, String>;
}

/// [`Kv::swap_if`] as read, check and write, for a store without
/// compare-and-swap: atomic only where no other instance writes the key.
pub fn swap_unshared(
    kv: &dyn Kv,
    key: &str,
    expect: &dyn Fn(Option<&[u8]>) -> bool,
    value: &[u8],
) -> Result<bool, String> {
    if !expect(kv.get(key)?.as_deref()) {
        return Ok(false);
    }
    kv.set(key, value).map(|()| true)
}

/// Work that runs beside the answer at its own pace, such as a blob's copy
/// into the cache: the request ends when the answer and it are both done.
pub type Task = Pin<Box<dyn Future<Output = ()>>>;

/// The request's queue of [`Task`]s, that body streams can keep.
#[derive(Clone, Default)]
pub struct Tasks(Rc<std::cell::RefCell<Queue>>);

#[derive(Default)]
struct Queue {
    tasks: Vec<Task>,
    /// No task is pushed after the answer is made, unless held open.
    closed: bool,
    /// Bodies that may still push tasks (a prefetch's copies).
    holds: usize,
    waiting: Option<std::task::Waker>,
}

impl Tasks {
    /// Queues `task` to run beside the answer, waking [`Tasks::run`] if it waits.
    pub fn push(&self, task: Task) {
        let mut queue = self.0.borrow_mut();
        queue.tasks.push(task);
        if let Some(w) = queue.waiting.take() {
            w.wake();
        }
    }

    /// Keeps [`Tasks::run`] going past [`Tasks::close`] until the hold is
    /// dropped: for a body that starts work beside itself as it streams.
    pub fn hold(&self) -> Hold {
        self.0.borrow_mut().holds += 1;
        Hold(self.clone())
    }

    /// The answer is made: [`Tasks::run`] ends once the tasks left have.
    pub fn close(&self) {
        let mut queue = self.0.borrow_mut();
        queue.closed = true;
        if let Some(w) = queue.waiting.take() {
            w.wake();
        }
    }

    /// Runs the tasks, and any they leave, in turn, until the queue is
    /// closed and empty.
    pub async fn run(&self) {
        loop {
            let next = std::future::poll_fn(|cx| {
                let mut queue = self.0.borrow_mut();
                if !queue.tasks.is_empty() {
                    return std::task::Poll::Ready(Some(queue.tasks.remove(0)));
                }
                if queue.closed && queue.holds == 0 {
                    return std::task::Poll::Ready(None);
                }
                queue.waiting = Some(cx.waker().clone());
                std::task::Poll::Pending
            })
            .await;
            match next {
                Some(task) => task.await,
                None => return,
            }
        }
    }
}

/// Holds a request's [`Tasks`] open while it lives.
pub struct Hold(Tasks);

impl Drop for Hold {
    fn drop(&mut self) {
        let mut queue = (self.0).0.borrow_mut();
        queue.holds -= 1;
        if let Some(w) = queue.waiting.take() {
            w.wake();
        }
    }
}

/// Waiting without blocking the runtime.
pub trait Timer {
    fn sleep(&self, duration: std::time::Duration) -> Pin<Box<dyn Future<Output = ()>>>;
}

/// A handle on the runtime for one request: its clones are the same
/// request's (stores, notes, work beside the answer), so a body the proxy
/// generates can keep one (a prefetch's progress).
pub trait Host: Clone + 'static {
    /// The runtime's body stream.
    type Stream: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static;

    /// A variable; one the runtime cannot read counts as unset (and is
    /// logged). Security settings use [`Host::setting`] instead.
    fn variable(&self, name: &str) -> Option<String>;
    /// The plain settings, typed: read from the variables for each call
    /// unless the host keeps them for the request.
    fn settings(&self) -> Rc<settings::Settings> {
        Rc::new(settings::Settings::read(|name| self.variable(name)))
    }
    /// A variable that must be read to be obeyed: `Err` when the runtime
    /// could not read it, so a setting that cannot be read is never "off".
    fn setting(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self.variable(name))
    }
    /// The configuration store: routes and users. Small, so a listing of it
    /// costs little.
    fn kv(&self) -> Rc<dyn Kv>;
    /// The cache's store: manifests, tags, blobs, upstream tokens and realms.
    /// Only the cache's own administration lists it.
    fn cache(&self) -> Rc<dyn Kv>;
    /// Whether the stores keep what a request writes. A runtime whose store
    /// is a per-request copy (`wasmtime serve`) answers false: every route
    /// then relays without caching, and the admin API refuses changes.
    fn store_persists(&self) -> bool {
        true
    }
    /// A directory the runtime lets the component write blob files into
    /// (Spin's mount of the app's `blobs/`); `None` where it mounts none.
    fn blob_directory(&self) -> Option<std::path::PathBuf> {
        None
    }
    /// The counters' store (hit and miss counts), written after the answer.
    fn counters(&self) -> Rc<dyn Kv>;
    /// This instance's own memory, which no outage takes away: what it
    /// learned of the other stores while they answered.
    fn health(&self) -> Rc<dyn Kv>;
    /// This request's cache outcomes, counted once the answer is out.
    fn tally(&self) -> &crate::host::notes::Tally;

    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.kv().get(key)
    }
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.kv().set(key, value)
    }
    fn kv_delete(&self, key: &str) -> Result<(), String> {
        self.kv().delete(key)
    }
    fn kv_keys(&self) -> Result<Vec<String>, String> {
        self.kv().keys()
    }
    /// Something to wait with, that body streams can keep.
    fn timer(&self) -> Rc<dyn Timer>;
    /// Where to leave work that runs beside the answer.
    fn alongside(&self) -> Tasks;
    fn send(
        &self,
        request: OutboundRequest<Self::Stream>,
    ) -> impl Future<Output = Result<Response<Self::Stream>, SendError>>;
    /// The same outbound HTTP, as a handle to keep.
    fn outbound(&self) -> Rc<dyn Outbound>;
    /// Reads a body of at most `limit` bytes (small JSON, forms, manifests).
    fn read_body(
        &self,
        body: Body<Self::Stream>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<u8>, String>> {
        async move {
            let mut chunks = match body.streamed() {
                Ok(chunks) => chunks,
                Err(Body::Bytes(b)) if b.len() <= limit => return Ok(b),
                Err(Body::Bytes(_)) => return Err(format!("body larger than {limit} bytes")),
                Err(_) => return Ok(Vec::new()),
            };
            let mut out = Vec::new();
            while let Some(chunk) = chunks.next().await {
                out.extend(chunk?);
                if out.len() > limit {
                    return Err(format!("body larger than {limit} bytes"));
                }
            }
            Ok(out)
        }
    }
}
