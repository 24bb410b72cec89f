//! What a rolling request costs: a read-only request on a stored session with
//! `SessionLayer::rolling(true)`, per storage, in-process (no HTTP sockets). Run with
//! `cargo bench --bench rolling --features redis,postgres` (Redis at `REDIS_URL`, default
//! `redis://127.0.0.1:6379`; PostgreSQL at `DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`); docs/benchmarks.md has the figures.
//!
//! With `ROLLING_PROFILE=<count>` it runs that many memory requests and exits instead, for
//! callgrind (`valgrind --tool=callgrind target/release/deps/rolling-* --bench`).

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, header};
use session_layer::{
    FsStorage, MemoryStorage, PostgresStorage, RedisStorage, Session, SessionCookie, SessionLayer,
    SessionStorage,
};
use tower::ServiceExt;

async fn read_only(session: Session) -> &'static str {
    black_box(session.get::<u64>("n"));
    "ok"
}

async fn seed(session: Session) -> &'static str {
    session.set("n", 1).unwrap();
    session.set("cart", vec!["apple"; 20]).unwrap();
    "ok"
}

fn app<St: SessionStorage>(storage: St) -> Router {
    let cookie = SessionCookie::new("s").secrets(["a bench secret of at least 32 bytes!"]);
    Router::new()
        .route("/", get(read_only))
        .route("/seed", get(seed))
        .layer(SessionLayer::new(cookie, storage).rolling(true))
}

async fn seeded(app: &Router) -> HeaderValue {
    let request = Request::get("/seed").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().parse().unwrap()
}

fn bench_storage<St: SessionStorage + Clone>(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    storage: St,
) {
    let app = app(storage);
    let cookie = runtime.block_on(seeded(&app));
    c.bench_function(name, |b| {
        b.to_async(runtime).iter(|| async {
            let request = Request::get("/")
                .header(header::COOKIE, cookie.clone())
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert!(response.headers().contains_key(header::SET_COOKIE));
            black_box(response);
        })
    });
}

/// `count` rolling read-only requests on the memory storage, for a profiler.
fn profile(count: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = app(MemoryStorage::new().ttl(Duration::from_secs(3600)));
    runtime.block_on(async {
        let cookie = seeded(&app).await;
        for _ in 0..count {
            let request = Request::get("/")
                .header(header::COOKIE, cookie.clone())
                .body(Body::empty())
                .unwrap();
            black_box(app.clone().oneshot(request).await.unwrap());
        }
    });
}

fn bench(c: &mut Criterion) {
    if let Some(count) = std::env::var("ROLLING_PROFILE")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        profile(count);
        std::process::exit(0);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ttl = Duration::from_secs(3600);
    bench_storage(
        c,
        &runtime,
        "rolling_read_memory",
        MemoryStorage::new().ttl(ttl),
    );
    let dir = tempfile::tempdir().unwrap();
    let fs = FsStorage::new(dir.path()).unwrap().ttl(ttl);
    bench_storage(c, &runtime, "rolling_read_fs", fs);
    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let redis = runtime.block_on(RedisStorage::connect(&redis_url)).unwrap();
    let redis = redis.key_prefix("bench-rolling:").ttl(ttl);
    bench_storage(c, &runtime, "rolling_read_redis", redis);
    let pg_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let pool = runtime.block_on(sqlx::PgPool::connect(&pg_url)).unwrap();
    let postgres = PostgresStorage::new(pool).table("bench_rolling").ttl(ttl);
    runtime.block_on(postgres.migrate()).unwrap();
    bench_storage(c, &runtime, "rolling_read_postgres", postgres);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
