//! Runs one benchmark case many times, for a profiler (callgrind counts instructions, so the
//! figures hold on a busy machine):
//!
//! ```sh
//! cargo build --release -p session-layer-compare --example profile
//! # the same with session-layer's metrics recorded into a Prometheus recorder:
//! cargo build --release -p session-layer-compare --example profile --features metrics
//! valgrind --tool=callgrind target/release/examples/profile memory_read_write ours 20000
//! ```
//!
//! It also prints the allocations per request (a counting global allocator).
//!
//! Cases: memory_read_write, memory_read_only, no_cookie_untouched, redis_read_write
//! (REDIS_URL), postgres_read_write (DATABASE_URL), memcached_read_write (MEMCACHED_ADDR,
//! session-layer only: tower-sessions has no Memcached store), cookie_signed_read_write,
//! cookie_encrypted_read_write; crates: ours, theirs, bare. With a server-side store only
//! this process's instructions are counted, not the server's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, header};
use session_layer::{CookieStorage, MemoryStorage};
use session_layer_compare::{bare, ours, peer, untouched};
use tower::ServiceExt;

/// Counts allocations, to report them per request (the profiling binary only; the crate
/// itself forbids unsafe code).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// tower-sessions' default expiry, given to session-layer too, so that both write an expiry.
const TWO_WEEKS: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, case, which, count] = &args[..] else {
        panic!("usage: profile CASE ours|theirs|bare COUNT");
    };
    let count: usize = count.parse().expect("COUNT is a number");
    // With the feature `metrics`, the session metrics go to a real recorder, as in production.
    #[cfg(feature = "metrics")]
    let _metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis_url =
        || std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let database_url = || {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    };
    let app: Router = match (case.as_str(), which.as_str()) {
        ("redis_read_write", "ours") => {
            let storage = rt
                .block_on(session_layer::RedisStorage::connect(&redis_url()))
                .unwrap();
            ours::app(storage.key_prefix("profile:"), false, get(ours::read_write))
        }
        ("redis_read_write", "theirs") => {
            use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
            let pool = rt.block_on(async {
                let pool = Pool::new(Config::from_url(&redis_url()).unwrap(), None, None, None, 1)
                    .unwrap();
                pool.init().await.unwrap();
                pool
            });
            session_layer_compare::peer_014::app(
                tower_sessions_redis_store::RedisStore::new(pool),
                get(session_layer_compare::peer_014::read_write),
            )
        }
        ("postgres_read_write", "ours") => {
            let storage = rt.block_on(async {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&database_url())
                    .await
                    .unwrap();
                let storage = session_layer::PostgresStorage::new(pool).table("profile_ours");
                storage.migrate().await.unwrap();
                storage
            });
            ours::app(storage.ttl(TWO_WEEKS), false, get(ours::read_write))
        }
        ("postgres_read_write", "theirs") => {
            use tower_sessions_sqlx_store::{PostgresStore, sqlx as sqlx08};
            let store = rt.block_on(async {
                let pool = sqlx08::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&database_url())
                    .await
                    .unwrap();
                let store = PostgresStore::new(pool);
                store.migrate().await.unwrap();
                store
            });
            session_layer_compare::peer_014::app(
                store,
                get(session_layer_compare::peer_014::read_write),
            )
        }
        ("memcached_read_write", "ours") => {
            let addr =
                std::env::var("MEMCACHED_ADDR").unwrap_or_else(|_| "127.0.0.1:11211".to_owned());
            let storage = rt
                .block_on(session_layer::MemcacheStorage::connect(&addr))
                .unwrap();
            ours::app(storage.ttl(TWO_WEEKS), false, get(ours::read_write))
        }
        (_, "bare") => bare(),
        ("memory_read_write", "ours") => {
            ours::app(MemoryStorage::new(), false, get(ours::read_write))
        }
        ("memory_read_only", "ours") => {
            ours::app(MemoryStorage::new(), false, get(ours::read_only))
        }
        ("no_cookie_untouched", "ours") => ours::app(MemoryStorage::new(), false, get(untouched)),
        ("cookie_signed_read_write", "ours") => {
            ours::app(CookieStorage::new(), false, get(ours::read_write))
        }
        ("cookie_encrypted_read_write", "ours") => {
            ours::app(CookieStorage::new(), true, get(ours::read_write))
        }
        ("cookie_signed_read_write", "theirs") => session_layer_compare::cookie_store::app(
            false,
            get(session_layer_compare::peer_014::read_write),
        ),
        ("cookie_encrypted_read_write", "theirs") => session_layer_compare::cookie_store::app(
            true,
            get(session_layer_compare::peer_014::read_write),
        ),
        ("memory_read_write", "theirs") => peer::app(
            tower_sessions::MemoryStore::default(),
            get(peer::read_write),
        ),
        ("memory_read_only", "theirs") => {
            peer::app(tower_sessions::MemoryStore::default(), get(peer::read_only))
        }
        ("no_cookie_untouched", "theirs") => {
            peer::app(tower_sessions::MemoryStore::default(), get(untouched))
        }
        other => panic!("unknown case {other:?}"),
    };
    let send = |path: &str, cookie: Option<&str>| {
        let mut request = Request::get(path).body(Body::empty()).unwrap();
        if let Some(cookie) = cookie {
            request
                .headers_mut()
                .insert(header::COOKIE, cookie.parse().unwrap());
        }
        rt.block_on(app.clone().oneshot(request)).unwrap()
    };
    let cookie = match (case.as_str(), which.as_str()) {
        ("no_cookie_untouched", _) => None,
        // The same request as the apps get, which the bare Router ignores: headers are the
        // client's and the server's work, not the layer's (a session cookie is this long).
        (_, "bare") => Some(format!("id={}", "x".repeat(76))),
        _ => {
            let response = send("/seed", None);
            let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
            Some(set_cookie.split(';').next().unwrap().to_owned())
        }
    };
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..count {
        let response = send("/", cookie.as_deref());
        assert!(response.status().is_success());
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    if count > 0 {
        println!(
            "{case} {which}: {:.1} allocations per request",
            allocations as f64 / count as f64
        );
    }
}
