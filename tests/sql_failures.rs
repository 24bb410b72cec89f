//! SQL storages when the database fails: an unreachable server, one that goes away and comes
//! back, one that stops answering, and a pool with no free connection. Every request ends
//! with a bare 500 within the pool's acquire timeout, never a hang, and the layer recovers
//! by itself once the database answers again.
//!
//! A TCP proxy in front of the test server plays the failures; each test prints what it
//! measured (`--nocapture`).
#![cfg(all(feature = "axum", any(feature = "postgres", feature = "mysql")))]
mod common;

use std::time::{Duration, Instant};

use common::app::{app, send};
use common::proxy::{Mode, Proxy};
use common::sql::{Cleanup, Server};
use http::StatusCode;

/// The pools' acquire timeout: what bounds a request while the database is away.
const ACQUIRE: Duration = Duration::from_millis(1000);
/// What a request may take beyond the acquire timeout on a loaded test machine.
const SLACK: Duration = Duration::from_millis(1500);
/// How long each test keeps the database away.
const DOWN: Duration = Duration::from_millis(1500);

/// Sends one GET, failing the test if it is not answered within the bound: a hang fails
/// rather than waits.
async fn send_within(
    app: &axum::Router,
    cookie: Option<&str>,
) -> (StatusCode, Option<String>, String, Duration) {
    let sent = Instant::now();
    let answer = tokio::time::timeout(ACQUIRE + SLACK, send(app, cookie, "/"))
        .await
        .unwrap_or_else(|_| panic!("no answer within {:?}: a hang", ACQUIRE + SLACK));
    (answer.0, answer.1, answer.2, sent.elapsed())
}

/// Sends `/` until the answer is `want`, failing on any other status or on a request that
/// takes longer than the bound: how long it took from `since`, and the last answer.
async fn until(
    app: &axum::Router,
    cookie: Option<&str>,
    want: StatusCode,
    since: Instant,
) -> (Duration, Option<String>, String) {
    loop {
        let (status, pair, body, _) = send_within(app, cookie).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::INTERNAL_SERVER_ERROR,
            "{status}"
        );
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            assert_eq!(body, "", "a bare 500");
            assert_eq!(pair, None, "no cookie with a 500");
        }
        if status == want {
            return (since.elapsed(), pair, body);
        }
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "no {want} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `/` for [`DOWN`]: every answer a bare 500 within the bound.
async fn all_fail_while_down(app: &axum::Router, cookie: &str) -> usize {
    let start = Instant::now();
    let mut failed = 0;
    while start.elapsed() < DOWN {
        let (status, pair, body, _) = send_within(app, Some(cookie)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "while down");
        assert_eq!((pair, body.as_str()), (None, ""), "a bare 500");
        failed += 1;
    }
    failed
}

