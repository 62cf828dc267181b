//! The stores in one Redis, reached over Spin's outbound Redis
//! (`stores = "redis"`): one connection of the request's own, opened at its
//! first use, which each store's calls switch to its database (`SELECT`).
//!
//! Spin's key-value stores on Redis share one connection manager per Spin
//! process. While Redis is away every call waits on its reconnection with
//! no deadline, and once Redis is back the manager's growing backoff kept
//! the store unusable for 35–99 s (issue #23). A connection of the
//! request's own is refused at once while Redis is down, and the next
//! request's connects as soon as Redis is back. One for all the stores:
//! a connection to loopback Redis costs about 0.5 ms, a `SELECT` 0.05.
//!
//! A Redis that hangs rather than refuses (stopped, a network that drops
//! packets) cannot be timed out from a wasi:http 0.2 handler: its calls
//! block until Redis answers. So each request's first call (connecting)
//! is marked, while it waits, in the instance's own memory (the `health`
//! store), and a request that finds a call waiting longer than
//! [`HUNG_AFTER_MS`] treats Redis as away from its start: only the
//! requests of the first two seconds wait.

use crate::host::{self, Kv, stores};
use spin_sdk::redis::{Connection, Error, RedisParameter, RedisResult};
use std::cell::{Cell, OnceCell};
use std::rc::Rc;

/// A call to Redis waiting this long says Redis hangs.
const HUNG_AFTER_MS: u64 = 2_000;
/// A mark this old is a request that ended without taking it back (a trap,
/// a platform's time limit): forgotten, so it cannot keep Redis away.
const FORGET_AFTER_MS: u64 = 60_000;
/// Where calls waiting on Redis are marked, in the health store.
const CALL_PREFIX: &str = "redis-call/";

/// This request's calls to Redis, marked in the instance's memory while
/// they wait, and what the marks of the others said when it began.
struct Calls {
    health: Rc<dyn Kv>,
    mark: String,
    verdict: OnceCell<Result<(), String>>,
}

impl Calls {
    fn new(health: Rc<dyn Kv>) -> Self {
        Self {
            health,
            mark: format!("{CALL_PREFIX}{:016x}", crate::random_u64()),
            verdict: OnceCell::new(),
        }
    }

    /// Whether Redis may be called: not while another call has been
    /// waiting on it longer than [`HUNG_AFTER_MS`]. Read once a request.
    fn allowed(&self) -> Result<(), String> {
        self.verdict.get_or_init(|| self.read_marks()).clone()
    }

    fn read_marks(&self) -> Result<(), String> {
        let now = crate::now_millis();
        let keys = self.health.keys().unwrap_or_default();
        let waiting = keys
            .iter()
            .filter(|k| k.starts_with(CALL_PREFIX))
            .filter_map(|k| self.health.get(k).ok().flatten())
            .filter_map(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
            .map(|since| now.saturating_sub(since))
            .filter(|&waited| (HUNG_AFTER_MS..FORGET_AFTER_MS).contains(&waited))
            .max();
        match waiting {
            Some(ms) => Err(format!(
                "Redis has not answered a call for {:.1} s: taken as away",
                ms as f64 / 1000.0
            )),
            None => Ok(()),
        }
    }

    /// Runs `call`, marked as waiting on Redis until it returns.
    fn around<T>(&self, call: impl FnOnce() -> T) -> T {
        let since = crate::now_millis().to_string();
        let _ = self.health.set(&self.mark, since.as_bytes());
        let out = call();
        let _ = self.health.delete(&self.mark);
        out
    }
}

/// Sets KEYS[1] to ARGV[3] if it holds ARGV[2] (or nothing, when ARGV[1]
/// is 0): one atomic step, on every Redis since 2.6.
const SWAP: &str = "local v = redis.call('GET', KEYS[1]) \
    if ARGV[1] == '0' then if v then return 0 end \
    elseif v ~= ARGV[2] then return 0 end \
    redis.call('SET', KEYS[1], ARGV[3]) return 1";

/// The request's one connection to the Redis, for all its stores.
pub struct RedisConnection {
    /// `redis://[:password@]host:port`: never logged, for the password.
    url: Result<String, String>,
    connection: OnceCell<Result<Connection, String>>,
    /// The database the connection is on, once one was selected.
    selected: Cell<Option<u8>>,
    calls: Calls,
}

impl RedisConnection {
    /// `health` is the instance's own memory, where calls are marked.
    pub fn new(address: &str, password: Option<&str>, health: Rc<dyn Kv>) -> Rc<Self> {
        Rc::new(Self {
            url: stores::redis_url(address, password),
            connection: OnceCell::new(),
            selected: Cell::new(None),
            calls: Calls::new(health),
        })
    }

