//! Every scenario on every storage, the checks' self-test, and storage-specific runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use session_layer::storage::{
    Expected, MemoryBackend, Record, ServerStorage, SessionBackend, SessionId, Versioned,
};
use session_layer::{CookieStorage, Error, FsStorage, MemoryStorage};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::backend;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
use crate::common::sql;
use crate::harness::*;
use crate::scenarios::*;
use http::StatusCode;

/// Idle TTL of every storage under test: long enough never to expire during a run.
const TTL: Duration = Duration::from_secs(600);

pub(crate) async fn memory() -> Fixture<MemoryStorage> {
    Fixture::server(MemoryStorage::new().ttl(TTL), ())
}

pub(crate) async fn fs() -> Fixture<FsStorage> {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path()).unwrap().ttl(TTL);
    Fixture::server(storage, dir)
}

pub(crate) async fn cookie_signed() -> Fixture<CookieStorage> {
    Fixture {
        storage: CookieStorage::new().ttl(TTL),
        server_side: false,
        encrypted: false,
        keep: Box::new(()),
    }
}

pub(crate) async fn cookie_encrypted() -> Fixture<CookieStorage> {
    Fixture {
        encrypted: true,
        ..cookie_signed().await
    }
}

#[cfg(feature = "redis")]
pub(crate) async fn redis() -> Fixture<session_layer::RedisStorage> {
    let server = crate::common::servers::start_redis();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let storage = session_layer::RedisStorage::connect(&url)
        .await
        .expect("connect to the private redis-server")
        .key_prefix(&crate::common::servers::unique_prefix())
        .ttl(TTL);
    Fixture::server(storage, server)
}

#[cfg(feature = "memcache")]
pub(crate) async fn memcached() -> Fixture<session_layer::MemcacheStorage> {
    let server = crate::common::servers::start_memcached();
    let storage = session_layer::MemcacheStorage::connect(&format!("127.0.0.1:{}", server.port))
        .await
        .expect("connect to the private memcached")
        .ttl(TTL);
    Fixture::server(storage, server)
}

/// The custom backend example (redb) on a file of its own.
pub(crate) async fn custom_backend() -> Fixture<backend::RedbStorage> {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::RedbBackend::open(dir.path().join("sessions.redb")).unwrap();
    Fixture::server(backend::RedbStorage::with_backend(db).ttl(TTL), dir)
}

/// Connections per pool of a SQL storage under test: far fewer than the requests at once,
/// as in production.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
const POOL: u32 = 8;

/// A SQL storage in a migrated table of its own, which `cleanup` removes after the scenario.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
macro_rules! sql_fixture {
    ($storage:ty, $pool:expr, $table:expr, $cleanup:expr) => {{
        let storage = <$storage>::new($pool).table($table).ttl(TTL);
        storage.migrate().await.expect("migrate");
        Fixture::server(storage, $cleanup)
    }};
}

#[cfg(feature = "postgres")]
pub(crate) async fn postgres() -> Fixture<session_layer::PostgresStorage> {
    let (table, cleanup) = sql::Cleanup::table(sql::Server::Postgres).await;
    let pool = sql::postgres_pool(POOL).await;
    sql_fixture!(session_layer::PostgresStorage, pool, &table, cleanup)
}

#[cfg(feature = "mysql")]
pub(crate) async fn mysql() -> Fixture<session_layer::MySqlStorage> {
    let (table, cleanup) = sql::Cleanup::table(sql::Server::MySql).await;
    let pool = sql::mysql_pool(POOL).await;
    sql_fixture!(session_layer::MySqlStorage, pool, &table, cleanup)
}

#[cfg(feature = "sqlite")]
pub(crate) async fn sqlite_file() -> Fixture<session_layer::SqliteStorage> {
    let (pool, cleanup) = sql::sqlite_file_pool(POOL).await;
    sql_fixture!(session_layer::SqliteStorage, pool, "sessions", cleanup)
}

#[cfg(feature = "sqlite")]
pub(crate) async fn sqlite_memory() -> Fixture<session_layer::SqliteStorage> {
    let pool = sql::sqlite_memory_pool().await;
    sql_fixture!(session_layer::SqliteStorage, pool, "sessions", ())
}

/// Calls `$m!` with `$args` followed by the name of every scenario, so that the list is
/// written once.
macro_rules! with_every_scenario {
    ($m:ident!($($args:tt)*)) => {
        $m! {$($args)*
            many_requests_on_one_session,
            many_sessions_in_parallel,
            cancelled_requests_leave_whole_records,
            destroy_races_writers,
            regenerate_races_writers,
            concurrent_changes_merge,
            read_only_request_saves_nothing,
            rolling_read_only_request_keeps_changes,
            destroy_then_late_writer,
            writer_then_late_destroy,
            regenerate_then_late_writer,
            flash_seen_by_every_overlapping_request,
            concurrent_updates_are_never_lost,
            an_unset_key_never_comes_back,
            a_newer_flash_survives,
            an_owner_change_merges,
        }
    };
}

