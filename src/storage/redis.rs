//! Placeholder: the Redis backend is being written.

use super::ServerStorage;

/// Sessions in Redis (being written).
pub type RedisStorage = ServerStorage<RedisBackend>;

/// The backend behind [`RedisStorage`] (being written).
#[derive(Debug)]
pub struct RedisBackend;
