//! PostgresStorage, MySqlStorage and SqliteStorage: the shared scenario suite on each, and
//! what is particular to SQL (the size limit in the load query, migrate, table names,
//! remove_expired).
//!
//! The servers are those of `tests/common/sql.rs`. Every test uses a table of its own, so
//! tests run in parallel, and drops it when it ends.
#![cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod common;

use std::time::Duration;

use common::scenarios::{request, server_storage_scenarios, storage_scenarios};
use common::sql::{Cleanup, Guarded};
use session_layer::SessionStorage;

/// The tests every SQL storage runs: `$storage` is its type, `$pool` an async expression
/// giving a fresh pool and a table name with its cleanup.
macro_rules! sql_tests {
    ($storage:ty, $pool:expr) => {
        /// A migrated storage over a fresh pool and a table of its own.
        async fn storage() -> Guarded<$storage> {
            let (pool, table, cleanup) = $pool.await;
            let storage = <$storage>::new(pool).table(&table);
            storage.migrate().await.expect("migrate");
            Guarded { storage, cleanup }
        }

        storage_scenarios! {
            plain: storage(),
            ttl: |ttl: Duration| async move { storage().await.map(|s| s.ttl(ttl)) },
            max_lifetime: |limit: Duration| async move {
                storage()
                    .await
                    .map(|s| s.ttl(Duration::from_secs(60)).max_lifetime(limit))
            },
        }

        server_storage_scenarios! {
            plain: storage(),
            unknown_ids: async { storage().await.map(|s| s.use_unknown_ids(true)) },
        }

        #[tokio::test]
        async fn oversize_stored_record_is_refused_unread() {
            let big = storage().await;
            let table = big.backend().table().to_owned();
            let small = <$storage>::new(big.backend().pool().clone())
                .table(&table)
                .max_record_size(100);
            let (_, cookie) =
                request(&big, None, |s| s.set("blob", "x".repeat(500)).unwrap()).await;
            // Refused as corrupt, which the layer answers with a fresh session; the error
            // names the table, never the id.
            match small.read(cookie.as_deref()).await {
                Err(session_layer::Error::Corrupt { record, reason }) => {
                    assert!(reason.contains("100-byte record size limit"), "{reason}");
                    assert!(!record.contains(cookie.as_deref().unwrap()), "{record}");
                }
                other => panic!("expected Error::Corrupt, got {other:?}"),
            }
            let session = big.read(cookie.as_deref()).await.expect("read");
            assert_eq!(session.get::<String>("blob").map(|b| b.len()), Some(500));
        }

        /// A new id that is taken writes nothing and is no error: the lifecycle draws
        /// another.
        #[tokio::test]
        async fn a_taken_id_is_refused_without_error() {
            use session_layer::storage::{Expected, Record, SessionBackend, SessionId};
            let storage = storage().await;
            let record = |n: u64| {
                let session = session_layer::Session::new();
                session.set("n", n).unwrap();
                Record {
                    data: session.data(),
                    created_at: 0,
                    expires_at_ms: None,
                    ..Record::default()
                }
            };
            let (backend, first, second) = (storage.backend(), record(1), record(2));
            let id = SessionId::from("some id");
            let stored = backend.store(&id, &first, None, Expected::Absent);
            assert!(stored.await.expect("first insert"));
            let again = backend.store(&id, &second, None, Expected::Absent);
            assert!(!again.await.expect("a taken id is no error"));
            let kept = backend.load(&id).await.expect("load").expect("a row");
            assert_eq!(kept.record, first, "the first record is kept");
        }

        #[tokio::test]
        async fn migrate_twice_is_fine() {
            let storage = storage().await;
            storage.migrate().await.expect("second migrate");
            common::scenarios::counter(storage).await;
        }

        #[tokio::test]
        async fn bad_table_name_is_a_config_error() {
            let (pool, _, _cleanup) = $pool.await;
            let long = "t".repeat(64);
            for name in [
                "",
                "1abc",
                "a-b",
                "a b",
                "x; DROP TABLE y",
                "a.b",
                "é",
                long.as_str(),
            ] {
                let refused = <$storage>::new(pool.clone()).table(name);
                let migrated = refused.migrate().await;
                assert!(
                    matches!(migrated, Err(session_layer::Error::Config(_))),
                    "{name:?} must be refused, got {migrated:?}"
                );
                // Every later call says so too, and no SQL is sent.
                let read = refused.read(Some("an-id")).await;
                assert!(
                    matches!(read, Err(session_layer::Error::Config(_))),
                    "{read:?}"
                );
                let removed = refused.remove_expired().await;
                assert!(matches!(removed, Err(session_layer::Error::Config(_))));
            }
            // Accepted names reach the database (whose answer, for a table that does not
            // exist, is another error).
            for name in ["t".repeat(63), "_Sessions_2".to_owned()] {
                let accepted = <$storage>::new(pool.clone()).table(&name);
                let removed = accepted.remove_expired().await;
                assert!(
                    !matches!(removed, Err(session_layer::Error::Config(_))),
                    "{name:?}"
                );
            }
        }

        #[tokio::test]
        async fn remove_expired_removes_only_expired_rows() {
            let lasting = storage().await;
            let table = lasting.backend().table().to_owned();
            let short = <$storage>::new(lasting.backend().pool().clone())
                .table(&table)
                .ttl(Duration::from_millis(300));
            let long = <$storage>::new(lasting.backend().pool().clone())
                .table(&table)
                .ttl(Duration::from_secs(3600));
            let set = |s: &session_layer::Session| s.set("k", 1).unwrap();
            let (_, a) = request(&short, None, set).await;
            let (_, b) = request(&long, None, set).await;
            let (_, c) = request(&lasting, None, set).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert_eq!(lasting.remove_expired().await.expect("remove_expired"), 1);
            assert_eq!(lasting.remove_expired().await.expect("remove_expired"), 0);
            assert_eq!(
                lasting.read(a.as_deref()).await.unwrap().get::<u32>("k"),
                None
            );
            assert_eq!(
                lasting.read(b.as_deref()).await.unwrap().get::<u32>("k"),
                Some(1)
            );
            assert_eq!(
                lasting.read(c.as_deref()).await.unwrap().get::<u32>("k"),
                Some(1)
            );
        }
    };
}

