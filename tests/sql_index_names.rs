//! The SQL storages' index names: a table name of any accepted length gets its expiry index,
//! which `remove_expired` uses, and its owner index, which the queries by owner use; no table
//! takes another's index; a table made by an earlier version keeps the one expiry index it
//! has; and `migrate` fails rather than succeed without one.
//!
//! The servers are those of `tests/common/sql.rs`; every table is the test's own.
#![cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod common;

use common::sql::{Cleanup, unique_table_of_length};

/// The index name docs/sql.md gives for the index on `column` of `table`.
fn index_name(table: &str, column: &str) -> String {
    use sha2::{Digest, Sha256};
    let table = table.to_ascii_lowercase();
    let hash: String = Sha256::digest(table.as_bytes())[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let kept = &table[..table.len().min(50 - column.len())];
    format!("sl_{kept}_{hash}_{column}")
}

/// What a `DELETE` by `column` selects in these tests.
fn condition(column: &str) -> String {
    match column {
        "owner" => "owner = 'ann'".to_owned(),
        _ => format!("{column} <= 1"),
    }
}

/// The tests of one database. The module calling it defines `setup()` (a pool and what
/// removes its database), `guard(table)` (what drops the table), `indexes_on(pool, table,
/// column)` (the names of the indexes that start with `column`, from the catalog),
/// `plan(pool, table, column)` (the plan of a `DELETE` by `column`, as `remove_expired` or
/// an end of an owner's sessions runs it), `old_ddl(table)` and
/// `old_index(table)` (what `migrate` made before index names were hashed) and
/// `NAMES_PER_SCHEMA` (whether an index name can be taken by a table).
macro_rules! index_tests {
    ($storage:ty, $pool:ty) => {
        async fn migrate(pool: &$pool, table: &str) -> Result<(), session_layer::Error> {
            <$storage>::new(pool.clone()).table(table).migrate().await
        }

        async fn execute(pool: &$pool, sql: String) {
            let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(pool);
            done.await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }

        async fn expiry_indexes(pool: &$pool, table: &str) -> Vec<String> {
            indexes_on(pool, table, "expires_at").await
        }

        /// Asserts that `table`'s one expiry index is `name` and the cleanup uses it.
        async fn assert_expiry_index(pool: &$pool, table: &str, name: &str) {
            assert_index(pool, table, "expires_at", name).await;
            let storage = <$storage>::new(pool.clone()).table(table);
            storage.remove_expired().await.expect("remove_expired");
        }

        /// Asserts that `table`'s one index on `column` is `name` and a delete by `column`
        /// uses it.
        async fn assert_index(pool: &$pool, table: &str, column: &str, name: &str) {
            let indexes = indexes_on(pool, table, column).await;
            assert!(!indexes.is_empty(), "{table} has no index on {column}");
            assert_eq!(indexes, [name], "{table}");
            let plan = plan(pool, table, column).await;
            assert!(
                plan.contains(name),
                "{table}: {name} is not in the plan: {plan}"
            );
        }

        /// The owner index is named as the expiry index is, with as long a table name.
        #[tokio::test]
        async fn long_table_names_get_their_owner_index() {
            use session_layer::SessionIndex;
            let (pool, _database) = setup().await;
            for length in [63, 62, 58, 53] {
                let table = unique_table_of_length(length);
                let _drop = guard(&table).await;
                migrate(&pool, &table).await.expect("migrate");
                let name = index_name(&table, "owner");
                assert!(name.len() <= 63, "{name}");
                assert_index(&pool, &table, "owner", &name).await;
                let storage = <$storage>::new(pool.clone()).table(&table);
                assert_eq!(storage.end_sessions_of("ann", None).await.expect("end"), 0);
            }
        }

        /// Only a table named after the owner index's name can take it, and then
        /// `migrate` says so.
        #[tokio::test]
        async fn migrate_fails_rather_than_succeed_without_the_owner_index() {
            let (pool, _database) = setup().await;
            let table = unique_table_of_length(40);
            let squatter = index_name(&table, "owner");
            let _drops = (guard(&table).await, guard(&squatter).await);
            execute(&pool, format!("CREATE TABLE {squatter} (x INT)")).await;
            let migrated = migrate(&pool, &table).await;
            if NAMES_PER_SCHEMA {
                let error = migrated.expect_err("the index name is taken");
                assert!(error.to_string().contains(&squatter), "{error}");
                assert_eq!(
                    indexes_on(&pool, &table, "owner").await,
                    Vec::<String>::new()
                );
            } else {
                migrated.expect("index names are per table");
                assert_index(&pool, &table, "owner", &squatter).await;
            }
        }

        /// At 63 characters, PostgreSQL cut `{table}_expires_at` to the table's own name.
        #[tokio::test]
        async fn long_table_names_get_their_expiry_index() {
            let (pool, _database) = setup().await;
            for length in [63, 62, 58, 53] {
                let table = unique_table_of_length(length);
                let _drop = guard(&table).await;
                migrate(&pool, &table).await.expect("migrate");
                let name = index_name(&table, "expires_at");
                assert!(name.len() <= 63, "{name}");
                assert_expiry_index(&pool, &table, &name).await;
            }
        }

        #[tokio::test]
        async fn tables_sharing_a_long_prefix_get_indexes_of_their_own() {
            let (pool, _database) = setup().await;
            let stem = unique_table_of_length(62);
            let (a, b) = (format!("{stem}a"), format!("{stem}b"));
            let _drops = (guard(&a).await, guard(&b).await);
            migrate(&pool, &a).await.expect("migrate a");
            migrate(&pool, &b).await.expect("migrate b");
            for column in ["expires_at", "owner"] {
                let (of_a, of_b) = (
                    indexes_on(&pool, &a, column).await,
                    indexes_on(&pool, &b, column).await,
                );
                assert_eq!((of_a.len(), of_b.len()), (1, 1), "{of_a:?} {of_b:?}");
                assert_ne!(of_a, of_b);
            }
        }

        /// `{table}_expires_at` was `table`'s index name, and could be another table's.
        #[tokio::test]
        async fn a_table_named_like_an_old_index_takes_no_index() {
            let (pool, _database) = setup().await;
            let table = unique_table_of_length(40);
            let other = format!("{table}_expires_at");
            let _drops = (guard(&table).await, guard(&other).await);
            migrate(&pool, &other).await.expect("migrate the other");
            migrate(&pool, &table).await.expect("migrate");
            for table in [&table, &other] {
                assert_expiry_index(&pool, table, &index_name(table, "expires_at")).await;
            }
        }

        /// Only a table named after the hashed name itself can take it, and then `migrate`
        /// says so instead of succeeding without the index.
        #[tokio::test]
        async fn migrate_fails_rather_than_succeed_without_the_index() {
            let (pool, _database) = setup().await;
            let table = unique_table_of_length(40);
            let squatter = index_name(&table, "expires_at");
            let _drops = (guard(&table).await, guard(&squatter).await);
            execute(&pool, format!("CREATE TABLE {squatter} (x INT)")).await;
            let migrated = migrate(&pool, &table).await;
            if NAMES_PER_SCHEMA {
                // PostgreSQL skips a name that is taken, SQLite refuses it.
                let error = migrated.expect_err("the index name is taken");
                assert!(error.to_string().contains(&squatter), "{error}");
                assert_eq!(expiry_indexes(&pool, &table).await, Vec::<String>::new());
            } else {
                migrated.expect("index names are per table");
                assert_expiry_index(&pool, &table, &squatter).await;
            }
        }

        /// The upgrade: a table with an index on `expires_at`, whatever its name, keeps it
        /// and gets no second one; one without (PostgreSQL at 63 characters) gets one.
        #[tokio::test]
        async fn tables_made_by_earlier_versions_keep_one_expiry_index() {
            let (pool, _database) = setup().await;
            for length in [40, 58, 63] {
                let table = unique_table_of_length(length);
                let _drop = guard(&table).await;
                for sql in old_ddl(&table) {
                    execute(&pool, sql).await;
                }
                let old = old_index(&table);
                assert_eq!(
                    expiry_indexes(&pool, &table).await,
                    Vec::from_iter(old.clone())
                );
                migrate(&pool, &table).await.expect("migrate");
                migrate(&pool, &table).await.expect("migrate again");
                let name = old.unwrap_or_else(|| index_name(&table, "expires_at"));
                assert_expiry_index(&pool, &table, &name).await;
            }
        }
    };
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use common::sql::Server;
    use session_layer::PostgresStorage;
    use sqlx::PgPool;

    const NAMES_PER_SCHEMA: bool = true;

    async fn setup() -> (PgPool, Cleanup) {
        (common::sql::postgres_pool(2).await, Cleanup::Nothing)
    }

    async fn guard(table: &str) -> Cleanup {
        Cleanup::named(Server::Postgres, table.to_owned()).await
    }

    async fn indexes_on(pool: &PgPool, table: &str, column: &str) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT indexname::TEXT FROM pg_indexes WHERE schemaname = current_schema() \
             AND tablename = $1 AND indexdef LIKE '%(' || $2 || ')%' ORDER BY 1",
        )
        .bind(table)
        .bind(column)
        .fetch_all(pool)
        .await
        .expect("pg_indexes")
    }

    /// With sequential scans off, so that the plan of a small table shows the index.
    async fn plan(pool: &PgPool, table: &str, column: &str) -> String {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::raw_sql("SET LOCAL enable_seqscan = off")
            .execute(&mut *tx)
            .await
            .expect("SET");
        let sql = format!("EXPLAIN DELETE FROM {table} WHERE {}", condition(column));
        let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *tx)
            .await
            .expect("EXPLAIN");
        // Now, not when the pool next uses the connection: the table's drop waits for it.
        tx.rollback().await.expect("rollback");
        lines.join("\n")
    }

    fn old_ddl(table: &str) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, data BYTEA NOT NULL, \
                 version BIGINT NOT NULL, expires_at BIGINT)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {table}_expires_at ON {table} (expires_at)"),
        ]
    }

    /// PostgreSQL cuts names at 63 bytes, and skipped the index whose cut name was the
    /// table's.
    fn old_index(table: &str) -> Option<String> {
        let name = format!("{table}_expires_at");
        let cut = &name[..name.len().min(63)];
        (cut != table).then(|| cut.to_owned())
    }

    index_tests!(PostgresStorage, PgPool);
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use common::sql::Server;
    use session_layer::MySqlStorage;
    use sqlx::{MySqlPool, Row as _};

    const NAMES_PER_SCHEMA: bool = false;

    async fn setup() -> (MySqlPool, Cleanup) {
        (common::sql::mysql_pool(2).await, Cleanup::Nothing)
    }

    async fn guard(table: &str) -> Cleanup {
        Cleanup::named(Server::MySql, table.to_owned()).await
    }

    async fn indexes_on(pool: &MySqlPool, table: &str, column: &str) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT CAST(index_name AS CHAR) FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ? \
             AND seq_in_index = 1 ORDER BY 1",
        )
        .bind(table)
        .bind(column)
        .fetch_all(pool)
        .await
        .expect("information_schema.statistics")
    }

    /// The index the plan uses.
    async fn plan(pool: &MySqlPool, table: &str, column: &str) -> String {
        let sql = format!("EXPLAIN DELETE FROM {table} WHERE {}", condition(column));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .expect("EXPLAIN");
        let key: Option<String> = row.try_get("key").expect("EXPLAIN's key");
        key.unwrap_or_default()
    }

    fn old_ddl(table: &str) -> Vec<String> {
        vec![format!(
            "CREATE TABLE IF NOT EXISTS {table} (id VARCHAR(64) NOT NULL PRIMARY KEY, \
             data LONGBLOB NOT NULL, version BIGINT NOT NULL, expires_at BIGINT NULL, \
             INDEX expires_at (expires_at))"
        )]
    }

    fn old_index(_table: &str) -> Option<String> {
        Some("expires_at".to_owned())
    }

    index_tests!(MySqlStorage, MySqlPool);
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use session_layer::SqliteStorage;
    use sqlx::{Row as _, SqlitePool};

    const NAMES_PER_SCHEMA: bool = true;

    /// A database file of the test's own, removed with its directory.
    async fn setup() -> (SqlitePool, Cleanup) {
        common::sql::sqlite_file_pool(2).await
    }

    async fn guard(_table: &str) -> Cleanup {
        Cleanup::Nothing
    }

    async fn indexes_on(pool: &SqlitePool, table: &str, column: &str) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 \
             AND sql LIKE '%(' || ?2 || ')%' ORDER BY 1",
        )
        .bind(table)
        .bind(column)
        .fetch_all(pool)
        .await
        .expect("sqlite_master")
    }

    async fn plan(pool: &SqlitePool, table: &str, column: &str) -> String {
        let sql = format!(
            "EXPLAIN QUERY PLAN DELETE FROM {table} WHERE {}",
            condition(column)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .expect("EXPLAIN QUERY PLAN");
        let details = rows.iter().map(|row| row.get::<String, _>("detail"));
        details.collect::<Vec<_>>().join("\n")
    }

    fn old_ddl(table: &str) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY NOT NULL, \
                 data BLOB NOT NULL, version INTEGER NOT NULL, expires_at INTEGER)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {table}_expires_at ON {table} (expires_at)"),
        ]
    }

    fn old_index(table: &str) -> Option<String> {
        Some(format!("{table}_expires_at"))
    }

    index_tests!(SqliteStorage, SqlitePool);
}
