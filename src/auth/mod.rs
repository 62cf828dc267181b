//! Who may do what, and with whose credentials: RFC 7235 challenges, token
//! scopes, the proxy's token endpoint, its own users and tokens, and the
//! upstream credentials it holds.

pub mod access;
pub mod anonymous_tokens;
pub mod challenge;
pub mod client_address;
pub mod credentials;
pub mod jwt;
pub mod kept_tokens;
pub mod login;
pub mod scope;
pub mod throttle;
pub mod token;
pub mod token_request;
pub mod users;
pub mod www_authenticate;
