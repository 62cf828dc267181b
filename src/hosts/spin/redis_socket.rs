//! A connection to Redis over a `wasi:sockets` TCP socket of the
//! component's own, where every wait has a deadline.
//!
//! A wasi:http 0.2 handler cannot time out a call to Spin's outbound Redis:
//! the call blocks the component until Redis answers, and a Redis that
//! hangs (stopped, a network that drops packets) never does. A socket's
//! waits are `wasi:io` pollables, which `poll` races against a clock. Spin
//! gives components no name lookup, so this is the way to a Redis at an IP
//! address (allowed as `tcp://host:port`); a Redis named by its host name
//! goes through Spin's outbound Redis.

use crate::host::resp::{self, Reply};
use std::cell::RefCell;
use std::net::SocketAddr;
use wasi::clocks::monotonic_clock;
use wasi::io::poll::{Pollable, poll};
use wasi::io::streams::{InputStream, OutputStream, StreamError};
use wasi::sockets::instance_network::instance_network;
use wasi::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use wasi::sockets::tcp::TcpSocket;
use wasi::sockets::tcp_create_socket::create_tcp_socket;

/// An instant of the monotonic clock, in nanoseconds.
pub type Deadline = u64;

/// The deadline `millis` from now.
pub fn deadline_in(millis: u64) -> Deadline {
    monotonic_clock::now().saturating_add(millis * 1_000_000)
}

/// Why a call failed; `hung` when it was past its deadline.
pub struct SocketError {
    pub message: String,
    pub hung: bool,
}

impl SocketError {
    fn failed(message: String) -> Self {
        Self {
            message,
            hung: false,
        }
    }
}

/// An open connection. Its streams are children of the socket, so they are
/// dropped first (fields drop in order).
pub struct SocketConnection {
    input: InputStream,
    output: OutputStream,
    _socket: TcpSocket,
    /// Bytes read past the last reply.
    buffer: RefCell<Vec<u8>>,
    /// Why a call failed: a late reply would answer the next command, so
    /// the connection takes no other.
    broken: RefCell<Option<String>>,
}

impl SocketConnection {
    /// Connects to `address` by `deadline`.
    pub fn open(address: SocketAddr, deadline: Deadline) -> Result<Self, SocketError> {
        let family = match address {
            SocketAddr::V4(_) => IpAddressFamily::Ipv4,
            SocketAddr::V6(_) => IpAddressFamily::Ipv6,
        };
        let socket = create_tcp_socket(family).map_err(|e| refused("open a socket for", e))?;
        socket
            .start_connect(&instance_network(), ip_socket_address(address))
            .map_err(|e| refused("connect to", e))?;
        loop {
            match socket.finish_connect() {
                Ok((input, output)) => {
                    return Ok(Self {
                        input,
                        output,
                        _socket: socket,
                        buffer: Default::default(),
                        broken: Default::default(),
                    });
                }
                Err(ErrorCode::WouldBlock) => wait(&socket.subscribe(), deadline, "connect")?,
                Err(e) => return Err(refused("connect to", e)),
            }
        }
    }

    /// Sends command `args` and reads its reply, both by `deadline`.
    pub fn call(&self, args: &[&[u8]], deadline: Deadline) -> Result<Reply, SocketError> {
        if let Some(why) = self.broken.borrow().clone() {
            return Err(SocketError::failed(why));
        }
        let reply = self.send(&resp::command(args), deadline);
        let reply = reply.and_then(|()| self.receive(deadline));
        if let Err(e) = &reply {
            *self.broken.borrow_mut() = Some(e.message.clone());
        }
        reply
    }

    fn send(&self, mut bytes: &[u8], deadline: Deadline) -> Result<(), SocketError> {
        while !bytes.is_empty() {
            let room = self.output.check_write().map_err(closed)?;
            if room == 0 {
                wait(&self.output.subscribe(), deadline, "send a command")?;
                continue;
            }
            let n = bytes.len().min(room as usize);
            self.output.write(&bytes[..n]).map_err(closed)?;
            bytes = &bytes[n..];
        }
        self.output.flush().map_err(closed)
    }

    fn receive(&self, deadline: Deadline) -> Result<Reply, SocketError> {
        let mut buffer = self.buffer.borrow_mut();
        loop {
            if let Some((reply, used)) = resp::parse(&buffer).map_err(SocketError::failed)? {
                buffer.drain(..used);
                return Ok(reply);
            }
            let bytes = self.input.read(64 << 10).map_err(closed)?;
            if bytes.is_empty() {
                wait(&self.input.subscribe(), deadline, "answer")?;
            }
            buffer.extend_from_slice(&bytes);
        }
    }
}

/// How long the end of a request waits for Redis to close the connection.
const QUIT_WAIT_MS: u64 = 200;

impl Drop for SocketConnection {
    /// `QUIT`, and Redis's close waited for: the side that closes first
    /// keeps the connection in TIME-WAIT for a minute, and on the proxy's
    /// side each one holds an ephemeral port. A connection a request cost,
    /// closed by the proxy, would run a busy instance out of ports to one
    /// Redis at some 470 requests a second.
    fn drop(&mut self) {
        if self.broken.borrow().is_some() {
            return;
        }
        let deadline = deadline_in(QUIT_WAIT_MS);
        if self.send(&resp::command(&[b"QUIT"]), deadline).is_err() {
            return;
        }
        while let Ok(bytes) = self.input.read(4 << 10) {
            if bytes.is_empty() && wait(&self.input.subscribe(), deadline, "close").is_err() {
                return;
            }
        }
    }
}

/// Waits for `ready` until `deadline`; past it, Redis is taken as hung.
fn wait(ready: &Pollable, deadline: Deadline, what: &str) -> Result<(), SocketError> {
    let clock = monotonic_clock::subscribe_instant(deadline);
    match poll(&[ready, &clock]).contains(&0) {
        true => Ok(()),
        false => Err(SocketError {
            message: format!("Redis did not {what} in time: taken as hung"),
            hung: true,
        }),
    }
}

fn refused(what: &str, e: ErrorCode) -> SocketError {
    SocketError::failed(format!("could not {what} Redis: {e:?}"))
}

fn closed(e: StreamError) -> SocketError {
    SocketError::failed(match e {
        StreamError::Closed => "Redis closed the connection".into(),
        StreamError::LastOperationFailed(e) => {
            format!("the connection to Redis failed: {}", e.to_debug_string())
        }
    })
}

fn ip_socket_address(address: SocketAddr) -> IpSocketAddress {
    match address {
        SocketAddr::V4(a) => {
            let [a0, a1, a2, a3] = a.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port: a.port(),
                address: (a0, a1, a2, a3),
            })
        }
        SocketAddr::V6(a) => {
            let [s0, s1, s2, s3, s4, s5, s6, s7] = a.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port: a.port(),
                flow_info: a.flowinfo(),
                address: (s0, s1, s2, s3, s4, s5, s6, s7),
                scope_id: a.scope_id(),
            })
        }
    }
}