    /// The connection, switched to database `db`. Connecting and the first
    /// `SELECT` are marked as one call: a Redis that hangs holds a request
    /// there first, and later calls of the request go unmarked (a mark
    /// costs two calls of the health store, about 0.06 ms each).
    fn on(&self, db: u8) -> Result<&Connection, String> {
        self.calls.allowed()?;
        let connection = self
            .connection
            .get_or_init(|| {
                let url = self.url.as_deref().map_err(Clone::clone)?;
                self.calls.around(|| {
                    let connection = Connection::open(url).map_err(describe)?;
                    select(&connection, db)?;
                    self.selected.set(Some(db));
                    Ok(connection)
                })
            })
            .as_ref()
            .map_err(Clone::clone)?;
        if self.selected.get() != Some(db) {
            self.selected.set(None);
            select(connection, db)?;
            self.selected.set(Some(db));
        }
        Ok(connection)
    }
}

fn select(connection: &Connection, db: u8) -> Result<(), String> {
    let select = [RedisParameter::Int64(db.into())];
    connection
        .execute("SELECT", &select)
        .map(|_| ())
        .map_err(describe)
}

fn describe(e: Error) -> String {
    e.to_string()
}

/// One store: a database of the request's connection.
pub struct RedisStore {
    label: String,
    db: Result<u8, String>,
    redis: Rc<RedisConnection>,
}

impl RedisStore {
    /// Store `label` as its database on the request's Redis connection; a label
    /// with no database fails each call, not this.
    pub fn new(label: &str, redis: Rc<RedisConnection>) -> Self {
        Self {
            label: label.to_string(),
            db: stores::redis_database(label),
            redis,
        }
    }

    fn connection(&self) -> Result<&Connection, String> {
        let db = self.db.clone()?;
        self.redis.on(db).map_err(|e| self.failed(e))
    }

    fn failed(&self, e: impl std::fmt::Display) -> String {
        format!("Redis store {:?}: {e}", self.label)
    }

    fn call<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, String> {
        f(self.connection()?).map_err(|e| self.failed(e))
    }

    fn execute(&self, command: &str, args: &[RedisParameter]) -> Result<Vec<RedisResult>, String> {
        self.call(|c| c.execute(command, args))
    }
}

fn binary(bytes: &[u8]) -> RedisParameter {
    RedisParameter::Binary(bytes.to_vec())
}

fn integer(results: &[RedisResult]) -> Result<i64, String> {
    match results {
        [RedisResult::Int64(n)] => Ok(*n),
        other => Err(format!("Redis answered {other:?}, not a number")),
    }
}

impl host::Kv for RedisStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.call(|c| c.get(key))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.call(|c| c.set(key, value))
    }

    /// One `MSET`: one round trip.
    fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        if entries.is_empty() {
            return Ok(());
        }
        let args: Vec<RedisParameter> = entries
            .into_iter()
            .flat_map(|(k, v)| {
                [
                    RedisParameter::Binary(k.into_bytes()),
                    RedisParameter::Binary(v),
                ]
            })
            .collect();
        self.execute("MSET", &args).map(|_| ())
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.call(|c| c.del(&[key.to_string()])).map(|_| ())
    }

    /// `KEYS *`, as Spin's own Redis store lists.
    fn keys(&self) -> Result<Vec<String>, String> {
        let results = self.execute("KEYS", &[binary(b"*")])?;
        Ok(results
            .into_iter()
            .filter_map(|r| match r {
                RedisResult::Binary(b) => String::from_utf8(b).ok(),
                _ => None,
            })
            .collect())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, String> {
        integer(&self.execute(
            "INCRBY",
            &[binary(key.as_bytes()), RedisParameter::Int64(delta)],
        )?)
    }

    fn swap_if(
        &self,
        key: &str,
        expect: &dyn Fn(Option<&[u8]>) -> bool,
        value: &[u8],
    ) -> Result<bool, String> {
        let current = self.get(key)?;
        if !expect(current.as_deref()) {
            return Ok(false);
        }
        let args = [
            binary(SWAP.as_bytes()),
            RedisParameter::Int64(1),
            binary(key.as_bytes()),
            binary(if current.is_some() { b"1" } else { b"0" }),
            binary(current.as_deref().unwrap_or_default()),
            binary(value),
        ];
        Ok(integer(&self.execute("EVAL", &args)?)? == 1)
    }

    fn reachable(&self) -> Result<(), String> {
        self.connection().map(|_| ())
    }
}