/// Connections per pool: many tests run at once, and the servers' connections are limited.
const POOL: u32 = 4;

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use common::sql::Server;
    use session_layer::PostgresStorage;

    async fn pool() -> (sqlx::PgPool, String, Cleanup) {
        let (table, cleanup) = Cleanup::table(Server::Postgres).await;
        (common::sql::postgres_pool(POOL).await, table, cleanup)
    }

    sql_tests!(PostgresStorage, pool());
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use common::sql::Server;
    use session_layer::MySqlStorage;

    async fn pool() -> (sqlx::MySqlPool, String, Cleanup) {
        let (table, cleanup) = Cleanup::table(Server::MySql).await;
        (common::sql::mysql_pool(POOL).await, table, cleanup)
    }

    sql_tests!(MySqlStorage, pool());

    /// An insert fails on anything but a taken id: here a record too long for a `data`
    /// column that a DBA made a BLOB (64 KiB) is an error, not a truncated row.
    #[tokio::test]
    async fn an_insert_error_other_than_a_taken_id_is_not_hidden() {
        let (pool, table, _cleanup) = pool().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} (id VARCHAR(64) NOT NULL PRIMARY KEY, data BLOB NOT NULL, \
             version BIGINT NOT NULL, expires_at BIGINT NULL)"
        )))
        .execute(&pool)
        .await
        .expect("a table made by hand");
        let storage = MySqlStorage::new(pool.clone()).table(&table);
        let session = session_layer::Session::new();
        session.set("blob", "x".repeat(70_000)).unwrap();
        let saved = storage.save(&session).await;
        assert!(
            matches!(saved, Err(session_layer::Error::Backend(_))),
            "{saved:?}"
        );
        let rows: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(rows, 0, "no truncated row");
    }
}

#[cfg(feature = "sqlite")]
mod sqlite_file {
    use super::*;
    use session_layer::SqliteStorage;

    /// A database file in a temporary directory, removed when the test ends.
    async fn pool() -> (sqlx::SqlitePool, String, Cleanup) {
        let (pool, cleanup) = common::sql::sqlite_file_pool(POOL).await;
        (pool, common::sql::unique_table(), cleanup)
    }

    sql_tests!(SqliteStorage, pool());
}

#[cfg(feature = "sqlite")]
mod sqlite_memory {
    use super::*;
    use session_layer::SqliteStorage;

    async fn pool() -> (sqlx::SqlitePool, String, Cleanup) {
        let pool = common::sql::sqlite_memory_pool().await;
        (pool, common::sql::unique_table(), Cleanup::Nothing)
    }

    sql_tests!(SqliteStorage, pool());
}
