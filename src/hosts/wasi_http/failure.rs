//! wasi:http's `error-code` as the host layer's [`Failure`], whose words
//! (and their tests) live in the core: the component's errors read the
//! same as the native tests say.

use crate::host::{Failure, Phase, SendError, Tls};
use std::time::Duration;
use wasi::http::types::ErrorCode;

/// `code` of a request to `url` that waited `timeout`; `read` is the wait a
/// read timeout ran out in (the answer's head, or its body).
pub fn send_error(url: &url::Url, code: ErrorCode, read: Phase, timeout: Duration) -> SendError {
    match code {
        ErrorCode::HttpRequestDenied => SendError::Denied,
        code => SendError::failed(url, failure(code, read, timeout)),
    }
}

fn failure(code: ErrorCode, read: Phase, timeout: Duration) -> Failure {
    use ErrorCode as E;
    match code {
        E::DnsTimeout => Failure::ResolverTimedOut,
        E::DnsError(p) => Failure::NotResolved(p.rcode),
        E::DestinationNotFound => Failure::NotFound,
        E::DestinationUnavailable => Failure::Unavailable,
        E::DestinationIpProhibited => Failure::AddressProhibited,
        E::DestinationIpUnroutable => Failure::AddressUnroutable,
        E::ConnectionRefused => Failure::Refused,
        E::ConnectionTerminated => Failure::Closed,
        E::ConnectionTimeout => Failure::TimedOut(Phase::Connecting, timeout),
        E::ConnectionReadTimeout => Failure::TimedOut(read, timeout),
        E::HttpResponseTimeout => Failure::TimedOut(Phase::FirstByte, timeout),
        E::ConnectionWriteTimeout => Failure::TimedOut(Phase::Sending, timeout),
        E::ConnectionLimitReached => Failure::TooManyConnections,
        E::TlsProtocolError => Failure::Tls(Tls::Handshake),
        E::TlsCertificateError => Failure::Tls(Tls::Certificate),
        E::TlsAlertReceived(p) => Failure::Tls(Tls::Alert(p.alert_message)),
        E::HttpResponseHeaderSectionSize(_) => Failure::TooLarge("header section"),
        E::HttpResponseHeaderSize(_) => Failure::TooLarge("header"),
        E::HttpResponseBodySize(_) => Failure::TooLarge("body"),
        E::HttpResponseTrailerSectionSize(_) => Failure::TooLarge("trailer section"),
        E::HttpResponseTrailerSize(_) => Failure::TooLarge("trailer"),
        E::LoopDetected => Failure::LoopDetected,
        code => answer_or_request(code),
    }
}

/// The rest: an answer the runtime cannot read, or a request it would not send.
fn answer_or_request(code: ErrorCode) -> Failure {
    use ErrorCode as E;
    let bad = |why: &str| Failure::BadAnswer(why.to_string());
    let runtime = |why: &str| Failure::Runtime(why.to_string());
    match code {
        E::HttpResponseIncomplete => bad("it ended early"),
        E::HttpResponseTransferCoding(c) => bad(&coding("transfer", c)),
        E::HttpResponseContentCoding(c) => bad(&coding("content", c)),
        E::HttpUpgradeFailed => bad("the protocol upgrade failed"),
        E::HttpProtocolError => bad("a protocol error"),
        E::HttpRequestLengthRequired => runtime("the request needs a length"),
        E::HttpRequestBodySize(_) => runtime("the request's body is too large"),
        E::HttpRequestMethodInvalid => runtime("the method is not valid"),
        E::HttpRequestUriInvalid => runtime("the URL is not valid"),
        E::HttpRequestUriTooLong => runtime("the URL is too long"),
        E::HttpRequestHeaderSectionSize(_) | E::HttpRequestHeaderSize(_) => {
            runtime("the request's headers are too large")
        }
        E::HttpRequestTrailerSectionSize(_) | E::HttpRequestTrailerSize(_) => {
            runtime("the request's trailers are too large")
        }
        E::ConfigurationError => runtime("the runtime's configuration is in error"),
        E::InternalError(Some(why)) => Failure::Runtime(why),
        // `internal-error` without words; the codes above never come here.
        _ => runtime("an error it does not name"),
    }
}

/// A coding the runtime could not undo, named when it says which.
fn coding(kind: &str, name: Option<String>) -> String {
    match name {
        Some(n) => format!("an unknown {kind} coding {n:?}"),
        None => format!("an unknown {kind} coding"),
    }
}
