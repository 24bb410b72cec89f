//! How many statements each session operation costs on the SQL storages, counted from the
//! statements sqlx logs: a read is one query, a save without conflict one statement, a
//! regenerate with delete one transaction.
//!
//! The storages are driven directly (`read`, then `save`), as the layer drives them for one
//! request. sqlx does not log every transaction marker: PostgreSQL's `BEGIN` and SQLite's
//! `BEGIN` and `COMMIT` run unlogged, so each database lists the ones it shows.
#![cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod common;

use std::future::Future;

use common::logs::Statements;
use common::scenarios::request;
use session_layer::{Session, SessionIndex, SessionStorage};

/// The statements since the last call, by their first word: what they are.
fn kinds() -> Vec<String> {
    Statements::take()
        .iter()
        .map(|sql| {
            let word = sql.split_whitespace().next().unwrap_or_default();
            word.to_ascii_uppercase()
        })
        .collect()
}

/// Runs each operation and checks the statements it ran. `fence` waits until the pool's
/// one connection has finished (and logged) everything before it. `moved` is what a
/// regenerate with delete logs on this database.
async fn count_round_trips<S, F, Fut>(storage: S, fence: F, moved: &[&str])
where
    S: SessionStorage,
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let set_n = |n: u64| move |s: &Session| s.set("n", n).unwrap();
    fence().await;
    kinds();

    let (_, cookie) = request(&storage, None, set_n(1)).await;
    fence().await;
    assert_eq!(kinds(), ["INSERT"], "a new session: one insert");

    let session = storage.read(cookie.as_deref()).await.expect("read");
    assert_eq!(session.get::<u64>("n"), Some(1));
    fence().await;
    assert_eq!(kinds(), ["SELECT"], "a read: one query");

    assert_eq!(storage.save(&session).await.expect("save"), None);
    fence().await;
    assert!(kinds().is_empty(), "an unchanged session saves nothing");

    let (_, cookie) = request(&storage, cookie.as_deref(), set_n(2)).await;
    fence().await;
    assert_eq!(
        kinds(),
        ["SELECT", "UPDATE"],
        "a read, then a save without conflict: one statement"
    );

    let (_, cookie) = request(&storage, cookie.as_deref(), |s| {
        s.regenerate_id(true).unwrap();
        s.set("user", "mj").unwrap();
    })
    .await;
    fence().await;
    assert_eq!(
        kinds(),
        moved,
        "a read, then a regenerate with delete: one transaction"
    );

    request(&storage, cookie.as_deref(), Session::destroy).await;
    fence().await;
    assert_eq!(
        kinds(),
        ["SELECT", "DELETE"],
        "a read, then a destroy: one delete"
    );
}

/// Runs each operation on an owned session and an owner's sessions and checks the
/// statements it ran: an owner costs a save nothing more, a listing is one query, ending
/// one session one `DELETE`, and all of them what `ended_all` says (one `DELETE`, after
/// the owner's lock on PostgreSQL, two on MySQL). `moved` is what a regenerate of an owned session logs.
async fn count_owner_round_trips<S, F, Fut>(
    storage: S,
    fence: F,
    moved: &[&str],
    ended_all: &[&str],
) where
    S: SessionIndex,
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    fence().await;
    kinds();

    let (_, cookie) = request(&storage, None, |s| {
        s.set_owner("ann").unwrap();
    })
    .await;
    fence().await;
    assert_eq!(kinds(), ["INSERT"], "a new owned session: one insert");

    let (_, cookie) = request(&storage, cookie.as_deref(), |s| s.set("n", 1).unwrap()).await;
    fence().await;
    assert_eq!(
        kinds(),
        ["SELECT", "UPDATE"],
        "a read, then a save of an owned session: one statement"
    );

    let (_, cookie) = request(&storage, cookie.as_deref(), |s| {
        s.set_owner("bob").unwrap();
    })
    .await;
    fence().await;
    assert_eq!(
        kinds(),
        ["SELECT", "UPDATE"],
        "an owner change: one statement"
    );

    let (_, cookie) = request(&storage, cookie.as_deref(), |s| {
        s.regenerate_id(true).unwrap();
    })
    .await;
    fence().await;
    assert_eq!(kinds(), moved, "a regenerate of an owned session");

    for _ in 0..3 {
        request(&storage, None, |s| s.set_owner("bob").unwrap()).await;
    }
    fence().await;
    kinds();
    let listed = storage.sessions_of("bob").await.expect("sessions_of");
    assert_eq!(listed.len(), 4);
    fence().await;
    assert_eq!(kinds(), ["SELECT"], "a listing: one query");

    let ended = storage.end_session("bob", &listed[0].handle).await;
    assert!(ended.expect("end_session"));
    fence().await;
    assert_eq!(kinds(), ["DELETE"], "ending one session: one delete");

    let this = storage.read(cookie.as_deref()).await.expect("read");
    fence().await;
    kinds();
    let ended = storage.end_sessions_of("bob", Some(&this)).await;
    assert_eq!(ended.expect("end_sessions_of"), 2);
    fence().await;
    assert_eq!(kinds(), ended_all, "ending all but this one");
}

