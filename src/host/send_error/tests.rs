//! Each failure in words, naming the host (and port) and never the URL's
//! path or query.

use super::{Failure, Phase, SendError, Tls};
use std::time::Duration;

fn words(url: &str, failure: Failure) -> String {
    SendError::failed(&url::Url::parse(url).unwrap(), failure).to_string()
}

const HUB: &str = "https://registry-1.docker.io/v2/library/alpine/manifests/3";

#[test]
fn a_name_that_does_not_resolve_is_named() {
    let reason = Some("address not available".to_string());
    assert_eq!(
        words(HUB, Failure::NotResolved(reason)),
        "could not resolve registry-1.docker.io (address not available)"
    );
    assert_eq!(
        words(HUB, Failure::NotResolved(None)),
        "could not resolve registry-1.docker.io"
    );
    assert_eq!(
        words(HUB, Failure::ResolverTimedOut),
        "resolving registry-1.docker.io timed out"
    );
}

#[test]
fn connections_name_host_and_port() {
    let to = |f| words("http://127.0.0.1:1/v2/", f);
    assert_eq!(to(Failure::Refused), "127.0.0.1:1 refused the connection");
    assert_eq!(to(Failure::Closed), "127.0.0.1:1 closed the connection");
    assert_eq!(to(Failure::NotFound), "127.0.0.1:1 was not found");
    assert_eq!(to(Failure::Unavailable), "127.0.0.1:1 is unavailable");
    assert_eq!(
        to(Failure::AddressUnroutable),
        "there is no route to 127.0.0.1:1"
    );
    assert_eq!(
        to(Failure::AddressProhibited),
        "127.0.0.1 resolves to an address the runtime may not connect to"
    );
    assert_eq!(
        to(Failure::TooManyConnections),
        "the runtime has too many connections open to connect to 127.0.0.1:1"
    );
    assert_eq!(
        to(Failure::LoopDetected),
        "the request to 127.0.0.1:1 loops back to itself"
    );
}

#[test]
fn a_timeout_names_what_timed_out_and_after_how_long() {
    let after = |phase, d| words(HUB, Failure::TimedOut(phase, d));
    let thirty = Duration::from_secs(30);
    assert_eq!(
        after(Phase::Connecting, thirty),
        "connecting to registry-1.docker.io:443 timed out after 30 s"
    );
    assert_eq!(
        after(Phase::FirstByte, Duration::from_secs(8)),
        "waiting for the first byte of registry-1.docker.io:443's answer timed out after 8 s"
    );
    assert_eq!(
        after(Phase::BetweenBytes, thirty),
        "waiting for the next byte of registry-1.docker.io:443's answer timed out after 30 s"
    );
    assert_eq!(
        after(Phase::Sending, Duration::from_millis(1500)),
        "sending the request to registry-1.docker.io:443 timed out after 1500 ms"
    );
}

#[test]
fn tls_failures_name_the_host() {
    let tls = |t| words(HUB, Failure::Tls(t));
    assert_eq!(
        tls(Tls::Handshake),
        "the TLS handshake with registry-1.docker.io:443 failed"
    );
    assert_eq!(
        tls(Tls::Certificate),
        "registry-1.docker.io:443's TLS certificate was not accepted (expired, self-signed or for another name)"
    );
    assert_eq!(
        tls(Tls::Alert(Some("unrecognised name".into()))),
        "registry-1.docker.io:443 ended the TLS handshake with an alert: unrecognised name"
    );
    assert_eq!(
        tls(Tls::Alert(None)),
        "registry-1.docker.io:443 ended the TLS handshake with an alert"
    );
}

#[test]
fn bad_answers_and_the_runtime_say_what() {
    assert_eq!(
        words(HUB, Failure::TooLarge("header section")),
        "registry-1.docker.io:443's answer has a header section larger than the runtime takes"
    );
    assert_eq!(
        words(HUB, Failure::BadAnswer("it ended early".into())),
        "registry-1.docker.io:443 sent an answer that is not valid HTTP: it ended early"
    );
    assert_eq!(
        words(HUB, Failure::Runtime("the method is not valid".into())),
        "the runtime could not send the request to registry-1.docker.io:443: the method is not valid"
    );
    assert_eq!(
        SendError::Denied.to_string(),
        "the runtime does not allow connections to this host (allowed_outbound_hosts)"
    );
}

/// A presigned URL's query is a credential: the words hold none of it.
#[test]
fn a_signed_url_is_named_by_host_and_port_only() {
    let signed = "https://bucket.s3.example:9000/key?X-Amz-Signature=secret&X-Amz-Credential=AKIA";
    let text = words(signed, Failure::Refused);
    assert_eq!(text, "bucket.s3.example:9000 refused the connection");
}
