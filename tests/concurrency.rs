//! Many requests at once through the real `SessionLayer` (an axum `Router`, multi-threaded
//! runtime), on one session and on many, for every storage: no panic, no deadlock (every test
//! runs under [`LIMIT`]), no torn data, and exactly what "the last save wins" means when
//! requests of one session overlap (destroy, regenerate, flash and `rolling` included).
//!
//! Each scenario is written once and run per storage by `concurrency_suite!`: memory,
//! filesystem, cookie (signed and encrypted), Redis and Memcached (private servers),
//! PostgreSQL (the custom backend example on the machine's server, as in
//! `tests/postgres_backend.rs`), and a private Redis Cluster (all scenarios in one test, so
//! that the cluster starts once).
//!
//! How torn data would show: a write request `i` sets `a`, `b`, `c` and `pad` from its own
//! number, plus a key `k{i}` of its own, in one request. A state holding values of two
//! requests, or a truncated one, fails [`whole_value`]; a record that no longer decodes fails
//! the final read (`Error::Corrupt`) and, during the run, makes the layer start a fresh
//! session, which the request's [`Trace`] shows as an empty `seen`.

mod common;

#[allow(dead_code)]
#[path = "../examples/custom_backend/backend.rs"]
mod backend;

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Extension, Path};
use axum::routing::get;
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use session_layer::storage::{MemoryBackend, Record, ServerStorage, SessionBackend, WriteMode};
use session_layer::{
    CookieStorage, Error, FsStorage, MemoryStorage, Session, SessionCookie, SessionLayer,
    SessionStorage,
};
use tokio::sync::{Barrier, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

/// A scenario that takes longer has deadlocked or hangs: it fails instead of waiting forever.
const LIMIT: Duration = Duration::from_secs(20);
/// Requests at once on one session.
const WRITERS: u64 = 300;
/// Every third of them waits, after loading, until all of these have loaded: that many
/// requests certainly overlap, whatever the scheduling.
const TOGETHER: u64 = WRITERS / 3;
/// Sessions at once, each with `REQUESTS_PER_SESSION` requests one after the other.
const SESSIONS: usize = 1000;
const REQUESTS_PER_SESSION: u64 = 3;
/// Destroy and regenerate races: rounds, and writers racing the one destroy or login.
const RACE_ROUNDS: u64 = 10;
const RACE_WRITERS: u64 = 20;

// --- the app --------------------------------------------------------------------------------

/// What a request saw and what it left for the layer to save, as its response body.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Trace {
    /// The values the session was loaded with.
    seen: Map<String, Value>,
    /// The flash `notice` that arrived with the request.
    notice: Option<String>,
    /// The values when the handler returned: what the save writes (empty once destroyed).
    wrote: Map<String, Value>,
}

impl Trace {
    fn begin(session: &Session) -> Trace {
        Trace {
            seen: session.data().values,
            notice: session.get("notice"),
            wrote: Map::new(),
        }
    }

    fn end(mut self, session: &Session) -> String {
        self.wrote = session.data().values;
        serde_json::to_string(&self).unwrap()
    }
}

#[derive(Clone)]
struct Ctx {
    gates: Gates,
    together: Arc<Barrier>,
}

fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/write/{i}", get(write))
        .route("/write-together/{i}", get(write_together))
        .route("/count/{owner}", get(count))
        .route("/flash", get(flash))
        .route("/show", get(show))
        .route("/login", get(login))
        .route("/logout", get(logout))
        .route("/gated/{gate}/{op}", get(gated))
        .layer(Extension(ctx))
}

/// `pad` of request `i`: long enough that a truncated record cannot pass for a whole one.
fn pad(i: u64) -> String {
    format!("{i:06}.").repeat(32)
}

/// Request `i`'s whole value, written in one request: `a`, `b`, `c`, `pad` and `k{i}`.
fn write_whole(session: &Session, i: u64) {
    session.set("a", i).unwrap();
    session.set("b", i).unwrap();
    session.set("c", vec![i; 8]).unwrap();
    session.set("pad", pad(i)).unwrap();
    session.set(format!("k{i}"), i).unwrap();
}

async fn write(Extension(session): Extension<Session>, Path(i): Path<u64>) -> String {
    let trace = Trace::begin(&session);
    // Let other requests run between this one's load and its save.
    tokio::task::yield_now().await;
    write_whole(&session, i);
    trace.end(&session)
}

/// Like `write`, but waits until every `write-together` request has loaded its session.
async fn write_together(
    Extension(session): Extension<Session>,
    Extension(ctx): Extension<Ctx>,
    Path(i): Path<u64>,
) -> String {
    let trace = Trace::begin(&session);
    ctx.together.wait().await;
    write_whole(&session, i);
    trace.end(&session)
}

/// A counter owned by `owner`: `n` goes up by one, `owner` says whose it is.
async fn count(Extension(session): Extension<Session>, Path(owner): Path<String>) -> String {
    let trace = Trace::begin(&session);
    tokio::task::yield_now().await;
    let n = session.get::<u64>("n").unwrap_or(0) + 1;
    session.set("n", n).unwrap();
    session.set("owner", owner).unwrap();
    trace.end(&session)
}

async fn flash(Extension(session): Extension<Session>) -> String {
    let trace = Trace::begin(&session);
    session.flash("notice", "hello").unwrap();
    trace.end(&session)
}

async fn show(Extension(session): Extension<Session>) -> String {
    Trace::begin(&session).end(&session)
}

/// A login: a new id, the old id's data deleted on save, and a `user`.
fn log_in(session: &Session) {
    session.regenerate_id(true).unwrap();
    session.set("user", "mj").unwrap();
}

async fn login(Extension(session): Extension<Session>) -> String {
    let trace = Trace::begin(&session);
    tokio::task::yield_now().await;
    log_in(&session);
    trace.end(&session)
}

async fn logout(Extension(session): Extension<Session>) -> String {
    let trace = Trace::begin(&session);
    tokio::task::yield_now().await;
    session.destroy();
    trace.end(&session)
}

