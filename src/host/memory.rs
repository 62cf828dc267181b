//! An in-memory [`Kv`] for native unit tests: a map, counters stored as
//! decimal text, and a switch that makes every write fail (a store that is
//! full, read-only or away).

use super::Kv;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct MemoryKv {
    entries: RefCell<BTreeMap<String, Vec<u8>>>,
    refuse_writes: Cell<bool>,
    away: Cell<bool>,
    contended: Cell<bool>,
}

impl MemoryKv {
    /// From now on the store does not answer at all, as a Redis that was
    /// stopped; `false` brings it back with what it held.
    pub fn go_away(&self, away: bool) {
        self.away.set(away);
    }

    fn answers(&self) -> Result<(), String> {
        match self.away.get() {
            true => Err("connection refused".into()),
            false => Ok(()),
        }
    }

    /// From now on every write fails, as a store that refuses them would.
    pub fn refuse_writes(&self, refuse: bool) {
        self.refuse_writes.set(refuse);
    }

    /// From now on every compare-and-swap loses, as to a crowd of writers.
    pub fn contend(&self, contended: bool) {
        self.contended.set(contended);
    }

    fn writable(&self) -> Result<(), String> {
        self.answers()?;
        match self.refuse_writes.get() {
            true => Err("the store refuses writes".into()),
            false => Ok(()),
        }
    }
}

impl Kv for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.answers()?;
        Ok(self.entries.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.writable()?;
        self.entries.borrow_mut().insert(key.into(), value.into());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.writable()?;
        self.entries.borrow_mut().remove(key);
        Ok(())
    }

    fn keys(&self) -> Result<Vec<String>, String> {
        self.answers()?;
        Ok(self.entries.borrow().keys().cloned().collect())
    }

    fn reachable(&self) -> Result<(), String> {
        self.answers()
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, String> {
        let current = self.get(key)?;
        let n = current
            .and_then(|v| String::from_utf8(v).ok()?.parse::<i64>().ok())
            .unwrap_or(0)
            + delta;
        self.set(key, n.to_string().as_bytes())?;
        Ok(n)
    }

    fn swap_if(
        &self,
        key: &str,
        expect: &dyn Fn(Option<&[u8]>) -> bool,
        value: &[u8],
    ) -> Result<bool, String> {
        if self.contended.get() {
            return self.answers().map(|()| false);
        }
        super::swap_unshared(self, key, expect, value)
    }
}

/// A body in the double: pieces handed over as they are.
pub type MemoryStream = futures::stream::Iter<std::vec::IntoIter<Result<Vec<u8>, String>>>;

/// What a scripted upstream sees of one request.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: String,
    pub url: String,
    pub headers: super::Headers,
    /// What of the body was ready at once (all of it: the doubles' bodies
    /// are in memory).
    pub body: Vec<u8>,
}

/// An upstream's answer, as the script gives it.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The scripted upstream and what it was sent, shared with the handles
/// [`Host::outbound`](super::Host::outbound) gives out.
pub struct Upstream {
    script: Box<dyn Fn(&Sent) -> Answer>,
    pub sent: RefCell<Vec<Sent>>,
    /// Set: no answer at all, for this reason (an upstream that is away).
    away: RefCell<Option<super::Failure>>,
}

impl Upstream {
    /// `Err` while the upstream is away; nothing counts as sent then.
    fn reached(&self, url: &url::Url) -> Result<(), super::SendError> {
        match self.away.borrow().clone() {
            Some(failure) => Err(super::SendError::failed(url, failure)),
            None => Ok(()),
        }
    }

    fn answer(
        &self,
        method: String,
        url: String,
        headers: super::Headers,
        body: super::Body<super::Chunks>,
    ) -> super::Response<MemoryStream> {
        let sent = Sent {
            method,
            url,
            headers,
            body: ready_bytes(body),
        };
        let answer = (self.script)(&sent);
        let sent_method_is_head = sent.method == "HEAD";
        self.sent.borrow_mut().push(sent);
        let mut headers = super::Headers::default();
        for (name, value) in answer.headers {
            headers.push(name, value);
        }
        headers.push("content-length", answer.body.len().to_string());
        // Two pieces: a body is never one chunk on the wire either; a HEAD
        // answer has the length and no body.
        let half = answer.body.len() / 2;
        let pieces = match sent_method_is_head {
            true => Vec::new(),
            false => vec![
                Ok(answer.body[..half].to_vec()),
                Ok(answer.body[half..].to_vec()),
            ],
        };
        super::Response {
            status: answer.status,
            headers,
            body: super::Body::Stream(futures::stream::iter(pieces)),
        }
    }
}