/// One test per scenario for the storage `$make` builds.
macro_rules! scenario_tests {
    ($make:expr; $($scenario:ident),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $scenario() {
            within(concat!(module_path!(), "::", stringify!($scenario)), async {
                crate::scenarios::$scenario($make.await).await
            })
            .await
        }
    )+};
}

/// Every scenario for every storage: `name: constructor;`.
macro_rules! concurrency_suite {
    ($($(#[$attr:meta])* $storage:ident: $make:expr;)+) => {$(
        $(#[$attr])*
        mod $storage {
            use super::*;
            with_every_scenario!(scenario_tests!($make;));
        }
    )+};
}

concurrency_suite! {
    memory: memory();
    fs: fs();
    cookie_signed: cookie_signed();
    cookie_encrypted: cookie_encrypted();
    #[cfg(feature = "redis")]
    redis: redis();
    #[cfg(feature = "memcache")]
    memcached: memcached();
    custom_backend: custom_backend();
    #[cfg(feature = "postgres")]
    postgres: postgres();
    #[cfg(feature = "mysql")]
    mysql: mysql();
    #[cfg(feature = "sqlite")]
    sqlite_file: sqlite_file();
    #[cfg(feature = "sqlite")]
    sqlite_memory: sqlite_memory();
}

/// The model-based test on every server-side storage: `name: constructor => check;`, the
/// check with owners' sessions ended where the storage implements `SessionIndex`.
macro_rules! model_tests {
    ($($(#[$attr:meta])* $storage:ident: $make:expr => $check:ident;)+) => {$(
        $(#[$attr])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $storage() {
            crate::model::$check($make.await, stringify!($storage)).await
        }
    )+};
}

mod model {
    model_tests! {
        memory: super::memory() => random_interleavings_with_ends;
        fs: super::fs() => random_interleavings_with_ends;
        #[cfg(feature = "redis")]
        redis: super::redis() => random_interleavings_with_ends;
        #[cfg(feature = "memcache")]
        memcached: super::memcached() => random_interleavings;
        custom_backend: super::custom_backend() => random_interleavings;
        #[cfg(feature = "postgres")]
        postgres: super::postgres() => random_interleavings_with_ends;
        #[cfg(feature = "mysql")]
        mysql: super::mysql() => random_interleavings_with_ends;
        #[cfg(feature = "sqlite")]
        sqlite_file: super::sqlite_file() => random_interleavings_with_ends;
        #[cfg(feature = "sqlite")]
        sqlite_memory: super::sqlite_memory() => random_interleavings_with_ends;
    }
}

/// Every scenario on one private three-node Redis Cluster (started once: it takes a second
/// or two), each with a key prefix of its own.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_all_scenarios() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| crate::common::redis_ha::RedisCluster::start(3, 0))
            .await
            .unwrap(),
    );
    let make = || {
        let cluster = Arc::clone(&cluster);
        async move {
            let urls = cluster.urls();
            let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
            let storage = session_layer::RedisStorage::connect_cluster(&urls)
                .await
                .expect("connect to the private cluster")
                .key_prefix(&crate::common::servers::unique_prefix())
                .ttl(TTL);
            Fixture::server(storage, cluster)
        }
    };
    macro_rules! run {
        ($($scenario:ident,)+) => {$(
            within(concat!("redis_cluster::", stringify!($scenario)), $scenario(make().await)).await;
        )+};
    }
    with_every_scenario!(run!());
    crate::model::random_interleavings_with_ends(make().await, "redis_cluster").await;
}

// --- the checks can fail ----------------------------------------------------------------------

/// A broken store for the self-test below: it writes every field of a record but `c`, which
/// keeps its first value, as a store that writes a record piecemeal and loses a piece would.
#[derive(Clone, Default)]
struct LosesAField(MemoryBackend);

impl SessionBackend for LosesAField {
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
        self.0.load(id).await
    }

    async fn store(
        &self,
        id: &SessionId,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        let mut record = record.clone();
        if let Some(old) = self.0.load(id).await?
            && let Some(c) = old.record.data.values.get("c")
        {
            record.data.values.insert("c".into(), c.clone());
        }
        self.0.store(id, &record, ttl, expected).await
    }

    async fn delete(&self, id: &SessionId, expected: Expected) -> Result<bool, Error> {
        self.0.delete(id, expected).await
    }
}

/// The torn-data check is not vacuous: on a store that tears records, the one-session
/// scenario fails, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_torn_data_check_catches_a_store_that_tears_records() {
    let fixture = Fixture::server(ServerStorage::with_backend(LosesAField::default()), ());
    let failed = tokio::spawn(many_requests_on_one_session(fixture))
        .await
        .expect_err("the scenario must fail on a tearing store");
    let message = failed.into_panic();
    let message = message
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(message.contains("torn: a = "), "{message}");
}

// --- storage-specific -------------------------------------------------------------------------