/// Loads the session, waits at gate `gate` until the test opens it, then does `op`.
async fn gated(
    Extension(session): Extension<Session>,
    Extension(ctx): Extension<Ctx>,
    Path((gate, op)): Path<(String, String)>,
) -> String {
    let trace = Trace::begin(&session);
    ctx.gates.pass(&gate).await;
    match op.as_str() {
        "x" => {
            session.set("x", true).unwrap();
            session.flash("notice", "from x").unwrap();
        }
        "y" => session.set("y", true).unwrap(),
        "read" => {}
        "destroy" => session.destroy(),
        "login" => log_in(&session),
        other => panic!("unknown op {other}"),
    }
    trace.end(&session)
}

/// Gates that hold a request between its load and its save, so that a test can order the
/// loads and saves of overlapping requests exactly.
#[derive(Clone, Default)]
struct Gates(Arc<Mutex<HashMap<String, Gate>>>);

struct Gate {
    loaded: oneshot::Sender<()>,
    go: oneshot::Receiver<()>,
}

struct Armed {
    loaded: oneshot::Receiver<()>,
    go: oneshot::Sender<()>,
}

impl Gates {
    fn arm(&self, name: &str) -> Armed {
        let (loaded, loaded_rx) = oneshot::channel();
        let (go_tx, go) = oneshot::channel();
        let gate = Gate { loaded, go };
        self.0.lock().unwrap().insert(name.to_owned(), gate);
        Armed {
            loaded: loaded_rx,
            go: go_tx,
        }
    }

    async fn pass(&self, name: &str) {
        let gate = self.0.lock().unwrap().remove(name).expect("gate armed");
        let _ = gate.loaded.send(());
        gate.go.await.expect("the test opens the gate");
    }
}

// --- driving it -------------------------------------------------------------------------------

/// A storage under test, with whatever keeps it alive (a server, a directory).
struct Fixture<St> {
    storage: St,
    /// Server-side (the cookie holds an id) rather than the cookie storage.
    server_side: bool,
    encrypted: bool,
    keep: Box<dyn Any + Send + Sync>,
}

impl<St> Fixture<St> {
    fn server(storage: St, keep: impl Any + Send + Sync) -> Fixture<St> {
        Fixture {
            storage,
            server_side: true,
            encrypted: false,
            keep: Box::new(keep),
        }
    }
}

/// What the response said about the cookie.
#[derive(Clone, Debug, PartialEq)]
enum SetCookie {
    None,
    /// `sid=value`, what the browser sends back.
    Pair(String),
    Removal,
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    set_cookie: SetCookie,
    body: String,
}

impl Answer {
    fn trace(&self) -> Trace {
        assert_eq!(self.status, StatusCode::OK, "body {:?}", self.body);
        serde_json::from_str(&self.body).expect("a trace")
    }

    fn pair(&self) -> String {
        match &self.set_cookie {
            SetCookie::Pair(pair) => pair.clone(),
            other => panic!("expected a session cookie, got {other:?}"),
        }
    }
}

