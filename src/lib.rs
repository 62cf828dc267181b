//! registry-proxy: an OCI / Docker registry proxy as a Spin component.
//!
//! A request goes one way through the layers: [`exchange`] takes it from a
//! host adapter, [`dispatch`] finds its endpoint ([`oci`]), its route
//! ([`routing`]) and who may do what with whose credentials ([`auth`]),
//! then the service that answers: the [`cache`], the [`relay`] of one API
//! request over an [`upstream`] call, or a page of [`web`]. [`telemetry`] counts what happened. All of it is
//! written against [`host::Host`] and tested natively; only [`hosts`] (Spin,
//! and plain `wasmtime serve`) is compiled for the component alone.

pub mod auth;
pub mod cache;
pub mod dispatch;
pub mod exchange;
pub mod host;
pub mod oci;
pub mod relay;
pub mod routing;
pub mod telemetry;
pub mod upstream;
pub mod variables;
pub mod web;

#[cfg(target_arch = "wasm32")]
mod hosts;

/// A random value from the standard library's per-process random keys.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Milliseconds since the Unix epoch (in native tests, plus the time the
/// in-memory host's waits have let pass: its clock).
pub(crate) fn now_millis() -> u64 {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    #[cfg(test)]
    let real = real + host::memory::clock_skew_millis();
    real
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    now_millis() / 1000
}
