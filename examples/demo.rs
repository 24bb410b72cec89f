//! A small axum app that shows everything a session does: a counter, flash messages
//! (Post/Redirect/Get), login with id regeneration, logout with destroy, a burst of parallel
//! requests that lose no update, a panel showing the session as the server holds it, and,
//! where the storage implements `SessionIndex`, the signed-in user's sessions, each of
//! which can be signed out from here.
//!
//! ```sh
//! cargo run --example demo                          # then open http://127.0.0.1:3000
//! curl -c jar -b jar http://127.0.0.1:3000/count    # the counter alone, as JSON
//! SESSION_STORAGE=fs cargo run --example demo       # files under $SESSION_DIR or /tmp/sessions
//! SESSION_STORAGE=cookie cargo run --example demo   # the whole session in an encrypted cookie
//! SESSION_STORAGE=sqlite cargo run --example demo --features sqlite   # in the temporary directory
//! SESSION_STORAGE=postgres DATABASE_URL=postgres://postgres@127.0.0.1/test \
//!     cargo run --example demo --features postgres
//! SESSION_STORAGE=mysql DATABASE_URL=mysql://root@127.0.0.1/test \
//!     cargo run --example demo --features mysql
//! SESSION_STORAGE=redis cargo run --example demo --features redis   # in Redis at $REDIS_URL
//! SESSION_SECRET=... PORT=8080 SESSION_TTL=600 cargo run --example demo
//! cargo run --example demo --features metrics      # session metrics at /metrics
//! ```
//!
//! Settings, all optional:
//!
//! | variable | default | |
//! |---|---|---|
//! | `SESSION_STORAGE` | `memory` | `memory`, `fs`, `cookie`; `sqlite`, `postgres`, `mysql` and `redis` with the feature of that name (`--features sqlite`) |
//! | `SESSION_SECRET` | random | signs the cookie; a random one ends every session with the process |
//! | `SESSION_TTL` | `86400` | seconds a session lives after its last change |
//! | `SESSION_MAX_SESSIONS` | `100000` | the `memory` storage's capacity (least recently used go first) |
//! | `SESSION_DIR` | `$TMPDIR/sessions` | the `fs` storage's directory |
//! | `SQLITE_FILE` | `session-layer-demo-sessions.db` in the system's temporary directory | the `sqlite` storage's file |
//! | `DATABASE_URL` | none | the `postgres` and `mysql` storages' database (required for them); the table `sessions` is created when missing |
//! | `REDIS_URL` | `redis://127.0.0.1:6379` | the `redis` storage's server |
//! | `SESSION_KEY_PREFIX` | `demo:session:` | the `redis` storage's key prefix |
//! | `PORT` | `3000` | on 127.0.0.1; `0` picks a free port (the log says which) |
//!
//! `/metrics` serves the metrics in Prometheus text through `metrics-exporter-prometheus`;
//! the session's own appear with the feature `metrics` (docs/observability.md).
//!
//! The routes and pages are in `examples/demo/`; the browser test (`tests/browser/`)
//! serves the same router. `scripts/load` serves this demo (built with `--release`) to `wrk`
//! for the load and fault runs of `docs/benchmarks.md`.

#[path = "demo/app.rs"]
mod app;
#[path = "demo/device.rs"]
mod device;
#[path = "demo/page.rs"]
mod page;
#[path = "shared/secret.rs"]
mod secret;
#[path = "demo/sessions.rs"]
mod sessions;

use std::process::ExitCode;
use std::time::Duration;

use axum::routing::get;
use axum::{Router, serve};
use metrics_exporter_prometheus::PrometheusBuilder;
use session_layer::{CookieStorage, Error, FsStorage, MemoryStorage};
use tracing_subscriber::EnvFilter;

