//! What people and operators' tools see beside the registry API: the usage
//! page and browser redirects, the admin API, the status page.

pub mod admin_api;
pub mod browser;
pub mod home;
pub mod operations;
pub mod pages;
pub mod prefetch;
pub mod status;
pub mod status_page;
