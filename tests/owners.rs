//! Sessions of one owner: the owner a request sets is stored, loaded and merged with what
//! concurrent requests change.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::routing::get;
use http::Request;
use http::header::{COOKIE, SET_COOKIE};
use serde_json::Value;
use session_layer::storage::{
    Expected, MemoryBackend, OwnerIndexBackend, Record, ServerStorage, SessionBackend, Versioned,
};
use session_layer::{
    CookieStorage, Error, MemoryStorage, Session, SessionCookie, SessionHandle, SessionIndex,
    SessionLayer, SessionStorage,
};
use tokio::sync::oneshot;
use tower::ServiceExt;

/// Saves `session` and returns its cookie value, failing on a cleared or missing one.
async fn saved<St: SessionStorage>(storage: &St, session: &Session) -> String {
    let value = storage
        .save(session)
        .await
        .unwrap()
        .expect("a cookie value");
    assert!(!value.is_empty(), "the session was cleared");
    value
}

/// A stored session owned by `owner`, holding `seed = 0`; returns its cookie value.
async fn owned_session<St: SessionStorage>(storage: &St, owner: &str) -> String {
    let session = storage.read(None).await.unwrap();
    session.set("seed", 0).unwrap();
    session.set_owner(owner).unwrap();
    saved(storage, &session).await
}

#[test]
fn owner_changes_are_changes() {
    let session = Session::new();
    assert_eq!(session.owner(), None);
    assert!(!session.is_dirty());
    session.set_owner("ann").unwrap();
    assert!(session.is_dirty());
    assert_eq!(session.owner().as_deref(), Some("ann"));
    session.clear_owner().unwrap();
    assert_eq!(session.owner(), None);
    session.set_owner("bob").unwrap();
    session.destroy();
    assert_eq!(session.owner(), None, "a destroyed session has no owner");
    assert!(matches!(session.set_owner("ann"), Err(Error::Destroyed)));
    assert!(matches!(session.clear_owner(), Err(Error::Destroyed)));
}

#[test]
fn an_unowned_record_encodes_no_owner_fields() {
    let unowned: Value = serde_json::from_slice(&Record::default().encode()).unwrap();
    let keys: Vec<_> = unowned.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["c", "d"]);
    let owned = Record {
        owner: Some("ann".into()),
        saved_at_ms: Some(5),
        ..Record::default()
    };
    let decoded = Record::decode("a test record", &owned.encode()).unwrap();
    assert_eq!(decoded, owned);
}

#[tokio::test]
async fn the_owner_is_there_in_the_next_request() {
    let memory = MemoryStorage::new();
    let cookie = owned_session(&memory, "ann").await;
    assert_eq!(
        memory.read(Some(&cookie)).await.unwrap().owner().as_deref(),
        Some("ann")
    );
    let cookies = CookieStorage::new();
    let value = owned_session(&cookies, "ann").await;
    assert_eq!(
        cookies.read(Some(&value)).await.unwrap().owner().as_deref(),
        Some("ann")
    );
}

#[tokio::test]
async fn a_cleared_owner_stays_cleared() {
    let storage = MemoryStorage::new();
    let cookie = owned_session(&storage, "ann").await;
    let session = storage.read(Some(&cookie)).await.unwrap();
    session.clear_owner().unwrap();
    saved(&storage, &session).await;
    assert_eq!(storage.read(Some(&cookie)).await.unwrap().owner(), None);
}

#[tokio::test]
async fn an_owner_change_merges_with_another_requests_keys() {
    let storage = MemoryStorage::new();
    let cookie = owned_session(&storage, "ann").await;
    let login = storage.read(Some(&cookie)).await.unwrap();
    let writer = storage.read(Some(&cookie)).await.unwrap();
    login.set_owner("bob").unwrap();
    writer.set("cart", 1).unwrap();
    // The writer saves last, from a session that still says "ann": the owner change stays.
    saved(&storage, &login).await;
    saved(&storage, &writer).await;
    let stored = storage.read(Some(&cookie)).await.unwrap();
    assert_eq!(stored.owner().as_deref(), Some("bob"));
    assert_eq!(stored.get::<u32>("cart"), Some(1));

    // The other order: the owner change saves last and keeps the writer's key.
    let logout = storage.read(Some(&cookie)).await.unwrap();
    let writer = storage.read(Some(&cookie)).await.unwrap();
    logout.clear_owner().unwrap();
    writer.set("cart", 2).unwrap();
    saved(&storage, &writer).await;
    saved(&storage, &logout).await;
    let stored = storage.read(Some(&cookie)).await.unwrap();
    assert_eq!(stored.owner(), None);
    assert_eq!(stored.get::<u32>("cart"), Some(2));
}

