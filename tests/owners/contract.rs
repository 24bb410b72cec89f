//! What [`SessionIndex`] promises, each scenario written once for any storage that
//! implements it: `storages` runs them all on each.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::routing::get;
use http::Request;
use http::header::{COOKIE, SET_COOKIE};
use session_layer::{Session, SessionCookie, SessionHandle, SessionIndex, SessionLayer};
use tokio::sync::oneshot;
use tower::ServiceExt;

use crate::{owned_session, saved};

/// A future that a fixture's closures return.
pub(crate) type Pending<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A storage under test, with what the scenarios need to look into its store.
pub(crate) struct Fixture<S> {
    pub storage: S,
    /// Every entry the store holds for this fixture (keys, rows, files), as text: once every
    /// session is gone, none may be left.
    pub scan: Box<dyn Fn() -> Pending<Vec<String>> + Send + Sync>,
    /// Removes what expired, where the store needs a call for that (`remove_expired`); does
    /// nothing where the store expires entries itself.
    pub sweep: Box<dyn Fn() -> Pending<()> + Send + Sync>,
    /// Servers and directories the storage uses, kept until the scenario ends.
    #[expect(dead_code, reason = "held for its drop, never read")]
    pub keep: Box<dyn Any + Send>,
}

impl<S> Fixture<S> {
    async fn entries(&self) -> Vec<String> {
        (self.scan)().await
    }
}

/// The TTL of the scenarios that do not wait for an expiry.
pub(crate) const TTL: Duration = Duration::from_secs(600);

/// The handles of a listing, in its order.
async fn listed<S: SessionIndex>(storage: &S, owner: &str) -> Vec<SessionHandle> {
    let listing = storage.sessions_of(owner).await.unwrap();
    listing.into_iter().map(|info| info.handle).collect()
}

/// Ends every session of the owners given and checks that the store holds nothing more.
async fn nothing_left_after_ending<S: SessionIndex>(fixture: &Fixture<S>, owners: &[&str]) {
    for owner in owners {
        fixture.storage.end_sessions_of(owner, None).await.unwrap();
        assert_eq!(listed(&fixture.storage, owner).await, []);
    }
    assert_eq!(
        fixture.entries().await,
        Vec::<String>::new(),
        "left in the store"
    );
}

pub(crate) async fn a_listing_shows_each_live_session_newest_save_first<S: SessionIndex>(
    fixture: Fixture<S>,
) {
    let storage = &fixture.storage;
    let before = SystemTime::now() - Duration::from_secs(1);
    let first = owned_session(storage, "ann").await;
    owned_session(storage, "bob").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = owned_session(storage, "ann").await;
    let unowned = storage.read(None).await.unwrap();
    unowned.set("seed", 1).unwrap();
    let unowned_cookie = saved(storage, &unowned).await;
    let (first, second) = (
        storage.read(Some(&first)).await.unwrap(),
        storage.read(Some(&second)).await.unwrap(),
    );
    assert_eq!(
        listed(storage, "ann").await,
        [second.handle(), first.handle()]
    );
    assert_eq!(listed(storage, "nobody").await, []);

    // Saving the older one again puts it first.
    tokio::time::sleep(Duration::from_millis(5)).await;
    first.set("cart", 3).unwrap();
    saved(storage, &first).await;
    let listing = storage.sessions_of("ann").await.unwrap();
    let newest = &listing[0];
    assert_eq!(newest.handle, first.handle());
    assert_eq!(newest.data.values["cart"], 3);
    assert!(newest.created >= before && newest.created <= newest.saved);
    assert!(newest.saved > listing[1].saved);
    let expires = newest.expires.expect("a ttl gives an expiry");
    assert!(expires > newest.saved + TTL - Duration::from_secs(10));

    let unowned = storage.read(Some(&unowned_cookie)).await.unwrap();
    unowned.destroy();
    storage.save(&unowned).await.unwrap();
    nothing_left_after_ending(&fixture, &["ann", "bob"]).await;
}

pub(crate) async fn ending_one_session_is_owner_checked<S: SessionIndex>(fixture: Fixture<S>) {
    let storage = &fixture.storage;
    let ann = owned_session(storage, "ann").await;
    let ann = storage.read(Some(&ann)).await.unwrap();
    let bob = owned_session(storage, "bob").await;
    let bob = storage.read(Some(&bob)).await.unwrap();
    // Bob posts Ann's handle, or one of no session: nothing happens.
    assert!(!storage.end_session("bob", &ann.handle()).await.unwrap());
    let unknown = Session::new().handle();
    assert!(!storage.end_session("bob", &unknown).await.unwrap());
    assert_eq!(listed(storage, "ann").await, [ann.handle()]);
    assert!(storage.end_session("ann", &ann.handle()).await.unwrap());
    assert!(!storage.end_session("ann", &ann.handle()).await.unwrap());
    assert_eq!(listed(storage, "ann").await, []);
    assert_eq!(listed(storage, "bob").await, [bob.handle()]);
    assert!(storage.read(Some(&ann.id())).await.unwrap().is_empty());
    // Its request saves after the end: nothing comes back, the cookie is cleared.
    ann.set("late", 1).unwrap();
    assert_eq!(storage.save(&ann).await.unwrap().as_deref(), Some(""));
    assert_eq!(listed(storage, "ann").await, []);
    let bob_again = storage.read(Some(&bob.id())).await.unwrap();
    assert_eq!(bob_again.owner().as_deref(), Some("bob"));
    nothing_left_after_ending(&fixture, &["bob"]).await;
}

