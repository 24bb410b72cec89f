//! SQL storages over sqlx pools: PostgreSQL, MySQL/MariaDB and SQLite.
//!
//! The three share everything but their SQL: a table `(id, data, version, expires_at)` where
//! `id` is the [`id_digest`](super::id_digest) of the session id (never the id), `data` the
//! bytes of [`Record::encode`](super::Record::encode), `version` a random `BIGINT` that every
//! write changes, and `expires_at` milliseconds since the Unix epoch (`NULL`: no expiry),
//! indexed for [`remove_expired`](ServerStorage::remove_expired).

use crate::Error;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "mysql")]
pub use self::mysql::{MySqlBackend, MySqlStorage};
#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresBackend, PostgresStorage};
#[cfg(feature = "sqlite")]
pub use self::sqlite::{SqliteBackend, SqliteStorage};

/// The table every SQL storage uses unless its `.table(name)` option says otherwise.
pub const DEFAULT_TABLE: &str = "sessions";

/// Refuses a table name that is not a plain identifier of at most 63 characters: it is
/// put into SQL as is, so only `[A-Za-z_][A-Za-z0-9_]*` is safe in all three databases.
pub(crate) fn check_table(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && name.len() <= 63 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a table name (letters, digits and _, at most 63, not starting with a digit)"
        ))
    }
}

/// A sqlx error as the crate's: a pool that had no connection in time is a timeout.
/// sqlx's messages carry no bound values, so no session id reaches the log through them.
pub(crate) fn map_error(error: sqlx::Error) -> Error {
    match error {
        sqlx::Error::PoolTimedOut => Error::Timeout,
        other => Error::backend(other),
    }
}

/// A new version: random, so that a row deleted and created again under the same id never
/// repeats a version a request loaded from the old one; positive, to read well in a dump.
pub(crate) fn new_version() -> i64 {
    rand::random::<i64>() & i64::MAX
}

/// Now, in the milliseconds `expires_at` holds.
pub(crate) fn now_ms() -> i64 {
    i64::try_from(super::unix_now_ms()).unwrap_or(i64::MAX)
}

/// A record's expiry as the column stores it.
pub(crate) fn expires_at(record: &super::Record) -> Option<i64> {
    record
        .expires_at_ms
        .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX))
}

/// The SQL of one database, with the table name filled in (checked by [`check_table`],
/// hence the `AssertSqlSafe` around each statement). Every statement binds its
/// parameters in the order the comment gives, whatever the placeholder syntax.
pub(crate) struct Statements {
    /// `CREATE TABLE IF NOT EXISTS` and the expiry index.
    pub migrate: Vec<String>,
    /// (limit, id) -> (version, length, data if length <= limit).
    pub load: String,
    /// (id, data, version, expires_at), writing nothing when the id exists: either no row
    /// affected or a unique violation, and nothing else tolerated.
    pub insert: String,
    /// (data, version, expires_at, id, old version).
    pub update: String,
    /// (id, data, version, expires_at), overwriting.
    pub upsert: String,
    /// (id, version).
    pub delete_version: String,
    /// (id).
    pub delete_any: String,
    /// (id) -> (version).
    pub version: String,
    /// (id) -> (version), the row locked against writes to the end of the transaction.
    pub version_locked: String,
    /// (now ms).
    pub remove_expired: String,
}