async fn send(app: Router, cookie: Option<String>, path: String) -> Answer {
    let mut builder = Request::get(&path);
    if let Some(cookie) = &cookie {
        builder = builder.header(COOKIE, cookie);
    }
    let response = app
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let mut headers: Vec<String> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(headers.len() <= 1, "more than one Set-Cookie: {headers:?}");
    let set_cookie = match headers.pop() {
        None => SetCookie::None,
        Some(header) => match header.split(';').next().unwrap() {
            "sid=" => SetCookie::Removal,
            pair => SetCookie::Pair(pair.to_owned()),
        },
    };
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    Answer {
        status,
        set_cookie,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// One storage behind the layer and the app.
struct Harness<St: SessionStorage> {
    layer: SessionLayer<St>,
    app: Router,
    ctx: Ctx,
    server_side: bool,
    _keep: Box<dyn Any + Send + Sync>,
}

impl<St: SessionStorage> Harness<St> {
    fn new(fixture: Fixture<St>) -> Self {
        Self::with(fixture, false, 1)
    }

    fn with(fixture: Fixture<St>, rolling: bool, together: u64) -> Self {
        let cookie = SessionCookie::new("sid")
            .secrets(["a secret for the concurrency tests"])
            .encrypted(fixture.encrypted);
        let layer = SessionLayer::new(cookie, fixture.storage).rolling(rolling);
        let ctx = Ctx {
            gates: Gates::default(),
            together: Arc::new(Barrier::new(together as usize)),
        };
        Harness {
            app: router(ctx.clone()).layer(layer.clone()),
            layer,
            ctx,
            server_side: fixture.server_side,
            _keep: fixture.keep,
        }
    }

    fn spawn(&self, cookie: Option<&str>, path: &str) -> JoinHandle<Answer> {
        tokio::spawn(send(
            self.app.clone(),
            cookie.map(str::to_owned),
            path.to_owned(),
        ))
    }

    async fn send(&self, cookie: Option<&str>, path: &str) -> Answer {
        self.spawn(cookie, path).await.expect("no panic")
    }

    /// The verified value of a `sid=...` pair: the id, or for the cookie storage the data.
    fn value(&self, pair: &str) -> String {
        self.layer
            .cookie()
            .parse(Some(pair))
            .expect("a cookie of ours verifies")
    }

    /// The session a cookie names, read straight from the storage: an error here (a record
    /// that does not decode) fails the test.
    async fn stored(&self, pair: &str) -> Session {
        let value = self.value(pair);
        self.layer
            .storage()
            .read(Some(&value))
            .await
            .unwrap_or_else(|e| panic!("reading the stored session: {e}"))
    }

    /// The session id a cookie carries (for the cookie storage, sealed in its value), whether
    /// or not the session still exists.
    async fn id_of(&self, pair: &str) -> String {
        if self.server_side {
            self.value(pair)
        } else {
            self.stored(pair).await.id()
        }
    }

    /// Whether the session that `pair` named is gone: the cookie now gives a fresh session.
    async fn is_gone(&self, pair: &str, id: &str) -> bool {
        let session = self.stored(pair).await;
        session.id() != id && session.is_empty()
    }

    /// Starts a request through gate `gate` doing `op`; returns once its session is loaded.
    async fn start_gated(&self, cookie: &str, gate: &str, op: &str) -> Gated {
        let mut armed = self.ctx.gates.arm(gate);
        let mut task = self.spawn(Some(cookie), &format!("/gated/{gate}/{op}"));
        tokio::select! {
            loaded = &mut armed.loaded => loaded.expect("the handler reached its gate"),
            answer = &mut task => panic!("request {gate} ended before its gate: {answer:?}"),
        }
        Gated { task, go: armed.go }
    }

    /// A session of its own holding request 0's whole value: its cookie and the values.
    async fn seed(&self) -> (String, Map<String, Value>) {
        let answer = self.send(None, "/write/0").await;
        let trace = answer.trace();
        (answer.pair(), trace.wrote)
    }
}

/// A request held at its gate, its session loaded.
struct Gated {
    task: JoinHandle<Answer>,
    go: oneshot::Sender<()>,
}

impl Gated {
    /// Lets it change the session and waits until it is saved and answered.
    async fn finish(self) -> Answer {
        self.go.send(()).expect("the request waits at its gate");
        self.task.await.expect("no panic")
    }
}

/// The number of the one request whose whole value `values` holds (`a`, `b`, `c` and `pad`
/// all from it, every own key `k{j}` equal to `j`), or why the state is torn or lost.
fn whole_value(values: &Map<String, Value>) -> Result<u64, String> {
    let keys: Vec<&String> = values.keys().collect();
    let a = values
        .get("a")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("lost: no `a` in a state with keys {keys:?}"))?;
    let expected = [
        ("b", json!(a)),
        ("c", json!(vec![a; 8])),
        ("pad", json!(pad(a))),
    ];
    for (key, want) in expected {
        if values.get(key) != Some(&want) {
            return Err(format!(
                "torn: a = {a} but {key} = {}",
                values.get(key).map_or("absent".into(), Value::to_string)
            ));
        }
    }
    for (key, value) in values {
        if let Some(j) = key.strip_prefix('k').and_then(|j| j.parse::<u64>().ok()) {
            if value != &json!(j) {
                return Err(format!("torn: {key} = {value}"));
            }
        }
    }
    Ok(a)
}

fn own_key(i: u64) -> String {
    format!("k{i}")
}

/// Runs a scenario under [`LIMIT`], so that a deadlock fails rather than hangs.
async fn within(name: &str, scenario: impl Future<Output = ()>) {
    let started = Instant::now();
    tokio::time::timeout(LIMIT, scenario)
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {LIMIT:?}: deadlock or hang"));
    eprintln!("{name}: {:?}", started.elapsed());
}

// --- the scenarios --------------------------------------------------------------------------

/// `WRITERS` requests at once on one session, each writing its whole value; a third of them
/// certainly overlap (all of them load before any of them saves).
///
/// Every request is answered 200; every request loaded one request's whole value (never a
/// mix, never a lost session); server-side, the stored record is exactly what one request
/// wrote and at most one of the overlapping third kept its own key (the last save wins, per
/// whole record); with the cookie storage, every response's cookie holds exactly what its
/// request wrote.
async fn many_requests_on_one_session<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::with(fixture, false, TOGETHER);
    let (cookie, seed) = h.seed().await;
    let seed_value = h.value(&cookie);

    let mut running = JoinSet::new();
    for i in 1..=WRITERS {
        let path = if i % 3 == 0 {
            format!("/write-together/{i}")
        } else {
            format!("/write/{i}")
        };
        let answer = send(h.app.clone(), Some(cookie.clone()), path);
        running.spawn(async move { (i, answer.await) });
    }
    let mut answers = Vec::new(); // in the order they completed
    while let Some(joined) = running.join_next().await {
        answers.push(joined.expect("no panic"));
    }
    assert_eq!(answers.len() as u64, WRITERS, "every request answered");

    let mut wrote: HashMap<u64, Map<String, Value>> = HashMap::from([(0, seed)]);
    let mut seen: HashMap<u64, (u64, Map<String, Value>)> = HashMap::new();
    for (i, answer) in &answers {
        assert_eq!(answer.status, StatusCode::OK, "request {i}: {answer:?}");
        let trace = answer.trace();
        let from = whole_value(&trace.seen)
            .unwrap_or_else(|e| panic!("request {i} loaded a bad session: {e}"));
        assert_ne!(from, *i, "request {i} cannot have seen its own write");
        assert_eq!(whole_value(&trace.wrote), Ok(*i), "request {i} wrote");
        let pair = answer.pair();
        if h.server_side {
            assert_eq!(h.value(&pair), seed_value, "request {i}: the id is kept");
        } else {
            let in_cookie = h.stored(&pair).await.data().values;
            assert_eq!(
                in_cookie, trace.wrote,
                "request {i}'s cookie holds what it wrote"
            );
        }
        wrote.insert(*i, trace.wrote);
        seen.insert(*i, (from, trace.seen));
    }
    // Whatever a request loaded was exactly what one request had saved.
    for (i, (from, values)) in &seen {
        assert_eq!(
            values, &wrote[from],
            "request {i} loaded request {from}'s value, but not all of it"
        );
    }
    let together: Vec<u64> = (1..=WRITERS).filter(|i| i % 3 == 0).collect();
    for i in &together {
        for j in &together {
            assert!(
                !seen[i].1.contains_key(&own_key(*j)),
                "request {i} loaded after request {j} saved, though both waited for each other"
            );
        }
    }

    if h.server_side {
        let stored = h.stored(&cookie).await;
        assert_eq!(stored.id(), seed_value, "the session still exists");
        let values = stored.data().values;
        let last = whole_value(&values).unwrap_or_else(|e| panic!("the stored record: {e}"));
        assert_eq!(
            values, wrote[&last],
            "the stored record is exactly what request {last} wrote"
        );
        let shown = h.send(Some(&cookie), "/show").await.trace();
        assert_eq!(shown.seen, values, "the layer loads the same");
        let kept = together
            .iter()
            .filter(|i| values.contains_key(&own_key(**i)))
            .count();
        assert!(
            kept <= 1,
            "{kept} of the requests that overlapped kept their own key: the last save should win"
        );
        let own_keys = (1..=WRITERS)
            .filter(|i| values.contains_key(&own_key(*i)))
            .count();
        eprintln!(
            "  one session: {WRITERS} writers, the record is request {last}'s and keeps \
             {own_keys} of {WRITERS} own keys ({} changes lost to later saves)",
            WRITERS as usize - own_keys
        );
    } else {
        for (i, (from, _)) in &seen {
            assert_eq!(*from, 0, "request {i} sent the seed cookie");
        }
        // The client keeps whichever cookie it gets last; the session is then that request's.
        let (last, answer) = answers.last().unwrap();
        let shown = h.send(Some(&answer.pair()), "/show").await.trace();
        assert_eq!(shown.seen, wrote[last]);
    }
}

