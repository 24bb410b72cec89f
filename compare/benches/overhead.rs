//! Per-request overhead of session-layer and tower-sessions, side by side: an axum Router
//! with the session layer minus the same Router without it, in-process (no sockets).
//!
//! ```sh
//! cargo bench -p session-layer-compare --bench overhead   # REDIS_URL, default 127.0.0.1:6379
//! cargo bench -p session-layer-compare --bench overhead -- 'postgres|sqlite'   # DATABASE_URL
//! scripts/bench-table                                      # medians, overheads and ratios
//! scripts/bench-chart > docs/benchmarks.svg                # the same, as a chart
//! ```
//!
//! Each group holds the bare Router (`baseline`), `session_layer` and, where tower-sessions
//! has the same backend, `tower_sessions`. Both crates sign their cookies; both run the
//! same handler on one session that the benchmark seeds first.

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::{MethodRouter, get};
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use http::{Request, header};
use session_layer::{
    CookieStorage, FsStorage, MemoryStorage, PostgresStorage, RedisStorage, SqliteStorage,
};
use session_layer_compare::{bare, cookie_store, ours, peer, peer_014, untouched};
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// Sends one GET to `app`, with `cookie` as the `Cookie` header.
async fn request(app: &Router, path: &str, cookie: Option<&str>) -> http::Response<Body> {
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
    }
    let response = app.clone().oneshot(request).await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response
}

