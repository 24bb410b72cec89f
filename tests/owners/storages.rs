//! Every scenario of `contract` on every storage that implements `SessionIndex`.

use std::path::Path;
use std::time::Duration;

use session_layer::{FsStorage, MemoryStorage};

use crate::contract::{Fixture, SHORT_TTL, TTL};

pub(crate) async fn memory(ttl: Duration) -> Fixture<MemoryStorage> {
    let storage = MemoryStorage::new().ttl(ttl);
    let (scanned, swept) = (storage.clone(), storage.clone());
    Fixture {
        storage,
        scan: Box::new(move || {
            let held = scanned.len();
            Box::pin(async move { vec!["a session".to_owned(); held] })
        }),
        sweep: Box::new(move || {
            swept.remove_expired();
            Box::pin(async {})
        }),
        keep: Box::new(()),
    }
}

pub(crate) async fn fs(ttl: Duration) -> Fixture<FsStorage> {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path()).unwrap().ttl(ttl);
    let (root, swept) = (dir.path().to_owned(), storage.clone());
    Fixture {
        storage,
        scan: Box::new(move || {
            let files = files_under(&root);
            Box::pin(async move { files })
        }),
        sweep: Box::new(move || {
            let swept = swept.clone();
            Box::pin(async move {
                swept.remove_expired().await.unwrap();
            })
        }),
        keep: Box::new(dir),
    }
}

/// Connections per pool of a SQL storage under test: fewer than the requests of the race.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
const POOL: u32 = 8;

/// A SQL storage on `pool` in `table`, migrated; its scan lists every row of the table as
/// its id and owner, and its sweep is `remove_expired`. `$row` is the SQL for a row's text.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
macro_rules! sql_fixture {
    ($storage:ty, $pool:expr, $table:expr, $keep:expr, ttl: $ttl:expr, row: $row:literal) => {{
        let (pool, table) = ($pool, $table);
        let storage = <$storage>::new(pool.clone()).table(&table).ttl($ttl);
        storage.migrate().await.expect("migrate");
        let swept = storage.clone();
        let scan = format!("SELECT {} FROM {table}", $row);
        Fixture {
            storage,
            scan: Box::new(move || {
                let (pool, scan) = (pool.clone(), scan.clone());
                Box::pin(async move {
                    sqlx::query_scalar(sqlx::AssertSqlSafe(scan))
                        .fetch_all(&pool)
                        .await
                        .expect("scan the table")
                })
            }),
            sweep: Box::new(move || {
                let swept = swept.clone();
                Box::pin(async move {
                    swept.remove_expired().await.expect("remove_expired");
                })
            }),
            keep: Box::new($keep),
        }
    }};
}

#[cfg(feature = "postgres")]
pub(crate) async fn postgres(ttl: Duration) -> Fixture<session_layer::PostgresStorage> {
    use crate::common::sql::{Cleanup, Server, postgres_pool};
    let (table, cleanup) = Cleanup::table(Server::Postgres).await;
    sql_fixture!(
        session_layer::PostgresStorage, postgres_pool(POOL).await, table, cleanup,
        ttl: ttl, row: "id || ' ' || coalesce(owner, '-')"
    )
}

#[cfg(feature = "mysql")]
pub(crate) async fn mysql(ttl: Duration) -> Fixture<session_layer::MySqlStorage> {
    use crate::common::sql::{Cleanup, Server, mysql_pool};
    let (table, cleanup) = Cleanup::table(Server::MySql).await;
    sql_fixture!(
        session_layer::MySqlStorage, mysql_pool(POOL).await, table, cleanup,
        ttl: ttl, row: "CONCAT(id, ' ', COALESCE(CAST(owner AS CHAR), '-'))"
    )
}

#[cfg(feature = "sqlite")]
pub(crate) async fn sqlite(ttl: Duration) -> Fixture<session_layer::SqliteStorage> {
    let (pool, cleanup) = crate::common::sql::sqlite_file_pool(POOL).await;
    sql_fixture!(
        session_layer::SqliteStorage, pool, "sessions".to_owned(), cleanup,
        ttl: ttl, row: "id || ' ' || coalesce(owner, '-')"
    )
}