#[tokio::test]
async fn regenerate_keeps_the_owner() {
    let storage = MemoryStorage::new();
    let cookie = owned_session(&storage, "ann").await;
    let login = storage.read(Some(&cookie)).await.unwrap();
    let writer = storage.read(Some(&cookie)).await.unwrap();
    login.regenerate_id(true).unwrap();
    // Saved meanwhile, so that the login merges into the stored record before it moves.
    writer.set("cart", 1).unwrap();
    saved(&storage, &writer).await;
    let moved = saved(&storage, &login).await;
    assert_ne!(moved, cookie);
    let stored = storage.read(Some(&moved)).await.unwrap();
    assert_eq!(stored.owner().as_deref(), Some("ann"));
    assert_eq!(stored.get::<u32>("cart"), Some(1));
}

#[test]
fn a_handle_names_the_current_id_and_never_shows_it() {
    let session = Session::new();
    let handle = session.handle();
    assert_eq!(handle, session.handle(), "stable while the id is");
    assert_ne!(handle, Session::new().handle());
    let shown = handle.to_string();
    assert!(!shown.contains(&session.id()));
    assert_eq!(shown.parse::<SessionHandle>(), Ok(handle.clone()));
    session.regenerate_id(true).unwrap();
    assert_ne!(session.handle(), handle, "a new id, a new handle");
}

/// The handles of a listing, in its order.
async fn listed(storage: &MemoryStorage, owner: &str) -> Vec<SessionHandle> {
    let listing = storage.sessions_of(owner).await.unwrap();
    listing.into_iter().map(|info| info.handle).collect()
}

#[tokio::test]
async fn a_listing_shows_each_live_session_newest_save_first() {
    let storage = MemoryStorage::new().ttl(Duration::from_secs(600));
    let before = SystemTime::now() - Duration::from_secs(1);
    let first = owned_session(&storage, "ann").await;
    owned_session(&storage, "bob").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = owned_session(&storage, "ann").await;
    let unowned = storage.read(None).await.unwrap();
    unowned.set("seed", 1).unwrap();
    saved(&storage, &unowned).await;
    let (first, second) = (
        storage.read(Some(&first)).await.unwrap(),
        storage.read(Some(&second)).await.unwrap(),
    );
    assert_eq!(
        listed(&storage, "ann").await,
        [second.handle(), first.handle()]
    );
    assert_eq!(listed(&storage, "nobody").await, []);

    // Saving the older one again puts it first.
    tokio::time::sleep(Duration::from_millis(5)).await;
    first.set("cart", 3).unwrap();
    saved(&storage, &first).await;
    let listing = storage.sessions_of("ann").await.unwrap();
    let newest = &listing[0];
    assert_eq!(newest.handle, first.handle());
    assert_eq!(newest.data.values["cart"], 3);
    assert!(newest.created >= before && newest.created <= newest.saved);
    assert!(newest.saved > listing[1].saved);
    let expires = newest.expires.expect("a ttl gives an expiry");
    assert!(expires > newest.saved + Duration::from_secs(590));
}

#[tokio::test]
async fn ending_one_session_is_owner_checked() {
    let storage = MemoryStorage::new();
    let ann = owned_session(&storage, "ann").await;
    let ann = storage.read(Some(&ann)).await.unwrap();
    let bob = owned_session(&storage, "bob").await;
    let bob = storage.read(Some(&bob)).await.unwrap();
    // Bob posts Ann's handle: nothing happens.
    assert!(!storage.end_session("bob", &ann.handle()).await.unwrap());
    assert!(
        !storage
            .end_session("bob", &Session::new().handle())
            .await
            .unwrap()
    );
    assert_eq!(listed(&storage, "ann").await, [ann.handle()]);
    assert!(storage.end_session("ann", &ann.handle()).await.unwrap());
    assert!(!storage.end_session("ann", &ann.handle()).await.unwrap());
    assert_eq!(listed(&storage, "ann").await, []);
    assert_eq!(listed(&storage, "bob").await, [bob.handle()]);
    assert!(storage.read(Some(&ann.id())).await.unwrap().is_empty());
    // Its request saves after the end: nothing comes back, the cookie is cleared.
    ann.set("late", 1).unwrap();
    assert_eq!(storage.save(&ann).await.unwrap().as_deref(), Some(""));
    assert_eq!(storage.len(), 1);
}

#[tokio::test]
async fn ending_all_sessions_or_all_but_this_one() {
    let storage = MemoryStorage::new();
    for _ in 0..3 {
        owned_session(&storage, "ann").await;
    }
    owned_session(&storage, "bob").await;
    let this = owned_session(&storage, "ann").await;
    let this = storage.read(Some(&this)).await.unwrap();
    // A password change: this session gets a new id before the others end.
    this.regenerate_id(true).unwrap();
    assert_eq!(
        storage.end_sessions_of("ann", Some(&this)).await.unwrap(),
        3
    );
    let moved = saved(&storage, &this).await;
    let this = storage.read(Some(&moved)).await.unwrap();
    assert_eq!(listed(&storage, "ann").await, [this.handle()]);
    assert_eq!(storage.end_sessions_of("ann", None).await.unwrap(), 1);
    assert_eq!(listed(&storage, "ann").await, []);
    assert_eq!(storage.len(), 1, "only Bob's session is left");
    assert_eq!(storage.end_sessions_of("ann", None).await.unwrap(), 0);
}

