//! Talking to an upstream: one call, with its redirects followed under the
//! route's policy and credentials kept to the origin they were meant for.

pub mod fetch;
