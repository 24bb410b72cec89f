//! [`SqliteStorage`]: sessions in an SQLite table, and SQLite's SQL for it.

use sqlx::sqlite::{Sqlite, SqliteQueryResult};

use super::backend::SqlBackend;
use super::dialect::{Column, DeleteOwned, Dialect, Index, Statements};
use super::schema::index_name;
use crate::storage::ServerStorage;

/// The [`SessionBackend`](crate::storage::SessionBackend) behind [`SqliteStorage`]: a
/// sqlx pool and a table. Clones share the pool.
pub type SqliteBackend = SqlBackend<Sqlite>;

/// Sessions in SQLite, over your sqlx [`SqlitePool`](sqlx::SqlitePool) (feature `sqlite`).
/// Use WAL mode for a file. An in-memory database ends with its connection: give the pool
/// one that is never closed and not pinged before use (`max_connections(1)`,
/// `min_connections(1)`, `idle_timeout(None)`, `max_lifetime(None)`,
/// `test_before_acquire(false)`).
pub type SqliteStorage = ServerStorage<SqliteBackend>;

impl Dialect for Sqlite {
    const SYSTEM_NAME: &'static str = "sqlite";

    fn statements(table: &str) -> Statements {
        let columns = format!(
            "INTO {table} (id, data, version, expires_at, owner) VALUES (?1, ?2, ?3, ?4, ?5)"
        );
        Statements {
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY NOT NULL, \
                 data BLOB NOT NULL, version INTEGER NOT NULL, expires_at INTEGER, owner TEXT)"
            ),
            columns: vec![Column {
                name: "owner",
                find: format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = 'owner'"),
                // SQLite has no `ADD COLUMN IF NOT EXISTS`.
                add: format!("ALTER TABLE {table} ADD COLUMN owner TEXT"),
            }],
            indexes: vec![
                index(table, "expires_at", ""),
                // Partial: an unowned row adds no index entry.
                index(table, "owner", " WHERE owner IS NOT NULL"),
            ],
            load: format!(
                "SELECT version, length(data), \
                 CASE WHEN length(data) <= ?1 THEN data END, expires_at FROM {table} WHERE id = ?2"
            ),
            // Not INSERT OR IGNORE, which also skips NOT NULL and CHECK failures.
            insert: format!("INSERT {columns} ON CONFLICT (id) DO NOTHING"),
            update: format!(
                "UPDATE {table} SET data = ?1, version = ?2, expires_at = ?3, owner = ?4 \
                 WHERE id = ?5 AND version = ?6"
            ),
            renew: format!(
                "UPDATE {table} SET expires_at = ?1 \
                 WHERE id = ?2 AND expires_at > ?3 AND expires_at <= ?4"
            ),
            live: format!(
                "SELECT version FROM {table} WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?2)"
            ),
            upsert: format!(
                "INSERT {columns} ON CONFLICT (id) DO UPDATE SET data = excluded.data, \
                 version = excluded.version, expires_at = excluded.expires_at, \
                 owner = excluded.owner"
            ),
            delete_version: format!("DELETE FROM {table} WHERE id = ?1 AND version = ?2"),
            delete_any: format!("DELETE FROM {table} WHERE id = ?1"),
            version: format!("SELECT version FROM {table} WHERE id = ?1"),
            // The transaction's first statement took the database's write lock.
            version_locked: format!("SELECT version FROM {table} WHERE id = ?1"),
            remove_expired: format!("DELETE FROM {table} WHERE expires_at <= ?1"),
            records_of: format!(
                "SELECT id, CASE WHEN length(data) <= ?1 THEN data END, expires_at \
                 FROM {table} WHERE owner = ?2 AND (expires_at IS NULL OR expires_at > ?3)"
            ),
            delete_owned: format!("DELETE FROM {table} WHERE id = ?1 AND owner = ?2"),
            delete_owned_except: DeleteOwned::Returning(format!(
                "DELETE FROM {table} WHERE owner = ?1 AND id NOT IN (?2, ?3) RETURNING expires_at"
            )),
            // One writer at a time: a DELETE runs before or after a whole move.
            owner_lock: None,
        }
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// The index on `column` of `table` (`predicate` makes it partial), found through the
/// pragmas, which resolve the table's name as every statement does.
fn index(table: &str, column: &'static str, predicate: &str) -> Index {
    let name = index_name(table, column);
    Index {
        column,
        find: format!(
            "SELECT 1 FROM pragma_index_list('{table}') AS l, pragma_index_info(l.name) AS c \
             WHERE c.seqno = 0 AND c.name = '{column}'"
        ),
        create: format!("CREATE INDEX IF NOT EXISTS {name} ON {table} ({column}){predicate}"),
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::super::dialect::Dialect;
    use sqlx::Sqlite;

    /// Every statement as it is sent, so that a change to the SQL is a visible decision.
    #[test]
    fn statements_for_a_table() {
        let expected = [
            (
                "create_table",
                "CREATE TABLE IF NOT EXISTS app_sessions (id TEXT PRIMARY KEY NOT NULL, \
             data BLOB NOT NULL, version INTEGER NOT NULL, expires_at INTEGER, owner TEXT)",
            ),
            ("column name", "owner"),
            (
                "column find",
                "SELECT 1 FROM pragma_table_info('app_sessions') WHERE name = 'owner'",
            ),
            (
                "column add",
                "ALTER TABLE app_sessions ADD COLUMN owner TEXT",
            ),
            ("index column", "expires_at"),
            ("index name", "sl_app_sessions_651e9353_expires_at"),
            (
                "index find",
                "SELECT 1 FROM pragma_index_list('app_sessions') AS l, \
             pragma_index_info(l.name) AS c WHERE c.seqno = 0 AND c.name = 'expires_at'",
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
                "SELECT 1 FROM pragma_index_list('app_sessions') AS l, \
             pragma_index_info(l.name) AS c WHERE c.seqno = 0 AND c.name = 'owner'",
            ),
            (
                "index create",
                "CREATE INDEX IF NOT EXISTS sl_app_sessions_651e9353_owner \
             ON app_sessions (owner) WHERE owner IS NOT NULL",
            ),
            (
                "load",
                "SELECT version, length(data), CASE WHEN length(data) <= ?1 THEN data END, expires_at \
             FROM app_sessions WHERE id = ?2",
            ),
            (
                "insert",
                "INSERT INTO app_sessions (id, data, version, expires_at, owner) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
            ),
            (
                "update",
                "UPDATE app_sessions SET data = ?1, version = ?2, expires_at = ?3, owner = ?4 \
             WHERE id = ?5 AND version = ?6",
            ),
            (
                "renew",
                "UPDATE app_sessions SET expires_at = ?1 \
             WHERE id = ?2 AND expires_at > ?3 AND expires_at <= ?4",
            ),
            (
                "live",
                "SELECT version FROM app_sessions WHERE id = ?1 \
             AND (expires_at IS NULL OR expires_at > ?2)",
            ),
            (
                "upsert",
                "INSERT INTO app_sessions (id, data, version, expires_at, owner) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET data = excluded.data, \
             version = excluded.version, expires_at = excluded.expires_at, owner = excluded.owner",
            ),
            (
                "delete_version",
                "DELETE FROM app_sessions WHERE id = ?1 AND version = ?2",
            ),
            ("delete_any", "DELETE FROM app_sessions WHERE id = ?1"),
            ("version", "SELECT version FROM app_sessions WHERE id = ?1"),
            (
                "version_locked",
                "SELECT version FROM app_sessions WHERE id = ?1",
            ),
            (
                "remove_expired",
                "DELETE FROM app_sessions WHERE expires_at <= ?1",
            ),
            (
                "records_of",
                "SELECT id, CASE WHEN length(data) <= ?1 THEN data END, expires_at FROM app_sessions \
             WHERE owner = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
            ),
            (
                "delete_owned",
                "DELETE FROM app_sessions WHERE id = ?1 AND owner = ?2",
            ),
            (
                "delete_owned_except",
                "DELETE FROM app_sessions WHERE owner = ?1 AND id NOT IN (?2, ?3) \
             RETURNING expires_at",
            ),
        ];
        let pinned = Sqlite::statements("app_sessions").pinned();
        let pinned: Vec<(&str, &str)> = pinned.iter().map(|(n, s)| (*n, s.as_str())).collect();
        assert_eq!(pinned, expected);
    }
}
