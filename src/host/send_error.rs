//! Why an outbound request got no answer, in the words the OCI error
//! message, the access log and the status page all show: "could not
//! resolve registry-1.docker.io", "127.0.0.1:1 refused the connection".
//! Each runtime maps its own errors (wasi:http's `error-code`) to a
//! [`Failure`]; the wording lives here, where it is tested natively.

use std::fmt;
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The runtime refused the host (Spin's `allowed_outbound_hosts`).
    Denied,
    /// No answer from `target`.
    Failed { target: Target, failure: Failure },
}

impl SendError {
    /// A failure of a request to `url`, named by its host and port only.
    pub fn failed(url: &Url, failure: Failure) -> Self {
        SendError::Failed {
            target: Target::of(url),
            failure,
        }
    }
}

/// The host and port a request went to: never its path or query, which
/// may carry a signature (an S3 presigned URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn of(url: &Url) -> Self {
        Target {
            host: url.host_str().unwrap_or_default().to_string(),
            port: url.port_or_known_default().unwrap_or_default(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Which wait ran out: the proxy sets one `upstream_timeout` for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    FirstByte,
    BetweenBytes,
    Sending,
}

/// A TLS failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    Handshake,
    Certificate,
    /// The peer's alert, with its description when the runtime gives one.
    Alert(Option<String>),
}

/// What went wrong, as far as the runtime tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The name did not resolve; the resolver's reason when it gave one.
    NotResolved(Option<String>),
    ResolverTimedOut,
    NotFound,
    Unavailable,
    AddressProhibited,
    AddressUnroutable,
    Refused,
    Closed,
    TimedOut(Phase, Duration),
    TooManyConnections,
    Tls(Tls),
    /// Part of the answer (`"header section"`, `"body"`) over the runtime's limit.
    TooLarge(&'static str),
    /// An answer that is not HTTP the runtime can read, and how.
    BadAnswer(String),
    LoopDetected,
    /// The runtime could not send the request at all, and why.
    Runtime(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Denied => f.write_str(
                "the runtime does not allow connections to this host (allowed_outbound_hosts)",
            ),
            SendError::Failed { target, failure } => describe(f, target, failure),
        }
    }
}

fn describe(f: &mut fmt::Formatter<'_>, to: &Target, failure: &Failure) -> fmt::Result {
    let host = &to.host;
    match failure {
        Failure::NotResolved(None) => write!(f, "could not resolve {host}"),
        Failure::NotResolved(Some(why)) => write!(f, "could not resolve {host} ({why})"),
        Failure::ResolverTimedOut => write!(f, "resolving {host} timed out"),
        Failure::NotFound => write!(f, "{to} was not found"),
        Failure::Unavailable => write!(f, "{to} is unavailable"),
        Failure::AddressProhibited => {
            write!(
                f,
                "{host} resolves to an address the runtime may not connect to"
            )
        }
        Failure::AddressUnroutable => write!(f, "there is no route to {to}"),
        Failure::Refused => write!(f, "{to} refused the connection"),
        Failure::Closed => write!(f, "{to} closed the connection"),
        Failure::TimedOut(phase, after) => {
            let what = match phase {
                Phase::Connecting => format!("connecting to {to}"),
                Phase::FirstByte => format!("waiting for the first byte of {to}'s answer"),
                Phase::BetweenBytes => format!("waiting for the next byte of {to}'s answer"),
                Phase::Sending => format!("sending the request to {to}"),
            };
            write!(f, "{what} timed out after {}", seconds(*after))
        }
        Failure::TooManyConnections => {
            write!(
                f,
                "the runtime has too many connections open to connect to {to}"
            )
        }
        Failure::Tls(Tls::Handshake) => write!(f, "the TLS handshake with {to} failed"),
        Failure::Tls(Tls::Certificate) => write!(
            f,
            "{to}'s TLS certificate was not accepted (expired, self-signed or for another name)"
        ),
        Failure::Tls(Tls::Alert(None)) => write!(f, "{to} ended the TLS handshake with an alert"),
        Failure::Tls(Tls::Alert(Some(why))) => {
            write!(f, "{to} ended the TLS handshake with an alert: {why}")
        }
        Failure::TooLarge(part) => {
            write!(
                f,
                "{to}'s answer has a {part} larger than the runtime takes"
            )
        }
        Failure::BadAnswer(why) => write!(f, "{to} sent an answer that is not valid HTTP: {why}"),
        Failure::LoopDetected => write!(f, "the request to {to} loops back to itself"),
        Failure::Runtime(why) => write!(f, "the runtime could not send the request to {to}: {why}"),
    }
}

/// `30 s` as the `upstream_timeout` variable reads; `1500 ms` if not whole seconds.
fn seconds(d: Duration) -> String {
    match d.as_millis() {
        ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
        ms => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests;
