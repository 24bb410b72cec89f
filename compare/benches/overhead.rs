//! Per-request overhead of session-layer and tower-sessions, side by side: an axum Router
//! with the session layer minus the same Router without it, in-process (no sockets).
//!
//! ```sh
//! cargo bench -p session-layer-compare --bench overhead   # REDIS_URL, default 127.0.0.1:6379
//! scripts/bench-table                                      # medians, overheads and ratios
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
use session_layer::{CookieStorage, FsStorage, MemoryStorage, RedisStorage};
use session_layer_compare::{bare, ours, peer, peer_014, untouched};
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
        // tower-sessions has no cookie storage of its own.
        case(
            c,
            &rt,
            case_name,
            false,
            vec![(
                "session_layer",
                ours::app(CookieStorage::new(), encrypted, get(ours::read_write)),
            )],
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

criterion_group!(overhead, benches);
criterion_main!(overhead);
