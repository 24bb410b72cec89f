//! The SQL storages' owner index: the `owner` column each save writes, the owners it
//! refuses, `migrate` on a table made before the column, a move under way while the
//! owner's sessions end, and nothing of an owner left once its sessions expire.
//!
//! The servers are those of `tests/common/sql.rs`; every table is the test's own.
#![cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod common;

use std::time::Duration;

use common::sessions::{saved, stored_session};
use common::sql::{Cleanup, Guarded};
use session_layer::storage::{SessionId, id_digest};
use session_layer::{Error, Session, SessionIndex, SessionStorage};

/// The tests of one database. The module calling it defines `pool()` (a pool, a table
/// name and its cleanup), `scan(pool, table)` (every row's id digest and owner, sorted),
/// `hold_row(table)` (an update of row `id` that changes nothing, to hold its lock),
/// `owner_indexes(pool, table)` (the indexes that start with `owner`), `old_ddl(table)`
/// (the table as the version before the owner column made it) and `insert_old(table)`
/// (a row of that table: id, data, version, expires_at).
macro_rules! owner_tests {
    ($storage:ty) => {
        /// A migrated storage over a fresh pool and a table of its own.
        async fn storage() -> Guarded<$storage> {
            let (pool, table, cleanup) = pool().await;
            let storage = <$storage>::new(pool).table(&table);
            storage.migrate().await.expect("migrate");
            Guarded { storage, cleanup }
        }

        async fn rows(storage: &$storage) -> Vec<(String, Option<String>)> {
            scan(storage.backend().pool(), storage.backend().table()).await
        }

        #[tokio::test]
        async fn each_save_writes_the_owner_column() {
            let storage = storage().await;
            let id = stored_session(&*storage, 1, None).await;
            assert_eq!(rows(&storage).await, [(id_digest(&id), None)]);

            let session = storage.read(Some(&id)).await.unwrap();
            session.set_owner("ann").unwrap();
            saved(&*storage, &session).await;
            assert_eq!(rows(&storage).await, [(id_digest(&id), Some("ann".into()))]);

            let session = storage.read(Some(&id)).await.unwrap();
            session.set_owner("bob").unwrap();
            session.regenerate_id(true).unwrap();
            let moved = saved(&*storage, &session).await;
            assert_eq!(
                rows(&storage).await,
                [(id_digest(&moved), Some("bob".into()))]
            );

            let session = storage.read(Some(&moved)).await.unwrap();
            session.clear_owner().unwrap();
            saved(&*storage, &session).await;
            assert_eq!(rows(&storage).await, [(id_digest(&moved), None)]);

            // The record says the same as the column.
            let session = storage.read(Some(&moved)).await.unwrap();
            session.set_owner("cy").unwrap();
            saved(&*storage, &session).await;
            let session = storage.read(Some(&moved)).await.unwrap();
            assert_eq!(session.owner().as_deref(), Some("cy"));
            assert_eq!(
                rows(&storage).await,
                [(id_digest(&moved), Some("cy".into()))]
            );
        }

        /// The column holds 255 bytes: a longer owner is an error at save, not a cut one.
        #[tokio::test]
        async fn an_owner_the_column_cannot_hold_is_refused() {
            let storage = storage().await;
            let longest = "o".repeat(255);
            let id = stored_session(&*storage, 1, Some(&longest)).await;
            assert_eq!(
                rows(&storage).await,
                [(id_digest(&id), Some(longest.clone()))]
            );
            assert_eq!(storage.sessions_of(&longest).await.unwrap().len(), 1);

            for owner in ["o".repeat(256), "é".repeat(128), "a\0b".to_owned()] {
                let session = storage.read(None).await.unwrap();
                session.set_owner(owner.as_str()).unwrap();
                match storage.save(&session).await {
                    Err(Error::Config(why)) => assert!(why.contains("owner"), "{why}"),
                    other => panic!(
                        "{} bytes: expected Error::Config, got {other:?}",
                        owner.len()
                    ),
                }
                // Refused by a move too.
                let session = storage.read(Some(&id)).await.unwrap();
                session.set_owner(owner.as_str()).unwrap();
                session.regenerate_id(true).unwrap();
                assert!(matches!(
                    storage.save(&session).await,
                    Err(Error::Config(_))
                ));
                // No session can be that owner's, and asking is no error.
                assert_eq!(storage.sessions_of(&owner).await.unwrap(), []);
                assert!(
                    !storage
                        .end_session(&owner, &session.handle())
                        .await
                        .unwrap()
                );
                assert_eq!(storage.end_sessions_of(&owner, None).await.unwrap(), 0);
            }
            assert_eq!(rows(&storage).await, [(id_digest(&id), Some(longest))]);
        }

        /// No collation folds case or pads spaces: each of these is an owner of its own.
        #[tokio::test]
        async fn owners_are_compared_byte_for_byte() {
            let storage = storage().await;
            let owners = ["ann", "Ann", "ann ", "änn"];
            for owner in owners {
                stored_session(&*storage, 1, Some(owner)).await;
            }
            for owner in owners {
                assert_eq!(
                    storage.sessions_of(owner).await.unwrap().len(),
                    1,
                    "{owner:?}"
                );
            }
            assert_eq!(storage.end_sessions_of("ann", None).await.unwrap(), 1);
            assert_eq!(rows(&storage).await.len(), 3);
        }

        /// A row that the lifecycle would not load (undecodable, or over the record size
        /// limit) is not listed, and is ended with the owner's other sessions.
        #[tokio::test]
        async fn rows_that_do_not_load_are_not_listed_but_are_ended() {
            use session_layer::storage::{Expected, Record, SessionBackend};
            let storage = storage().await;
            let id = stored_session(&*storage, 1, Some("ann")).await;
            let big = Record {
                owner: Some("ann".into()),
                data: {
                    let session = Session::new();
                    session.set("blob", "x".repeat(500)).unwrap();
                    session.data()
                },
                ..Record::default()
            };
            let backend = storage.backend();
            assert!(
                backend
                    .store(&"big".into(), &big, None, Expected::Absent)
                    .await
                    .unwrap()
            );
            let small = <$storage>::new(backend.pool().clone())
                .table(backend.table())
                .max_record_size(200);
            let listed = small.sessions_of("ann").await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].handle, session_layer::SessionHandle::of_id(&id));
            assert_eq!(storage.sessions_of("ann").await.unwrap().len(), 2);
            assert_eq!(small.end_sessions_of("ann", None).await.unwrap(), 2);
            assert_eq!(rows(&storage).await, []);
        }

        /// A backend's caller may spare more ids than the lifecycle's two: all are spared.
        #[tokio::test]
        async fn an_end_spares_every_handle_it_is_given() {
            use session_layer::SessionHandle;
            use session_layer::storage::OwnerIndexBackend;
            let storage = storage().await;
            let mut spared = Vec::new();
            for _ in 0..3 {
                spared.push(SessionHandle::of_id(
                    &stored_session(&*storage, 1, Some("ann")).await,
                ));
            }
            let ended = stored_session(&*storage, 1, Some("ann")).await;
            let other = stored_session(&*storage, 1, Some("bob")).await;
            let backend = storage.backend();
            assert_eq!(backend.delete_all_owned("ann", &spared).await.unwrap(), 1);
            let mut left: Vec<SessionHandle> = storage
                .sessions_of("ann")
                .await
                .unwrap()
                .into_iter()
                .map(|info| info.handle)
                .collect();
            left.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            spared.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            assert_eq!(left, spared);
            assert!(
                !rows(&storage)
                    .await
                    .iter()
                    .any(|(id, _)| *id == id_digest(&ended))
            );
            assert_eq!(
                storage.sessions_of("bob").await.unwrap()[0].handle,
                SessionHandle::of_id(&other)
            );
        }

        /// A table made by the version before the owner column: `migrate` adds the column
        /// and its index, the row stored before still loads, and it can be owned.
        #[tokio::test]
        async fn migrate_adds_the_owner_column_to_an_older_table() {
            use session_layer::storage::{Expected, Record, SessionBackend};
            let (pool, table, _cleanup) = pool().await;
            for sql in old_ddl(&table) {
                execute(&pool, sql).await;
            }
            let record = Record {
                data: {
                    let session = Session::new();
                    session.set("n", 7).unwrap();
                    session.data()
                },
                created_at: 1,
                ..Record::default()
            };
            sqlx::query(sqlx::AssertSqlSafe(insert_old(&table)))
                .bind(id_digest("an old session"))
                .bind(record.encode())
                .bind(5_i64)
                .bind(None::<i64>)
                .execute(&pool)
                .await
                .expect("a row of the old table");
            assert_eq!(owner_indexes(&pool, &table).await, Vec::<String>::new());

            let storage = <$storage>::new(pool.clone()).table(&table);
            storage.migrate().await.expect("migrate");
            storage.migrate().await.expect("migrate again");
            let index = format!("sl_{}_owner", hashed(&table));
            assert_eq!(owner_indexes(&pool, &table).await, [index]);

            let backend = storage.backend();
            let old_session = SessionId::from("an old session");
            let loaded = backend
                .load(&old_session)
                .await
                .unwrap()
                .expect("the old row");
            assert_eq!((loaded.record.clone(), loaded.version), (record, 5));
            let owned = Record {
                owner: Some("ann".into()),
                ..loaded.record
            };
            let stored = backend.store(&old_session, &owned, None, Expected::Version(5));
            assert!(stored.await.unwrap());
            let listed = storage.sessions_of("ann").await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].data.values.get("n"), Some(&serde_json::json!(7)));
        }

        /// Nothing of an owner outlives its sessions: once they expire they are not listed,
        /// and `remove_expired` deletes their rows, the only place the owner is.
        #[tokio::test]
        async fn no_row_of_an_owner_outlives_its_sessions() {
            let lasting = storage().await;
            let short = <$storage>::new(lasting.backend().pool().clone())
                .table(lasting.backend().table())
                .ttl(Duration::from_millis(300));
            stored_session(&short, 1, Some("ann")).await;
            stored_session(&short, 1, Some("ann")).await;
            let other = stored_session(&*lasting, 1, Some("bob")).await;
            assert_eq!(short.sessions_of("ann").await.unwrap().len(), 2);
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert_eq!(short.sessions_of("ann").await.unwrap(), []);
            assert_eq!(short.remove_expired().await.unwrap(), 2);
            assert_eq!(
                rows(&lasting).await,
                [(id_digest(&other), Some("bob".into()))]
            );
        }

        /// A login moving its session to a new id has inserted the new row and waits to
        /// delete the old one (whose lock the test holds) when `end_sessions_of` starts:
        /// the new row is ended too, once the move commits.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_move_under_way_is_ended_with_the_owners_sessions() {
            let storage = storage().await;
            let (pool, table) = (
                storage.backend().pool().clone(),
                storage.backend().table().to_owned(),
            );
            let id = stored_session(&*storage, 1, Some("ann")).await;
            let session = storage.read(Some(&id)).await.unwrap();
            session.regenerate_id(true).unwrap();
            session.set("moved", true).unwrap();

            let mut holder = pool.begin().await.expect("begin");
            sqlx::query(sqlx::AssertSqlSafe(hold_row(&table)))
                .bind(id_digest(&id))
                .execute(&mut *holder)
                .await
                .expect("hold the row");
            let moving = tokio::spawn({
                let storage = storage.storage.clone();
                async move { storage.save(&session).await }
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            let ending = tokio::spawn({
                let storage = storage.storage.clone();
                async move { storage.end_sessions_of("ann", None).await }
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            holder.rollback().await.expect("rollback");
            let moved = moving.await.unwrap().expect("the move");
            let ended = ending.await.unwrap().expect("the end");
            assert_eq!(
                rows(&storage).await,
                [],
                "moved to {:?}, {ended} ended",
                moved.map(|m| id_digest(&m))
            );
            assert_eq!(ended, 1);
        }
    };
}

async fn execute<DB>(pool: &sqlx::Pool<DB>, sql: String)
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(pool);
    done.await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The part of an index name docs/sql.md gives before the column: the lowercased table
/// name, cut, and the first 8 hex digits of its SHA-256.
fn hashed(table: &str) -> String {
    use sha2::{Digest, Sha256};
    let table = table.to_ascii_lowercase();
    let hash: String = Sha256::digest(table.as_bytes())[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{}_{hash}", &table[..table.len().min(45)])
}

/// Connections per pool: the test holding a row, a move and an end at once.
const POOL: u32 = 4;

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use common::sql::Server;
    use session_layer::PostgresStorage;
    use sqlx::PgPool;

    async fn pool() -> (PgPool, String, Cleanup) {
        let (table, cleanup) = Cleanup::table(Server::Postgres).await;
        (common::sql::postgres_pool(POOL).await, table, cleanup)
    }

    async fn scan(pool: &PgPool, table: &str) -> Vec<(String, Option<String>)> {
        let sql = format!("SELECT id, owner FROM {table} ORDER BY id");
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .expect("scan")
    }

    fn hold_row(table: &str) -> String {
        format!("UPDATE {table} SET version = version WHERE id = $1")
    }

    async fn owner_indexes(pool: &PgPool, table: &str) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT indexname::TEXT FROM pg_indexes WHERE schemaname = current_schema() \
             AND tablename = $1 AND indexdef LIKE '%(owner)%' ORDER BY 1",
        )
        .bind(table)
        .fetch_all(pool)
        .await
        .expect("pg_indexes")
    }

    fn old_ddl(table: &str) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, data BYTEA NOT NULL, \
                 version BIGINT NOT NULL, expires_at BIGINT)"
            ),
            format!("CREATE INDEX {table}_expires_at ON {table} (expires_at)"),
        ]
    }

    fn insert_old(table: &str) -> String {
        format!("INSERT INTO {table} (id, data, version, expires_at) VALUES ($1, $2, $3, $4)")
    }

    owner_tests!(PostgresStorage);
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use common::sql::Server;
    use session_layer::MySqlStorage;
    use sqlx::MySqlPool;

    async fn pool() -> (MySqlPool, String, Cleanup) {
        let (table, cleanup) = Cleanup::table(Server::MySql).await;
        (common::sql::mysql_pool(POOL).await, table, cleanup)
    }

    async fn scan(pool: &MySqlPool, table: &str) -> Vec<(String, Option<String>)> {
        let sql = format!("SELECT id, CAST(owner AS CHAR) FROM {table} ORDER BY id");
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .expect("scan")
    }

    fn hold_row(table: &str) -> String {
        format!("UPDATE {table} SET version = version WHERE id = ?")
    }

    async fn owner_indexes(pool: &MySqlPool, table: &str) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT CAST(index_name AS CHAR) FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name = ? AND column_name = 'owner' \
             AND seq_in_index = 1 ORDER BY 1",
        )
        .bind(table)
        .fetch_all(pool)
        .await
        .expect("information_schema.statistics")
    }

    fn old_ddl(table: &str) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (id VARCHAR(64) NOT NULL PRIMARY KEY, \
                 data LONGBLOB NOT NULL, version BIGINT NOT NULL, expires_at BIGINT NULL)"
            ),
            format!("CREATE INDEX {table}_expires_at ON {table} (expires_at)"),
        ]
    }

    fn insert_old(table: &str) -> String {
        format!("INSERT INTO {table} (id, data, version, expires_at) VALUES (?, ?, ?, ?)")
    }

    owner_tests!(MySqlStorage);
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use session_layer::SqliteStorage;
    use sqlx::SqlitePool;

    /// A database file of the test's own, removed with its directory.
    async fn pool() -> (SqlitePool, String, Cleanup) {
        let (pool, cleanup) = common::sql::sqlite_file_pool(POOL).await;
        (pool, common::sql::unique_table(), cleanup)
    }

    async fn scan(pool: &SqlitePool, table: &str) -> Vec<(String, Option<String>)> {
        let sql = format!("SELECT id, owner FROM {table} ORDER BY id");
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .expect("scan")
    }

    /// SQLite locks the whole database for a writer: the move waits before its insert,
    /// and the end waits too, in either order.
    fn hold_row(table: &str) -> String {
        format!("UPDATE {table} SET version = version WHERE id = ?1")
    }

    async fn owner_indexes(pool: &SqlitePool, table: &str) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 \
             AND sql LIKE '%(owner)%' ORDER BY 1",
        )
        .bind(table)
        .fetch_all(pool)
        .await
        .expect("sqlite_master")
    }

    fn old_ddl(table: &str) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY NOT NULL, \
                 data BLOB NOT NULL, version INTEGER NOT NULL, expires_at INTEGER)"
            ),
            format!("CREATE INDEX {table}_expires_at ON {table} (expires_at)"),
        ]
    }

    fn insert_old(table: &str) -> String {
        format!("INSERT INTO {table} (id, data, version, expires_at) VALUES (?1, ?2, ?3, ?4)")
    }

    owner_tests!(SqliteStorage);
}
