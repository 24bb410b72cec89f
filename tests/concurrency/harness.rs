//! The app every scenario drives, and how the tests drive it: requests held at gates between
//! their load and their save, answers parsed into what the request saw and wrote.

use std::any::Any;
use std::collections::HashMap;
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
use session_layer::{Session, SessionCookie, SessionLayer, SessionStorage};
use tokio::sync::{Barrier, oneshot};
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// A scenario that takes longer has deadlocked or hangs: it fails instead of waiting forever.
pub(crate) const LIMIT: Duration = Duration::from_secs(60);
/// Writers racing the one destroy or login of a race round.
pub(crate) const RACE_WRITERS: u64 = 20;

/// What a request saw and what it left for the layer to save, as its response body.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Trace {
    /// The values the session was loaded with.
    pub(crate) seen: Map<String, Value>,
    /// The flash `notice` that arrived with the request.
    pub(crate) notice: Option<String>,
    /// The values when the handler returned: what the save writes (empty once destroyed).
    pub(crate) wrote: Map<String, Value>,
}

impl Trace {
    pub(crate) fn begin(session: &Session) -> Trace {
        Trace {
            seen: session.data().values,
            notice: session.get("notice"),
            wrote: Map::new(),
        }
    }

    pub(crate) fn end(mut self, session: &Session) -> String {
        self.wrote = session.data().values;
        serde_json::to_string(&self).unwrap()
    }
}

#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) gates: Gates,
    pub(crate) together: Arc<Barrier>,
}

pub(crate) fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/write/{i}", get(write))
        .route("/write-together/{i}", get(write_together))
        .route("/count/{owner}", get(count))
        .route("/bump/{i}", get(bump))
        .route("/flash", get(flash))
        .route("/show", get(show))
        .route("/login", get(login))
        .route("/logout", get(logout))
        .route("/gated/{gate}/{op}", get(gated))
        .layer(Extension(ctx))
}

/// `pad` of request `i`: long enough that a truncated record cannot pass for a whole one.
pub(crate) fn pad(i: u64) -> String {
    format!("{i:06}.").repeat(32)
}

/// Request `i`'s whole value, written in one request: `a`, `b`, `c`, `pad` and `k{i}`.
pub(crate) fn write_whole(session: &Session, i: u64) {
    session.set("a", i).unwrap();
    session.set("b", i).unwrap();
    session.set("c", vec![i; 8]).unwrap();
    session.set("pad", pad(i)).unwrap();
    session.set(format!("k{i}"), i).unwrap();
}

pub(crate) async fn write(Extension(session): Extension<Session>, Path(i): Path<u64>) -> String {
    let trace = Trace::begin(&session);
    // Let other requests run between this one's load and its save.
    tokio::task::yield_now().await;
    write_whole(&session, i);
    trace.end(&session)
}

/// Like `write`, but waits until every `write-together` request has loaded its session.
pub(crate) async fn write_together(
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
pub(crate) async fn count(
    Extension(session): Extension<Session>,
    Path(owner): Path<String>,
) -> String {
    let trace = Trace::begin(&session);
    tokio::task::yield_now().await;
    let n = session.get::<u64>("n").unwrap_or(0) + 1;
    session.set("n", n).unwrap();
    session.set("owner", owner).unwrap();
    trace.end(&session)
}

/// Request `i` adds one to `n` and `i` to `cart` through `update`, so that no concurrent
/// increment or item may be lost.
pub(crate) async fn bump(Extension(session): Extension<Session>, Path(i): Path<u64>) -> String {
    let trace = Trace::begin(&session);
    tokio::task::yield_now().await;
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
    trace.end(&session)
}

pub(crate) async fn flash(Extension(session): Extension<Session>) -> String {
    let trace = Trace::begin(&session);
    session.flash("notice", "hello").unwrap();
    trace.end(&session)
}

pub(crate) async fn show(Extension(session): Extension<Session>) -> String {
    Trace::begin(&session).end(&session)
}

/// A login: a new id, the old id's data deleted on save, and a `user`.
pub(crate) fn log_in(session: &Session) {
    session.regenerate_id(true).unwrap();
    session.set("user", "mj").unwrap();
}

pub(crate) async fn login(Extension(session): Extension<Session>) -> String {
    let trace = Trace::begin(&session);
    tokio::task::yield_now().await;
    log_in(&session);
    trace.end(&session)
}

pub(crate) async fn logout(Extension(session): Extension<Session>) -> String {
    let trace = Trace::begin(&session);
    tokio::task::yield_now().await;
    session.destroy();
    trace.end(&session)
}

/// Loads the session, waits at gate `gate` until the test opens it, then does `op`.
pub(crate) async fn gated(
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
        "unset-a" => session.unset("a").unwrap(),
        "set-a" => session.set("a", 1000).unwrap(),
        "newer-flash" => session.flash("notice", "newer").unwrap(),
        "read" => {}
        "destroy" => session.destroy(),
        "login" => log_in(&session),
        "own" => session.set_owner("ann").unwrap(),
        "disown" => session.clear_owner().unwrap(),
        other => panic!("unknown op {other}"),
    }
    trace.end(&session)
}