/// `SESSIONS` sessions at once, each with `REQUESTS_PER_SESSION` requests one after the
/// other: every counter is exact, every session holds only its own data, ids never repeat.
async fn many_sessions_in_parallel<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let mut running = JoinSet::new();
    for s in 0..SESSIONS {
        let app = h.app.clone();
        running.spawn(async move {
            let owner = format!("s{s}");
            let mut cookie: Option<String> = None;
            for r in 1..=REQUESTS_PER_SESSION {
                let answer = send(app.clone(), cookie.clone(), format!("/count/{owner}")).await;
                assert_eq!(
                    answer.status,
                    StatusCode::OK,
                    "{owner} request {r}: {answer:?}"
                );
                let trace = answer.trace();
                let expected = if r == 1 {
                    Map::new()
                } else {
                    let Value::Object(map) = json!({"n": r - 1, "owner": owner}) else {
                        unreachable!()
                    };
                    map
                };
                assert_eq!(
                    trace.seen, expected,
                    "{owner} request {r}: another session's data or a lost update"
                );
                cookie = Some(answer.pair());
            }
            (owner, cookie.unwrap())
        });
    }
    let mut ids = HashSet::new();
    let mut done = 0;
    while let Some(joined) = running.join_next().await {
        let (owner, cookie) = joined.expect("no panic");
        let stored = h.stored(&cookie).await;
        assert_eq!(
            Value::Object(stored.data().values),
            json!({"n": REQUESTS_PER_SESSION, "owner": owner}),
            "{owner} ends with exactly its own data"
        );
        assert!(ids.insert(stored.id()), "two sessions share an id");
        done += 1;
    }
    assert_eq!(done, SESSIONS);
}

/// `WRITERS` requests at once on one session, every other one cancelled (its task aborted)
/// somewhere between sending and answering, as when clients disconnect. The answered ones
/// are whole; then more requests, one after the other and at once, all succeed (no
/// connection is left mid-command) and the record is still one request's whole value.
async fn cancelled_requests_leave_whole_records<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (cookie, _) = h.seed().await;
    let mut tasks = Vec::new();
    for i in 1..=WRITERS {
        let task = h.spawn(Some(&cookie), &format!("/write/{i}"));
        if i % 2 == 1 {
            let abort = task.abort_handle();
            let polls = i % 13;
            tokio::spawn(async move {
                for _ in 0..polls {
                    tokio::task::yield_now().await;
                }
                abort.abort();
            });
        }
        tasks.push((i, task));
    }
    let check = |i: u64, answer: &Answer| {
        assert_eq!(answer.status, StatusCode::OK, "request {i}: {answer:?}");
        let trace = answer.trace();
        whole_value(&trace.seen).unwrap_or_else(|e| panic!("request {i} loaded: {e}"));
        assert_eq!(whole_value(&trace.wrote), Ok(i), "request {i} wrote");
    };
    let (mut answered, mut cancelled) = (0, 0);
    for (i, task) in tasks {
        match task.await {
            Ok(answer) => {
                check(i, &answer);
                answered += 1;
            }
            Err(e) if e.is_cancelled() => cancelled += 1,
            Err(e) => panic!("request {i} panicked: {e}"),
        }
    }
    assert!(
        answered >= WRITERS / 2,
        "the requests not cancelled are answered"
    );
    let after = WRITERS + 1..=WRITERS + 20;
    for i in after.clone() {
        check(i, &h.send(Some(&cookie), &format!("/write/{i}")).await);
    }
    let mut running = JoinSet::new();
    for i in after.end() + 1..=after.end() + 50 {
        let answer = send(h.app.clone(), Some(cookie.clone()), format!("/write/{i}"));
        running.spawn(async move { (i, answer.await) });
    }
    while let Some(joined) = running.join_next().await {
        let (i, answer) = joined.expect("no panic");
        check(i, &answer);
    }
    if h.server_side {
        let values = h.stored(&cookie).await.data().values;
        whole_value(&values).unwrap_or_else(|e| panic!("the stored record: {e}"));
    }
    eprintln!("  cancelled: {cancelled} of {WRITERS} requests, {answered} answered");
}

/// What each writer of a race round did, from its answer.
enum Writer {
    /// Loaded the session before it was deleted: its save writes it (back) under the old id.
    LoadedOld(Map<String, Value>),
    /// Loaded after the delete: a fresh session under a new id, holding only its own write.
    Fresh,
}

/// Checks a racing writer's answer against the seed session (`seed_id`, `seed_pair`).
async fn racing_writer<St: SessionStorage>(
    h: &Harness<St>,
    i: u64,
    answer: &Answer,
    seed_id: &str,
) -> Writer {
    assert_eq!(answer.status, StatusCode::OK, "writer {i}: {answer:?}");
    let trace = answer.trace();
    assert_eq!(whole_value(&trace.wrote), Ok(i), "writer {i} wrote");
    let pair = answer.pair();
    if h.id_of(&pair).await == seed_id {
        whole_value(&trace.seen).unwrap_or_else(|e| panic!("writer {i} loaded: {e}"));
        assert!(
            !trace.seen.contains_key("user"),
            "writer {i}: no login data"
        );
        if !h.server_side {
            let in_cookie = h.stored(&pair).await.data().values;
            assert_eq!(in_cookie, trace.wrote, "writer {i}'s cookie");
        }
        Writer::LoadedOld(trace.wrote)
    } else {
        assert!(
            h.server_side,
            "with the cookie storage every writer keeps the id"
        );
        assert!(
            trace.seen.is_empty(),
            "writer {i} got a new id, so it must have found nothing: {:?}",
            trace.seen
        );
        // Nobody else knows the new id.
        let stored = h.stored(&pair).await;
        assert_eq!(
            stored.data().values,
            trace.wrote,
            "writer {i}'s new session"
        );
        Writer::Fresh
    }
}

