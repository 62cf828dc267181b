//! Spin: variables from spin.toml (Spin applies their defaults), and the
//! key-value stores the component's `key_value_stores` names, each as
//! runtime-config.toml places it.

mod redis_socket;
mod redis_stores;

use super::wasi_http::{self, Platform};
use crate::host;
use crate::host::stores::Stores;
use redis_stores::{RedisConnection, RedisStore};
use spin_sdk::key_value::Store;
use spin_sdk::wit::wasi::keyvalue;
use std::cell::OnceCell;
use std::rc::Rc;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Component;

impl wasi::exports::http::incoming_handler::Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        spin_executor::run(wasi_http::serve(SpinPlatform::default(), request, out));
    }
}

wasi::http::proxy::export!(Component);

/// One request's view of Spin: with `stores = redis`, one connection to
/// Redis for all the stores it opens.
#[derive(Default)]
struct SpinPlatform {
    redis: OnceCell<Result<Rc<RedisConnection>, String>>,
}

impl SpinPlatform {
    fn redis_store(&self, label: &str) -> Result<RedisStore, String> {
        let redis = self.redis.get_or_init(|| {
            let address = self.variable("redis_address")?.unwrap_or_default();
            let password = self.variable("redis_password")?;
            let health: Rc<dyn host::Kv> = Rc::new(SpinKv::open("health"));
            Ok(RedisConnection::new(&address, password.as_deref(), health))
        });
        Ok(RedisStore::new(label, redis.clone()?))
    }
}

impl Platform for SpinPlatform {
    fn variable(&self, name: &str) -> Result<Option<String>, String> {
        use spin_sdk::variables::Error;
        match spin_sdk::variables::get(name) {
            Ok(value) => Ok(Some(value)),
            Err(Error::Undefined(_)) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn store(&self, label: &str) -> Rc<dyn host::Kv> {
        // This instance's own memory stays with it, wherever the rest is.
        if label == "health" {
            return Rc::new(SpinKv::open(label));
        }
        match self
            .variable("stores")
            .and_then(|v| Stores::parse(v.as_deref()))
        {
            Ok(Stores::Runtime) => Rc::new(SpinKv::open(label)),
            Ok(Stores::Redis) => match self.redis_store(label) {
                Ok(store) => Rc::new(store),
                Err(e) => Rc::new(Unusable(e)),
            },
            // A store that cannot be placed is no store: never another.
            Err(e) => Rc::new(Unusable(e)),
        }
    }

    fn store_persists(&self) -> bool {
        true
    }

    fn sets_spin_headers(&self) -> bool {
        true
    }

    /// spin.toml mounts the app's `blobs/` there; it is writable only with
    /// `spin up --direct-mounts --allow-transient-write` (else a read-only
    /// copy, which the blob storage finds out and says).
    fn blob_directory(&self) -> Option<std::path::PathBuf> {
        Some(crate::cache::blob_storage::files::MOUNT.into())
    }
}

/// A store whose setting is wrong: every call fails with why.
struct Unusable(String);

impl host::Kv for Unusable {
    fn get(&self, _: &str) -> Result<Option<Vec<u8>>, String> {
        Err(self.0.clone())
    }
    fn set(&self, _: &str, _: &[u8]) -> Result<(), String> {
        Err(self.0.clone())
    }
    fn delete(&self, _: &str) -> Result<(), String> {
        Err(self.0.clone())
    }
    fn keys(&self) -> Result<Vec<String>, String> {
        Err(self.0.clone())
    }
    fn increment(&self, _: &str, _: i64) -> Result<i64, String> {
        Err(self.0.clone())
    }
    fn swap_if(
        &self,
        _: &str,
        _: &dyn Fn(Option<&[u8]>) -> bool,
        _: &[u8],
    ) -> Result<bool, String> {
        Err(self.0.clone())
    }
    fn reachable(&self) -> Result<(), String> {
        Err(self.0.clone())
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

    /// One SQLite transaction, or one Redis round trip.
    fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        keyvalue::batch::set_many(&self.bucket()?, &entries).map_err(|e| format!("{e:?}"))
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.store()?.delete(key).map_err(|e| e.to_string())
    }

    fn keys(&self) -> Result<Vec<String>, String> {
        self.store()?.get_keys().map_err(|e| e.to_string())
    }

    fn reachable(&self) -> Result<(), String> {
        self.store().map(|_| ())
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
