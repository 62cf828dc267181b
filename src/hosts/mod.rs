//! The runtimes the component runs in. Both speak wasi:http 0.2
//! ([`wasi_http`]); they differ only in where variables and the key-value
//! stores come from: Spin's own interfaces ([`spin`]), or the standard
//! `wasi:config` and `wasi:keyvalue` that `wasmtime serve` implements
//! ([`portable`]).

mod wasi_http;

#[cfg(feature = "spin")]
mod spin;

#[cfg(all(feature = "portable", not(feature = "spin")))]
mod portable;