/// A private Redis server per fixture, its keys under a prefix of their own.
#[cfg(feature = "redis")]
pub(crate) async fn redis(ttl: Duration) -> Fixture<session_layer::RedisStorage> {
    use crate::common::servers::{start_redis, unique_prefix};
    let server = start_redis();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let prefix = unique_prefix();
    let storage = session_layer::RedisStorage::connect(&url)
        .await
        .unwrap()
        .key_prefix(&prefix)
        .ttl(ttl);
    Fixture {
        storage,
        scan: Box::new(move || Box::pin(redis_keys(vec![url.clone()], prefix.clone()))),
        // Redis expires the sessions and their owners' sets by itself.
        sweep: Box::new(|| Box::pin(async {})),
        keep: Box::new(server),
    }
}

/// The write timeout of the Cluster fixture, short so that the entries' margin is.
#[cfg(feature = "redis")]
const CLUSTER_RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// A three-master Cluster shared by the fixtures alive at once (starting one takes a
/// second or two), each under a prefix of its own.
#[cfg(feature = "redis")]
pub(crate) async fn redis_cluster(ttl: Duration) -> Fixture<session_layer::RedisStorage> {
    use crate::common::redis_ha::RedisCluster;
    use crate::common::servers::unique_prefix;
    use session_layer::storage::NetworkOptions;
    let cluster = RedisCluster::shared();
    let urls = cluster.urls();
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    let prefix = unique_prefix();
    let options = NetworkOptions::new().response_timeout(CLUSTER_RESPONSE_TIMEOUT);
    let storage = session_layer::RedisStorage::connect_cluster_with(&nodes, options)
        .await
        .unwrap()
        .key_prefix(&prefix)
        .ttl(ttl);
    Fixture {
        storage,
        scan: Box::new(move || Box::pin(redis_keys(urls.clone(), prefix.clone()))),
        // A Cluster writes an entry before its record, on another node: the entry is scored
        // past the record's expiry by the write timeout and a second of clock skew, after
        // which Redis expires it by itself.
        sweep: Box::new(|| {
            Box::pin(tokio::time::sleep(
                CLUSTER_RESPONSE_TIMEOUT + Duration::from_secs(1),
            ))
        }),
        keep: Box::new(cluster),
    }
}

/// Every key under `prefix` on every server in `urls`, scanned.
#[cfg(feature = "redis")]
async fn redis_keys(urls: Vec<String>, prefix: String) -> Vec<String> {
    let mut keys = Vec::new();
    for url in urls {
        let client = ::redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut cursor = 0u64;
        loop {
            let (next, found): (u64, Vec<String>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.extend(found);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    keys.sort();
    keys
}

/// The files under `dir`, at any depth, by their path below it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    files
}

/// One test per scenario for the storage `$make` builds from a TTL.
macro_rules! contract_tests {
    ($make:expr; $($scenario:ident: $ttl:expr),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $scenario() {
            crate::contract::$scenario($make($ttl).await).await
        }
    )+};
}

/// Every scenario for every storage: `name: constructor;`.
macro_rules! index_suite {
    ($($(#[$attr:meta])* $storage:ident: $make:expr;)+) => {$(
        $(#[$attr])*
        mod $storage {
            use super::*;
            contract_tests! {$make;
                a_listing_shows_each_live_session_newest_save_first: TTL,
                ending_one_session_is_owner_checked: TTL,
                ending_all_sessions_or_all_but_this_one: TTL,
                the_listing_follows_regenerate_destroy_and_owner_changes: TTL,
                nothing_of_an_owner_outlives_its_expired_sessions: SHORT_TTL,
                a_request_in_flight_during_end_sessions_of_brings_nothing_back: TTL,
                no_session_survives_a_race_with_end_sessions_of: TTL,
            }
        }
    )+};
}

index_suite! {
    memory: memory;
    fs: fs;
    #[cfg(feature = "postgres")]
    postgres: postgres;
    #[cfg(feature = "mysql")]
    mysql: mysql;
    #[cfg(feature = "sqlite")]
    sqlite: sqlite;
    #[cfg(feature = "redis")]
    redis: redis;
    #[cfg(feature = "redis")]
    redis_cluster: redis_cluster;
}
