//! Sessions of one owner.
//!
//! * `model`: the owner as part of a session: stored, loaded, merged with what concurrent
//!   requests change, kept across a new id; the session handle.
//! * `contract`: what [`SessionIndex`](session_layer::SessionIndex) promises (listing,
//!   ending one, all, all but this one, ending as final as a destroy, no leak), each
//!   scenario written once.
//! * `storages`: every scenario on every storage that implements it.
//! * `default_rounds`: the default `OwnerIndexBackend::delete_all_owned`, for backends that
//!   do not override it.

#[path = "../common/mod.rs"]
mod common;

mod contract;
mod default_rounds;
mod model;
mod storages;

use common::sessions::saved;
use session_layer::SessionStorage;

/// A stored session owned by `owner`, holding `seed = 0`; returns its cookie value.
async fn owned_session<St: SessionStorage>(storage: &St, owner: &str) -> String {
    let session = storage.read(None).await.unwrap();
    session.set("seed", 0).unwrap();
    session.set_owner(owner).unwrap();
    saved(storage, &session).await
}
