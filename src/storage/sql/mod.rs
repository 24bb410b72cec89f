//! SQL storages over sqlx pools: PostgreSQL, MySQL/MariaDB and SQLite.
//!
//! The three share everything but their SQL: a table `(id, data, version, expires_at, owner)`
//! where `id` is the [`id_digest`](super::id_digest) of the session id (never the id), `data`
//! the bytes of [`Record::encode`](super::Record::encode), `version` a random `BIGINT` that
//! every write changes, `expires_at` milliseconds since the Unix epoch (`NULL`: no expiry),
//! indexed for [`remove_expired`](super::ServerStorage::remove_expired), and `owner` the
//! record's [`owner`](super::Record::owner) (`NULL`: none), indexed for
//! [`SessionIndex`](super::SessionIndex).
//!
//! So one generic [`SqlBackend`] holds the logic, and each database gives only its
//! [`Dialect`]: the statements, and how sqlx reports the rows a statement wrote.

mod backend;
mod dialect;
mod driver;
#[cfg(feature = "mysql")]
mod mysql;
mod owners;
#[cfg(feature = "postgres")]
mod postgres;
mod schema;
#[cfg(feature = "sqlite")]
mod sqlite;
mod storage;
mod table_name;

pub use self::backend::SqlBackend;
pub use self::dialect::Dialect;
#[cfg(feature = "mysql")]
pub use self::mysql::{MySqlBackend, MySqlStorage};
#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresBackend, PostgresStorage};
#[cfg(feature = "sqlite")]
pub use self::sqlite::{SqliteBackend, SqliteStorage};
pub use self::storage::DEFAULT_TABLE;

#[cfg(test)]
mod tests {
    use super::dialect::{Dialect, Statements};

    /// docs/sql.md gives DBAs the exact DDL that `migrate` runs, for the default table.
    #[test]
    fn the_documented_ddl_is_what_migrate_runs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/sql.md");
        let docs = std::fs::read_to_string(path).expect("docs/sql.md");
        let mut ddl: Vec<String> = Vec::new();
        #[cfg(feature = "postgres")]
        ddl.extend(migration(sqlx::Postgres::statements(super::DEFAULT_TABLE)));
        #[cfg(feature = "mysql")]
        ddl.extend(migration(sqlx::MySql::statements(super::DEFAULT_TABLE)));
        #[cfg(feature = "sqlite")]
        ddl.extend(migration(sqlx::Sqlite::statements(super::DEFAULT_TABLE)));
        for sql in ddl {
            assert!(
                docs.lines().any(|line| line == format!("{sql};")),
                "docs/sql.md does not show: {sql};"
            );
        }
    }

    /// The DDL that `migrate` may run: the table, the columns an older table lacks, then
    /// the indexes.
    fn migration(statements: Statements) -> Vec<String> {
        let columns = statements.columns.into_iter().map(|column| column.add);
        let indexes = statements.indexes.into_iter().map(|index| index.create);
        std::iter::once(statements.create_table)
            .chain(columns)
            .chain(indexes)
            .collect()
    }
}
