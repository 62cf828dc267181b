//! The pull-through cache in the key-value store: its layout and bound,
//! and the stores that stand in for the upstream's manifests and blobs.

pub mod blob_copy;
pub mod blob_follow;
pub mod blob_health;
pub mod blob_redirect;
pub mod blob_storage;
pub mod blob_store;
pub mod blob_tee;
pub mod bound;
pub mod detached;
pub mod key_budget;
pub mod layout;
pub mod lease;
pub mod manifest_store;
pub mod pins;
pub mod prefetch;
pub mod repositories;
pub mod tag_entries;
pub mod upkeep;

use crate::host::Host;
use crate::relay::Call;

/// The cache partition a call reads and fills: what a route's own upstream
/// account fetched never reaches a client of another route or credential set.
fn scope<H: Host>(call: &Call<'_, H>) -> layout::Scope {
    layout::Scope::of(&call.target.route.upstream, call.account())
}