/// Rounds of one logout racing `RACE_WRITERS` writers on one session. The allowed outcomes:
/// the logout clears the cookie; a writer either loaded the session before the delete (its
/// save re-sends the old id and writes the whole record back if it comes after the delete)
/// or after it (a fresh session with a new id holding only its own write); the old id ends
/// either gone or holding exactly one of the first kind's writes.
async fn destroy_races_writers<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (mut gone, mut back, mut fresh) = (0, 0, 0);
    for round in 0..RACE_ROUNDS {
        let (cookie, _) = h.seed().await;
        let seed_id = h.stored(&cookie).await.id();
        let mut writers = Vec::new();
        for i in 1..=RACE_WRITERS {
            writers.push((i, h.spawn(Some(&cookie), &format!("/write/{i}"))));
            if i == RACE_WRITERS / 2 {
                writers.push((0, h.spawn(Some(&cookie), "/logout")));
            }
        }
        let mut loaded_old = HashMap::new();
        for (i, task) in writers {
            let answer = task.await.expect("no panic");
            if i == 0 {
                assert_eq!(answer.status, StatusCode::OK, "logout: {answer:?}");
                assert_eq!(answer.set_cookie, SetCookie::Removal, "logout clears");
                continue;
            }
            match racing_writer(&h, i, &answer, &seed_id).await {
                Writer::LoadedOld(values) => {
                    loaded_old.insert(i, values);
                }
                Writer::Fresh => fresh += 1,
            }
        }
        if h.server_side {
            if h.is_gone(&cookie, &seed_id).await {
                gone += 1;
            } else {
                let values = h.stored(&cookie).await.data().values;
                let last = whole_value(&values).unwrap_or_else(|e| panic!("round {round}: {e}"));
                assert_eq!(
                    loaded_old.get(&last),
                    Some(&values),
                    "round {round}: the old id holds exactly the write of a request that \
                     loaded it before the delete"
                );
                back += 1;
            }
        }
    }
    eprintln!(
        "  destroy races: {RACE_ROUNDS} rounds, session gone {gone}, written back {back}; \
         {fresh} writers started a fresh session"
    );
}

/// Rounds of one login (`regenerate_id(true)`) racing `RACE_WRITERS` writers. The login's new
/// id holds exactly what it wrote (with `user`); the old id never gets `user`: it ends gone
/// or holding exactly the write of a request that loaded it before the delete; writers that
/// loaded after the delete got fresh sessions.
async fn regenerate_races_writers<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (mut gone, mut back, mut fresh) = (0, 0, 0);
    for round in 0..RACE_ROUNDS {
        let (cookie, _) = h.seed().await;
        let seed_id = h.stored(&cookie).await.id();
        let mut writers = Vec::new();
        for i in 1..=RACE_WRITERS {
            writers.push((i, h.spawn(Some(&cookie), &format!("/write/{i}"))));
            if i == RACE_WRITERS / 2 {
                writers.push((0, h.spawn(Some(&cookie), "/login")));
            }
        }
        let mut loaded_old = HashMap::new();
        let mut login = None;
        for (i, task) in writers {
            let answer = task.await.expect("no panic");
            if i == 0 {
                login = Some(answer);
                continue;
            }
            match racing_writer(&h, i, &answer, &seed_id).await {
                Writer::LoadedOld(values) => {
                    loaded_old.insert(i, values);
                }
                Writer::Fresh => fresh += 1,
            }
        }
        let login = login.unwrap();
        let trace = login.trace();
        whole_value(&trace.seen).unwrap_or_else(|e| panic!("login loaded: {e}"));
        assert_eq!(trace.wrote["user"], "mj");
        let new = h.stored(&login.pair()).await;
        assert_ne!(new.id(), seed_id, "round {round}: the login has a new id");
        assert_eq!(
            new.data().values,
            trace.wrote,
            "round {round}: the new id holds exactly what the login wrote"
        );
        if h.server_side {
            if h.is_gone(&cookie, &seed_id).await {
                gone += 1;
            } else {
                let values = h.stored(&cookie).await.data().values;
                assert!(
                    !values.contains_key("user"),
                    "the old id never gets the login"
                );
                let last = whole_value(&values).unwrap_or_else(|e| panic!("round {round}: {e}"));
                assert_eq!(loaded_old.get(&last), Some(&values), "round {round}");
                back += 1;
            }
        }
    }
    eprintln!(
        "  regenerate races: {RACE_ROUNDS} rounds, old id gone {gone}, written back {back}; \
         {fresh} writers started a fresh session"
    );
}

