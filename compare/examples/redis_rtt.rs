//! Median latency of one GET through each Redis client the benchmarks use, on a
//! current-thread runtime: where a session-layer Redis request spends its time.
//!
//! ```sh
//! cargo run --release -p session-layer-compare --example redis_rtt   # REDIS_URL
//! ```

use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, KeysInterface, Pool};

const ROUNDS: usize = 20_000;

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
                backend.load("no-such-session").await.unwrap();
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
    });
}