#[tokio::test]
async fn the_listing_follows_regenerate_destroy_and_owner_changes() {
    let storage = MemoryStorage::new();
    let cookie = owned_session(&storage, "ann").await;
    let session = storage.read(Some(&cookie)).await.unwrap();
    session.regenerate_id(true).unwrap();
    let moved = saved(&storage, &session).await;
    assert_eq!(listed(&storage, "ann").await, [session.handle()]);
    let session = storage.read(Some(&moved)).await.unwrap();
    session.set_owner("bob").unwrap();
    saved(&storage, &session).await;
    assert_eq!(listed(&storage, "ann").await, []);
    assert_eq!(listed(&storage, "bob").await, [session.handle()]);
    let session = storage.read(Some(&moved)).await.unwrap();
    session.destroy();
    assert_eq!(storage.save(&session).await.unwrap().as_deref(), Some(""));
    assert_eq!(listed(&storage, "bob").await, []);
    assert!(storage.is_empty());
}

#[tokio::test]
async fn nothing_of_an_owner_outlives_its_expired_sessions() {
    let storage = MemoryStorage::new().ttl(Duration::from_millis(50));
    owned_session(&storage, "ann").await;
    owned_session(&storage, "ann").await;
    assert_eq!(listed(&storage, "ann").await.len(), 2);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(listed(&storage, "ann").await, [], "expired: not listed");
    assert_eq!(storage.end_sessions_of("ann", None).await.unwrap(), 0);
    storage.remove_expired();
    assert!(storage.is_empty(), "the store holds nothing more");
}

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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_during_end_sessions_of_brings_nothing_back() {
    let storage = MemoryStorage::new();
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
    assert_eq!(
        in_flight.await.unwrap().as_deref(),
        Some(""),
        "cookie cleared"
    );
    assert!(storage.is_empty(), "nothing written back");
    assert_eq!(listed(&storage, "ann").await, []);
    // Both devices' next requests start fresh sessions.
    for device in [&phone, &laptop] {
        let next = request(&app, Some(device), "/login")
            .await
            .expect("a new cookie");
        assert_ne!(&next, device);
    }
}

/// Many requests on many sessions of one owner, some of them logins that move their
/// session to a new id, race one `end_sessions_of`: once all have saved, none of the
/// owner's sessions is left, however their loads and saves fell around the end. (How many
/// requests are caught between load and save depends on the scheduler; the exact case is
/// `a_request_in_flight_during_end_sessions_of_brings_nothing_back`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_survives_a_race_with_end_sessions_of() {
    const SESSIONS: usize = 20;
    const REQUESTS: usize = 10;
    let storage = MemoryStorage::new();
    let saves = Arc::new(AtomicUsize::new(0));
    for round in 0..5 {
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
            tokio::task::yield_now().await;
        }
        let ended = storage.end_sessions_of("ann", None).await.unwrap();
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let left = storage.sessions_of("ann").await.unwrap();
        assert_eq!(left, [], "round {round}: {ended} ended, some survived");
        assert!(storage.is_empty(), "round {round}: nothing written back");
    }
}

/// The memory backend without its one-step `delete_all_owned`, to run the default one.
#[derive(Clone, Default)]
struct ListThenDelete(MemoryBackend);

impl SessionBackend for ListThenDelete {
    async fn load(&self, id: &str) -> Result<Option<Versioned>, Error> {
        self.0.load(id).await
    }

    async fn store(
        &self,
        id: &str,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        self.0.store(id, record, ttl, expected).await
    }

    async fn delete(&self, id: &str, expected: Expected) -> Result<bool, Error> {
        self.0.delete(id, expected).await
    }
}

impl OwnerIndexBackend for ListThenDelete {
    async fn records_of(&self, owner: &str) -> Result<Vec<(SessionHandle, Record)>, Error> {
        self.0.records_of(owner).await
    }

    async fn delete_owned(&self, owner: &str, handle: &SessionHandle) -> Result<bool, Error> {
        self.0.delete_owned(owner, handle).await
    }
}

#[tokio::test]
async fn the_default_delete_all_owned_ends_all_but_the_spared() {
    let storage = ServerStorage::with_backend(ListThenDelete::default());
    for _ in 0..3 {
        owned_session(&storage, "ann").await;
    }
    let bob = owned_session(&storage, "bob").await;
    let this = owned_session(&storage, "ann").await;
    let this = storage.read(Some(&this)).await.unwrap();
    this.regenerate_id(false).unwrap();
    assert_eq!(
        storage.end_sessions_of("ann", Some(&this)).await.unwrap(),
        3
    );
    let listed = storage.sessions_of("ann").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, SessionHandle::of_id(&this.original_id()));
    assert_eq!(storage.end_sessions_of("ann", None).await.unwrap(), 1);
    assert!(storage.sessions_of("ann").await.unwrap().is_empty());
    let bob = storage.read(Some(&bob)).await.unwrap();
    assert_eq!(
        bob.owner().as_deref(),
        Some("bob"),
        "another owner's session stays"
    );
}