pub(crate) async fn ending_all_sessions_or_all_but_this_one<S: SessionIndex>(fixture: Fixture<S>) {
    let storage = &fixture.storage;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(owned_session(storage, "ann").await);
    }
    let bob = owned_session(storage, "bob").await;
    let this = owned_session(storage, "ann").await;
    let this = storage.read(Some(&this)).await.unwrap();
    // A password change: this session gets a new id before the others end.
    this.regenerate_id(true).unwrap();
    assert_eq!(
        storage.end_sessions_of("ann", Some(&this)).await.unwrap(),
        3
    );
    for other in &others {
        assert!(storage.read(Some(other)).await.unwrap().is_empty());
    }
    let moved = saved(storage, &this).await;
    let this = storage.read(Some(&moved)).await.unwrap();
    assert_eq!(listed(storage, "ann").await, [this.handle()]);
    assert_eq!(storage.end_sessions_of("ann", None).await.unwrap(), 1);
    assert_eq!(listed(storage, "ann").await, []);
    assert_eq!(storage.end_sessions_of("ann", None).await.unwrap(), 0);
    let bob = storage.read(Some(&bob)).await.unwrap();
    assert_eq!(bob.owner().as_deref(), Some("bob"), "another owner's stays");
    nothing_left_after_ending(&fixture, &["bob"]).await;
}

pub(crate) async fn the_listing_follows_regenerate_destroy_and_owner_changes<S: SessionIndex>(
    fixture: Fixture<S>,
) {
    let storage = &fixture.storage;
    let cookie = owned_session(storage, "ann").await;
    let session = storage.read(Some(&cookie)).await.unwrap();
    session.regenerate_id(true).unwrap();
    let moved = saved(storage, &session).await;
    assert_eq!(listed(storage, "ann").await, [session.handle()]);
    let session = storage.read(Some(&moved)).await.unwrap();
    session.set_owner("bob").unwrap();
    saved(storage, &session).await;
    assert_eq!(listed(storage, "ann").await, []);
    assert_eq!(listed(storage, "bob").await, [session.handle()]);
    let session = storage.read(Some(&moved)).await.unwrap();
    session.clear_owner().unwrap();
    saved(storage, &session).await;
    assert_eq!(listed(storage, "bob").await, []);
    let session = storage.read(Some(&moved)).await.unwrap();
    session.set_owner("bob").unwrap();
    saved(storage, &session).await;
    assert_eq!(listed(storage, "bob").await, [session.handle()]);
    let session = storage.read(Some(&moved)).await.unwrap();
    session.destroy();
    assert_eq!(storage.save(&session).await.unwrap().as_deref(), Some(""));
    assert_eq!(listed(storage, "bob").await, []);
    assert_eq!(
        fixture.entries().await,
        Vec::<String>::new(),
        "left in the store"
    );
}

/// Built with a TTL of [`SHORT_TTL`].
pub(crate) async fn nothing_of_an_owner_outlives_its_expired_sessions<S: SessionIndex>(
    fixture: Fixture<S>,
) {
    let storage = &fixture.storage;
    owned_session(storage, "ann").await;
    let moved = owned_session(storage, "ann").await;
    let moved = storage.read(Some(&moved)).await.unwrap();
    moved.regenerate_id(true).unwrap();
    saved(storage, &moved).await;
    let changed = owned_session(storage, "ann").await;
    let changed = storage.read(Some(&changed)).await.unwrap();
    changed.set_owner("bob").unwrap();
    saved(storage, &changed).await;
    assert_eq!(listed(storage, "ann").await.len(), 2);
    assert_eq!(listed(storage, "bob").await.len(), 1);
    tokio::time::sleep(SHORT_TTL + Duration::from_millis(500)).await;
    assert_eq!(listed(storage, "ann").await, [], "expired: not listed");
    assert_eq!(storage.end_sessions_of("ann", None).await.unwrap(), 0);
    (fixture.sweep)().await;
    assert_eq!(
        fixture.entries().await,
        Vec::<String>::new(),
        "left in the store"
    );
}

/// The TTL of `nothing_of_an_owner_outlives_its_expired_sessions`.
pub(crate) const SHORT_TTL: Duration = Duration::from_secs(1);

