//! Plain WASI (`wasmtime serve -S keyvalue -S config`): variables from
//! `wasi:config`, with spin.toml's defaults; stores from `wasi:keyvalue`.
//!
//! wasmtime serve opens one unnamed store, a fresh copy of its presets for
//! each request. So the three labels share it when the runtime knows no
//! store by their names, and the cache turns itself off when nothing a
//! request wrote is there for the next.

use super::wasi_http::{self, Platform};
use crate::host;
use bindings::wasi::config::store as config;
use bindings::wasi::keyvalue::{atomics, store};
use std::cell::{Cell, OnceCell};
use std::rc::Rc;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "registry-proxy:portable/host",
        generate_all,
    });
}

struct Component;

impl wasi::exports::http::incoming_handler::Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        spin_executor::run(wasi_http::serve(WasiPlatform::default(), request, out));
    }
}

wasi::http::proxy::export!(Component);

/// A key no route or user can have, written by every request that finds
/// it missing: the next request sees it only if the store persists.
const PERSISTS_KEY: &str = "registry-proxy:store-persists";

type Bucket = Result<Rc<store::Bucket>, String>;

#[derive(Default)]
struct WasiPlatform {
    /// The runtime's unnamed store, opened once: each open is a new copy.
    unnamed: OnceCell<Bucket>,
    persists: Cell<Option<bool>>,
}

impl WasiPlatform {
    fn unnamed(&self) -> Bucket {
        self.unnamed.get_or_init(|| open("").map(Rc::new)).clone()
    }
}

impl Platform for WasiPlatform {
    fn variable(&self, name: &str) -> Result<Option<String>, String> {
        match config::get(name) {
            Ok(Some(value)) => Ok(Some(value)),
            Ok(None) => Ok(crate::variables::default_of(name).map(String::from)),
            Err(e) => Err(format!("{e:?}")),
        }
    }

    fn store(&self, label: &str) -> Rc<dyn host::Kv> {
        let view = match open(label) {
            Ok(bucket) => Prefixed::whole(Ok(Rc::new(bucket))),
            Err(_) if label == "default" => Prefixed::whole(self.unnamed()),
            Err(_) => Prefixed::part(self.unnamed(), label),
        };
        Rc::new(view)
    }

    fn store_persists(&self) -> bool {
        if let Some(known) = self.persists.get() {
            return known;
        }
        let store = self.store("default");
        let persists = match store.get(PERSISTS_KEY) {
            Ok(Some(_)) => true,
            Ok(None) => {
                // Failing to write it changes nothing: the cache stays off.
                let _ = store.set(PERSISTS_KEY, b"1");
                false
            }
            Err(_) => false,
        };
        self.persists.set(Some(persists));
        persists
    }

    fn sets_spin_headers(&self) -> bool {
        false
    }
}

fn open(label: &str) -> Result<store::Bucket, String> {
    store::open(label).map_err(|e| format!("key-value store {label:?}: {e:?}"))
}

/// A store, or the part of a shared one under `<label>:`. The whole view
/// of a shared store leaves the parts out of its listing.
struct Prefixed {
    bucket: Bucket,
    prefix: String,
}

impl Prefixed {
    fn whole(bucket: Bucket) -> Self {
        Self {
            bucket,
            prefix: String::new(),
        }
    }

    fn part(bucket: Bucket, label: &str) -> Self {
        Self {
            bucket,
            prefix: format!("{label}:"),
        }
    }

    fn bucket(&self) -> Result<&store::Bucket, String> {
        self.bucket.as_deref().map_err(Clone::clone)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl host::Kv for Prefixed {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let value = self.bucket()?.get(&self.key(key)).map_err(describe)?;
        Ok(value.map(preset))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.bucket()?.set(&self.key(key), value).map_err(describe)
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.bucket()?.delete(&self.key(key)).map_err(describe)
    }

    fn keys(&self) -> Result<Vec<String>, String> {
        let bucket = self.bucket()?;
        let (mut keys, mut cursor) = (Vec::new(), None);
        loop {
            let page = bucket.list_keys(cursor).map_err(describe)?;
            keys.extend(
                page.keys
                    .into_iter()
                    .filter_map(|k| match self.prefix.as_str() {
                        "" => (!foreign(&k)).then_some(k),
                        prefix => k.strip_prefix(prefix).map(String::from),
                    }),
            );
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, String> {
        let bucket = self.bucket()?;
        let key = self.key(key);
        match u64::try_from(delta) {
            Ok(up) => atomics::increment(bucket, &key, up)
                .map_err(describe)
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            // The draft's increment only adds. A count going down (the
            // cache's budget) is rewritten as wasmtime's store holds it, in
            // decimal; nothing else shares it there.
            Err(_) => {
                let now = atomics::increment(bucket, &key, 0).map_err(describe)?;
                let next = i64::try_from(now).unwrap_or(i64::MAX) + delta;
                bucket
                    .set(&key, next.to_string().as_bytes())
                    .map_err(describe)?;
                Ok(next)
            }
        }
    }

    /// wasi:keyvalue 0.2.0-draft has no compare-and-swap: read, check and
    /// write. Only instances that share a store can race, and wasmtime
    /// serve's never does.
    fn swap_if(
        &self,
        key: &str,
        expect: &dyn Fn(Option<&[u8]>) -> bool,
        value: &[u8],
    ) -> Result<bool, String> {
        host::swap_unshared(self, key, expect, value)
    }
}

/// Keys in a shared store that are not routes or users: the probe's, and
/// those of the parts spin.toml's other labels name.
fn foreign(key: &str) -> bool {
    key == PERSISTS_KEY || ["cache:", "stats:"].iter().any(|p| key.starts_with(p))
}

/// A value as written, or decoded from `base64:<standard base64>`:
/// wasmtime's `-S keyvalue-in-memory-data` splits its argument at commas,
/// so a JSON route or user can only be preset that way.
fn preset(value: Vec<u8>) -> Vec<u8> {
    use base64::Engine;
    match value.strip_prefix(b"base64:") {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or(value),
        None => value,
    }
}

fn describe(e: store::Error) -> String {
    format!("key-value store: {e:?}")
}