use crate::app::{Settings, app, app_with_index};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let secret = secret::session_secret()?;
    let storage = std::env::var("SESSION_STORAGE").unwrap_or_else(|_| "memory".to_owned());

    let cookie = app::cookie(secret);
    // How long a session lives after its last change (every visit changes the counter).
    let ttl = match std::env::var("SESSION_TTL") {
        Ok(secs) => Duration::from_secs(
            secs.parse()
                .map_err(|_| format!("SESSION_TTL must be a number of seconds, not {secs:?}"))?,
        ),
        Err(_) => Duration::from_secs(24 * 3600),
    };

    // At most this many sessions in memory: beyond it, the least recently used one goes, so
    // a flood of cookieless requests cannot exhaust memory.
    let max_sessions = match std::env::var("SESSION_MAX_SESSIONS") {
        Ok(n) => n
            .parse()
            .map_err(|_| format!("SESSION_MAX_SESSIONS must be a number of sessions, not {n:?}"))?,
        Err(_) => 100_000,
    };

    let settings = Settings {
        storage: storage.clone(),
        ttl,
    };
    // The storages are different types, so each arm builds its own router: with
    // `app_with_index` where the storage implements `SessionIndex`.
    let app = match storage.as_str() {
        // Expired sessions go as writes come: no task needed.
        "memory" => app_with_index(
            cookie,
            MemoryStorage::new().ttl(ttl).max_sessions(max_sessions),
            settings,
        )?,
        "fs" => {
            let dir = std::env::var_os("SESSION_DIR")
                .map(Into::into)
                .unwrap_or_else(|| std::env::temp_dir().join("sessions"));
            let storage = FsStorage::new(dir)?.ttl(ttl);
            tracing::info!(dir = %storage.dir().display(), "sessions are files");
            // Expired files are ignored on read but stay on disk until swept: sweep them
            // (and temporary files a crash left) now and then.
            let sweeper = storage.clone();
            sweep(ttl, move || {
                let sweeper = sweeper.clone();
                async move { sweeper.remove_expired().await }
            });
            app_with_index(cookie, storage, settings)?
        }
        // The data travels in the cookie: encrypt it, so the client cannot read it either.
        "cookie" => app(
            cookie.encrypted(true),
            CookieStorage::new().ttl(ttl),
            settings,
        )?,
        #[cfg(feature = "redis")]
        "redis" => {
            use session_layer::RedisStorage;
            use session_layer::storage::NetworkOptions;

            let url =
                std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            let prefix =
                std::env::var("SESSION_KEY_PREFIX").unwrap_or_else(|_| "demo:session:".into());
            // While Redis is down, requests fail with a 500 within the response timeout
            // rather than hang; the connection comes back by itself.
            let options = NetworkOptions::new()
                .connect_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(1));
            let storage = RedisStorage::connect_with(&url, options)
                .await?
                .key_prefix(&prefix)
                .ttl(ttl);
            tracing::info!(prefix, "sessions are in Redis");
            app_with_index(cookie, storage, settings)?
        }
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            use session_layer::SqliteStorage;
            use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

            // Never the checkout: a demo leaves no file beside the sources.
            let file = std::env::var_os("SQLITE_FILE").map_or_else(
                || std::env::temp_dir().join("session-layer-demo-sessions.db"),
                std::path::PathBuf::from,
            );
            let pool = SqlitePoolOptions::new()
                .acquire_timeout(Duration::from_secs(2))
                .connect_with(
                    SqliteConnectOptions::new()
                        .filename(&file)
                        .create_if_missing(true),
                )
                .await
                .map_err(|e| format!("cannot open the SQLite file {file:?}: {e}"))?;
            let storage = SqliteStorage::new(pool).ttl(ttl);
            storage.migrate().await?;
            tracing::info!(
                file = %file.display(),
                table = storage.backend().table(),
                "sessions are in SQLite"
            );
            let sweeper = storage.clone();
            sweep(ttl, move || {
                let sweeper = sweeper.clone();
                async move { sweeper.remove_expired().await }
            });
            app_with_index(cookie, storage, settings)?
        }
        #[cfg(feature = "postgres")]
        "postgres" => {
            use session_layer::PostgresStorage;
            use sqlx::postgres::PgPoolOptions;

            let url = database_url("postgres", "postgres://postgres@127.0.0.1/test")?;
            // A database that is down gives 500s after this long, never a hang.
            let pool = PgPoolOptions::new()
                .acquire_timeout(Duration::from_secs(2))
                .connect(&url)
                .await
                .map_err(|e| format!("cannot connect to PostgreSQL at DATABASE_URL: {e}"))?;
            let storage = PostgresStorage::new(pool).ttl(ttl);
            storage.migrate().await?;
            tracing::info!(
                table = storage.backend().table(),
                "sessions are in PostgreSQL"
            );
            let sweeper = storage.clone();
            sweep(ttl, move || {
                let sweeper = sweeper.clone();
                async move { sweeper.remove_expired().await }
            });
            app_with_index(cookie, storage, settings)?
        }
        #[cfg(feature = "mysql")]
        "mysql" => {
            use session_layer::MySqlStorage;
            use sqlx::mysql::MySqlPoolOptions;

            let url = database_url("mysql", "mysql://root@127.0.0.1/test")?;
            let pool = MySqlPoolOptions::new()
                .acquire_timeout(Duration::from_secs(2))
                .connect(&url)
                .await
                .map_err(|e| format!("cannot connect to MySQL/MariaDB at DATABASE_URL: {e}"))?;
            let storage = MySqlStorage::new(pool).ttl(ttl);
            storage.migrate().await?;
            tracing::info!(
                table = storage.backend().table(),
                "sessions are in MySQL/MariaDB"
            );
            let sweeper = storage.clone();
            sweep(ttl, move || {
                let sweeper = sweeper.clone();
                async move { sweeper.remove_expired().await }
            });
            app_with_index(cookie, storage, settings)?
        }
        #[cfg(not(feature = "redis"))]
        "redis" => return Err(needs_feature("redis")),
        #[cfg(not(feature = "sqlite"))]
        "sqlite" => return Err(needs_feature("sqlite")),
        #[cfg(not(feature = "postgres"))]
        "postgres" => return Err(needs_feature("postgres")),
        #[cfg(not(feature = "mysql"))]
        "mysql" => return Err(needs_feature("mysql")),
        other => {
            return Err(format!(
                "SESSION_STORAGE must be one of memory, fs, cookie, redis, sqlite, postgres or \
                 mysql, not {other:?}"
            )
            .into());
        }
    };

    let app = app.merge(metrics_page()?);

    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!(
        storage,
        ttl = ttl.as_secs(),
        "listening on http://{}",
        listener.local_addr()?
    );
    serve(listener, app).await?;
    Ok(())
}