/// The `name=value` of the cookie a seeding request sets.
fn seed(rt: &Runtime, app: &Router) -> String {
    let response = rt.block_on(request(app, "/seed", None));
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

/// Benchmarks `app` under `name`, each request with `cookie` as its `Cookie` header.
fn bench_app(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    app: &Router,
    cookie: Option<&str>,
) {
    // One runtime runs the whole measured loop, as in a server: the clients' background
    // tasks (Redis connection drivers) keep running between requests.
    group.bench_function(name, |b| {
        b.to_async(rt)
            .iter(|| async { black_box(request(app, "/", cookie).await) })
    });
}

/// One case: the bare Router, then each crate's app, each app with a session it seeded
/// first unless `fresh`.
///
/// The bare Router gets the same request as the apps, `Cookie` header included (ours, when
/// not `fresh`): building and dropping a request's headers is the client's and the HTTP
/// server's work, done whether or not a session layer runs, so it is no part of the
/// layer's overhead.
fn case(c: &mut Criterion, rt: &Runtime, case: &str, fresh: bool, apps: Vec<(&str, Router)>) {
    let cookies: Vec<Option<String>> = apps
        .iter()
        .map(|(_, app)| (!fresh).then(|| seed(rt, app)))
        .collect();
    let mut group = c.benchmark_group(case);
    bench_app(&mut group, rt, "baseline", &bare(), cookies[0].as_deref());
    for ((name, app), cookie) in apps.iter().zip(&cookies) {
        bench_app(&mut group, rt, name, app, cookie.as_deref());
    }
    group.finish();
}

fn handlers(read_write: bool) -> (MethodRouter, MethodRouter) {
    if read_write {
        (get(ours::read_write), get(peer::read_write))
    } else {
        (get(ours::read_only), get(peer::read_only))
    }
}

fn benches(c: &mut Criterion) {
    // With the feature `metrics`, the session metrics go to a real recorder.
    #[cfg(feature = "metrics")]
    let _ = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let memory = |read_write| {
        let (ours_handler, peer_handler) = handlers(read_write);
        vec![
            (
                "session_layer",
                ours::app(MemoryStorage::new(), false, ours_handler),
            ),
            (
                "tower_sessions",
                peer::app(tower_sessions::MemoryStore::default(), peer_handler),
            ),
        ]
    };
    case(c, &rt, "memory_read_write", false, memory(true));
    case(c, &rt, "memory_read_only", false, memory(false));
    case(
        c,
        &rt,
        "no_cookie_untouched",
        true,
        vec![
            (
                "session_layer",
                ours::app(MemoryStorage::new(), false, get(untouched)),
            ),
            (
                "tower_sessions",
                peer::app(tower_sessions::MemoryStore::default(), get(untouched)),
            ),
        ],
    );
    for (case_name, encrypted) in [
        ("cookie_signed_read_write", false),
        ("cookie_encrypted_read_write", true),
    ] {
        // tower-sessions-cookie-store: the peer that keeps the session in the cookie too.
        case(
            c,
            &rt,
            case_name,
            false,
            vec![
                (
                    "session_layer",
                    ours::app(CookieStorage::new(), encrypted, get(ours::read_write)),
                ),
                (
                    "tower_sessions",
                    cookie_store::app(encrypted, get(peer_014::read_write)),
                ),
            ],
        );
    }

    let dir = tempfile::tempdir().unwrap();
    case(
        c,
        &rt,
        "fs_read_write",
        false,
        vec![
            (
                "session_layer",
                ours::app(
                    FsStorage::new(dir.path().join("ours")).unwrap(),
                    false,
                    get(ours::read_write),
                ),
            ),
            (
                "tower_sessions",
                peer::app(
                    tower_sessions_file_store::FileSessionStorage::new_in_folder(
                        dir.path().join("peer"),
                    ),
                    get(peer::read_write),
                ),
            ),
        ],
    );

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let redis = rt.block_on(async {
        let ours = RedisStorage::connect(&url).await?.key_prefix("bench:ours:");
        Ok::<_, Box<dyn std::error::Error>>(ours)
    });
    match redis {
        Ok(storage) => {
            use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
            let pool = rt.block_on(async {
                let pool = Pool::new(Config::from_url(&url).unwrap(), None, None, None, 1).unwrap();
                pool.init().await.unwrap();
                pool
            });
            case(
                c,
                &rt,
                "redis_read_write",
                false,
                vec![
                    (
                        "session_layer",
                        ours::app(storage, false, get(ours::read_write)),
                    ),
                    (
                        "tower_sessions",
                        peer_014::app(
                            tower_sessions_redis_store::RedisStore::new(pool),
                            get(peer_014::read_write),
                        ),
                    ),
                ],
            );
        }
        Err(e) => eprintln!("skipping redis_read_write: no Redis at {url}: {e}"),
    }
}

/// tower-sessions' default expiry, which its SQL stores write on every save: session-layer
/// gets the same TTL, so that both write an expiry.
const TWO_WEEKS: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

/// Connections per pool, the same on both sides (requests run one at a time).
const POOL_SIZE: u32 = 4;

/// The three cases of a SQL store: `read_write`, `read_only` and `no_cookie_untouched`,
/// each app built afresh by `ours`/`peer` from its handler.
fn sql_cases(
    c: &mut Criterion,
    rt: &Runtime,
    store: &str,
    ours: impl Fn(MethodRouter) -> Router,
    peer: impl Fn(MethodRouter) -> Router,
) {
    for (case_name, fresh, ours_handler, peer_handler) in [
        (
            "read_write",
            false,
            get(ours::read_write),
            get(peer_014::read_write),
        ),
        (
            "read_only",
            false,
            get(ours::read_only),
            get(peer_014::read_only),
        ),
        ("no_cookie_untouched", true, get(untouched), get(untouched)),
    ] {
        let apps = vec![
            ("session_layer", ours(ours_handler)),
            ("tower_sessions", peer(peer_handler)),
        ];
        case(c, rt, &format!("{store}_{case_name}"), fresh, apps);
    }
}

/// PostgreSQL at `DATABASE_URL`: session-layer's `PostgresStorage` (sqlx 0.9) against
/// tower-sessions-sqlx-store's `PostgresStore` (sqlx 0.8), each with a pool and table of its
/// own.
fn postgres(c: &mut Criterion, rt: &Runtime) {
    use tower_sessions_sqlx_store::{PostgresStore, sqlx as sqlx08};
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let pools = rt.block_on(async {
        let ours = sqlx::postgres::PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect(&url)
            .await?;
        let storage = PostgresStorage::new(ours).table("bench_session_layer");
        storage.migrate().await?;
        let peer = sqlx08::postgres::PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect(&url)
            .await?;
        let store = PostgresStore::new(peer);
        store.migrate().await?;
        Ok::<_, Box<dyn std::error::Error>>((storage, store))
    });
    let (storage, store) = match pools {
        Ok(pools) => pools,
        Err(e) => return eprintln!("skipping postgres: no PostgreSQL at {url}: {e}"),
    };
    sql_cases(
        c,
        rt,
        "postgres",
        |handler| ours::app(storage.clone().ttl(TWO_WEEKS), false, handler),
        |handler| peer_014::app(store.clone(), handler),
    );
}

/// An SQLite file each, in WAL mode with `synchronous = NORMAL` (the usual server settings),
/// set alike on both sides: session-layer's `SqliteStorage` against tower-sessions-sqlx-store's
/// `SqliteStore`.
fn sqlite(c: &mut Criterion, rt: &Runtime, dir: &std::path::Path) {
    use tower_sessions_sqlx_store::{SqliteStore, sqlx as sqlx08};
    let (storage, store) = rt.block_on(async {
        use sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("session_layer.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let ours = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await
            .unwrap();
        let storage = SqliteStorage::new(ours);
        storage.migrate().await.unwrap();

        use sqlx08::sqlite::{SqliteJournalMode as Journal, SqliteSynchronous as Synchronous};
        let options = sqlx08::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("tower_sessions.db"))
            .create_if_missing(true)
            .journal_mode(Journal::Wal)
            .synchronous(Synchronous::Normal);
        let peer = sqlx08::sqlite::SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await
            .unwrap();
        let store = SqliteStore::new(peer);
        store.migrate().await.unwrap();
        (storage, store)
    });
    sql_cases(
        c,
        rt,
        "sqlite",
        |handler| ours::app(storage.clone().ttl(TWO_WEEKS), false, handler),
        |handler| peer_014::app(store.clone(), handler),
    );
}

fn sql_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    postgres(c, &rt);
    let dir = tempfile::tempdir().unwrap();
    sqlite(c, &rt, dir.path());
}

criterion_group!(overhead, benches, sql_benches);
criterion_main!(overhead);