/// `FsStorage::remove_expired` while requests write: every sweep succeeds (temporary files
/// come and go under it), removes nothing that is not stale, every request is answered 200
/// and every session keeps its exact count. Each session file is made two hours old after
/// each request, so that the old file a rewrite swaps out is a stale temporary file that a
/// sweep may remove first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_sweeps_while_requests_write() {
    const SWEPT_SESSIONS: usize = 64;
    const REQUESTS: u64 = 25;
    within("fs_sweeps_while_requests_write", async {
        let h = Harness::new(fs().await);
        let mut running = JoinSet::new();
        for s in 0..SWEPT_SESSIONS {
            let app = h.app.clone();
            let dir = h.layer.storage().dir().to_owned();
            let cookie_value = {
                let cookie = h.layer.cookie().clone();
                move |pair: &str| cookie.parse(Some(pair)).unwrap()
            };
            running.spawn(async move {
                let owner = format!("s{s}");
                let mut cookie: Option<String> = None;
                for r in 1..=REQUESTS {
                    let answer = send(app.clone(), cookie.clone(), format!("/count/{owner}")).await;
                    assert_eq!(answer.status, StatusCode::OK, "{owner} request {r}");
                    let pair = answer.pair();
                    let id = cookie_value(&pair);
                    let digest = session_layer::storage::id_digest(&id);
                    let path = dir.join(&digest[..2]).join(&digest[2..]);
                    let file = std::fs::File::options().write(true).open(&path).unwrap();
                    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
                        .unwrap();
                    cookie = Some(pair);
                }
                (owner, cookie.unwrap())
            });
        }
        let (mut sweeps, mut stale) = (0, 0);
        let mut failed = Vec::new();
        while !running.is_empty() {
            match h.layer.storage().remove_expired().await {
                Ok(removed) => stale += removed,
                Err(e) => failed.push(e.to_string()),
            }
            sweeps += 1;
            while let Some(joined) = running.try_join_next() {
                let (owner, cookie) = joined.expect("no panic");
                let stored = h.stored(&cookie).await;
                assert_eq!(
                    Value::Object(stored.data().values),
                    json!({"n": REQUESTS, "owner": owner})
                );
            }
        }
        assert!(
            failed.is_empty(),
            "{} of {sweeps} sweeps failed while requests wrote, first: {}",
            failed.len(),
            failed[0]
        );
        eprintln!(
            "  {sweeps} sweeps while {SWEPT_SESSIONS} sessions wrote {REQUESTS} times each; \
             {stale} stale temporary files removed"
        );
    })
    .await
}

/// A memory backend whose next `load` waits at a gate.
#[derive(Clone, Default)]
struct GatedLoad {
    inner: MemoryBackend,
    gate: Arc<Mutex<Option<Gate>>>,
}

impl SessionBackend for GatedLoad {
    /// Loads, then waits at the gate (once) before answering.
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
        let record = self.inner.load(id).await?;
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            let _ = gate.loaded.send(());
            gate.go.await.expect("the test opens the gate");
        }
        Ok(record)
    }

    async fn store(
        &self,
        id: &SessionId,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        self.inner.store(id, record, ttl, expected).await
    }

    async fn delete(&self, id: &SessionId, expected: Expected) -> Result<bool, Error> {
        self.inner.delete(id, expected).await
    }
}

/// At the expiry boundary a read-only request must not delete a session that another
/// request has just saved. R1 loads the session just before it expires; R2 arrives just
/// after and finds it expired; R1 saves (with a fresh TTL) while R2 is between its load and
/// its answer. R2 changed nothing, so the session R1 saved must still be there. (Reading an
/// expired record used to delete it, which logged the user out here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_read_keeps_a_concurrent_save() {
    within("expired_read_keeps_a_concurrent_save", async {
        const SHORT_TTL: Duration = Duration::from_millis(1000);
        let backend = GatedLoad::default();
        let storage = ServerStorage::with_backend(backend.clone()).ttl(SHORT_TTL);
        let h = Harness::new(Fixture::server(storage, ()));
        let (cookie, _) = h.seed().await;
        let id = h.stored(&cookie).await.id();
        let r1 = h.start_gated(&cookie, "R1", "x").await; // loaded while live
        tokio::time::sleep(SHORT_TTL + Duration::from_millis(200)).await;
        let (reached, mut load_reached) = oneshot::channel();
        let (open, go) = oneshot::channel();
        *backend.gate.lock().unwrap() = Some(Gate {
            loaded: reached,
            go,
        });
        let r2 = h.spawn(Some(&cookie), "/show"); // finds it expired
        (&mut load_reached)
            .await
            .expect("R2 loads the expired record");
        let r1 = r1.finish().await; // saves with a fresh TTL
        assert_eq!(
            h.value(&r1.pair()),
            h.value(&cookie),
            "R1 keeps the session"
        );
        open.send(()).unwrap();
        let r2 = r2.await.expect("no panic");
        assert_eq!(r2.status, StatusCode::OK);
        assert!(
            !h.is_gone(&cookie, &id).await,
            "the session R1 just saved was deleted by a request that changed nothing"
        );
    })
    .await
}
