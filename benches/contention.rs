//! Contention: 64 requests at once on one session, each adding one to a counter and an item
//! to a cart through `Session::update`, through the layer (an axum Router, in-process), per
//! server-side storage. Prints requests per second and the p50/p99 latency of one request
//! from its start to its answer, as a Markdown table for docs/benchmarks.md, and fails if any
//! request is not answered 200 or any update is lost.
//!
//! ```sh
//! cargo bench --bench contention --features redis,memcache,postgres   # DATABASE_URL
//! ```
//!
//! Redis and Memcached run as private servers on free ports, as in the tests; PostgreSQL is
//! `PostgresStorage` on the machine's server (with the `postgres` feature; skipped with a
//! note when absent).

#[path = "../tests/common/redis_ha.rs"]
#[allow(dead_code)]
mod redis_ha;
#[path = "../tests/common/servers.rs"]
#[allow(dead_code)]
mod servers;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use http::{Request, StatusCode, header};
use session_layer::{
    FsStorage, MemcacheStorage, MemoryStorage, RedisStorage, Session, SessionCookie, SessionLayer,
    SessionStorage,
};
use tower::ServiceExt;

/// Requests at once on one session.
const WRITERS: u64 = 64;
/// Rounds per storage, each on a session of its own.
const ROUNDS: usize = 40;
const TTL: Duration = Duration::from_secs(600);

async fn bump(session: Session, Path(i): Path<u64>) -> &'static str {
    session
        .update("n", |n: Option<u64>| n.unwrap_or(0) + 1)
        .unwrap();
    session
        .update("cart", move |cart: Option<Vec<u64>>| {
            let mut cart = cart.unwrap_or_default();
            cart.push(i);
            cart
        })
        .unwrap();
    "ok"
}

async fn count(session: Session) -> String {
    session.get::<u64>("n").unwrap_or(0).to_string()
}

async fn send(app: &Router, path: String, cookie: Option<&str>) -> http::Response<Body> {
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
    }
    app.clone().oneshot(request).await.unwrap()
}

/// Runs `ROUNDS` rounds of `WRITERS` concurrent writers on `storage`; returns requests per
/// second and the p50 and p99 latencies.
async fn measure<St: SessionStorage>(storage: St) -> (f64, Duration, Duration) {
    let cookie = SessionCookie::new("sid").secrets(["a benchmark secret of thirty-two bytes!"]);
    let app = Router::new()
        .route("/bump/{i}", get(bump))
        .route("/count", get(count))
        .layer(SessionLayer::new(cookie, storage));
    let mut latencies = Vec::new();
    let mut busy = Duration::ZERO;
    for _ in 0..ROUNDS {
        let seeded = send(&app, "/bump/0".into(), None).await;
        let set_cookie = seeded.headers()[header::SET_COOKIE].to_str().unwrap();
        let pair = set_cookie.split(';').next().unwrap().to_owned();
        let started = Instant::now();
        let tasks: Vec<_> = (1..=WRITERS)
            .map(|i| {
                let (app, pair) = (app.clone(), pair.clone());
                tokio::spawn(async move {
                    let begun = Instant::now();
                    let response = send(&app, format!("/bump/{i}"), Some(&pair)).await;
                    assert_eq!(response.status(), StatusCode::OK, "a writer failed");
                    begun.elapsed()
                })
            })
            .collect();
        for task in tasks {
            latencies.push(task.await.unwrap());
        }
        busy += started.elapsed();
        let shown = send(&app, "/count".into(), Some(&pair)).await;
        let body = axum::body::to_bytes(shown.into_body(), 64).await.unwrap();
        assert_eq!(body, (WRITERS + 1).to_string(), "an update was lost");
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let throughput = latencies.len() as f64 / busy.as_secs_f64();
    (throughput, at(0.50), at(0.99))
}

fn row(name: &str, (throughput, p50, p99): (f64, Duration, Duration)) {
    println!(
        "| {name} | {throughput:.0} | {:.2} ms | {:.2} ms |",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments of its own.
    println!(
        "{WRITERS} concurrent writers on one session, {ROUNDS} rounds per storage, \
         {} worker threads\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| storage | requests/s | p50 | p99 |\n|---|---|---|---|");
    row("memory", measure(MemoryStorage::new().ttl(TTL)).await);

    let dir = tempfile::tempdir().unwrap();
    row(
        "filesystem",
        measure(FsStorage::new(dir.path()).unwrap().ttl(TTL)).await,
    );

    let redis = servers::start_redis();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let storage = RedisStorage::connect(&url).await.unwrap().ttl(TTL);
    row("Redis", measure(storage).await);

    let cluster = tokio::task::spawn_blocking(|| redis_ha::RedisCluster::start(3, 0))
        .await
        .unwrap();
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let storage = RedisStorage::connect_cluster(&urls).await.unwrap().ttl(TTL);
    row("Redis Cluster (3 nodes)", measure(storage).await);

    let memcached = servers::start_memcached();
    let addr = format!("127.0.0.1:{}", memcached.port);
    let storage = MemcacheStorage::connect(&addr).await.unwrap().ttl(TTL);
    row("Memcached", measure(storage).await);

    postgres().await;
}

#[cfg(feature = "postgres")]
async fn postgres() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let storage = async {
        let pool = sqlx::PgPool::connect(&url).await?;
        let storage = session_layer::PostgresStorage::new(pool).table("bench_contention");
        storage.migrate().await?;
        Ok::<_, Box<dyn std::error::Error>>(storage.ttl(TTL))
    };
    match storage.await {
        Ok(storage) => row("PostgreSQL", measure(storage).await),
        Err(e) => println!("| PostgreSQL | skipped: {e} | | |"),
    }
}

#[cfg(not(feature = "postgres"))]
async fn postgres() {
    println!("| PostgreSQL | skipped: needs `--features postgres` | | |");
}