/// Gates that hold a request between its load and its save, so that a test can order the
/// loads and saves of overlapping requests exactly.
#[derive(Clone, Default)]
pub(crate) struct Gates(Arc<Mutex<HashMap<String, Gate>>>);

pub(crate) struct Gate {
    pub(crate) loaded: oneshot::Sender<()>,
    pub(crate) go: oneshot::Receiver<()>,
}

pub(crate) struct Armed {
    pub(crate) loaded: oneshot::Receiver<()>,
    pub(crate) go: oneshot::Sender<()>,
}

impl Gates {
    pub(crate) fn arm(&self, name: &str) -> Armed {
        let (loaded, loaded_rx) = oneshot::channel();
        let (go_tx, go) = oneshot::channel();
        let gate = Gate { loaded, go };
        self.0.lock().unwrap().insert(name.to_owned(), gate);
        Armed {
            loaded: loaded_rx,
            go: go_tx,
        }
    }

    pub(crate) async fn pass(&self, name: &str) {
        let gate = self.0.lock().unwrap().remove(name).expect("gate armed");
        let _ = gate.loaded.send(());
        gate.go.await.expect("the test opens the gate");
    }
}

// --- driving it -------------------------------------------------------------------------------

/// A storage under test, with whatever keeps it alive (a server, a directory).
pub(crate) struct Fixture<St> {
    pub(crate) storage: St,
    /// Server-side (the cookie holds an id) rather than the cookie storage.
    pub(crate) server_side: bool,
    pub(crate) encrypted: bool,
    pub(crate) keep: Box<dyn Any + Send + Sync>,
}

impl<St> Fixture<St> {
    pub(crate) fn server(storage: St, keep: impl Any + Send + Sync) -> Fixture<St> {
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
pub(crate) enum SetCookie {
    None,
    /// `sid=value`, what the browser sends back.
    Pair(String),
    Removal,
}

#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) set_cookie: SetCookie,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn trace(&self) -> Trace {
        assert_eq!(self.status, StatusCode::OK, "body {:?}", self.body);
        serde_json::from_str(&self.body).expect("a trace")
    }

    pub(crate) fn pair(&self) -> String {
        match &self.set_cookie {
            SetCookie::Pair(pair) => pair.clone(),
            other => panic!("expected a session cookie, got {other:?}"),
        }
    }
}

