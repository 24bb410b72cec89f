//! Sessions in Memcached, over a small text-protocol client of our own.
//!
//! The client is kept here rather than taken from a crate: it adds no dependency beyond
//! tokio's `net` and `io-util`, every reply is bounded (no hostile server can make it
//! allocate more than the record size limit per value), and timeouts, reconnects and the
//! ring are ours to get right; docs/storages.md ("Why our own client") compares the crates.
//!
//! From the top down: [`storage`] connects and holds the options, [`backend`] turns loads,
//! stores and deletes into commands, [`pool`] picks a server ([`ring`]) and a connection,
//! [`connection`] sends a [`request`] and reads its [`reply`] (or a [`fault`]).

mod backend;
mod connection;
mod expiration;
mod fault;
#[cfg(fuzzing)]
mod fuzzing;
mod keys;
mod pool;
mod reply;
mod request;
mod ring;
mod storage;

pub use self::backend::MemcacheBackend;
pub use self::storage::MemcacheStorage;
