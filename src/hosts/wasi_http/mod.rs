//! The proxy's [`Host`](crate::host::Host) on wasi:http 0.2: a
//! request in, outbound `send`, and the answer streamed out. A
//! [`Platform`] adds the variables and key-value stores.

mod body;
mod failure;
mod outbound;
mod respond;
mod serve;

pub use serve::serve;

use crate::host;
use crate::host::notes::Tally;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

/// What differs between the runtimes.
pub trait Platform {
    /// A variable, with its declared default when the runtime does not
    /// apply defaults itself; `Err` when the runtime could not read it (a
    /// variables provider that is away), which is not the same as unset.
    fn variable(&self, name: &str) -> Result<Option<String>, String>;
    /// The store under one of the labels spin.toml declares.
    fn store(&self, label: &str) -> Rc<dyn host::Kv>;
    /// Whether what a request writes is there for the next one; the cache
    /// is off where it is not.
    fn store_persists(&self) -> bool;
    /// The directory blob files go in, where the runtime mounts one.
    fn blob_directory(&self) -> Option<std::path::PathBuf> {
        None
    }
    /// Whether the runtime adds `spin-*` headers (the client's address, the
    /// full URL) after any the client sent under the same names.
    fn sets_spin_headers(&self) -> bool;
}

/// Only the runtime's own `spin-*` headers: Spin appends its values after
/// the client's, so the last of each name is Spin's; a runtime that sets
/// none leaves only forged ones, and those go.
fn runtime_headers_only(headers: &mut host::Headers, runtime_sets_them: bool) {
    let is_spin = |n: &str| n.len() > 5 && n[..5].eq_ignore_ascii_case("spin-");
    let mut kept: Vec<(String, String)> = Vec::with_capacity(headers.0.len());
    for (name, value) in headers.0.drain(..).rev() {
        let forged = is_spin(&name)
            && (!runtime_sets_them || kept.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name)));
        if !forged {
            kept.push((name, value));
        }
    }
    kept.reverse();
    headers.0 = kept;
}

pub type ChunkStream = Pin<Box<dyn futures::Stream<Item = Result<Vec<u8>, String>>>>;

/// A body stream, holding the response it belongs to: wasmtime cancels an
/// outbound request whose response handle is dropped.
pub struct Stream {
    chunks: ChunkStream,
    _response: Option<wasi::http::types::IncomingResponse>,
}

impl futures::Stream for Stream {
    type Item = Result<Vec<u8>, String>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        self.chunks.as_mut().poll_next(cx)
    }
}

/// One request's handle on the runtime; its clones are the same request's.
struct WasiHost<P> {
    platform: Rc<P>,
    kv: Rc<dyn host::Kv>,
    cache: Rc<dyn host::Kv>,
    tally: Rc<Tally>,
    alongside: host::Tasks,
    /// The request's settings, read at their first use.
    settings: Rc<std::cell::OnceCell<Rc<host::settings::Settings>>>,
}

impl<P> Clone for WasiHost<P> {
    fn clone(&self) -> Self {
        Self {
            platform: self.platform.clone(),
            kv: self.kv.clone(),
            cache: self.cache.clone(),
            tally: self.tally.clone(),
            alongside: self.alongside.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<P: Platform + 'static> host::Host for WasiHost<P> {
    type Stream = Stream;

    fn variable(&self, name: &str) -> Option<String> {
        self.platform.variable(name).unwrap_or_else(|e| {
            eprintln!("variable {name} cannot be read, so it counts as unset: {e}");
            None
        })
    }

    fn setting(&self, name: &str) -> Result<Option<String>, String> {
        self.platform.variable(name)
    }

    fn settings(&self) -> Rc<host::settings::Settings> {
        let read = || Rc::new(host::settings::Settings::read(|name| self.variable(name)));
        self.settings.get_or_init(read).clone()
    }

    fn kv(&self) -> Rc<dyn host::Kv> {
        self.kv.clone()
    }

    fn cache(&self) -> Rc<dyn host::Kv> {
        self.cache.clone()
    }

    fn store_persists(&self) -> bool {
        self.platform.store_persists()
    }

    fn tally(&self) -> &Tally {
        &self.tally
    }

    fn timer(&self) -> Rc<dyn host::Timer> {
        Rc::new(PollTimer)
    }

    fn alongside(&self) -> host::Tasks {
        self.alongside.clone()
    }

    fn blob_directory(&self) -> Option<std::path::PathBuf> {
        self.platform.blob_directory()
    }

    fn counters(&self) -> Rc<dyn host::Kv> {
        self.platform.store("stats")
    }

    fn health(&self) -> Rc<dyn host::Kv> {
        self.platform.store("health")
    }

    async fn send(
        &self,
        request: host::OutboundRequest<Stream>,
    ) -> Result<host::Response<Stream>, host::SendError> {
        outbound::send(request).await
    }

    fn outbound(&self) -> Rc<dyn host::Outbound> {
        Rc::new(outbound::Handle)
    }
}

/// Waits on a `wasi:clocks` pollable through the executor.
struct PollTimer;

impl host::Timer for PollTimer {
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