impl super::Outbound for Upstream {
    fn send(
        &self,
        request: super::OutboundRequest<super::Chunks>,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<super::Response<super::Chunks>, super::SendError>>>,
    > {
        if let Err(e) = self.reached(&request.url) {
            return Box::pin(std::future::ready(Err(e)));
        }
        let response = self.answer(
            request.method,
            request.url.to_string(),
            request.headers,
            request.body,
        );
        Box::pin(std::future::ready(Ok(super::Response {
            status: response.status,
            headers: response.headers,
            body: super::into_chunks(response.body),
        })))
    }
}

/// The pieces of `body` that are there without waiting.
fn ready_bytes(body: super::Body<super::Chunks>) -> Vec<u8> {
    use futures::{FutureExt, StreamExt};
    let pieces = match body {
        super::Body::Empty => return Vec::new(),
        super::Body::Bytes(b) => return b,
        super::Body::Stream(c) | super::Body::Generated(c) => c,
    };
    let ready = pieces.filter_map(|p| std::future::ready(p.ok())).concat();
    ready.now_or_never().unwrap_or_default()
}

/// A [`Host`](super::Host) in memory, for native tests of the proxy's logic:
/// variables (with spin.toml's defaults, or a failing provider), three
/// [`MemoryKv`] stores, an upstream that answers from a script and keeps
/// what it was sent, and a timer that does not wait. Never a runtime to ship
/// against: the end-to-end tests run under real Spin.
#[derive(Clone)]
pub struct MemoryHost {
    variables: std::rc::Rc<RefCell<BTreeMap<String, Result<String, String>>>>,
    pub kv: std::rc::Rc<MemoryKv>,
    pub cache: std::rc::Rc<MemoryKv>,
    pub counters: std::rc::Rc<MemoryKv>,
    pub health: std::rc::Rc<MemoryKv>,
    pub upstream: std::rc::Rc<Upstream>,
    tally: std::rc::Rc<super::notes::Tally>,
    alongside: super::Tasks,
    /// The directory for blob files, as a runtime that mounts one says.
    pub blob_directory: Option<std::path::PathBuf>,
}

impl MemoryHost {
    /// A host whose upstream answers each request with what `script` returns;
    /// its stores are empty and its variables at spin.toml's defaults.
    pub fn new(script: impl Fn(&Sent) -> Answer + 'static) -> Self {
        Self {
            variables: Default::default(),
            kv: Default::default(),
            cache: Default::default(),
            counters: Default::default(),
            health: Default::default(),
            blob_directory: None,
            upstream: std::rc::Rc::new(Upstream {
                script: Box::new(script),
                sent: Default::default(),
                away: Default::default(),
            }),
            tally: Default::default(),
            alongside: Default::default(),
        }
    }

    /// Sets variable `name` for this host and every [`Self::next_request`] of it.
    pub fn set_variable(&self, name: &str, value: &str) {
        self.variables
            .borrow_mut()
            .insert(name.into(), Ok(value.into()));
    }

    /// From now on the upstream does not answer, failing with `failure`;
    /// `None` brings it back.
    pub fn upstream_away(&self, failure: Option<super::Failure>) {
        *self.upstream.away.borrow_mut() = failure;
    }

    /// The variable cannot be read, as when a provider is away.
    pub fn fail_variable(&self, name: &str) {
        self.variables
            .borrow_mut()
            .insert(name.into(), Err("provider away".into()));
    }

    /// Requests the upstream saw with `method` whose URL holds `part`.
    pub fn sent_count(&self, method: &str, part: &str) -> usize {
        let sent = self.upstream.sent.borrow();
        sent.iter()
            .filter(|s| s.method == method && s.url.contains(part))
            .count()
    }

    /// Another request on the same instance: the same variables, stores
    /// and upstream, its own notes and work beside its answer.
    pub fn next_request(&self) -> Self {
        Self {
            tally: Default::default(),
            alongside: Default::default(),
            ..self.clone()
        }
    }

    /// Work left beside the answer (a blob's copy), run to its end.
    pub async fn settle(&self) {
        self.alongside.close();
        self.alongside.run().await;
    }
}

impl super::Host for MemoryHost {
    type Stream = MemoryStream;

    fn variable(&self, name: &str) -> Option<String> {
        self.setting(name).ok().flatten()
    }

    fn setting(&self, name: &str) -> Result<Option<String>, String> {
        match self.variables.borrow().get(name) {
            Some(v) => v.clone().map(Some),
            None => Ok(crate::variables::default_of(name).map(String::from)),
        }
    }

    fn kv(&self) -> std::rc::Rc<dyn Kv> {
        self.kv.clone()
    }

    fn cache(&self) -> std::rc::Rc<dyn Kv> {
        self.cache.clone()
    }

    fn counters(&self) -> std::rc::Rc<dyn Kv> {
        self.counters.clone()
    }

    fn health(&self) -> std::rc::Rc<dyn Kv> {
        self.health.clone()
    }

    fn blob_directory(&self) -> Option<std::path::PathBuf> {
        self.blob_directory.clone()
    }

    fn tally(&self) -> &super::notes::Tally {
        &self.tally
    }

    fn timer(&self) -> std::rc::Rc<dyn super::Timer> {
        std::rc::Rc::new(NoWait)
    }

    fn alongside(&self) -> super::Tasks {
        self.alongside.clone()
    }

    async fn send(
        &self,
        request: super::OutboundRequest<MemoryStream>,
    ) -> Result<super::Response<MemoryStream>, super::SendError> {
        self.upstream.reached(&request.url)?;
        Ok(self.upstream.answer(
            request.method,
            request.url.to_string(),
            request.headers,
            super::into_chunks(request.body),
        ))
    }

    fn outbound(&self) -> std::rc::Rc<dyn super::Outbound> {
        self.upstream.clone()
    }
}

thread_local! {
    /// Time the in-memory host's waits let pass, on this test's thread.
    static SKEW_MILLIS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What the in-memory clock is ahead of the real one.
pub fn clock_skew_millis() -> u64 {
    SKEW_MILLIS.with(|s| s.get())
}

/// Moves this test's clock on, as if `by` had passed.
pub fn advance_clock(by: std::time::Duration) {
    SKEW_MILLIS.with(|s| s.set(s.get() + by.as_millis() as u64));
}

/// A timer whose every wait is over as soon as the other futures of the
/// request had their turn (a wait that never gave way would starve them),
/// and moves the clock on by what it waited: a lease's beats and its
/// watchers' patience play out in virtual time, at once.
pub struct NoWait;

impl super::Timer for NoWait {
    fn sleep(
        &self,
        duration: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        let mut waited = false;
        Box::pin(std::future::poll_fn(move |cx| {
            if waited {
                advance_clock(duration);
                return std::task::Poll::Ready(());
            }
            waited = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }))
    }
}
