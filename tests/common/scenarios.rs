//! The scenario suite every storage passes, written once.
//!
//! A storage's test file runs all of it with
//!
//! ```ignore
//! storage_scenarios! {
//!     // a storage with default options
//!     plain: async { MemoryStorage::new() },
//!     // the same with an idle TTL
//!     ttl: |ttl: Duration| async move { MemoryStorage::new().ttl(ttl) },
//! }
//! server_storage_scenarios! {
//!     // server-side storages only: use_unknown_ids and regenerate-with-delete
//!     plain: async { MemoryStorage::new() },
//!     unknown_ids: async { MemoryStorage::new().use_unknown_ids(true) },
//! }
//! ```
//!
//! Each expression is evaluated once per test, so every test has a storage of its own.

use std::time::Duration;

use session_layer::{Session, SessionStorage};

/// One simulated request: read the session from `cookie`, let `handler` use it, save.
/// Returns the session as the handler saw it and the cookie for the next request
/// (the previous one when the save set none, "" cleared).
pub async fn request<S: SessionStorage>(
    storage: &S,
    cookie: Option<&str>,
    handler: impl FnOnce(&Session),
) -> (Session, Option<String>) {
    let session = storage.read(cookie).await.expect("read");
    handler(&session);
    let saved = storage.save(&session).await.expect("save");
    let next = match saved {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(v),
        None => cookie.map(str::to_owned),
    };
    (session, next)
}

/// Seed 001: a counter that survives three requests.
pub async fn counter<S: SessionStorage>(storage: S) {
    let bump = |s: &Session| {
        let n = s.get::<u64>("count").unwrap_or(0);
        s.set("count", n + 1).unwrap();
    };
    let (s1, c1) = request(&storage, None, bump).await;
    assert_eq!(s1.get::<u64>("count"), Some(1));
    let (s2, c2) = request(&storage, c1.as_deref(), bump).await;
    assert_eq!(s2.get::<u64>("count"), Some(2));
    let (s3, _) = request(&storage, c2.as_deref(), bump).await;
    assert_eq!(s3.get::<u64>("count"), Some(3));
}

/// Seeds 000/001: flash is invisible where set, readable on the next request, then gone.
pub async fn flash<S: SessionStorage>(storage: S) {
    let (s1, c1) = request(&storage, None, |_| {}).await;
    assert_eq!(s1.get::<String>("message"), None);
    let (s2, c2) = request(&storage, c1.as_deref(), |s| {
        s.flash("message", "success!").unwrap()
    })
    .await;
    assert_eq!(s2.get::<String>("message"), None);
    let (s3, c3) = request(&storage, c2.as_deref(), |_| {}).await;
    assert_eq!(s3.get::<String>("message").as_deref(), Some("success!"));
    let (s4, _) = request(&storage, c3.as_deref(), |_| {}).await;
    assert_eq!(s4.get::<String>("message"), None);
}

/// An idle TTL: a session not written for longer than the TTL is gone.
pub async fn ttl_expires<S: SessionStorage>(storage: S) {
    let (_, c1) = request(&storage, None, |s| s.set("user", "mj").unwrap()).await;
    let (s2, _) = request(&storage, c1.as_deref(), |_| {}).await;
    assert_eq!(s2.get::<String>("user").as_deref(), Some("mj"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s3, _) = request(&storage, c1.as_deref(), |_| {}).await;
    assert_eq!(
        s3.get::<String>("user"),
        None,
        "expired session must not be returned"
    );
}

/// Seed 000: regenerate_id(true) deletes the original id's data on save.
pub async fn regenerate_deletes_old<S: SessionStorage>(storage: S) {
    let (s1, c1) = request(&storage, None, |s| s.set("user", "anon").unwrap()).await;
    let old_id = s1.id();
    let (s2, c2) = request(&storage, c1.as_deref(), |s| s.regenerate_id(true).unwrap()).await;
    assert_ne!(s2.id(), old_id);
    let (s3, _) = request(&storage, c2.as_deref(), |_| {}).await;
    assert_eq!(s3.get::<String>("user").as_deref(), Some("anon"));
    let (old, _) = request(&storage, c1.as_deref(), |_| {}).await;
    assert_eq!(
        old.get::<String>("user"),
        None,
        "the old id's data must be gone"
    );
}

/// use_unknown_ids(true) keeps a non-empty id that names no session.
pub async fn unknown_id_kept<S: SessionStorage>(storage: S) {
    let session = storage.read(Some("client-chosen-id")).await.unwrap();
    assert_eq!(session.id(), "client-chosen-id");
}

/// Runs the scenarios every storage must pass.
macro_rules! storage_scenarios {
    (plain: $plain:expr, ttl: $ttl:expr $(,)?) => {
        #[tokio::test]
        async fn scenario_counter() {
            common::scenarios::counter($plain.await).await
        }
        #[tokio::test]
        async fn scenario_flash() {
            common::scenarios::flash($plain.await).await
        }
        #[tokio::test]
        async fn scenario_ttl_expires() {
            let make = $ttl;
            common::scenarios::ttl_expires(make(std::time::Duration::from_secs(1)).await).await
        }
    };
}

/// Runs the scenarios every server-side storage must pass besides `storage_scenarios!`.
macro_rules! server_storage_scenarios {
    (plain: $plain:expr, unknown_ids: $unknown:expr $(,)?) => {
        #[tokio::test]
        async fn scenario_regenerate_deletes_old() {
            common::scenarios::regenerate_deletes_old($plain.await).await
        }
        #[tokio::test]
        async fn scenario_unknown_id_kept() {
            common::scenarios::unknown_id_kept($unknown.await).await
        }
    };
}

pub(crate) use server_storage_scenarios;
pub(crate) use storage_scenarios;