pub(crate) async fn send(app: Router, cookie: Option<String>, path: String) -> Answer {
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
pub(crate) struct Harness<St: SessionStorage> {
    pub(crate) layer: SessionLayer<St>,
    pub(crate) app: Router,
    pub(crate) ctx: Ctx,
    pub(crate) server_side: bool,
    pub(crate) _keep: Box<dyn Any + Send + Sync>,
}

impl<St: SessionStorage> Harness<St> {
    pub(crate) fn new(fixture: Fixture<St>) -> Self {
        Self::with(fixture, false, 1)
    }

    pub(crate) fn with(fixture: Fixture<St>, rolling: bool, together: u64) -> Self {
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

    pub(crate) fn spawn(&self, cookie: Option<&str>, path: &str) -> JoinHandle<Answer> {
        tokio::spawn(send(
            self.app.clone(),
            cookie.map(str::to_owned),
            path.to_owned(),
        ))
    }

    /// `RACE_WRITERS` writers on one session, numbered from 1, with `contender` (numbered 0)
    /// started halfway through them.
    pub(crate) fn spawn_race(
        &self,
        cookie: &str,
        contender: &str,
    ) -> Vec<(u64, JoinHandle<Answer>)> {
        let mut tasks = Vec::new();
        for i in 1..=RACE_WRITERS {
            tasks.push((i, self.spawn(Some(cookie), &format!("/write/{i}"))));
            if i == RACE_WRITERS / 2 {
                tasks.push((0, self.spawn(Some(cookie), contender)));
            }
        }
        tasks
    }

    pub(crate) async fn send(&self, cookie: Option<&str>, path: &str) -> Answer {
        self.spawn(cookie, path).await.expect("no panic")
    }

    /// The verified value of a `sid=...` pair: the id, or for the cookie storage the data.
    pub(crate) fn value(&self, pair: &str) -> String {
        self.layer
            .cookie()
            .parse(Some(pair))
            .expect("a cookie of ours verifies")
    }

    /// The session a cookie names, read straight from the storage: an error here (a record
    /// that does not decode) fails the test.
    pub(crate) async fn stored(&self, pair: &str) -> Session {
        let value = self.value(pair);
        self.layer
            .storage()
            .read(Some(&value))
            .await
            .unwrap_or_else(|e| panic!("reading the stored session: {e}"))
    }

    /// The session id a cookie carries (for the cookie storage, sealed in its value), whether
    /// or not the session still exists.
    pub(crate) async fn id_of(&self, pair: &str) -> String {
        if self.server_side {
            self.value(pair)
        } else {
            self.stored(pair).await.id()
        }
    }

    /// Whether the session that `pair` named is gone: the cookie now gives a fresh session.
    pub(crate) async fn is_gone(&self, pair: &str, id: &str) -> bool {
        let session = self.stored(pair).await;
        session.id() != id && session.is_empty()
    }

    /// Starts a request through gate `gate` doing `op`; returns once its session is loaded.
    pub(crate) async fn start_gated(&self, cookie: &str, gate: &str, op: &str) -> Gated {
        let mut armed = self.ctx.gates.arm(gate);
        let mut task = self.spawn(Some(cookie), &format!("/gated/{gate}/{op}"));
        tokio::select! {
            loaded = &mut armed.loaded => loaded.expect("the handler reached its gate"),
            answer = &mut task => panic!("request {gate} ended before its gate: {answer:?}"),
        }
        Gated { task, go: armed.go }
    }

    /// A session of its own holding request 0's whole value: its cookie and the values.
    pub(crate) async fn seed(&self) -> (String, Map<String, Value>) {
        let answer = self.send(None, "/write/0").await;
        let trace = answer.trace();
        (answer.pair(), trace.wrote)
    }
}

/// A request held at its gate, its session loaded.
pub(crate) struct Gated {
    pub(crate) task: JoinHandle<Answer>,
    pub(crate) go: oneshot::Sender<()>,
}

impl Gated {
    /// Lets it change the session and waits until it is saved and answered.
    pub(crate) async fn finish(self) -> Answer {
        self.go.send(()).expect("the request waits at its gate");
        self.task.await.expect("no panic")
    }
}

/// The number of the one request whose whole value `values` holds (`a`, `b`, `c` and `pad`
/// all from it, every own key `k{j}` equal to `j`), or why the state is torn or lost.
pub(crate) fn whole_value(values: &Map<String, Value>) -> Result<u64, String> {
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
        if let Some(j) = key.strip_prefix('k').and_then(|j| j.parse::<u64>().ok())
            && value != &json!(j)
        {
            return Err(format!("torn: {key} = {value}"));
        }
    }
    Ok(a)
}

pub(crate) fn own_key(i: u64) -> String {
    format!("k{i}")
}

/// Runs a scenario under [`LIMIT`], so that a deadlock fails rather than hangs. What the
/// crate logs as an error goes to the test's output, so that a failed request says why.
pub(crate) async fn within(name: &str, scenario: impl Future<Output = ()>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("session_layer=error")
        .with_test_writer()
        .try_init();
    let started = Instant::now();
    tokio::time::timeout(LIMIT, scenario)
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {LIMIT:?}: deadlock or hang"));
    eprintln!("{name}: {:?}", started.elapsed());
}
