//! The SQL statements one request costs on PostgreSQL, per case, for session-layer's
//! `PostgresStorage` and tower-sessions-sqlx-store's `PostgresStore`, as PostgreSQL's
//! `pg_stat_statements` counts them over 100 requests.
//!
//! ```sh
//! # a server started with -c shared_preload_libraries=pg_stat_statements, then in `test`:
//! #   CREATE EXTENSION pg_stat_statements;
//! DATABASE_URL=postgres://postgres@127.0.0.1:5433/test \
//!     cargo run -p session-layer-compare --release --example sql_queries
//! ```

use axum::Router;
use axum::body::Body;
use axum::routing::{MethodRouter, get};
use http::{Request, header};
use session_layer::PostgresStorage;
use session_layer_compare::{ours, peer_014, untouched};
use sqlx::{PgPool, Row};
use tower::ServiceExt;
use tower_sessions_sqlx_store::PostgresStore;

const REQUESTS: u32 = 100;

/// Sends one GET and returns the `name=value` of the cookie it set, if any.
async fn get_path(app: &Router, path: &str, cookie: Option<&str>) -> Option<String> {
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
    }
    let response = app.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let set_cookie = response.headers().get(header::SET_COOKIE)?;
    Some(set_cookie.to_str().unwrap().split(';').next()?.to_owned())
}

/// Runs `REQUESTS` requests of one case on `app` and prints the statements per request.
async fn count(stats: &PgPool, side: &str, case: &str, app: &Router, path: &str, seeded: bool) {
    let cookie = if seeded {
        get_path(app, "/seed", None).await
    } else {
        None
    };
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(stats)
        .await
        .unwrap();
    for _ in 0..REQUESTS {
        get_path(app, path, cookie.as_deref()).await;
    }
    let rows = sqlx::query(
        "SELECT calls, query FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC, query",
    )
    .fetch_all(stats)
    .await
    .unwrap();
    println!("{side}, {case}:");
    if rows.is_empty() {
        println!("    none");
    }
    for row in rows {
        let calls: i64 = row.get(0);
        let query: String = row.get(1);
        let query = query.split_whitespace().collect::<Vec<_>>().join(" ");
        let per_request = calls as f64 / f64::from(REQUESTS);
        println!("    {per_request:>5.2} x {query:.110}");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let stats = PgPool::connect(&url).await?;
    let storage = PostgresStorage::new(PgPool::connect(&url).await?).table("queries_ours");
    storage.migrate().await?;
    let store = PostgresStore::new(tower_sessions_sqlx_store::sqlx::PgPool::connect(&url).await?);
    store.migrate().await?;

    let ttl = std::time::Duration::from_secs(14 * 24 * 3600);
    let ours_app = |handler: MethodRouter| ours::app(storage.clone().ttl(ttl), false, handler);
    let peer_app = |handler: MethodRouter| peer_014::app(store.clone(), handler);
    let cases: [(&str, &str, bool, MethodRouter, MethodRouter); 4] = [
        (
            "new session (write, no cookie)",
            "/seed",
            false,
            get(untouched),
            get(untouched),
        ),
        (
            "read_write",
            "/",
            true,
            get(ours::read_write),
            get(peer_014::read_write),
        ),
        (
            "read_only",
            "/",
            true,
            get(ours::read_only),
            get(peer_014::read_only),
        ),
        (
            "no_cookie_untouched",
            "/",
            false,
            get(untouched),
            get(untouched),
        ),
    ];
    for (case, path, seeded, ours_handler, peer_handler) in cases {
        count(
            &stats,
            "session-layer",
            case,
            &ours_app(ours_handler),
            path,
            seeded,
        )
        .await;
        count(
            &stats,
            "tower-sessions",
            case,
            &peer_app(peer_handler),
            path,
            seeded,
        )
        .await;
    }
    Ok(())
}
