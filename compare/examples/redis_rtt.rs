//! Median latency of one GET through each Redis client the benchmarks use, on a
//! current-thread runtime: where a session-layer Redis request spends its time.
//!
//! ```sh
//! cargo run --release -p session-layer-compare --example redis_rtt   # REDIS_URL
//! ```

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, header};
use redis::aio::ConnectionManager;
use tower::ServiceExt;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, KeysInterface, Pool};

const ROUNDS: usize = 5_000;

async fn median<F: std::future::Future<Output = ()>>(name: &str, mut op: impl FnMut() -> F) {
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        op().await;
        times.push(start.elapsed());
    }
    times.sort();
    let p = |q: f64| times[(q * ROUNDS as f64) as usize].as_secs_f64() * 1e6;
    println!("{name:40} p50 {:6.1} µs  p90 {:6.1} µs", p(0.5), p(0.9));
}

/// One GET of `/` with `cookie`.
async fn request(app: &Router, cookie: &str) {
    let request = Request::get("/")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_success());
}

/// The `name=value` of the cookie that `/seed` sets.
async fn seed(app: &Router) -> String {
    let request = Request::get("/seed").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = redis::Client::open(url.as_str()).unwrap();
        let multiplexed = client.get_multiplexed_async_connection().await.unwrap();
        median("redis MultiplexedConnection GET", || {
            let mut c = multiplexed.clone();
            async move {
                let _: Option<Vec<u8>> = redis::cmd("GET")
                    .arg("k")
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
        })
        .await;
        let manager = ConnectionManager::new(client.clone()).await.unwrap();
        median("redis ConnectionManager GET", || {
            let mut c = manager.clone();
            async move {
                let _: Option<Vec<u8>> = redis::cmd("GET")
                    .arg("k")
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
        })
        .await;
        median("redis ConnectionManager GET + timeout", || {
            let mut c = manager.clone();
            async move {
                let mut cmd = redis::cmd("GET");
                let get = cmd.arg("k").query_async::<Option<Vec<u8>>>(&mut c);
                tokio::time::timeout(Duration::from_secs(2), get)
                    .await
                    .unwrap()
                    .unwrap();
            }
        })
        .await;
        let storage = session_layer::RedisStorage::connect(&url).await.unwrap();
        median("session-layer RedisBackend load", || {
            let backend = storage.backend();
            async move {
                use session_layer::storage::SessionBackend;
                backend.load(&"no-such-session".into()).await.unwrap();
            }
        })
        .await;
        let pool = Pool::new(Config::from_url(&url).unwrap(), None, None, None, 1).unwrap();
        pool.init().await.unwrap();
        median("fred Pool GET", || {
            let pool = pool.clone();
            async move {
                let _: Option<Vec<u8>> = pool.get("k").await.unwrap();
            }
        })
        .await;

        // Whole requests through each layer (two commands each), in alternating
        // rounds so that both see the same machine load.
        let ours = session_layer_compare::ours::app(
            storage.key_prefix("rtt:"),
            false,
            get(session_layer_compare::ours::read_write),
        );
        let theirs = session_layer_compare::peer_014::app(
            tower_sessions_redis_store::RedisStore::new(pool),
            get(session_layer_compare::peer_014::read_write),
        );
        let ours_cookie = seed(&ours).await;
        let theirs_cookie = seed(&theirs).await;
        for _round in 0..3 {
            median(
                "session-layer request (EVALSHA read + EVALSHA save)",
                || request(&ours, &ours_cookie),
            )
            .await;
            median("tower-sessions request (GET + SET)", || {
                request(&theirs, &theirs_cookie)
            })
            .await;
        }
    });
}
