//! Placeholder: the Memcache backend is being written.

use super::ServerStorage;

/// Sessions in Memcache (being written).
pub type MemcacheStorage = ServerStorage<MemcacheBackend>;

/// The backend behind [`MemcacheStorage`] (being written).
#[derive(Debug)]
pub struct MemcacheBackend;
