//! The owner as part of a session: stored, loaded, merged with what concurrent requests
//! change, kept across a new id; and the handle that names a session.

use serde_json::Value;
use session_layer::storage::Record;
use session_layer::{CookieStorage, Error, MemoryStorage, Session, SessionHandle, SessionStorage};

use crate::{owned_session, saved};

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