/// Writes a database's backend type and its [`SessionBackend`](super::SessionBackend)
/// implementation from its pool type and its [`Statements`]: the logic is the same for all
/// three, only types and SQL differ.
macro_rules! sql_backend {
    (
        $(#[$backend_doc:meta])* backend: $backend:ident,
        $(#[$storage_doc:meta])* storage: $storage:ident,
        db: $db:ty,
        pool: $pool:ty,
        statements: $statements:path,
    ) => {
        $(#[$backend_doc])*
        #[derive(Clone)]
        pub struct $backend {
            pool: $pool,
            table: String,
            /// The SQL for `table`, or why `table` was refused, which every call then says.
            sql: std::sync::Arc<Result<$crate::storage::sql::Statements, String>>,
            limit: i64,
        }

        impl std::fmt::Debug for $backend {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($backend))
                    .field("table", &self.table)
                    .field("limit", &self.limit)
                    .finish_non_exhaustive()
            }
        }

        $(#[$storage_doc])*
        pub type $storage = $crate::storage::ServerStorage<$backend>;

        impl $crate::storage::ServerStorage<$backend> {
            /// A storage over `pool`, in the table `sessions` (see [`table`](Self::table));
            /// run [`migrate`](Self::migrate) once to create it.
            pub fn new(pool: $pool) -> Self {
                let table = $crate::storage::sql::DEFAULT_TABLE.to_owned();
                Self::with_backend($backend {
                    pool,
                    sql: std::sync::Arc::new(Ok($statements(&table))),
                    table,
                    limit: i64::MAX,
                })
            }

            /// Keeps sessions in `table` instead of `sessions`. The name goes into SQL as it
            /// is, so one that is not `[A-Za-z_][A-Za-z0-9_]*` of at most 63 characters is
            /// refused: [`migrate`](Self::migrate) and every later call then fail with an
            /// [`Error::Config`](crate::Error::Config) that says why.
            pub fn table(mut self, table: &str) -> Self {
                let backend = self.backend_mut();
                backend.table = table.to_owned();
                let checked = $crate::storage::sql::check_table(table).map(|()| $statements(table));
                backend.sql = std::sync::Arc::new(checked);
                self
            }

            /// Creates the table and its expiry index if they do not exist yet.
            pub async fn migrate(&self) -> Result<(), $crate::Error> {
                for sql in &self.backend().sql()?.migrate {
                    sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                        .execute(&self.backend().pool)
                        .await
                        .map_err($crate::storage::sql::map_error)?;
                }
                Ok(())
            }

            /// Deletes the expired rows and returns how many; run it now and then (the
            /// lifecycle ignores expired rows meanwhile).
            pub async fn remove_expired(&self) -> Result<u64, $crate::Error> {
                let backend = self.backend();
                let done = sqlx::query(sqlx::AssertSqlSafe(backend.sql()?.remove_expired.as_str()))
                    .bind($crate::storage::sql::now_ms())
                    .execute(&backend.pool)
                    .await
                    .map_err($crate::storage::sql::map_error)?;
                Ok(done.rows_affected())
            }
        }

        impl $backend {
            /// The pool the storage uses.
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            /// The table the sessions are in.
            pub fn table(&self) -> &str {
                &self.table
            }

            /// The statements for the table, unless its name was refused.
            fn sql(&self) -> Result<&$crate::storage::sql::Statements, $crate::Error> {
                self.sql
                    .as_ref()
                    .as_ref()
                    .map_err(|why| $crate::Error::Config(why.clone()))
            }

            /// What errors call a row: the table, never the id.
            fn name(&self) -> String {
                format!("a row of {}", self.table)
            }

            async fn insert<'c, E>(
                &self,
                executor: E,
                key: &str,
                data: &[u8],
                expires_at: Option<i64>,
            ) -> Result<bool, $crate::Error>
            where
                E: sqlx::Executor<'c, Database = $db>,
            {
                let inserted = sqlx::query(sqlx::AssertSqlSafe(self.sql()?.insert.as_str()))
                    .bind(key)
                    .bind(data)
                    .bind($crate::storage::sql::new_version())
                    .bind(expires_at)
                    .execute(executor)
                    .await;
                match inserted {
                    Ok(done) => Ok(done.rows_affected() == 1),
                    // The id is taken; MySQL has no insert that skips only that, so it says
                    // so with an error.
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
                    Err(e) => Err($crate::storage::sql::map_error(e)),
                }
            }
        }

        impl $crate::storage::SessionBackend for $backend {
            async fn load(
                &self,
                id: &str,
            ) -> Result<Option<$crate::storage::Versioned>, $crate::Error> {
                use sqlx::Row as _;
                // One query: the length always, the data only when it fits the limit, so an
                // oversize row is refused without being transferred.
                let row = sqlx::query(sqlx::AssertSqlSafe(self.sql()?.load.as_str()))
                    .bind(self.limit)
                    .bind($crate::storage::id_digest(id))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::storage::sql::map_error)?;
                let Some(row) = row else { return Ok(None) };
                let version: i64 = row.try_get(0).map_err($crate::storage::sql::map_error)?;
                let length: i64 = row.try_get(1).map_err($crate::storage::sql::map_error)?;
                let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
                $crate::storage::Record::check_stored_size(
                    &self.name(),
                    u64::try_from(length).unwrap_or(0),
                    limit,
                )?;
                let data: Option<Vec<u8>> =
                    row.try_get(2).map_err($crate::storage::sql::map_error)?;
                let record =
                    $crate::storage::Record::decode(&self.name(), data.as_deref().unwrap_or(b""))?;
                // BIGINT is signed: the cast keeps the bits.
                Ok(Some($crate::storage::Versioned { record, version: version as u64 }))
            }

            async fn store(
                &self,
                id: &str,
                record: &$crate::storage::Record,
                _ttl: Option<std::time::Duration>, // the same instant is in the record
                expected: $crate::storage::Expected,
            ) -> Result<bool, $crate::Error> {
                use $crate::storage::Expected;
                use $crate::storage::sql::{expires_at, map_error, new_version};
                let (key, data) = ($crate::storage::id_digest(id), record.encode());
                let expires_at = expires_at(record);
                match expected {
                    Expected::Absent => self.insert(&self.pool, &key, &data, expires_at).await,
                    Expected::Version(old) => {
                        let done = sqlx::query(sqlx::AssertSqlSafe(self.sql()?.update.as_str()))
                            .bind(&data)
                            .bind(new_version())
                            .bind(expires_at)
                            .bind(&key)
                            .bind(old as i64)
                            .execute(&self.pool)
                            .await
                            .map_err(map_error)?;
                        // The new version always differs, so a matched row is a changed row.
                        Ok(done.rows_affected() == 1)
                    }
                    Expected::Any => {
                        // MySQL counts an upsert that updated as 2 rows: any success wrote.
                        sqlx::query(sqlx::AssertSqlSafe(self.sql()?.upsert.as_str()))
                            .bind(&key)
                            .bind(&data)
                            .bind(new_version())
                            .bind(expires_at)
                            .execute(&self.pool)
                            .await
                            .map_err(map_error)?;
                        Ok(true)
                    }
                }
            }

            async fn delete(
                &self,
                id: &str,
                expected: $crate::storage::Expected,
            ) -> Result<bool, $crate::Error> {
                use $crate::storage::Expected;
                use $crate::storage::sql::map_error;
                let key = $crate::storage::id_digest(id);
                match expected {
                    Expected::Version(version) => {
                        let done = sqlx::query(sqlx::AssertSqlSafe(self.sql()?.delete_version.as_str()))
                            .bind(&key)
                            .bind(version as i64)
                            .execute(&self.pool)
                            .await
                            .map_err(map_error)?;
                        Ok(done.rows_affected() == 1)
                    }
                    Expected::Any => {
                        sqlx::query(sqlx::AssertSqlSafe(self.sql()?.delete_any.as_str()))
                            .bind(&key)
                            .execute(&self.pool)
                            .await
                            .map_err(map_error)?;
                        Ok(true)
                    }
                    Expected::Absent => {
                        let row = sqlx::query(sqlx::AssertSqlSafe(self.sql()?.version.as_str()))
                            .bind(&key)
                            .fetch_optional(&self.pool)
                            .await
                            .map_err(map_error)?;
                        Ok(row.is_none())
                    }
                }
            }

            async fn store_moved(
                &self,
                from: &str,
                expected: u64,
                delete_from: bool,
                to: &str,
                record: &$crate::storage::Record,
                _ttl: Option<std::time::Duration>,
            ) -> Result<$crate::storage::Moved, $crate::Error> {
                use $crate::storage::Moved;
                use $crate::storage::sql::{expires_at, map_error};
                // One transaction: the new row appears only together with the old one's
                // deletion (or check), never alone.
                let mut tx = self.pool.begin().await.map_err(map_error)?;
                let (to_key, from_key) =
                    ($crate::storage::id_digest(to), $crate::storage::id_digest(from));
                let data = record.encode();
                if !self.insert(&mut *tx, &to_key, &data, expires_at(record)).await? {
                    tx.rollback().await.map_err(map_error)?;
                    return Ok(Moved::IdTaken);
                }
                let unchanged = if delete_from {
                    let done = sqlx::query(sqlx::AssertSqlSafe(self.sql()?.delete_version.as_str()))
                        .bind(&from_key)
                        .bind(expected as i64)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_error)?;
                    done.rows_affected() == 1
                } else {
                    use sqlx::Row as _;
                    // Locked: a write to the old row between this check and the commit
                    // would be missing from the new one.
                    let row = sqlx::query(sqlx::AssertSqlSafe(self.sql()?.version_locked.as_str()))
                        .bind(&from_key)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_error)?;
                    match row {
                        Some(row) => row.try_get::<i64, _>(0).map_err(map_error)? as u64 == expected,
                        None => false,
                    }
                };
                if unchanged {
                    tx.commit().await.map_err(map_error)?;
                    Ok(Moved::Stored)
                } else {
                    tx.rollback().await.map_err(map_error)?;
                    Ok(Moved::SourceChanged)
                }
            }

            fn limit_record_size(&mut self, bytes: usize) {
                self.limit = i64::try_from(bytes).unwrap_or(i64::MAX);
            }
        }
    };
}

// Each database's file writes its backend with it.
pub(crate) use sql_backend;

#[cfg(test)]
mod tests {
    /// docs/sql.md gives DBAs the exact DDL that `migrate` runs, for the default table.
    #[test]
    fn the_documented_ddl_is_what_migrate_runs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/sql.md");
        let docs = std::fs::read_to_string(path).expect("docs/sql.md");
        let mut migrations: Vec<Vec<String>> = Vec::new();
        #[cfg(feature = "postgres")]
        migrations.push(super::postgres::statements(super::DEFAULT_TABLE).migrate);
        #[cfg(feature = "mysql")]
        migrations.push(super::mysql::statements(super::DEFAULT_TABLE).migrate);
        #[cfg(feature = "sqlite")]
        migrations.push(super::sqlite::statements(super::DEFAULT_TABLE).migrate);
        for sql in migrations.into_iter().flatten() {
            assert!(
                docs.lines().any(|line| line == format!("{sql};")),
                "docs/sql.md does not show: {sql};"
            );
        }
    }
}
