#![cfg(not(target_arch = "wasm32"))]
//! End to end: the built component in the Spin stand-in, against Debian's
//! `docker-registry` with and without token auth, pulled and pushed by
//! skopeo and by plain HTTP requests.

#[path = "../support/mod.rs"]
mod support;

mod cache;
mod common;
mod pull;
mod push;
mod routing;
mod safety;