/// A and B load the session; A sets `x` and a flash and saves first; B sets `y` and saves
/// last. Server-side the record is exactly B's: A's `x` and flash are lost although B never
/// touched them. With the cookie storage each response carries its own request's session,
/// and the client keeps whichever it gets last.
async fn last_save_wins_whole_record<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (cookie, seed) = h.seed().await;
    let a = h.start_gated(&cookie, "A", "x").await;
    let b = h.start_gated(&cookie, "B", "y").await;
    let a = a.finish().await;
    let b = b.finish().await;
    let (ta, tb) = (a.trace(), b.trace());
    assert_eq!(ta.seen, seed);
    assert_eq!(tb.seen, seed);
    assert!(ta.wrote.contains_key("x") && tb.wrote.contains_key("y"));
    if h.server_side {
        assert_eq!(h.value(&a.pair()), h.value(&cookie));
        assert_eq!(h.value(&b.pair()), h.value(&cookie));
        let stored = h.stored(&cookie).await;
        assert_eq!(stored.data().values, tb.wrote, "the last save wins");
        assert!(!stored.has("x"), "A's change is lost");
        let next = h.send(Some(&cookie), "/show").await.trace();
        assert_eq!(next.notice, None, "A's flash is lost too");
    } else {
        let in_a = h.stored(&a.pair()).await;
        assert_eq!(in_a.data().values, ta.wrote);
        assert_eq!(
            in_a.data().flash.len(),
            0,
            "a flash is for the next request"
        );
        assert_eq!(
            h.send(Some(&a.pair()), "/show")
                .await
                .trace()
                .notice
                .as_deref(),
            Some("from x")
        );
        assert_eq!(h.stored(&b.pair()).await.data().values, tb.wrote);
        assert_eq!(h.send(Some(&b.pair()), "/show").await.trace().notice, None);
    }
}

/// A sets `x`; B, loaded before A saved, only reads and finishes after A. Without `rolling`
/// B saves nothing and sends no cookie, so A's change stays.
async fn read_only_request_saves_nothing<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (cookie, seed) = h.seed().await;
    let a = h.start_gated(&cookie, "A", "x").await;
    let b = h.start_gated(&cookie, "B", "read").await;
    let a = a.finish().await;
    let b = b.finish().await;
    assert_eq!(b.trace().seen, seed);
    assert_eq!(
        b.set_cookie,
        SetCookie::None,
        "a read-only request saves nothing"
    );
    let kept = if h.server_side { cookie } else { a.pair() };
    assert_eq!(h.stored(&kept).await.data().values, a.trace().wrote);
}

/// The same with `rolling(true)`: B re-saves the copy it loaded, so, server-side, A's change
/// is overwritten by a request that changed nothing; with the cookie storage B's cookie
/// holds the old state.
async fn rolling_read_only_request_writes_back<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::with(fixture, true, 1);
    let (cookie, seed) = h.seed().await;
    let a = h.start_gated(&cookie, "A", "x").await;
    let b = h.start_gated(&cookie, "B", "read").await;
    let a = a.finish().await;
    let b = b.finish().await;
    assert!(a.trace().wrote.contains_key("x"));
    assert_eq!(b.trace().seen, seed);
    let in_b = h.stored(&b.pair()).await;
    assert_eq!(
        in_b.data().values,
        seed,
        "B's cookie or record: the old state"
    );
    if h.server_side {
        assert!(
            !h.stored(&cookie).await.has("x"),
            "A's change is overwritten"
        );
    }
}

/// W loads the session; a logout runs completely (the record is deleted, the cookie
/// cleared); then W saves: the session is written back, with W's change, under the old id.
async fn destroy_then_late_writer<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (cookie, seed) = h.seed().await;
    let id = h.stored(&cookie).await.id();
    let w = h.start_gated(&cookie, "W", "x").await;
    let logout = h.send(Some(&cookie), "/logout").await;
    assert_eq!(logout.set_cookie, SetCookie::Removal);
    if h.server_side {
        assert!(h.is_gone(&cookie, &id).await, "the logout deleted it");
    }
    let w = w.finish().await;
    let trace = w.trace();
    assert_eq!(trace.seen, seed);
    let back = h.stored(&w.pair()).await;
    assert_eq!(back.id(), id, "W's cookie names the old session");
    assert_eq!(
        back.data().values,
        trace.wrote,
        "and it is back, with W's change"
    );
    if h.server_side {
        assert_eq!(h.stored(&cookie).await.data().values, trace.wrote);
    }
}

/// The other order: a logout loads, a write completes, then the logout saves: the session
/// is gone, the write with it.
async fn writer_then_late_destroy<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (cookie, _) = h.seed().await;
    let id = h.stored(&cookie).await.id();
    let logout = h.start_gated(&cookie, "L", "destroy").await;
    let w = h.send(Some(&cookie), "/write/1").await;
    assert_eq!(whole_value(&w.trace().wrote), Ok(1));
    let logout = logout.finish().await;
    assert_eq!(logout.set_cookie, SetCookie::Removal);
    if h.server_side {
        assert!(
            h.is_gone(&cookie, &id).await,
            "the destroy saved last: gone"
        );
    }
}

/// W loads the session; a login (`regenerate_id(true)`) runs completely (new id written,
/// old id deleted); then W saves: the old id is written back with W's change, but without
/// the login's `user`; the new id keeps exactly the login's state.
async fn regenerate_then_late_writer<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (cookie, seed) = h.seed().await;
    let id = h.stored(&cookie).await.id();
    let w = h.start_gated(&cookie, "W", "x").await;
    let login = h.send(Some(&cookie), "/login").await;
    let login_trace = login.trace();
    let new = h.stored(&login.pair()).await;
    assert_ne!(new.id(), id);
    assert_eq!(new.data().values, login_trace.wrote);
    if h.server_side {
        assert!(
            h.is_gone(&cookie, &id).await,
            "the login deleted the old id"
        );
    }
    let w = w.finish().await;
    let trace = w.trace();
    assert_eq!(trace.seen, seed);
    let old = h.stored(&w.pair()).await;
    assert_eq!(old.id(), id, "W's cookie names the old id");
    assert_eq!(
        old.data().values,
        trace.wrote,
        "written back with W's change"
    );
    assert!(!old.has("user"), "but never with the login's data");
    let new = h.stored(&login.pair()).await;
    assert_eq!(
        new.data().values,
        login_trace.wrote,
        "the new id is untouched"
    );
    assert!(!new.has("x"), "and does not get W's change");
}

