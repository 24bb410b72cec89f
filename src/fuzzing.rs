//! Hooks for the fuzz targets in `fuzz/`: compiled only with `--cfg fuzzing` (as
//! `cargo fuzz` builds), hidden from the docs, never part of the API.

/// What one Memcached command got from the server in [`memcache_converse`].
#[cfg(feature = "memcache")]
#[derive(Debug)]
pub enum MemcacheOutcome {
    /// `gets`: the value and its CAS unique, if any.
    Value(Option<(Vec<u8>, u64)>),
    /// `add`, `set` or `cas`: whether it was stored.
    Stored(bool),
    /// `delete` or `md`: whether an item was deleted.
    Deleted(bool),
    /// `version`.
    Version(String),
    /// The error the connection failed with, as it would be logged.
    Fault(String),
}

/// The largest value the Memcached client accepts in a reply.
#[cfg(feature = "memcache")]
pub const MEMCACHE_MAX_VALUE: usize = crate::storage::MemcacheBackend::FUZZ_MAX_VALUE;

/// The key every command of [`memcache_converse`] names.
#[cfg(feature = "memcache")]
pub fn memcache_key() -> String {
    crate::storage::MemcacheBackend::fuzz_key()
}

/// Runs the Memcached client's real reply parser: one command per byte of `commands`
/// (`gets`, `add`, `set`, `cas`, `delete`, `md`, `version` by the byte modulo 7) over one
/// connection whose server sends exactly `server` and then closes. Stops after the first
/// fault, as the connection pool drops a connection then.
#[cfg(feature = "memcache")]
pub async fn memcache_converse(commands: &[u8], server: &[u8]) -> Vec<MemcacheOutcome> {
    crate::storage::MemcacheBackend::fuzz_converse(commands, server).await
}
