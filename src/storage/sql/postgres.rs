//! [`PostgresStorage`]: sessions in a PostgreSQL table, and PostgreSQL's SQL for it.

use sqlx::postgres::{PgQueryResult, Postgres};

use super::backend::SqlBackend;
use super::dialect::{Column, DeleteOwned, Dialect, Index, OwnerLock, Statements};
use super::schema::index_name;
use crate::storage::ServerStorage;

/// The [`SessionBackend`](crate::storage::SessionBackend) behind [`PostgresStorage`]: a
/// sqlx pool and a table. Clones share the pool.
pub type PostgresBackend = SqlBackend<Postgres>;

/// Sessions in PostgreSQL, over your sqlx [`PgPool`](sqlx::PgPool) (feature `postgres`).
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
pub type PostgresStorage = ServerStorage<PostgresBackend>;

impl Dialect for Postgres {
    const SYSTEM_NAME: &'static str = "postgresql";

    fn statements(table: &str) -> Statements {
        let columns = format!(
            "INSERT INTO {table} (id, data, version, expires_at, owner) VALUES ($1, $2, $3, $4, $5)"
        );
        Statements {
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, data BYTEA NOT NULL, \
                 version BIGINT NOT NULL, expires_at BIGINT, owner TEXT)"
            ),
            columns: vec![Column {
                name: "owner",
                find: format!(
                    "SELECT 1 FROM pg_attribute WHERE attrelid = '{table}'::regclass \
                     AND attname = 'owner' AND NOT attisdropped"
                ),
                add: format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS owner TEXT"),
            }],
            indexes: vec![
                index(table, "expires_at", ""),
                // Partial: an unowned row adds no index entry.
                index(table, "owner", " WHERE owner IS NOT NULL"),
            ],
            load: format!(
                "SELECT version, length(data)::BIGINT, \
                 CASE WHEN length(data) <= $1 THEN data END, expires_at FROM {table} WHERE id = $2"
            ),
            insert: format!("{columns} ON CONFLICT (id) DO NOTHING"),
            update: format!(
                "UPDATE {table} SET data = $1, version = $2, expires_at = $3, owner = $4 \
                 WHERE id = $5 AND version = $6"
            ),
            renew: format!(
                "UPDATE {table} SET expires_at = $1 \
                 WHERE id = $2 AND expires_at > $3 AND expires_at <= $4"
            ),
            live: format!(
                "SELECT version FROM {table} WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)"
            ),
            upsert: format!(
                "{columns} ON CONFLICT (id) DO UPDATE SET data = excluded.data, \
                 version = excluded.version, expires_at = excluded.expires_at, \
                 owner = excluded.owner"
            ),
            delete_version: format!("DELETE FROM {table} WHERE id = $1 AND version = $2"),
            delete_any: format!("DELETE FROM {table} WHERE id = $1"),
            version: format!("SELECT version FROM {table} WHERE id = $1"),
            version_locked: format!("SELECT version FROM {table} WHERE id = $1 FOR UPDATE"),
            remove_expired: format!("DELETE FROM {table} WHERE expires_at <= $1"),
            records_of: format!(
                "SELECT id, CASE WHEN length(data) <= $1 THEN data END, expires_at \
                 FROM {table} WHERE owner = $2 AND (expires_at IS NULL OR expires_at > $3)"
            ),
            delete_owned: format!("DELETE FROM {table} WHERE id = $1 AND owner = $2"),
            delete_owned_except: DeleteOwned::Returning(format!(
                "DELETE FROM {table} WHERE owner = $1 AND id NOT IN ($2, $3) RETURNING expires_at"
            )),
            // A DELETE reads the rows of the snapshot it started with: a move committed
            // while it waited on the old row would leave the new row behind.
            owner_lock: Some(OwnerLock {
                shared: "SELECT pg_advisory_xact_lock_shared($1)".to_owned(),
                exclusive: "SELECT pg_advisory_xact_lock($1)".to_owned(),
            }),
        }
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// The index on `column` of `table` (`predicate` makes it partial), found by its first
/// column in the catalog: the table's name resolves there as in every statement, through
/// the search path.
fn index(table: &str, column: &'static str, predicate: &str) -> Index {
    let name = index_name(table, column);
    Index {
        column,
        find: format!(
            "SELECT 1 FROM pg_index i JOIN pg_attribute a \
             ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = '{table}'::regclass AND a.attname = '{column}' AND i.indisvalid"
        ),
        create: format!("CREATE INDEX IF NOT EXISTS {name} ON {table} ({column}){predicate}"),
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::super::dialect::Dialect;
    use sqlx::Postgres;

    /// Every statement as it is sent, so that a change to the SQL is a visible decision.
    #[test]
    fn statements_for_a_table() {
        let expected = [
            (
                "create_table",
                "CREATE TABLE IF NOT EXISTS app_sessions (id TEXT PRIMARY KEY, \
             data BYTEA NOT NULL, version BIGINT NOT NULL, expires_at BIGINT, owner TEXT)",
            ),
            ("column name", "owner"),
            (
                "column find",
                "SELECT 1 FROM pg_attribute WHERE attrelid = 'app_sessions'::regclass \
             AND attname = 'owner' AND NOT attisdropped",
            ),
            (
                "column add",
                "ALTER TABLE app_sessions ADD COLUMN IF NOT EXISTS owner TEXT",
            ),
            ("index column", "expires_at"),
            ("index name", "sl_app_sessions_651e9353_expires_at"),
            (
                "index find",
                "SELECT 1 FROM pg_index i JOIN pg_attribute a \
             ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = 'app_sessions'::regclass AND a.attname = 'expires_at' \
             AND i.indisvalid",
            ),
            (
                "index create",
                "CREATE INDEX IF NOT EXISTS sl_app_sessions_651e9353_expires_at \
             ON app_sessions (expires_at)",
            ),
            ("index column", "owner"),
            ("index name", "sl_app_sessions_651e9353_owner"),
            (
                "index find",
                "SELECT 1 FROM pg_index i JOIN pg_attribute a \
             ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = 'app_sessions'::regclass AND a.attname = 'owner' \
             AND i.indisvalid",
            ),
            (
                "index create",
                "CREATE INDEX IF NOT EXISTS sl_app_sessions_651e9353_owner \
             ON app_sessions (owner) WHERE owner IS NOT NULL",
            ),
            (
                "load",
                "SELECT version, length(data)::BIGINT, CASE WHEN length(data) <= $1 THEN data END, expires_at \
             FROM app_sessions WHERE id = $2",
            ),
            (
                "insert",
                "INSERT INTO app_sessions (id, data, version, expires_at, owner) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            ),
            (
                "update",
                "UPDATE app_sessions SET data = $1, version = $2, expires_at = $3, owner = $4 \
             WHERE id = $5 AND version = $6",
            ),
            (
                "renew",
                "UPDATE app_sessions SET expires_at = $1 \
             WHERE id = $2 AND expires_at > $3 AND expires_at <= $4",
            ),
            (
                "live",
                "SELECT version FROM app_sessions WHERE id = $1 \
             AND (expires_at IS NULL OR expires_at > $2)",
            ),
            (
                "upsert",
                "INSERT INTO app_sessions (id, data, version, expires_at, owner) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET data = excluded.data, \
             version = excluded.version, expires_at = excluded.expires_at, owner = excluded.owner",
            ),
            (
                "delete_version",
                "DELETE FROM app_sessions WHERE id = $1 AND version = $2",
            ),
            ("delete_any", "DELETE FROM app_sessions WHERE id = $1"),
            ("version", "SELECT version FROM app_sessions WHERE id = $1"),
            (
                "version_locked",
                "SELECT version FROM app_sessions WHERE id = $1 FOR UPDATE",
            ),
            (
                "remove_expired",
                "DELETE FROM app_sessions WHERE expires_at <= $1",
            ),
            (
                "records_of",
                "SELECT id, CASE WHEN length(data) <= $1 THEN data END, expires_at FROM app_sessions \
             WHERE owner = $2 AND (expires_at IS NULL OR expires_at > $3)",
            ),
            (
                "delete_owned",
                "DELETE FROM app_sessions WHERE id = $1 AND owner = $2",
            ),
            (
                "delete_owned_except",
                "DELETE FROM app_sessions WHERE owner = $1 AND id NOT IN ($2, $3) \
             RETURNING expires_at",
            ),
            (
                "owner_lock shared",
                "SELECT pg_advisory_xact_lock_shared($1)",
            ),
            ("owner_lock exclusive", "SELECT pg_advisory_xact_lock($1)"),
        ];
        let pinned = Postgres::statements("app_sessions").pinned();
        let pinned: Vec<(&str, &str)> = pinned.iter().map(|(n, s)| (*n, s.as_str())).collect();
        assert_eq!(pinned, expected);
    }
}
