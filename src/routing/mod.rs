//! Which upstream serves a request: routes and the built-in registries,
//! how names travel between client and upstream, allow/deny patterns, and
//! the hosts a route may reach.

pub mod blob_delivery;
pub mod cache_settings;
pub mod host_header;
pub mod naming;
pub mod origin;
pub mod pattern;
pub mod policy;
pub mod registries;
pub mod route;
pub mod site;
pub mod target;
