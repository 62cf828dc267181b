//! The stores in one Redis (`stores = "redis"`): one connection of the
//! request's own, opened at its first use, which each store's calls switch
//! to its database (`SELECT`).
//!
//! Spin's key-value stores on Redis share one connection manager per Spin
//! process. While Redis is away every call waits on its reconnection with
//! no deadline, and once Redis is back the manager's growing backoff kept
//! the store unusable for 35–99 s (issue #23). A connection of the
//! request's own is refused at once while Redis is down, and the next
//! request's connects as soon as Redis is back. One for all the stores:
//! a connection to loopback Redis costs about 0.5 ms, a `SELECT` 0.05.
//!
//! A Redis at an IP address is reached over a socket, every call with a
//! deadline ([`CALL_TIMEOUT_MS`]); one named by host name, through Spin's
//! outbound Redis, which resolves names (see `host/redis_marks.rs` for what
//! bounds a wait there).

use super::redis_socket::{SocketConnection, SocketError, deadline_in};
use crate::host::redis_marks::Marks;
use crate::host::resp::Reply;
use crate::host::stores::{self, RedisAddress};
use crate::host::{self, Kv};
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};
use std::cell::{Cell, OnceCell};
use std::rc::Rc;

/// The longest a call to Redis over a socket may take, connecting
/// included. A loopback call takes about 0.1 ms; `KEYS` over a million
/// keys, some hundred. A Redis that has not answered in a second is hung
/// as far as a client of the proxy can tell.
const CALL_TIMEOUT_MS: u64 = 1_000;

/// Sets KEYS[1] to ARGV[3] if it holds ARGV[2] (or nothing, when ARGV[1]
/// is 0): one atomic step, on every Redis since 2.6.
const SWAP: &str = "local v = redis.call('GET', KEYS[1]) \
    if ARGV[1] == '0' then if v then return 0 end \
    elseif v ~= ARGV[2] then return 0 end \
    redis.call('SET', KEYS[1], ARGV[3]) return 1";

/// How the request reaches Redis.
enum Link {
    Socket(SocketConnection),
    Outbound(Connection),
}

/// The request's one connection to the Redis, for all its stores.
pub struct RedisConnection {
    address: Result<RedisAddress, String>,
    /// Never logged.
    password: Option<String>,
    link: OnceCell<Result<Link, String>>,
    /// The database the connection is on, once one was selected.
    selected: Cell<Option<u8>>,
    marks: Marks,
}

impl RedisConnection {
    /// `health` is the instance's own memory, where hangs are marked.
    pub fn new(address: &str, password: Option<&str>, health: Rc<dyn Kv>) -> Rc<Self> {
        Rc::new(Self {
            address: RedisAddress::parse(address),
            password: password.filter(|p| !p.is_empty()).map(String::from),
            link: OnceCell::new(),
            selected: Cell::new(None),
            marks: Marks::new(health),
        })
    }

    /// Runs command `args` on database `db`.
    fn call(&self, db: u8, args: &[&[u8]]) -> Result<Reply, String> {
        self.marks.allowed()?;
        let link = self.link.get_or_init(|| self.open(db));
        let link = link.as_ref().map_err(Clone::clone)?;
        if self.selected.get() != Some(db) {
            self.selected.set(None);
            self.run(link, &select(&db.to_string()))?.ok()?;
            self.selected.set(Some(db));
        }
        self.run(link, args)
    }

