//! Every scenario of `contract` on every server-side storage, and on a custom backend that
//! keeps the default `renew`.

use std::time::Duration;

use session_layer::storage::{MemoryBackend, ServerStorage};
use session_layer::{FsStorage, MemoryStorage};

use crate::common::required_only::RequiredOnly;
use crate::contract::Fixture;

pub(crate) async fn memory(ttl: Duration) -> Fixture<MemoryBackend> {
    Fixture {
        storage: MemoryStorage::new().ttl(ttl),
        in_place: true,
        keep: Box::new(()),
    }
}

pub(crate) async fn fs(ttl: Duration) -> Fixture<session_layer::FsBackend> {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        storage: FsStorage::new(dir.path()).unwrap().ttl(ttl),
        in_place: true,
        keep: Box::new(dir),
    }
}

/// A custom backend that implements only load, store and delete: `renew` is the default.
pub(crate) async fn custom(ttl: Duration) -> Fixture<RequiredOnly> {
    Fixture {
        storage: ServerStorage::with_backend(RequiredOnly::default()).ttl(ttl),
        in_place: false,
        keep: Box::new(()),
    }
}

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
macro_rules! sql_fixture {
    ($storage:ty, $pool:expr, $table:expr, $keep:expr, $ttl:expr) => {{
        let table: String = $table;
        let storage = <$storage>::new($pool).table(&table).ttl($ttl);
        storage.migrate().await.expect("migrate");
        Fixture {
            storage,
            in_place: true,
            keep: Box::new($keep),
        }
    }};
}

#[cfg(feature = "postgres")]
pub(crate) async fn postgres(ttl: Duration) -> Fixture<session_layer::PostgresBackend> {
    use crate::common::sql::{Cleanup, Server, postgres_pool};
    let (table, cleanup) = Cleanup::table(Server::Postgres).await;
    sql_fixture!(
        session_layer::PostgresStorage,
        postgres_pool(8).await,
        table,
        cleanup,
        ttl
    )
}

#[cfg(feature = "mysql")]
pub(crate) async fn mysql(ttl: Duration) -> Fixture<session_layer::MySqlBackend> {
    use crate::common::sql::{Cleanup, Server, mysql_pool};
    let (table, cleanup) = Cleanup::table(Server::MySql).await;
    sql_fixture!(
        session_layer::MySqlStorage,
        mysql_pool(8).await,
        table,
        cleanup,
        ttl
    )
}

#[cfg(feature = "sqlite")]
pub(crate) async fn sqlite(ttl: Duration) -> Fixture<session_layer::SqliteBackend> {
    let (pool, cleanup) = crate::common::sql::sqlite_file_pool(8).await;
    sql_fixture!(
        session_layer::SqliteStorage,
        pool,
        "sessions".to_owned(),
        cleanup,
        ttl
    )
}

#[cfg(feature = "redis")]
pub(crate) async fn redis(ttl: Duration) -> Fixture<session_layer::RedisBackend> {
    use crate::common::servers::{start_redis, unique_prefix};
    let server = start_redis();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let storage = session_layer::RedisStorage::connect(&url)
        .await
        .unwrap()
        .key_prefix(&unique_prefix())
        .ttl(ttl);
    Fixture {
        storage,
        in_place: true,
        keep: Box::new(server),
    }
}

/// A three-master Cluster shared by the fixtures alive at once, each under its own prefix.
#[cfg(feature = "redis")]
pub(crate) async fn redis_cluster(ttl: Duration) -> Fixture<session_layer::RedisBackend> {
    use crate::common::redis_ha::RedisCluster;
    use crate::common::servers::unique_prefix;
    let cluster = RedisCluster::shared();
    let urls = cluster.urls();
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    let storage = session_layer::RedisStorage::connect_cluster(&nodes)
        .await
        .unwrap()
        .key_prefix(&unique_prefix())
        .ttl(ttl);
    Fixture {
        storage,
        in_place: true,
        keep: Box::new(cluster),
    }
}

#[cfg(feature = "memcache")]
pub(crate) async fn memcache(ttl: Duration) -> Fixture<session_layer::storage::MemcacheBackend> {
    let server = crate::common::servers::start_memcached();
    let addr = format!("127.0.0.1:{}", server.port);
    let storage = session_layer::MemcacheStorage::connect(&addr)
        .await
        .unwrap()
        .ttl(ttl);
    Fixture {
        storage,
        // Memcached's `touch` cannot move the expiry inside the record: the default.
        in_place: false,
        keep: Box::new(server),
    }
}

/// One test per scenario for the storage `$make` builds from a TTL.
macro_rules! scenario_tests {
    ($make:expr; $($scenario:ident: $ttl:expr),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $scenario() {
            crate::contract::$scenario($make($ttl).await).await
        }
    )+};
}

/// The scenarios every storage runs: `name: constructor;`.
macro_rules! renewal_suite {
    ($($(#[$attr:meta])* $storage:ident: $make:expr, index: $index:tt;)+) => {$(
        $(#[$attr])*
        mod $storage {
            use super::*;
            #[allow(unused_imports)] // OWNED_TTL: only the storages with an index use it
            use crate::contract::{OWNED_TTL, SHORT_TTL, TTL};
            scenario_tests! {$make;
                a_renewal_moves_the_expiry_without_rewriting: SHORT_TTL,
                a_renewal_after_a_destroy_brings_nothing_back: TTL,
                a_renewal_after_the_expiry_brings_nothing_back: SHORT_TTL,
                renewals_racing_writes_lose_no_write: TTL,
                a_change_is_written_not_renewed: TTL,
            }
            renewal_suite!(@index $index $make);
        }
    )+};
    (@index yes $make:expr) => {
        scenario_tests! {$make;
            a_renewed_owned_session_stays_listed_and_ended: OWNED_TTL,
            a_renewal_after_end_sessions_of_brings_nothing_back: TTL,
        }
    };
    (@index no $make:expr) => {};
}

renewal_suite! {
    memory: memory, index: yes;
    fs: fs, index: yes;
    custom: custom, index: no;
    #[cfg(feature = "postgres")]
    postgres: postgres, index: yes;
    #[cfg(feature = "mysql")]
    mysql: mysql, index: yes;
    #[cfg(feature = "sqlite")]
    sqlite: sqlite, index: yes;
    #[cfg(feature = "redis")]
    redis: redis, index: yes;
    #[cfg(feature = "redis")]
    redis_cluster: redis_cluster, index: yes;
    #[cfg(feature = "memcache")]
    memcache: memcache, index: no;
}