/// The failure tests of one server-side database: `$storage` its storage type, `$db` its
/// sqlx database, `$options` its connect options, `$url` and `$server` from `common::sql`.
macro_rules! failure_tests {
    ($storage:ty, $db:ty, $options:ty, $url:path, $server:expr) => {
        use super::*;

        /// A migrated table of the test's own, on the server itself.
        async fn table() -> (String, Cleanup) {
            let (table, cleanup) = Cleanup::table($server).await;
            let pool = sqlx::pool::PoolOptions::<$db>::new()
                .max_connections(1)
                .connect(&$url())
                .await
                .expect("the test server");
            let storage = <$storage>::new(pool).table(&table);
            storage.migrate().await.expect("migrate");
            (table, cleanup)
        }

        /// The test server's address, for the proxy.
        async fn upstream() -> std::net::SocketAddr {
            let options: $options = $url().parse().expect("a database URL");
            tokio::net::lookup_host((options.get_host(), options.get_port()))
                .await
                .ok()
                .and_then(|mut found| found.next())
                .expect("resolve the test server")
        }

        /// A storage on `table` through 127.0.0.1:`port`, with a lazy pool of `max`
        /// connections.
        fn storage_via(table: &str, port: u16, max: u32) -> $storage {
            let options: $options = $url().parse().expect("a database URL");
            let pool = sqlx::pool::PoolOptions::<$db>::new()
                .max_connections(max)
                .acquire_timeout(ACQUIRE)
                .connect_lazy_with(options.host("127.0.0.1").port(port));
            <$storage>::new(pool).table(table)
        }

        /// Nothing listens where the pool points: every request is a bare 500 once the
        /// pool has retried the refused connection for its acquire timeout.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn unreachable_database_answers_500_within_the_acquire_timeout() {
            let (table, _cleanup) = table().await;
            let port = common::servers::free_port();
            let app = app(storage_via(&table, port, 4));
            for cookie in [None, Some("__session=not-a-session")] {
                let (status, pair, body, took) = send_within(&app, cookie).await;
                assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
                assert_eq!((pair, body.as_str()), (None, ""), "a bare 500");
                eprintln!("unreachable: a bare 500 after {took:?} (acquire timeout {ACQUIRE:?})");
            }
        }

        /// The server goes away (its connections reset, new ones refused) and comes back:
        /// 500s at once, then the next request after its return succeeds, on the same
        /// session, with no restart.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn database_that_goes_away_and_comes_back_recovers() {
            let (table, _cleanup) = table().await;
            let proxy = Proxy::start(upstream().await);
            let app = app(storage_via(&table, proxy.port, 4));
            let (status, pair, body) = send(&app, None, "/").await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
            let cookie = pair.expect("a session cookie");

            proxy.set(Mode::Cut);
            let (first_500, _, _) = until(
                &app,
                Some(&cookie),
                StatusCode::INTERNAL_SERVER_ERROR,
                Instant::now(),
            )
            .await;
            let failed = all_fail_while_down(&app, &cookie).await;
            proxy.set(Mode::Pass);
            let (recovered, _, body) =
                until(&app, Some(&cookie), StatusCode::OK, Instant::now()).await;
            assert_eq!(
                body, "2",
                "the session survived, and no failed request saved"
            );
            eprintln!(
                "went away: first 500 after {first_500:?}, {failed} bare 500s in {DOWN:?}; \
                 back: first success after {recovered:?}"
            );
        }

        /// The network stops carrying anything (the proxy holds every connection and
        /// forwards nothing): requests end in a bare 500 at the acquire timeout, then
        /// recover once it carries again.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn stalled_database_answers_500_within_the_acquire_timeout() {
            let (table, _cleanup) = table().await;
            let proxy = Proxy::start(upstream().await);
            let app = app(storage_via(&table, proxy.port, 4));
            let (status, pair, _) = send(&app, None, "/").await;
            assert_eq!(status, StatusCode::OK);
            let cookie = pair.expect("a session cookie");

            proxy.set(Mode::Stall);
            let (first_500, _, _) = until(
                &app,
                Some(&cookie),
                StatusCode::INTERNAL_SERVER_ERROR,
                Instant::now(),
            )
            .await;
            assert!(first_500 >= ACQUIRE, "{first_500:?}: the pool waited");
            proxy.set(Mode::Pass);
            let (recovered, _, body) =
                until(&app, Some(&cookie), StatusCode::OK, Instant::now()).await;
            assert_eq!(body, "2");
            eprintln!(
                "stalled: first 500 after {first_500:?}; carrying again: first success after \
                 {recovered:?}"
            );
        }

        /// Every connection of the pool is taken: a request waits the acquire timeout,
        /// answers a bare 500, and the next one after a connection is free succeeds.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn exhausted_pool_answers_500_after_the_acquire_timeout() {
            let (table, _cleanup) = table().await;
            let options: $options = $url().parse().expect("a database URL");
            let pool = sqlx::pool::PoolOptions::<$db>::new()
                .max_connections(1)
                .acquire_timeout(ACQUIRE)
                .connect_with(options)
                .await
                .expect("the test server");
            let app = app(<$storage>::new(pool.clone()).table(&table));
            let held = pool.acquire().await.expect("the one connection");
            let (status, pair, body, took) = send_within(&app, None).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!((pair, body.as_str()), (None, ""), "a bare 500");
            assert!(took >= ACQUIRE, "took {took:?}: it waited for a connection");
            drop(held);
            let (status, _, body) = send(&app, None, "/").await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
            eprintln!(
                "exhausted pool: a bare 500 after {took:?}, then 200 once a connection was free"
            );
        }
    };
}

#[cfg(feature = "postgres")]
mod postgres {
    failure_tests!(
        session_layer::PostgresStorage,
        sqlx::Postgres,
        sqlx::postgres::PgConnectOptions,
        common::sql::postgres_url,
        Server::Postgres
    );
}

#[cfg(feature = "mysql")]
mod mysql {
    failure_tests!(
        session_layer::MySqlStorage,
        sqlx::MySql,
        sqlx::mysql::MySqlConnectOptions,
        common::sql::mysql_url,
        Server::MySql
    );
}
