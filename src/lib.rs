//! registry-proxy: an OCI / Docker registry proxy as a Spin component.
//!
//! Everything but the host adapters (`hosts`, for Spin and for plain
//! `wasmtime serve`) is plain Rust, tested natively: references and
//! challenges, routes, scope and path rewriting, redirect and host policy,
//! and the request handler itself, written against [`proxy::host::Host`].

pub mod admin;
pub mod api;
pub mod browser;
pub mod cache;
pub mod challenge;
pub mod digest;
pub mod error;
pub mod eviction;
pub mod home;
pub mod host_header;
pub mod jwt;
pub mod metrics;
pub mod naming;
pub mod origin;
pub mod pattern;
pub mod policy;
pub mod proxy;
pub mod range;
pub mod reference;
pub mod registries;
pub mod route;
pub mod scope;
pub mod site;
pub mod status_page;
pub mod users;
pub mod variables;
pub mod www_authenticate;

#[cfg(target_arch = "wasm32")]
mod hosts;
