//! [`PostgresStorage`]: sessions in a PostgreSQL table.

use sqlx::postgres::{PgPool, Postgres};

use super::Statements;

/// PostgreSQL's SQL for `table` (already checked to be a plain identifier).
pub(super) fn statements(table: &str) -> Statements {
    let columns =
        format!("INSERT INTO {table} (id, data, version, expires_at) VALUES ($1, $2, $3, $4)");
    Statements {
        migrate: vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, data BYTEA NOT NULL, \
                 version BIGINT NOT NULL, expires_at BIGINT)"
            ),
            // Index names are per schema in PostgreSQL, hence the table in it.
            format!("CREATE INDEX IF NOT EXISTS {table}_expires_at ON {table} (expires_at)"),
        ],
        load: format!(
            "SELECT version, length(data)::BIGINT, \
             CASE WHEN length(data) <= $1 THEN data END FROM {table} WHERE id = $2"
        ),
        insert: format!("{columns} ON CONFLICT (id) DO NOTHING"),
        update: format!(
            "UPDATE {table} SET data = $1, version = $2, expires_at = $3 \
             WHERE id = $4 AND version = $5"
        ),
        upsert: format!(
            "{columns} ON CONFLICT (id) DO UPDATE SET data = excluded.data, \
             version = excluded.version, expires_at = excluded.expires_at"
        ),
        delete_version: format!("DELETE FROM {table} WHERE id = $1 AND version = $2"),
        delete_any: format!("DELETE FROM {table} WHERE id = $1"),
        version: format!("SELECT version FROM {table} WHERE id = $1"),
        version_locked: format!("SELECT version FROM {table} WHERE id = $1 FOR UPDATE"),
        remove_expired: format!("DELETE FROM {table} WHERE expires_at <= $1"),
    }
}

super::sql_backend! {
    /// The [`SessionBackend`](crate::storage::SessionBackend) behind [`PostgresStorage`]: a
    /// sqlx pool and a table. Clones share the pool.
    backend: PostgresBackend,
    /// Sessions in PostgreSQL, over your sqlx [`PgPool`] (feature `postgres`).
    ///
    /// ```no_run
    /// use session_layer::PostgresStorage;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1/app").await?;
    /// let storage = PostgresStorage::new(pool).table("sessions");
    /// storage.migrate().await?; // CREATE TABLE IF NOT EXISTS, once at startup
    /// # Ok(())
    /// # }
    /// ```
    storage: PostgresStorage,
    db: Postgres,
    pool: PgPool,
    statements: statements,
}
