//! Rolling renewal: a request that changed nothing but the expiry moves the stored expiry
//! without rewriting the record (`SessionBackend::renew`).
//!
//! * `contract`: each scenario written once for any server-side storage: the expiry moves
//!   and the record stays as stored, a renewal never brings back a destroyed or ended
//!   session, never loses a concurrent write, and keeps an owned session listed.
//! * `storages`: every scenario on every storage, and on a custom backend that keeps the
//!   default `renew`.
//! * `on_the_store`: the same seen through the store's own client (Redis, PostgreSQL).
//! * `layer`: the same through `SessionLayer::rolling(true)`: the cookie re-sent, or
//!   cleared when the session is gone.

#[path = "../common/mod.rs"]
mod common;

mod contract;
mod layer;
mod on_the_store;
mod storages;
