//! The options and operations of a [`ServerStorage`] over a [`SqlBackend`]: the table, its
//! creation and its cleanup.

use sqlx::Pool;

use super::backend::SqlBackend;
use super::dialect::Dialect;
use crate::Error;
use crate::storage::ServerStorage;

/// The table every SQL storage uses unless its `.table(name)` option says otherwise.
pub const DEFAULT_TABLE: &str = "sessions";

impl<D: Dialect> ServerStorage<SqlBackend<D>> {
    /// A storage over `pool`, in the table `sessions` (see [`table`](Self::table)); run
    /// [`migrate`](Self::migrate) once to create it.
    pub fn new(pool: Pool<D>) -> Self {
        Self::with_backend(SqlBackend::new(pool, DEFAULT_TABLE))
    }

    /// Keeps sessions in `table` instead of `sessions`. The name goes into SQL as it is, so
    /// one that is not `[A-Za-z_][A-Za-z0-9_]*` of at most 63 characters is refused:
    /// [`migrate`](Self::migrate) and every later call then fail with an
    /// [`Error::Config`] that says why.
    pub fn table(mut self, table: &str) -> Self {
        self.backend_mut().set_table(table);
        self
    }

    /// Creates the table if it does not exist yet, adds the `owner` column to a table made
    /// by an earlier version, and creates the expiry and owner indexes unless the table has
    /// an index whose first column is `expires_at` (or `owner`), under any name (as tables
    /// made by earlier versions have). Fails rather than return with no such index.
    pub async fn migrate(&self) -> Result<(), Error> {
        self.backend().migrate().await
    }

    /// Deletes the expired rows and returns how many; run it now and then (the lifecycle
    /// ignores expired rows meanwhile).
    pub async fn remove_expired(&self) -> Result<u64, Error> {
        self.backend().remove_expired().await
    }
}
