//! The runtimes the component runs in. Both speak wasi:http 0.2
//! ([`wasi_http`]); they differ only in where variables and the key-value
//! stores come from: Spin's own interfaces ([`spin`]), or the standard
//! `wasi:config` and `wasi:keyvalue` that `wasmtime serve` implements
//! ([`portable`]).

mod wasi_http;

#[cfg(feature = "spin")]
mod spin;

// One component exports one wasi:http handler: the two builds are one or
// the other (`--no-default-features --features portable` for wasmtime).
#[cfg(all(feature = "portable", feature = "spin"))]
compile_error!("the `spin` and `portable` features build two different components: choose one");

#[cfg(all(feature = "portable", not(feature = "spin")))]
mod portable;
