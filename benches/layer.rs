//! Per-request cost of the session layer: an axum Router with the layer minus the same
//! Router without it, in-process (no sockets). Run with `cargo bench --bench layer`.
//!
//! session-layer alone, quick to build; the side-by-side comparison with tower-sessions
//! (and the filesystem and Redis cases) is `cargo bench -p session-layer-compare`.

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, header};
use session_layer::{
    CookieStorage, MemoryStorage, Session, SessionCookie, SessionLayer, SessionStorage,
};
use tower::ServiceExt;

async fn read_write(session: Session) -> &'static str {
    let n = session.get::<u64>("n").unwrap_or(0);
    session.set("n", n + 1).unwrap();
    "ok"
}

async fn read_only(session: Session) -> &'static str {
    black_box(session.get::<u64>("n"));
    "ok"
}

async fn untouched() -> &'static str {
    "ok"
}

/// Saves `sessions` new sessions, each holding one value, as a busy server's would be.
async fn fill<St: SessionStorage>(storage: &St, sessions: usize) {
    for n in 0..sessions {
        let session = storage.read(None).await.unwrap();
        session.set("n", n).unwrap();
        storage.save(&session).await.unwrap();
    }
}

/// Creates `sessions` sessions through `app`'s `/seed` route and returns their `Cookie`
/// headers.
async fn seed_sessions(app: &Router, sessions: usize) -> Vec<http::HeaderValue> {
    let mut cookies = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let request = Request::get("/seed").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        cookies.push(set_cookie.split(';').next().unwrap().parse().unwrap());
    }
    cookies
}

/// A cheap, fixed sequence of pseudo-random numbers, the same in every run.
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn cookie(encrypted: bool) -> SessionCookie {
    SessionCookie::new("__session")
        .secrets(["a benchmark secret of thirty-two bytes!"])
        .encrypted(encrypted)
}

/// A Router with the layer, and the `Cookie` header of a session that holds `n`.
fn app_with_session<St: SessionStorage>(
    rt: &tokio::runtime::Runtime,
    storage: St,
    encrypted: bool,
    handler: Router,
) -> (Router, String) {
    let app = handler.layer(SessionLayer::new(cookie(encrypted), storage));
    let response = rt.block_on(
        app.clone()
            .oneshot(Request::get("/seed").body(Body::empty()).unwrap()),
    );
    let set_cookie = response.unwrap().headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    (app, set_cookie.split(';').next().unwrap().to_owned())
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("layer");

    // One runtime runs the whole measured loop, as in a server (a block_on per request
    // would measure the runtime starting and stopping).
    let run = |b: &mut criterion::Bencher<'_>, app: &Router, cookie: Option<&str>| {
        b.to_async(&rt).iter(|| async {
            let mut request = Request::get("/").body(Body::empty()).unwrap();
            if let Some(cookie) = cookie {
                request
                    .headers_mut()
                    .insert(header::COOKIE, cookie.parse().unwrap());
            }
            black_box(app.clone().oneshot(request).await.unwrap())
        })
    };

    let bare = Router::new().route("/", get(untouched));
    group.bench_function("baseline_no_layer", |b| run(b, &bare, None));

    let routes = |h| Router::new().route("/", h).route("/seed", get(read_write));
    for (name, handler, encrypted, storage) in [
        ("memory_read_write", get(read_write), false, "memory"),
        ("memory_read_only", get(read_only), false, "memory"),
        ("cookie_signed_read_write", get(read_write), false, "cookie"),
        (
            "cookie_encrypted_read_write",
            get(read_write),
            true,
            "cookie",
        ),
    ] {
        let (app, cookie) = match storage {
            "memory" => app_with_session(&rt, MemoryStorage::new(), encrypted, routes(handler)),
            _ => app_with_session(&rt, CookieStorage::new(), encrypted, routes(handler)),
        };
        group.bench_function(name, |b| run(b, &app, Some(&cookie)));
    }

    // The memory read-write request again, beside a million other live sessions with a TTL
    // (so the expiry bookkeeping is full): what a write costs must not grow with them.
    // Filled on first use, as criterion calls this closure once per sample and skips it
    // altogether when a filter leaves the line out.
    let mut crowded = None;
    group.bench_function("memory_read_write_1m_live_sessions", |b| {
        let (app, cookie) = crowded.get_or_insert_with(|| {
            let storage = MemoryStorage::new().ttl(Duration::from_secs(3600));
            rt.block_on(fill(&storage, 1_000_000));
            app_with_session(&rt, storage, false, routes(get(read_write)))
        });
        run(b, app, Some(cookie))
    });

    // The same request, each time on one of the million sessions picked at random, as a
    // busy server sees them: the storage's maps are then mostly out of the CPU's caches.
    let mut spread = None;
    group.bench_function("memory_read_write_1m_sessions_at_random", |b| {
        let (app, cookies) = spread.get_or_insert_with(|| {
            let storage = MemoryStorage::new().ttl(Duration::from_secs(3600));
            let app = routes(get(read_write)).layer(SessionLayer::new(cookie(false), storage));
            let cookies = rt.block_on(seed_sessions(&app, 1_000_000));
            (app, cookies)
        });
        let mut pick = Xorshift(0x9e37_79b9_7f4a_7c15);
        b.to_async(&rt).iter(|| {
            let cookie = &cookies[pick.below(cookies.len())];
            let mut request = Request::get("/").body(Body::empty()).unwrap();
            request.headers_mut().insert(header::COOKIE, cookie.clone());
            let app = app.clone();
            async move { black_box(app.oneshot(request).await.unwrap()) }
        })
    });

    let fresh = Router::new()
        .route("/", get(untouched))
        .layer(SessionLayer::new(cookie(false), MemoryStorage::new()));
    group.bench_function("memory_no_cookie_untouched", |b| run(b, &fresh, None));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
