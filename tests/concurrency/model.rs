//! Random interleavings of overlapping requests through the real layer, checked against a
//! model of the contract: the stored sessions must always equal what applying each request's
//! changes to the stored state, one request after another in the order of their saves, gives.
//!
//! A round seeds a session, then runs 2 to 5 requests whose loads and saves interleave at
//! random. Each request loads through the layer and stops at a gate; the model checks what it
//! loaded. When the round lets it go on, it gets random operations (set, unset, `update` of a
//! counter and a cart, flash, set or clear the owner, regenerate with or without delete,
//! destroy) and saves; the model applies the same operations to its own copy of the store,
//! and every id the round has seen (values, flash and owner) is compared with the storage.
//! Requests share one cookie jar, as a browser's tabs do, so a request started after a logout
//! or a login carries the newer cookie. On storages that implement `SessionIndex`, the round
//! also ends every session of one of its owners at random points (`end_sessions_of`, as a
//! password change elsewhere would), which the model applies as a destroy of each, and the
//! owners' listings are compared with the model.
//!
//! `MODEL_SEED` replays a failing run (its seed is in the failure message).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Extension, Path};
use axum::routing::get;
use serde_json::{Map, Value, json};
use session_layer::{
    Session, SessionCookie, SessionHandle, SessionIndex, SessionLayer, SessionStorage,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::harness::{Answer, Fixture, SetCookie, send, within};

/// Rounds per storage, and requests per round at most.
const ROUNDS: u64 = 120;
const MAX_REQUESTS: usize = 5;
/// The keys the operations touch: values and flash in separate names, so that a model of
/// each stays simple.
const VALUE_KEYS: [&str; 3] = ["a", "b", "c"];
const FLASH_KEYS: [&str; 2] = ["f", "g"];

/// One thing a handler does to its session.
#[derive(Clone, Debug)]
enum Op {
    Set(&'static str, u64),
    Unset(&'static str),
    /// `update` of `n`: one more.
    Bump,
    /// `update` of `cart`: push this.
    Push(u64),
    Flash(&'static str, u64),
    Regenerate {
        delete_old: bool,
    },
    Destroy,
    /// `set_owner` to `user-{n}`.
    Own(u64),
    /// `clear_owner`.
    Disown,
}

/// What a request found when it loaded its session.
#[derive(Clone, Debug, Default, PartialEq)]
struct Stored {
    values: Map<String, Value>,
    flash: Map<String, Value>,
    owner: Option<String>,
}

impl Stored {
    fn of(session: &Session) -> Stored {
        let flash = FLASH_KEYS
            .iter()
            .filter_map(|k| Some(((*k).to_owned(), session.get_value(k)?)))
            .collect();
        Stored {
            values: session.data().values,
            flash,
            owner: session.owner(),
        }
    }
}

/// A future that [`Owners`] returns.
type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the round does with a storage's `SessionIndex`, when it has one.
trait Owners: Send + Sync {
    /// `end_sessions_of(owner, None)`: how many it ended.
    fn end_all<'a>(&'a self, owner: &'a str) -> Pending<'a, u64>;
    /// The handles `sessions_of(owner)` lists, as text.
    fn listed<'a>(&'a self, owner: &'a str) -> Pending<'a, BTreeSet<String>>;
}

impl<S: SessionIndex> Owners for S {
    fn end_all<'a>(&'a self, owner: &'a str) -> Pending<'a, u64> {
        Box::pin(async move { self.end_sessions_of(owner, None).await.unwrap() })
    }

    fn listed<'a>(&'a self, owner: &'a str) -> Pending<'a, BTreeSet<String>> {
        Box::pin(async move {
            let listing = self.sessions_of(owner).await.unwrap();
            listing.iter().map(|info| info.handle.to_string()).collect()
        })
    }
}

/// Gates that hold a request after its load: they report what it loaded and wait for its
/// operations.
#[derive(Clone, Default)]
struct Gates(Arc<Mutex<HashMap<u64, Gate>>>);

struct Gate {
    loaded: oneshot::Sender<Stored>,
    ops: oneshot::Receiver<Vec<Op>>,
}

async fn handler(
    Extension(session): Extension<Session>,
    Extension(gates): Extension<Gates>,
    Path(request): Path<u64>,
) -> &'static str {
    let gate = gates
        .0
        .lock()
        .unwrap()
        .remove(&request)
        .expect("gate armed");
    let _ = gate.loaded.send(Stored::of(&session));
    let ops = gate.ops.await.expect("the round sends the operations");
    for op in ops {
        match op {
            Op::Set(key, value) => session.set(key, value).unwrap(),
            Op::Unset(key) => session.unset(key).unwrap(),
            Op::Bump => {
                session
                    .update("n", |n: Option<u64>| n.unwrap_or(0) + 1)
                    .unwrap();
            }
            Op::Push(item) => {
                session
                    .update("cart", move |cart: Option<Vec<u64>>| {
                        let mut cart = cart.unwrap_or_default();
                        cart.push(item);
                        cart
                    })
                    .unwrap();
            }
            Op::Flash(key, value) => session.flash(key, value).unwrap(),
            Op::Regenerate { delete_old } => session.regenerate_id(delete_old).unwrap(),
            Op::Destroy => session.destroy(),
            Op::Own(n) => session.set_owner(format!("user-{n}")).unwrap(),
            Op::Disown => session.clear_owner().unwrap(),
        }
    }
    "ok"
}

/// splitmix64: a small, seedable generator, so that a failing round can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Random operations for request `r` of a round, values unique to it.
fn random_ops(rng: &mut Rng, tag: u64) -> Vec<Op> {
    let mut ops = Vec::new();
    for i in 0..rng.below(4) {
        let value = tag * 10 + i as u64;
        ops.push(match rng.below(7) {
            0 => Op::Set(rng.pick(&VALUE_KEYS), value),
            1 => Op::Unset(rng.pick(&VALUE_KEYS)),
            2 => Op::Bump,
            3 => Op::Push(value),
            4 => Op::Own(value),
            5 => Op::Disown,
            _ => Op::Flash(rng.pick(&FLASH_KEYS), value),
        });
    }
    match rng.below(10) {
        0 => ops.insert(
            rng.below(ops.len() + 1),
            Op::Regenerate {
                delete_old: rng.below(2) == 0,
            },
        ),
        // Nothing can follow a destroy.
        1 => ops.push(Op::Destroy),
        _ => {}
    }
    ops
}

/// The contract, applied to the model: `ops` of a request that loaded `seen`, saved onto
/// `base`, the session as stored now.
fn apply(base: &Stored, seen: &Stored, ops: &[Op]) -> Stored {
    let mut next = base.clone();
    for (key, value) in &seen.flash {
        if next.flash.get(key) == Some(value) {
            next.flash.remove(key);
        }
    }
    for op in ops {
        match op {
            Op::Set(key, value) => {
                next.values.insert((*key).into(), json!(value));
            }
            Op::Unset(key) => {
                next.values.remove(*key);
            }
            Op::Bump => {
                let n = next.values.get("n").and_then(Value::as_u64).unwrap_or(0);
                next.values.insert("n".into(), json!(n + 1));
            }
            Op::Push(item) => {
                let cart = next.values.entry("cart").or_insert_with(|| json!([]));
                cart.as_array_mut().unwrap().push(json!(item));
            }
            Op::Flash(key, value) => {
                next.flash.insert((*key).into(), json!(value));
            }
            Op::Own(n) => next.owner = Some(format!("user-{n}")),
            Op::Disown => next.owner = None,
            Op::Regenerate { .. } | Op::Destroy => {}
        }
    }
    next
}

/// A request of a round, between its load and its save.
struct Started {
    task: JoinHandle<Answer>,
    ops: oneshot::Sender<Vec<Op>>,
    /// The id it loaded, if it loaded a stored session (else it has a fresh one).
    loaded: Option<String>,
    seen: Stored,
}

struct Round<'a, St: SessionStorage> {
    layer: &'a SessionLayer<St>,
    app: Router,
    gates: Gates,
    /// The model of the store: id to session.
    model: HashMap<String, Stored>,
    /// Every id the round has seen, so that the gone ones are checked to stay gone.
    ids: BTreeSet<String>,
    /// The cookie the client holds, as `sid=...`.
    jar: Option<String>,
    context: String,
}

impl<St: SessionStorage> Round<'_, St> {
    fn id_in(&self, pair: &str) -> String {
        self.layer.cookie().parse(Some(pair)).expect("our cookie")
    }

    async fn start(&mut self, request: u64) -> Started {
        let (loaded_tx, loaded_rx) = oneshot::channel();
        let (ops_tx, ops_rx) = oneshot::channel();
        let gate = Gate {
            loaded: loaded_tx,
            ops: ops_rx,
        };
        self.gates.0.lock().unwrap().insert(request, gate);
        let task = tokio::spawn(send(
            self.app.clone(),
            self.jar.clone(),
            format!("/model/{request}"),
        ));
        let seen = loaded_rx.await.expect("the request reached its gate");
        let cookie_id = self.jar.as_deref().map(|pair| self.id_in(pair));
        let loaded = cookie_id.filter(|id| self.model.contains_key(id));
        let expected = loaded.as_ref().map(|id| self.model[id].clone());
        assert_eq!(
            seen,
            expected.unwrap_or_default(),
            "{}: request {request} loaded something else than the store held",
            self.context
        );
        Started {
            task,
            ops: ops_tx,
            loaded,
            seen,
        }
    }

    async fn finish(&mut self, request: u64, started: Started, ops: Vec<Op>) {
        let context = format!("{}: request {request} with {ops:?}", self.context);
        started.ops.send(ops.clone()).expect("the request waits");
        let answer = started.task.await.expect("no panic");
        assert_eq!(answer.status, http::StatusCode::OK, "{context}: {answer:?}");
        let destroyed = ops.iter().any(|op| matches!(op, Op::Destroy));
        let regenerated = ops.iter().find_map(|op| match op {
            Op::Regenerate { delete_old } => Some(*delete_old),
            _ => None,
        });
        let dirty = !ops.is_empty() || !started.seen.flash.is_empty();
        let base = match &started.loaded {
            Some(id) => self.model.get(id).cloned(),
            None => Some(Stored::default()),
        };
        let expected = if !dirty {
            SetCookie::None
        } else if destroyed {
            if let Some(id) = &started.loaded {
                self.model.remove(id);
            }
            SetCookie::Removal
        } else if let Some(base) = base {
            let next = apply(&base, &started.seen, &ops);
            let id = match &answer.set_cookie {
                SetCookie::Pair(pair) => self.id_in(pair),
                other => panic!("{context}: expected a session cookie, got {other:?}"),
            };
            match (&started.loaded, regenerated) {
                (Some(old), None) => assert_eq!(&id, old, "{context}: the id is kept"),
                (Some(old), Some(delete_old)) => {
                    assert_ne!(&id, old, "{context}: a new id");
                    if delete_old {
                        self.model.remove(old);
                    }
                }
                (None, _) => {}
            }
            self.model.insert(id.clone(), next);
            self.ids.insert(id);
            answer.set_cookie.clone()
        } else {
            // The session it loaded went meanwhile: nothing is written, the cookie cleared.
            SetCookie::Removal
        };
        assert_eq!(answer.set_cookie, expected, "{context}: the Set-Cookie");
        match answer.set_cookie {
            SetCookie::Pair(pair) => self.jar = Some(pair),
            SetCookie::Removal => self.jar = None,
            SetCookie::None => {}
        }
        self.check_store(&context).await;
    }

    /// Ends every session of one of the owners in the model, picked at random, as
    /// `end_sessions_of` from another request would; the model destroys them.
    async fn end_an_owner(&mut self, owners: &dyn Owners, rng: &mut Rng) {
        let held: BTreeSet<String> = self
            .model
            .values()
            .filter_map(|s| s.owner.clone())
            .collect();
        let Some(owner) = held.iter().nth(rng.below(held.len().max(1))).cloned() else {
            return;
        };
        let ended = owners.end_all(&owner).await;
        let before = self.model.len();
        self.model
            .retain(|_, stored| stored.owner.as_ref() != Some(&owner));
        let context = format!("{}: end_sessions_of({owner})", self.context);
        assert_eq!(
            ended,
            (before - self.model.len()) as u64,
            "{context}: ended"
        );
        self.check_store(&context).await;
    }

    /// Each owner's listing shows exactly the model's sessions of that owner.
    async fn check_listings(&self, owners: &dyn Owners) {
        let mut expected: HashMap<&str, BTreeSet<String>> = HashMap::new();
        for (id, stored) in &self.model {
            if let Some(owner) = &stored.owner {
                let handle = SessionHandle::of_id(id).to_string();
                expected.entry(owner).or_default().insert(handle);
            }
        }
        for (owner, handles) in expected {
            let listed = owners.listed(owner).await;
            assert_eq!(listed, handles, "{}: sessions_of({owner})", self.context);
        }
    }

    /// Every id the round has seen holds exactly what the model says, or is gone.
    async fn check_store(&self, context: &str) {
        for id in &self.ids {
            let session = self.layer.storage().read(Some(id)).await.expect("read");
            match self.model.get(id) {
                Some(expected) => {
                    assert_eq!(
                        &session.id(),
                        id,
                        "{context}: {id} is gone, but should not be"
                    );
                    assert_eq!(
                        &Stored::of(&session),
                        expected,
                        "{context}: what {id} holds"
                    );
                }
                None => assert!(
                    session.id() != *id && session.is_empty(),
                    "{context}: {id} should be gone, and holds {:?}",
                    Stored::of(&session)
                ),
            }
        }
    }
}

/// `ROUNDS` random rounds on one storage.
pub(crate) async fn random_interleavings<St: SessionStorage>(fixture: Fixture<St>, name: &str) {
    run(fixture, name, None).await
}

/// `ROUNDS` random rounds on one storage that implements `SessionIndex`, with its owners'
/// sessions ended at random points.
pub(crate) async fn random_interleavings_with_ends<St>(fixture: Fixture<St>, name: &str)
where
    St: SessionIndex + Clone,
{
    let index = fixture.storage.clone();
    run(fixture, name, Some(&index)).await
}

async fn run<St: SessionStorage>(fixture: Fixture<St>, name: &str, owners: Option<&dyn Owners>) {
    let seed = std::env::var("MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0000_u64 + name.len() as u64);
    let mut rng = Rng(seed);
    let cookie = SessionCookie::new("sid").secrets(["a secret for the model-based test"]);
    let layer = SessionLayer::new(cookie, fixture.storage);
    let gates = Gates::default();
    let app = Router::new()
        .route("/model/{request}", get(handler))
        .layer(Extension(gates.clone()))
        .layer(layer.clone());
    let mut saves = 0;
    within(&format!("model::{name}"), async {
        for round in 0..ROUNDS {
            let mut r = Round {
                layer: &layer,
                app: app.clone(),
                gates: gates.clone(),
                model: HashMap::new(),
                ids: BTreeSet::new(),
                jar: None,
                context: format!("{name}, MODEL_SEED={seed}, round {round}"),
            };
            // A session with a value and a flash, as most rounds start from.
            let seed_request = r.start(0).await;
            let ops = vec![Op::Set("a", 0), Op::Flash("f", 0)];
            r.finish(0, seed_request, ops).await;

            let requests = 2 + rng.below(MAX_REQUESTS - 1);
            // Each request's load comes before its save; otherwise the order is random.
            let mut events: Vec<usize> = (0..requests).flat_map(|i| [i, i]).collect();
            for i in (1..events.len()).rev() {
                events.swap(i, rng.below(i + 1));
            }
            let mut running: HashMap<usize, Started> = HashMap::new();
            for i in events {
                if let Some(owners) = owners
                    && rng.below(4) == 0
                {
                    r.end_an_owner(owners, &mut rng).await;
                }
                let request = round * 100 + i as u64 + 1;
                match running.remove(&i) {
                    None => {
                        let started = r.start(request).await;
                        running.insert(i, started);
                    }
                    Some(started) => {
                        let ops = random_ops(&mut rng, request);
                        r.finish(request, started, ops).await;
                        saves += 1;
                    }
                }
            }
            if let Some(owners) = owners {
                r.check_listings(owners).await;
            }
        }
    })
    .await;
    eprintln!("  model {name}: {ROUNDS} rounds, {saves} interleaved saves, seed {seed}");
}