/// A flash is shown to every request that loaded it before the first of them saved: A and
/// B both load it, both see it; W, loaded at the same time, sets `y` and saves first; A and
/// B save after it, to drop the flash, and so write back their older copy: server-side `y`
/// is lost, though A and B only read. After that the flash is gone.
async fn flash_seen_by_every_overlapping_request<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let cookie = h.send(None, "/flash").await.pair();
    let a = h.start_gated(&cookie, "A", "read").await;
    let b = h.start_gated(&cookie, "B", "read").await;
    let w = h.start_gated(&cookie, "W", "y").await;
    let w = w.finish().await;
    let a = a.finish().await;
    let b = b.finish().await;
    assert_eq!(w.trace().notice.as_deref(), Some("hello"));
    for answer in [&a, &b] {
        assert_eq!(answer.trace().notice.as_deref(), Some("hello"));
        assert!(
            matches!(answer.set_cookie, SetCookie::Pair(_)),
            "consuming a flash saves"
        );
    }
    let next = if h.server_side { cookie } else { b.pair() };
    let after = h.send(Some(&next), "/show").await;
    let trace = after.trace();
    assert_eq!(trace.notice, None, "then it is gone");
    assert_eq!(
        after.set_cookie,
        SetCookie::None,
        "and nothing is left to save"
    );
    if h.server_side {
        assert!(!trace.seen.contains_key("y"), "W's change is written over");
    }
}

// --- the storages -----------------------------------------------------------------------------

/// Idle TTL of every storage under test: long enough never to expire during a run.
const TTL: Duration = Duration::from_secs(600);

async fn memory() -> Fixture<MemoryStorage> {
    Fixture::server(MemoryStorage::new().ttl(TTL), ())
}

async fn fs() -> Fixture<FsStorage> {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path()).unwrap().ttl(TTL);
    Fixture::server(storage, dir)
}

async fn cookie_signed() -> Fixture<CookieStorage> {
    Fixture {
        storage: CookieStorage::new().ttl(TTL),
        server_side: false,
        encrypted: false,
        keep: Box::new(()),
    }
}

async fn cookie_encrypted() -> Fixture<CookieStorage> {
    Fixture {
        encrypted: true,
        ..cookie_signed().await
    }
}

#[cfg(feature = "redis")]
async fn redis() -> Fixture<session_layer::RedisStorage> {
    let server = common::servers::start_redis();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let storage = session_layer::RedisStorage::connect(&url)
        .await
        .expect("connect to the private redis-server")
        .key_prefix(&common::servers::unique_prefix())
        .ttl(TTL);
    Fixture::server(storage, server)
}

#[cfg(feature = "memcache")]
async fn memcached() -> Fixture<session_layer::MemcacheStorage> {
    let server = common::servers::start_memcached();
    let storage = session_layer::MemcacheStorage::connect(&format!("127.0.0.1:{}", server.port))
        .await
        .expect("connect to the private memcached")
        .ttl(TTL);
    Fixture::server(storage, server)
}

async fn postgres() -> Fixture<backend::PgStorage> {
    let config = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=test".to_owned());
    // A table private to this connection: no test sees another's rows.
    let db = backend::PgBackend::connect(&config, "pg_temp.sessions")
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is needed for this test ({config:?}; set DATABASE_URL): {e}")
        });
    Fixture::server(backend::PgStorage::with_backend(db).ttl(TTL), ())
}

/// One test per scenario for the storage `$make` builds.
macro_rules! scenario_tests {
    ($make:expr; $($scenario:ident),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $scenario() {
            within(concat!(module_path!(), "::", stringify!($scenario)), async {
                super::$scenario($make.await).await
            })
            .await
        }
    )+};
}

/// Every scenario for every storage: `name: constructor;`.
macro_rules! concurrency_suite {
    ($($(#[$attr:meta])* $storage:ident: $make:expr;)+) => {$(
        $(#[$attr])*
        mod $storage {
            use super::*;
            scenario_tests!($make;
                many_requests_on_one_session,
                many_sessions_in_parallel,
                cancelled_requests_leave_whole_records,
                destroy_races_writers,
                regenerate_races_writers,
                last_save_wins_whole_record,
                read_only_request_saves_nothing,
                rolling_read_only_request_writes_back,
                destroy_then_late_writer,
                writer_then_late_destroy,
                regenerate_then_late_writer,
                flash_seen_by_every_overlapping_request,
            );
        }
    )+};
}

concurrency_suite! {
    memory: memory();
    fs: fs();
    cookie_signed: cookie_signed();
    cookie_encrypted: cookie_encrypted();
    #[cfg(feature = "redis")]
    redis: redis();
    #[cfg(feature = "memcache")]
    memcached: memcached();
    postgres: postgres();
}

/// Every scenario on one private three-node Redis Cluster (started once: it takes a second
/// or two), each with a key prefix of its own.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_all_scenarios() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| common::servers::RedisCluster::start(3))
            .await
            .unwrap(),
    );
    let make = || {
        let cluster = Arc::clone(&cluster);
        async move {
            let urls = cluster.urls();
            let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
            let storage = session_layer::RedisStorage::connect_cluster(&urls)
                .await
                .expect("connect to the private cluster")
                .key_prefix(&common::servers::unique_prefix())
                .ttl(TTL);
            Fixture::server(storage, cluster)
        }
    };
    macro_rules! run {
        ($($scenario:ident),+) => {$(
            within(concat!("redis_cluster::", stringify!($scenario)), $scenario(make().await)).await;
        )+};
    }
    run!(
        many_requests_on_one_session,
        many_sessions_in_parallel,
        cancelled_requests_leave_whole_records,
        destroy_races_writers,
        regenerate_races_writers,
        last_save_wins_whole_record,
        read_only_request_saves_nothing,
        rolling_read_only_request_writes_back,
        destroy_then_late_writer,
        writer_then_late_destroy,
        regenerate_then_late_writer,
        flash_seen_by_every_overlapping_request
    );
}

// --- the checks can fail ----------------------------------------------------------------------

/// A broken store for the self-test below: it writes every field of a record but `c`, which
/// keeps its first value, as a store that writes a record piecemeal and loses a piece would.
#[derive(Clone, Default)]
struct LosesAField(MemoryBackend);

impl SessionBackend for LosesAField {
    async fn load(&self, id: &str) -> Result<Option<Record>, Error> {
        self.0.load(id).await
    }