    /// Connects, signs in and selects `db`: over a socket all by one
    /// deadline; through Spin marked as one call.
    fn open(&self, db: u8) -> Result<Link, String> {
        let db_text = db.to_string();
        let address = self.address.as_ref().map_err(Clone::clone)?;
        let link = match address {
            RedisAddress::Ip(ip) => {
                let deadline = deadline_in(CALL_TIMEOUT_MS);
                let socket = SocketConnection::open(*ip, deadline).map_err(|e| self.failed(e))?;
                if let Some(password) = &self.password {
                    let auth = socket.call(&[b"AUTH", password.as_bytes()], deadline);
                    auth.map_err(|e| self.failed(e))?.ok()?;
                }
                let selected = socket.call(&select(&db_text), deadline);
                selected.map_err(|e| self.failed(e))?.ok()?;
                Link::Socket(socket)
            }
            RedisAddress::Name(name) => self.marks.around(|| {
                let url = stores::outbound_url(name, self.password.as_deref());
                let connection = Connection::open(&url).map_err(|e| e.to_string())?;
                outbound(&connection, &select(&db_text))?.ok()?;
                Ok::<_, String>(Link::Outbound(connection))
            })?,
        };
        self.selected.set(Some(db));
        self.marks.answered();
        Ok(link)
    }

    fn run(&self, link: &Link, args: &[&[u8]]) -> Result<Reply, String> {
        match link {
            Link::Socket(socket) => socket
                .call(args, deadline_in(CALL_TIMEOUT_MS))
                .map_err(|e| self.failed(e)),
            Link::Outbound(connection) => outbound(connection, args),
        }
    }

    /// A call past its deadline marks Redis hung for the instance.
    fn failed(&self, e: SocketError) -> String {
        if e.hung {
            self.marks.hung();
        }
        e.message
    }
}

/// `SELECT` of database `db` (its number written out).
fn select(db: &str) -> [&[u8]; 2] {
    [b"SELECT", db.as_bytes()]
}

/// Command `args` through Spin's outbound Redis, its results as one reply.
fn outbound(connection: &Connection, args: &[&[u8]]) -> Result<Reply, String> {
    let (command, rest) = args.split_first().ok_or("no Redis command")?;
    let command = String::from_utf8_lossy(command);
    let params: Vec<RedisParameter> = rest
        .iter()
        .map(|a| RedisParameter::Binary(a.to_vec()))
        .collect();
    let results = connection
        .execute(&command, &params)
        .map_err(|e| e.to_string())?;
    let mut replies: Vec<Reply> = results
        .into_iter()
        .map(|r| match r {
            RedisResult::Nil => Reply::Nil,
            RedisResult::Status(s) => Reply::Status(s),
            RedisResult::Int64(n) => Reply::Integer(n),
            RedisResult::Binary(b) => Reply::Bulk(b),
        })
        .collect();
    match replies.len() {
        1 => Ok(replies.remove(0)),
        _ => Ok(Reply::Array(replies)),
    }
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

    /// Command `args` on this store's database.
    fn call(&self, args: &[&[u8]]) -> Result<Reply, String> {
        let db = self.db.clone()?;
        self.redis
            .call(db, args)
            .and_then(Reply::ok)
            .map_err(|e| format!("Redis store {:?}: {e}", self.label))
    }
}

impl host::Kv for RedisStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.call(&[b"GET", key.as_bytes()])?.bulk()
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.call(&[b"SET", key.as_bytes(), value]).map(drop)
    }

    /// One `MSET`: one round trip.
    fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        for (k, v) in &entries {
            args.extend([k.as_bytes(), v.as_slice()]);
        }
        self.call(&args).map(drop)
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.call(&[b"DEL", key.as_bytes()]).map(drop)
    }

    /// `KEYS *`, as Spin's own Redis store lists.
    fn keys(&self) -> Result<Vec<String>, String> {
        self.call(&[b"KEYS", b"*"])?.strings()
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, String> {
        let delta = delta.to_string();
        self.call(&[b"INCRBY", key.as_bytes(), delta.as_bytes()])?
            .integer()
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
        let held: &[u8] = if current.is_some() { b"1" } else { b"0" };
        let args = [
            b"EVAL",
            SWAP.as_bytes(),
            b"1",
            key.as_bytes(),
            held,
            current.as_deref().unwrap_or_default(),
            value,
        ];
        Ok(self.call(&args)?.integer()? == 1)
    }

    fn reachable(&self) -> Result<(), String> {
        self.call(&[b"PING"]).map(drop)
    }
}