/// The round-trip test of one database: `$storage` its storage, `$pool` an async expression
/// giving a pool of one connection, a table name and its cleanup.
macro_rules! round_trips {
    ($storage:ty, $pool:expr, moved: $moved:expr, owned_moved: $owned_moved:expr, ended_all: $ended_all:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn statements_per_operation() {
            let _serial = Statements::serial().lock().await;
            let (pool, table, _cleanup) = $pool.await;
            let storage = <$storage>::new(pool.clone()).table(&table);
            storage.migrate().await.expect("migrate");
            let fence = || {
                let pool = pool.clone();
                async move {
                    use sqlx::Connection as _;
                    let mut conn = pool.acquire().await.expect("the pool's connection");
                    conn.ping().await.expect("ping");
                }
            };
            count_round_trips(storage, fence, &$moved).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn statements_per_owner_operation() {
            let _serial = Statements::serial().lock().await;
            let (pool, table, _cleanup) = $pool.await;
            let storage = <$storage>::new(pool.clone()).table(&table);
            storage.migrate().await.expect("migrate");
            let fence = || {
                let pool = pool.clone();
                async move {
                    use sqlx::Connection as _;
                    let mut conn = pool.acquire().await.expect("the pool's connection");
                    conn.ping().await.expect("ping");
                }
            };
            count_owner_round_trips(storage, fence, &$owned_moved, &$ended_all).await;
        }
    };
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use common::sql::{Cleanup, Server};

    async fn pool() -> (sqlx::PgPool, String, Cleanup) {
        let (table, cleanup) = Cleanup::table(Server::Postgres).await;
        (common::sql::postgres_pool(1).await, table, cleanup)
    }

    // `BEGIN` is queued ahead of the INSERT and not logged.
    round_trips!(
        session_layer::PostgresStorage,
        pool(),
        moved: ["SELECT", "INSERT", "DELETE", "COMMIT"],
        owned_moved: ["SELECT", "SELECT", "INSERT", "DELETE", "COMMIT"],
        ended_all: ["SELECT", "DELETE", "COMMIT"]
    );
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use common::sql::{Cleanup, Server};

    async fn pool() -> (sqlx::MySqlPool, String, Cleanup) {
        let (table, cleanup) = Cleanup::table(Server::MySql).await;
        (common::sql::mysql_pool(1).await, table, cleanup)
    }

    round_trips!(
        session_layer::MySqlStorage,
        pool(),
        moved: ["SELECT", "BEGIN", "INSERT", "DELETE", "COMMIT"],
        owned_moved: ["SELECT", "BEGIN", "INSERT", "DELETE", "COMMIT"],
        // No DELETE ... RETURNING: the expired rows, then the rest, counted.
        ended_all: ["DELETE", "DELETE"]
    );
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use common::sql::Cleanup;

    async fn pool() -> (sqlx::SqlitePool, String, Cleanup) {
        let (pool, cleanup) = common::sql::sqlite_file_pool(1).await;
        (pool, common::sql::unique_table(), cleanup)
    }

    round_trips!(
        session_layer::SqliteStorage,
        pool(),
        moved: ["SELECT", "INSERT", "DELETE"],
        owned_moved: ["SELECT", "INSERT", "DELETE"],
        ended_all: ["DELETE"]
    );
}
