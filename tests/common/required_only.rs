//! The memory backend through the three methods a backend must implement, so that every
//! provided method (`renew`, `store_moved`, `delete_all_owned`, ...) runs its default.

use std::time::Duration;

use session_layer::Error;
use session_layer::storage::{
    Expected, MemoryBackend, Record, SessionBackend, SessionId, Versioned,
};

/// [`MemoryBackend`] with only `load`, `store` and `delete` passed on.
#[derive(Clone, Default)]
pub struct RequiredOnly(pub MemoryBackend);

impl SessionBackend for RequiredOnly {
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
        self.0.load(id).await
    }

    async fn store(
        &self,
        id: &SessionId,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        self.0.store(id, record, ttl, expected).await
    }

    async fn delete(&self, id: &SessionId, expected: Expected) -> Result<bool, Error> {
        self.0.delete(id, expected).await
    }
}
