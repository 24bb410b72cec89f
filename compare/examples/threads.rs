//! Throughput of the memory storage with one thread against two: each thread runs its own
//! current-thread runtime (as a server's worker threads do) sending requests through one
//! shared app to sessions of its own, for a fixed time.
//!
//! ```sh
//! cargo build --release -p session-layer-compare --example threads
//! target/release/examples/threads read_only ours 3    # case, crate, seconds per run
//! ```
//!
//! Cases: read_only, read_write; crates: ours, theirs (tower-sessions' MemoryStore). Prints
//! requests per second with 1 and 2 threads, and their ratio.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, header};
use session_layer::MemoryStorage;
use session_layer_compare::{ours, peer};
use tower::ServiceExt;

/// Sessions each thread cycles through.
const SESSIONS: usize = 256;

async fn send(app: &Router, path: &str, cookie: Option<&str>) -> http::Response<Body> {
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
    }
    let response = app.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_success());
    response
}

/// Requests one thread completes in `time`, over sessions it seeds first.
fn run(app: Router, time: Duration) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cookies = Vec::with_capacity(SESSIONS);
        for _ in 0..SESSIONS {
            let response = send(&app, "/seed", None).await;
            let set = response.headers()[header::SET_COOKIE].to_str().unwrap();
            cookies.push(set.split(';').next().unwrap().to_owned());
        }
        let started = Instant::now();
        let mut done = 0u64;
        while started.elapsed() < time {
            for cookie in &cookies {
                send(&app, "/", Some(cookie)).await;
            }
            done += SESSIONS as u64;
        }
        (done as f64 / started.elapsed().as_secs_f64() * time.as_secs_f64()) as u64
    })
}

/// Requests per second with `threads` threads on one app.
fn throughput(app: &Router, threads: usize, time: Duration) -> f64 {
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let app = app.clone();
            std::thread::spawn(move || run(app, time))
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / time.as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, case, which, seconds] = &args[..] else {
        panic!("usage: threads read_only|read_write ours|theirs SECONDS");
    };
    let time = Duration::from_secs_f64(seconds.parse().expect("SECONDS is a number"));
    let app = match (case.as_str(), which.as_str()) {
        ("read_only", "ours") => ours::app(MemoryStorage::new(), false, get(ours::read_only)),
        ("read_write", "ours") => ours::app(MemoryStorage::new(), false, get(ours::read_write)),
        ("read_only", "theirs") => {
            peer::app(tower_sessions::MemoryStore::default(), get(peer::read_only))
        }
        ("read_write", "theirs") => peer::app(
            tower_sessions::MemoryStore::default(),
            get(peer::read_write),
        ),
        other => panic!("unknown case {other:?}"),
    };
    let one = throughput(&app, 1, time);
    let two = throughput(&app, 2, time);
    println!(
        "{case} {which}: 1 thread {one:.0} requests/s, 2 threads {two:.0} requests/s, ratio {:.2}",
        two / one
    );
}
