#![cfg(not(target_arch = "wasm32"))]
//! End to end: the built component under real Spin (`spin up`), against Debian's
//! `docker-registry` with and without token auth, pulled and pushed by
//! skopeo and by plain HTTP requests. What they start and talk to comes
//! from `support` (tests/support), a library shared with the benchmark.

mod abandoned;
mod allowed_hosts;
mod bad_input;
mod blob_files;
mod boundaries;
mod bucket_outages;
mod cache;
mod common;
mod filling;
mod hosted;
mod instances;
mod journeys;
mod objects;
mod operators;
mod outages;
mod portable;
mod prefetch;
mod private;
mod pull;
mod push;
mod routing;
mod safety;
mod stored_routes;
mod tokens;
mod trusted_fronts;
mod two_routes;
mod upstream_outages;
mod write_once;
