//! [`MySqlStorage`]: sessions in a MySQL or MariaDB table, and MySQL's SQL for it.

use sqlx::mysql::{MySql, MySqlQueryResult};

use super::backend::SqlBackend;
use super::dialect::{Column, DeleteOwned, Dialect, Index, Statements};
use super::owners::MAX_OWNER_LEN;
use super::schema::index_name;
use crate::storage::ServerStorage;

/// The [`SessionBackend`](crate::storage::SessionBackend) behind [`MySqlStorage`]: a
/// sqlx pool and a table. Clones share the pool.
pub type MySqlBackend = SqlBackend<MySql>;

/// Sessions in MySQL or MariaDB, over your sqlx [`MySqlPool`](sqlx::MySqlPool) (feature
/// `mysql`).
pub type MySqlStorage = ServerStorage<MySqlBackend>;

impl Dialect for MySql {
    const SYSTEM_NAME: &'static str = "mysql";

    fn statements(table: &str) -> Statements {
        let columns =
            format!("INTO {table} (id, data, version, expires_at, owner) VALUES (?, ?, ?, ?, ?)");
        // Bytes, compared byte for byte: a text collation would take `Ann` or `ann ` for
        // `ann`; any InnoDB row format indexes MAX_OWNER_LEN bytes whole.
        Statements {
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {table} (id VARCHAR(64) NOT NULL PRIMARY KEY, \
                 data LONGBLOB NOT NULL, version BIGINT NOT NULL, expires_at BIGINT NULL, \
                 owner VARBINARY({MAX_OWNER_LEN}) NULL)"
            ),
            columns: vec![Column {
                name: "owner",
                find: format!("SHOW COLUMNS FROM {table} WHERE Field = 'owner'"),
                // MySQL has no `ADD COLUMN IF NOT EXISTS` (MariaDB has).
                add: format!(
                    "ALTER TABLE {table} ADD COLUMN owner VARBINARY({MAX_OWNER_LEN}) NULL"
                ),
            }],
            indexes: vec![index(table, "expires_at"), index(table, "owner")],
            load: format!(
                "SELECT version, CAST(LENGTH(data) AS SIGNED), \
                 CASE WHEN LENGTH(data) <= ? THEN data END, expires_at FROM {table} WHERE id = ?"
            ),
            // Not INSERT IGNORE, which also turns errors such as a truncation into warnings:
            // a duplicate id is the unique violation the backend catches.
            insert: format!("INSERT {columns}"),
            update: format!(
                "UPDATE {table} SET data = ?, version = ?, expires_at = ?, owner = ? \
                 WHERE id = ? AND version = ?"
            ),
            renew: format!(
                "UPDATE {table} SET expires_at = ? \
                 WHERE id = ? AND expires_at > ? AND expires_at <= ?"
            ),
            live: format!(
                "SELECT version FROM {table} WHERE id = ? AND (expires_at IS NULL OR expires_at > ?)"
            ),
            upsert: format!(
                "INSERT {columns} ON DUPLICATE KEY UPDATE data = VALUES(data), \
                 version = VALUES(version), expires_at = VALUES(expires_at), \
                 owner = VALUES(owner)"
            ),
            delete_version: format!("DELETE FROM {table} WHERE id = ? AND version = ?"),
            delete_any: format!("DELETE FROM {table} WHERE id = ?"),
            version: format!("SELECT version FROM {table} WHERE id = ?"),
            version_locked: format!("SELECT version FROM {table} WHERE id = ? FOR UPDATE"),
            remove_expired: format!("DELETE FROM {table} WHERE expires_at <= ?"),
            records_of: format!(
                "SELECT id, CASE WHEN LENGTH(data) <= ? THEN data END, expires_at \
                 FROM {table} WHERE owner = ? AND (expires_at IS NULL OR expires_at > ?)"
            ),
            delete_owned: format!("DELETE FROM {table} WHERE id = ? AND owner = ?"),
            // MariaDB has `DELETE ... RETURNING`, MySQL has not.
            delete_owned_except: DeleteOwned::ExpiredFirst {
                expired: format!(
                    "DELETE FROM {table} WHERE owner = ? AND id NOT IN (?, ?) AND expires_at <= ?"
                ),
                rest: format!("DELETE FROM {table} WHERE owner = ? AND id NOT IN (?, ?)"),
            },
            // InnoDB's DELETE reads the latest rows and waits for an uncommitted new one.
            owner_lock: None,
        }
    }

    fn rows_affected(result: &MySqlQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// The index on `column` of `table`, found with `SHOW INDEX`, which resolves the table's
/// name as every statement does (`information_schema` compares names without case).
fn index(table: &str, column: &'static str) -> Index {
    let name = index_name(table, column);
    Index {
        column,
        find: format!(
            "SHOW INDEX FROM {table} WHERE Column_name = '{column}' AND Seq_in_index = 1"
        ),
        // MySQL has no `CREATE INDEX IF NOT EXISTS` (MariaDB has).
        create: format!("CREATE INDEX {name} ON {table} ({column})"),
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::super::dialect::Dialect;
    use sqlx::MySql;

    /// Every statement as it is sent, so that a change to the SQL is a visible decision.
    #[test]
    fn statements_for_a_table() {
        let expected = [
            (
                "create_table",
                "CREATE TABLE IF NOT EXISTS app_sessions (id VARCHAR(64) NOT NULL PRIMARY KEY, \
             data LONGBLOB NOT NULL, version BIGINT NOT NULL, expires_at BIGINT NULL, \
             owner VARBINARY(255) NULL)",
            ),
            ("column name", "owner"),
            (
                "column find",
                "SHOW COLUMNS FROM app_sessions WHERE Field = 'owner'",
            ),
            (
                "column add",
                "ALTER TABLE app_sessions ADD COLUMN owner VARBINARY(255) NULL",
            ),
            ("index column", "expires_at"),
            ("index name", "sl_app_sessions_651e9353_expires_at"),
            (
                "index find",
                "SHOW INDEX FROM app_sessions WHERE Column_name = 'expires_at' AND Seq_in_index = 1",
            ),
            (
                "index create",
                "CREATE INDEX sl_app_sessions_651e9353_expires_at ON app_sessions (expires_at)",
            ),
            ("index column", "owner"),
            ("index name", "sl_app_sessions_651e9353_owner"),
            (
                "index find",
                "SHOW INDEX FROM app_sessions WHERE Column_name = 'owner' AND Seq_in_index = 1",
            ),
            (
                "index create",
                "CREATE INDEX sl_app_sessions_651e9353_owner ON app_sessions (owner)",
            ),
            (
                "load",
                "SELECT version, CAST(LENGTH(data) AS SIGNED), \
             CASE WHEN LENGTH(data) <= ? THEN data END, expires_at FROM app_sessions WHERE id = ?",
            ),
            (
                "insert",
                "INSERT INTO app_sessions (id, data, version, expires_at, owner) \
             VALUES (?, ?, ?, ?, ?)",
            ),
            (
                "update",
                "UPDATE app_sessions SET data = ?, version = ?, expires_at = ?, owner = ? \
             WHERE id = ? AND version = ?",
            ),
            (
                "renew",
                "UPDATE app_sessions SET expires_at = ? \
             WHERE id = ? AND expires_at > ? AND expires_at <= ?",
            ),
            (
                "live",
                "SELECT version FROM app_sessions WHERE id = ? \
             AND (expires_at IS NULL OR expires_at > ?)",
            ),
            (
                "upsert",
                "INSERT INTO app_sessions (id, data, version, expires_at, owner) \
             VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE data = VALUES(data), \
             version = VALUES(version), expires_at = VALUES(expires_at), owner = VALUES(owner)",
            ),
            (
                "delete_version",
                "DELETE FROM app_sessions WHERE id = ? AND version = ?",
            ),
            ("delete_any", "DELETE FROM app_sessions WHERE id = ?"),
            ("version", "SELECT version FROM app_sessions WHERE id = ?"),
            (
                "version_locked",
                "SELECT version FROM app_sessions WHERE id = ? FOR UPDATE",
            ),
            (
                "remove_expired",
                "DELETE FROM app_sessions WHERE expires_at <= ?",
            ),
            (
                "records_of",
                "SELECT id, CASE WHEN LENGTH(data) <= ? THEN data END, expires_at FROM app_sessions \
             WHERE owner = ? AND (expires_at IS NULL OR expires_at > ?)",
            ),
            (
                "delete_owned",
                "DELETE FROM app_sessions WHERE id = ? AND owner = ?",
            ),
            (
                "delete_owned_except expired",
                "DELETE FROM app_sessions WHERE owner = ? AND id NOT IN (?, ?) \
             AND expires_at <= ?",
            ),
            (
                "delete_owned_except rest",
                "DELETE FROM app_sessions WHERE owner = ? AND id NOT IN (?, ?)",
            ),
        ];
        let pinned = MySql::statements("app_sessions").pinned();
        let pinned: Vec<(&str, &str)> = pinned.iter().map(|(n, s)| (*n, s.as_str())).collect();
        assert_eq!(pinned, expected);
    }
}
