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

use crate::host::{self, stores};
use spin_sdk::redis::{Connection, Error, RedisParameter, RedisResult};
use std::cell::{Cell, OnceCell};
use std::rc::Rc;

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
}

impl RedisConnection {
    pub fn new(address: &str, password: Option<&str>) -> Rc<Self> {
        Rc::new(Self {
            url: stores::redis_url(address, password),
            connection: OnceCell::new(),
            selected: Cell::new(None),
        })
    }

    /// The connection, switched to database `db`.
    fn on(&self, db: u8) -> Result<&Connection, String> {
        let connection = self
            .connection
            .get_or_init(|| {
                Connection::open(self.url.as_deref().map_err(Clone::clone)?).map_err(describe)
            })
            .as_ref()
            .map_err(Clone::clone)?;
        if self.selected.get() != Some(db) {
            self.selected.set(None);
            connection
                .execute("SELECT", &[RedisParameter::Int64(db.into())])
                .map_err(describe)?;
            self.selected.set(Some(db));
        }
        Ok(connection)
    }
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

    fn execute(&self, command: &str, args: &[RedisParameter]) -> Result<Vec<RedisResult>, String> {
        self.connection()?
            .execute(command, args)
            .map_err(|e| self.failed(e))
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
        self.connection()?.get(key).map_err(|e| self.failed(e))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.connection()?
            .set(key, value)
            .map_err(|e| self.failed(e))
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
        self.connection()?
            .del(&[key.to_string()])
            .map(|_| ())
            .map_err(|e| self.failed(e))
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