    async fn store(
        &self,
        id: &str,
        record: &Record,
        ttl: Option<Duration>,
        mode: WriteMode,
    ) -> Result<bool, Error> {
        let mut record = record.clone();
        if let Some(old) = self.0.load(id).await? {
            if let Some(c) = old.data.values.get("c") {
                record.data.values.insert("c".into(), c.clone());
            }
        }
        self.0.store(id, &record, ttl, mode).await
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        self.0.delete(id).await
    }
}

/// The torn-data check is not vacuous: on a store that tears records, the one-session
/// scenario fails, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_torn_data_check_catches_a_store_that_tears_records() {
    let fixture = Fixture::server(ServerStorage::with_backend(LosesAField::default()), ());
    let failed = tokio::spawn(many_requests_on_one_session(fixture))
        .await
        .expect_err("the scenario must fail on a tearing store");
    let message = failed.into_panic();
    let message = message
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(message.contains("torn: a = "), "{message}");
}

// --- storage-specific -------------------------------------------------------------------------

/// `FsStorage::remove_expired` while requests write: every sweep succeeds (temporary files
/// come and go under it), removes nothing that is not stale, every request is answered 200
/// and every session keeps its exact count. Each session file is made two hours old after
/// each request, so that the old file a rewrite swaps out is a stale temporary file that a
/// sweep may remove first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_sweeps_while_requests_write() {
    const SWEPT_SESSIONS: usize = 64;
    const REQUESTS: u64 = 25;
    within("fs_sweeps_while_requests_write", async {
        let h = Harness::new(fs().await);
        let mut running = JoinSet::new();
        for s in 0..SWEPT_SESSIONS {
            let app = h.app.clone();
            let dir = h.layer.storage().dir().to_owned();
            let cookie_value = {
                let cookie = h.layer.cookie().clone();
                move |pair: &str| cookie.parse(Some(pair)).unwrap()
            };
            running.spawn(async move {
                let owner = format!("s{s}");
                let mut cookie: Option<String> = None;
                for r in 1..=REQUESTS {
                    let answer = send(app.clone(), cookie.clone(), format!("/count/{owner}")).await;
                    assert_eq!(answer.status, StatusCode::OK, "{owner} request {r}");
                    let pair = answer.pair();
                    let id = cookie_value(&pair);
                    let digest = session_layer::storage::id_digest(&id);
                    let path = dir.join(&digest[..2]).join(&digest[2..]);
                    let file = std::fs::File::options().write(true).open(&path).unwrap();
                    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
                        .unwrap();
                    cookie = Some(pair);
                }
                (owner, cookie.unwrap())
            });
        }
        let (mut sweeps, mut stale) = (0, 0);
        let mut failed = Vec::new();
        while !running.is_empty() {
            match h.layer.storage().remove_expired().await {
                Ok(removed) => stale += removed,
                Err(e) => failed.push(e.to_string()),
            }
            sweeps += 1;
            while let Some(joined) = running.try_join_next() {
                let (owner, cookie) = joined.expect("no panic");
                let stored = h.stored(&cookie).await;
                assert_eq!(
                    Value::Object(stored.data().values),
                    json!({"n": REQUESTS, "owner": owner})
                );
            }
        }
        assert!(
            failed.is_empty(),
            "{} of {sweeps} sweeps failed while requests wrote, first: {}",
            failed.len(),
            failed[0]
        );
        eprintln!(
            "  {sweeps} sweeps while {SWEPT_SESSIONS} sessions wrote {REQUESTS} times each; \
             {stale} stale temporary files removed"
        );
    })
    .await
}

/// A memory backend whose next `delete` waits at a gate.
#[derive(Clone, Default)]
struct GatedLoad {
    inner: MemoryBackend,
    gate: Arc<Mutex<Option<Gate>>>,
}

impl SessionBackend for GatedLoad {
    /// Loads, then waits at the gate (once) before answering.
    async fn load(&self, id: &str) -> Result<Option<Record>, Error> {
        let record = self.inner.load(id).await?;
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            let _ = gate.loaded.send(());
            gate.go.await.expect("the test opens the gate");
        }
        Ok(record)
    }

    async fn store(
        &self,
        id: &str,
        record: &Record,
        ttl: Option<Duration>,
        mode: WriteMode,
    ) -> Result<bool, Error> {
        self.inner.store(id, record, ttl, mode).await
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        self.inner.delete(id).await
    }
}

/// At the expiry boundary a read-only request must not delete a session that another
/// request has just saved. R1 loads the session just before it expires; R2 arrives just
/// after and finds it expired; R1 saves (with a fresh TTL) while R2 is between its load and
/// its answer. R2 changed nothing, so the session R1 saved must still be there. (Reading an
/// expired record used to delete it, which logged the user out here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_read_keeps_a_concurrent_save() {
    within("expired_read_keeps_a_concurrent_save", async {
        const SHORT_TTL: Duration = Duration::from_millis(1000);
        let backend = GatedLoad::default();
        let storage = ServerStorage::with_backend(backend.clone()).ttl(SHORT_TTL);
        let h = Harness::new(Fixture::server(storage, ()));
        let (cookie, _) = h.seed().await;
        let id = h.stored(&cookie).await.id();
        let r1 = h.start_gated(&cookie, "R1", "x").await; // loaded while live
        tokio::time::sleep(SHORT_TTL + Duration::from_millis(200)).await;
        let (reached, mut load_reached) = oneshot::channel();
        let (open, go) = oneshot::channel();
        *backend.gate.lock().unwrap() = Some(Gate {
            loaded: reached,
            go,
        });
        let r2 = h.spawn(Some(&cookie), "/show"); // finds it expired
        (&mut load_reached)
            .await
            .expect("R2 loads the expired record");
        let r1 = r1.finish().await; // saves with a fresh TTL
        assert_eq!(
            h.value(&r1.pair()),
            h.value(&cookie),
            "R1 keeps the session"
        );
        open.send(()).unwrap();
        let r2 = r2.await.expect("no panic");
        assert_eq!(r2.status, StatusCode::OK);
        assert!(
            !h.is_gone(&cookie, &id).await,
            "the session R1 just saved was deleted by a request that changed nothing"
        );
    })
    .await
}