/// Requests on the app below: a `GET` with an optional cookie; the `sid=...` pair it set
/// (empty for a removal, `None` for no `Set-Cookie`).
async fn request(app: &Router, cookie: Option<&str>, path: &str) -> Option<String> {
    let mut builder = Request::get(path);
    if let Some(cookie) = cookie {
        builder = builder.header(COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let header = response.headers().get(SET_COOKIE)?.to_str().unwrap();
    let pair = header.split(';').next().unwrap();
    Some(pair.strip_prefix("sid=").unwrap().to_owned())
        .map(|v| if v.is_empty() { v } else { format!("sid={v}") })
}

/// A request held between its load and its save: it tells `loaded` it has its session,
/// waits for `go`, then writes a key.
type Held = Arc<Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>>;

async fn log_in(Extension(session): Extension<Session>) -> &'static str {
    session.set_owner("ann").unwrap();
    "in"
}

async fn held_write(Extension(session): Extension<Session>, Extension(held): Extension<Held>) {
    let (loaded, go) = held.lock().unwrap().take().expect("one held request");
    loaded.send(()).unwrap();
    go.await.unwrap();
    session.set("late", true).unwrap();
}

/// A request that loaded a session before `end_sessions_of` ended it writes nothing back
/// and gets its cookie cleared; its next request starts a fresh session.
pub(crate) async fn a_request_in_flight_during_end_sessions_of_brings_nothing_back<S>(
    fixture: Fixture<S>,
) where
    S: SessionIndex + Clone,
{
    let storage = fixture.storage.clone();
    let held: Held = Arc::default();
    let cookie = SessionCookie::new("sid").secrets(["a secret for the tests of session owners"]);
    let app = Router::new()
        .route("/login", get(log_in))
        .route("/held", get(held_write))
        .layer(Extension(held.clone()))
        .layer(SessionLayer::new(cookie, storage.clone()));
    let phone = request(&app, None, "/login").await.expect("a cookie");
    let laptop = request(&app, None, "/login").await.expect("a cookie");
    assert_eq!(listed(&storage, "ann").await.len(), 2);

    let (loaded_tx, loaded) = oneshot::channel();
    let (go, go_rx) = oneshot::channel();
    *held.lock().unwrap() = Some((loaded_tx, go_rx));
    let in_flight = tokio::spawn({
        let (app, phone) = (app.clone(), phone.clone());
        async move { request(&app, Some(&phone), "/held").await }
    });
    loaded.await.unwrap();
    assert_eq!(storage.end_sessions_of("ann", None).await.unwrap(), 2);
    go.send(()).unwrap();
    let cleared = in_flight.await.unwrap();
    assert_eq!(cleared.as_deref(), Some(""), "cookie cleared");
    assert_eq!(
        fixture.entries().await,
        Vec::<String>::new(),
        "written back"
    );
    // Both devices' next requests start fresh sessions.
    for device in [&phone, &laptop] {
        let next = request(&app, Some(device), "/login");
        assert_ne!(&next.await.expect("a new cookie"), device);
    }
    assert_eq!(listed(&storage, "ann").await.len(), 2);
    nothing_left_after_ending(&fixture, &["ann"]).await;
}

/// Many requests on many sessions of one owner, some of them logins that move their
/// session to a new id, race one `end_sessions_of`: once all have saved, none of the
/// owner's sessions is left, however their loads and saves fell around the end.
pub(crate) async fn no_session_survives_a_race_with_end_sessions_of<S>(fixture: Fixture<S>)
where
    S: SessionIndex + Clone,
{
    const SESSIONS: usize = 20;
    const REQUESTS: usize = 10;
    let storage = fixture.storage.clone();
    let saves = Arc::new(AtomicUsize::new(0));
    for round in 0..3 {
        saves.store(0, Ordering::SeqCst);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..SESSIONS {
            let cookie = owned_session(&storage, "ann").await;
            let (storage, saves) = (storage.clone(), saves.clone());
            tasks.spawn(async move {
                let mut cookie = cookie;
                for request in 0..REQUESTS {
                    let session = storage.read(Some(&cookie)).await.unwrap();
                    tokio::task::yield_now().await;
                    if session.owner().is_none() {
                        // Ended before this load: a fresh session, which is nobody's.
                        assert!(session.is_empty());
                        return;
                    }
                    session.set("n", request).unwrap();
                    if request % 3 == 1 {
                        session.regenerate_id(true).unwrap();
                    }
                    let saved = storage.save(&session).await.unwrap();
                    saves.fetch_add(1, Ordering::SeqCst);
                    match saved {
                        Some(value) if !value.is_empty() => cookie = value,
                        // Loaded before the end, saved after: nothing written.
                        _ => return,
                    }
                }
            });
        }
        // The end falls in the middle of the requests.
        while saves.load(Ordering::SeqCst) < SESSIONS * REQUESTS / 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ended = storage.end_sessions_of("ann", None).await.unwrap();
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let left = storage.sessions_of("ann").await.unwrap();
        assert_eq!(left, [], "round {round}: {ended} ended, some survived");
        let entries = fixture.entries().await;
        assert_eq!(entries, Vec::<String>::new(), "round {round}: written back");
    }
}