/// `/metrics`: what the process recorded, in Prometheus text, rendered from the exporter's
/// handle in a route (so the exporter needs no HTTP listener of its own).
fn metrics_page() -> Result<Router, Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    #[cfg(feature = "metrics")]
    session_layer::metrics::describe();
    let page = move || {
        let handle = handle.clone();
        async move {
            let mut text = handle.render();
            if cfg!(not(feature = "metrics")) {
                text.insert_str(
                    0,
                    "# session-layer was built without its metrics feature: run the demo \
                     with --features metrics\n",
                );
            }
            text
        }
    };
    Ok(Router::new().route("/metrics", get(page)))
}

/// The error for a storage whose feature this build lacks: the name is also the feature's.
#[cfg(not(all(
    feature = "redis",
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql"
)))]
fn needs_feature(name: &str) -> Box<dyn std::error::Error> {
    format!(
        "SESSION_STORAGE={name} needs the {name} feature: cargo run --example demo --features {name}"
    )
    .into()
}

/// `DATABASE_URL`, which a SQL storage needs; the error shows an example for `kind`.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn database_url(kind: &str, example: &str) -> Result<String, String> {
    std::env::var("DATABASE_URL")
        .map_err(|_| format!("SESSION_STORAGE={kind} needs DATABASE_URL, for example {example}"))
}

/// Removes expired sessions now and then: file and SQL storages ignore them on read but keep
/// them until swept.
fn sweep<F, Fut, N>(ttl: Duration, remove_expired: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<N, Error>> + Send,
    N: std::fmt::Display,
{
    tokio::spawn(async move {
        let mut every =
            tokio::time::interval(ttl.clamp(Duration::from_secs(1), Duration::from_secs(3600)));
        loop {
            every.tick().await;
            match remove_expired().await {
                Ok(removed) => tracing::debug!(%removed, "swept expired sessions"),
                Err(error) => tracing::warn!(%error, "sweeping expired sessions failed"),
            }
        }
    });
}
