//! PostgresStorage, MySqlStorage and SqliteStorage: the shared scenario suite on each, and
//! what is particular to SQL (the size limit in the load query, migrate, table names,
//! remove_expired).
//!
//! PostgreSQL at 127.0.0.1:5432 (user postgres, database `test`, or `DATABASE_URL`),
//! MariaDB/MySQL at 127.0.0.1:3306 (root, database `test`, or `MYSQL_URL`). Every test uses
//! a table of its own, so tests run in parallel.
#![cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod common;

use std::time::Duration;

use common::scenarios::{request, server_storage_scenarios, storage_scenarios};
use session_layer::SessionStorage;

/// A table name no other test (or run) uses.
fn unique_table() -> String {
    format!("sltest_{:016x}", rand::random::<u64>())
}

/// The tests every SQL storage runs: `$storage` is its type, `$pool` an async expression
/// giving a fresh pool.
macro_rules! sql_tests {
    ($storage:ty, $pool:expr) => {
        use super::*;

        /// A migrated storage over a fresh pool and a table of its own.
        async fn storage() -> $storage {
            let storage = <$storage>::new($pool.await)
                .table(&unique_table())
                .expect("table name");
            storage.migrate().await.expect("migrate");
            storage
        }

        storage_scenarios! {
            plain: storage(),
            ttl: |ttl: Duration| async move { storage().await.ttl(ttl) },
            max_lifetime: |limit: Duration| async move {
                storage().await.ttl(Duration::from_secs(60)).max_lifetime(limit)
            },
        }

        server_storage_scenarios! {
            plain: storage(),
            unknown_ids: async { storage().await.use_unknown_ids(true) },
        }

        #[tokio::test]
        async fn oversize_stored_record_is_refused_unread() {
            let big = storage().await;
            let table = big.backend().table().to_owned();
            let small = <$storage>::new(big.backend().pool().clone())
                .table(&table)
                .unwrap()
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

        #[tokio::test]
        async fn migrate_twice_is_fine() {
            let storage = storage().await;
            storage.migrate().await.expect("second migrate");
            common::scenarios::counter(storage).await;
        }

        #[tokio::test]
        async fn bad_table_name_is_a_config_error() {
            let pool = $pool.await;
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
                assert!(
                    matches!(refused, Err(session_layer::Error::Config(_))),
                    "{name:?} must be refused"
                );
            }
            assert!(<$storage>::new(pool.clone()).table(&"t".repeat(63)).is_ok());
            assert!(<$storage>::new(pool).table("_Sessions_2").is_ok());
        }

        #[tokio::test]
        async fn remove_expired_removes_only_expired_rows() {
            let lasting = storage().await;
            let table = lasting.backend().table().to_owned();
            let short = <$storage>::new(lasting.backend().pool().clone())
                .table(&table)
                .unwrap()
                .ttl(Duration::from_millis(300));
            let long = <$storage>::new(lasting.backend().pool().clone())
                .table(&table)
                .unwrap()
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

#[cfg(feature = "postgres")]
mod postgres {
    use session_layer::PostgresStorage;
    use sqlx::postgres::{PgPool, PgPoolOptions};

    /// A small pool on the test server: many tests run at once, and the server's
    /// connections are limited.
    async fn pool() -> PgPool {
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {url} (set DATABASE_URL, create database test): {e}")
            })
    }

    sql_tests!(PostgresStorage, pool());
}

#[cfg(feature = "mysql")]
mod mysql {
    use session_layer::MySqlStorage;
    use sqlx::mysql::{MySqlPool, MySqlPoolOptions};

    /// A small pool on the test server, as for PostgreSQL.
    async fn pool() -> MySqlPool {
        let url = std::env::var("MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
        MySqlPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .unwrap_or_else(|e| {
                panic!("MySQL/MariaDB at {url} (set MYSQL_URL, create database test): {e}")
            })
    }

    sql_tests!(MySqlStorage, pool());
}

#[cfg(feature = "sqlite")]
mod sqlite_file {
    use session_layer::SqliteStorage;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

    /// A database file in a temporary directory, kept to the end of the run: SQLite
    /// creates its journal next to it.
    async fn pool() -> SqlitePool {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        let options = SqliteConnectOptions::new()
            .filename(dir.join("sessions.db"))
            .create_if_missing(true);
        SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .expect("SQLite file")
    }

    sql_tests!(SqliteStorage, pool());
}

#[cfg(feature = "sqlite")]
mod sqlite_memory {
    use session_layer::SqliteStorage;
    use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};

    /// An in-memory database: one connection that is never closed, since each connection
    /// has a database of its own that ends with it.
    async fn pool() -> SqlitePool {
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect("sqlite::memory:")
            .await
            .expect("SQLite in memory")
    }

    sql_tests!(SqliteStorage, pool());
}
