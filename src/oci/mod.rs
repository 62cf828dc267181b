//! The OCI distribution spec's grammar and wire format: repository names,
//! tags and digests, the API's endpoints, its error bodies, byte ranges;
//! and of the image spec, what a prefetch reads: descriptors, platforms.

pub mod descriptor;
pub mod digest;
pub mod endpoint;
pub mod error;
pub mod media_type;
pub mod platform;
pub mod range;
pub mod reference;
