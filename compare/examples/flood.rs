//! The flood case: returning users between bursts of one-shot sessions, on session-layer's
//! capped memory storage and on tower-sessions' MemoryStore (which has no cap), through each
//! crate's layer as a server would run it.
//!
//! ```sh
//! cargo build --release -p session-layer-compare --example flood
//! target/release/examples/flood flood ours     # or theirs; prints users kept per round
//! target/release/examples/flood hold 1000000   # peak RSS holding that many sessions
//! ```
//!
//! The flood: a cap of 10,000; 1,000 users sign in and come back twice, then each of 10
//! rounds is 100,000 one-shot sessions (a crawler, a script) followed by every user coming
//! back once. A user is kept in a round when the request finds the session it had. The
//! peer keeps everyone, since it never evicts; its memory grows with every one-shot session
//! (until their expiry), which is what its row's peak RSS shows.

use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use axum::routing::get;
use http::{Request, header};
use session_layer::{MemoryStorage, SessionStorage};
use session_layer_compare::{ours, peer};
use tower::ServiceExt;

const CAP: usize = 10_000;
const USERS: usize = 1_000;
const FLOOD: usize = 100_000;
const ROUNDS: usize = 10;

/// A visit: counts the visits of a session and answers how many it had seen before.
mod visit {
    pub async fn ours(session: session_layer::Session) -> String {
        let n = session.get::<u64>("n").unwrap_or(0);
        session.set("n", n + 1).expect("the session is live");
        n.to_string()
    }

    pub async fn theirs(session: tower_sessions::Session) -> String {
        let n: u64 = session
            .get("n")
            .await
            .expect("the store answers")
            .unwrap_or(0);
        session.insert("n", n + 1).await.expect("the store answers");
        n.to_string()
    }
}

/// Sends a GET to `/` with `cookie`; returns the body and the cookie the response set.
async fn visit(app: &Router, cookie: Option<&str>) -> (String, Option<String>) {
    let mut request = Request::get("/").body(Body::empty()).unwrap();
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
    }
    let response = app.clone().oneshot(request).await.unwrap().into_response();
    let set = response.headers().get(header::SET_COOKIE).map(|value| {
        let value = value.to_str().unwrap();
        value.split(';').next().unwrap().to_owned()
    });
    let body = axum::body::to_bytes(response.into_body(), 1 << 10)
        .await
        .unwrap();
    (String::from_utf8(body.to_vec()).unwrap(), set)
}

/// Peak resident memory of this process, in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0);
    kib / 1024.0
}

async fn flood(app: Router) {
    let mut users = Vec::with_capacity(USERS);
    for _ in 0..USERS {
        let (_, cookie) = visit(&app, None).await;
        let cookie = cookie.expect("a new session sets a cookie");
        for _ in 0..2 {
            visit(&app, Some(&cookie)).await;
        }
        users.push(cookie);
    }
    let started = std::time::Instant::now();
    for round in 1..=ROUNDS {
        for _ in 0..FLOOD {
            visit(&app, None).await;
        }
        let mut kept = 0;
        for cookie in &mut users {
            let (seen, set) = visit(&app, Some(cookie)).await;
            // A user who lost the session starts a new one, as a browser would.
            if seen != "0" {
                kept += 1;
            }
            if let Some(set) = set {
                *cookie = set;
            }
        }
        println!("round {round}: {kept} of {USERS} users kept");
    }
    let requests = ROUNDS * (FLOOD + USERS);
    let per_request = started.elapsed().as_secs_f64() * 1e6 / requests as f64;
    println!(
        "{per_request:.2} µs per request (wall clock), peak RSS {:.1} MiB",
        peak_rss_mib()
    );
}

/// Holds `count` sessions, each with one value, and reports the peak RSS it took.
async fn hold(count: usize) {
    let before = peak_rss_mib();
    let storage = MemoryStorage::new().max_sessions(count);
    for n in 0..count {
        let session = storage.read(None).await.unwrap();
        session.set("n", n).unwrap();
        storage.save(&session).await.unwrap();
    }
    assert_eq!(storage.len(), count);
    let after = peak_rss_mib();
    println!(
        "{count} sessions: peak RSS {after:.1} MiB ({:.1} MiB over the {before:.1} MiB at start, {:.0} bytes a session)",
        after - before,
        (after - before) * 1024.0 * 1024.0 / count as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match args.get(1..).unwrap_or_default() {
        [mode, which] if mode == "flood" && which == "ours" => {
            let storage = MemoryStorage::new().max_sessions(CAP);
            rt.block_on(flood(ours::app(storage, false, get(visit::ours))));
        }
        [mode, which] if mode == "flood" && which == "theirs" => {
            let store = tower_sessions::MemoryStore::default();
            rt.block_on(flood(peer::app(store, get(visit::theirs))));
        }
        [mode, count] if mode == "hold" => {
            rt.block_on(hold(count.parse().expect("COUNT is a number")));
        }
        _ => panic!("usage: flood flood ours|theirs, or flood hold COUNT"),
    }
}
