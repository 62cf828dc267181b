//! What the proxy needs from the runtime it runs in (Spin in production, a
//! fake in unit tests): variables, a key-value store and outbound HTTP whose
//! bodies it passes along without looking at them.

use std::future::Future;
use url::Url;

/// Header list in order; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_string(), value.into()));
    }
}

/// A body: nothing, a few bytes the proxy made, or the runtime's stream,
/// passed through unread.
pub enum Body<S> {
    Empty,
    Bytes(Vec<u8>),
    Stream(S),
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

pub struct OutboundRequest<S> {
    pub method: String,
    pub url: Url,
    pub headers: Headers,
    pub body: Body<S>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The runtime refused the host (Spin's `allowed_outbound_hosts`).
    Denied,
    Failed(String),
}

pub trait Host {
    type Stream;

    fn variable(&self, name: &str) -> Option<String>;
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), String>;
    fn kv_delete(&self, key: &str) -> Result<(), String>;
    fn kv_keys(&self) -> Result<Vec<String>, String>;
    fn send(
        &self,
        request: OutboundRequest<Self::Stream>,
    ) -> impl Future<Output = Result<Response<Self::Stream>, SendError>>;
    /// Reads a body of at most `limit` bytes (small JSON and forms only).
    fn read_body(
        &self,
        body: Body<Self::Stream>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<u8>, String>>;
}
