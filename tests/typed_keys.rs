//! Typed keys (`Key<T>`) over the string-keyed session, through a real save and read.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use session_layer::{Key, MemoryStorage, Session, SessionStorage};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    sku: String,
    quantity: u32,
}

const CART: Key<Vec<Item>> = Key::new("cart");
const VISITS: Key<u64> = Key::new("visits");
const NOTICE: Key<String> = Key::new("notice");

fn tea() -> Item {
    Item {
        sku: "tea".into(),
        quantity: 2,
    }
}

/// Saves `session` and reads it back as the next request would.
async fn next_request(storage: &MemoryStorage, session: &Session) -> Session {
    let value = storage.save(session).await.unwrap().expect("saved");
    storage.read(Some(&value)).await.unwrap()
}

#[tokio::test]
async fn typed_values_survive_a_save_and_a_read() {
    let storage = MemoryStorage::new();
    let session = Session::new();
    CART.set(&session, vec![tea()]).unwrap();
    VISITS.update(&session, |n| n.unwrap_or(0) + 1).unwrap();
    let next = next_request(&storage, &session).await;
    assert_eq!(CART.get(&next), Some(vec![tea()]));
    assert_eq!(VISITS.get(&next), Some(1));
    assert!(CART.is_in(&next));
}

#[tokio::test]
async fn a_typed_key_is_its_name_to_the_string_api() {
    let session = Session::new();
    session.set("visits", 41_u64).unwrap();
    assert_eq!(VISITS.update(&session, |n| n.unwrap_or(0) + 1).unwrap(), 42);
    assert_eq!(session.get::<u64>(VISITS.name()), Some(42));
    VISITS.unset(&session).unwrap();
    assert!(!session.has("visits"));
}

#[tokio::test]
async fn a_value_of_another_type_reads_as_none() {
    let session = Session::new();
    session.set("visits", "not a number").unwrap();
    assert_eq!(VISITS.get(&session), None);
    assert_eq!(
        VISITS.update(&session, |n| n.unwrap_or(0) + 1).unwrap(),
        1,
        "update starts afresh"
    );
}

#[tokio::test]
async fn a_typed_flash_lives_for_the_next_request_only() {
    let storage = MemoryStorage::new();
    let session = Session::new();
    NOTICE.flash(&session, "saved".to_owned()).unwrap();
    assert_eq!(
        NOTICE.get(&session),
        None,
        "not visible in the request that set it"
    );
    let next = next_request(&storage, &session).await;
    assert_eq!(NOTICE.get(&next).as_deref(), Some("saved"));
    let after = next_request(&storage, &next).await;
    assert_eq!(NOTICE.get(&after), None, "gone after one request");
}

#[test]
fn keys_are_constants_that_any_thread_can_use() {
    fn shareable<K: Copy + Send + Sync + 'static>(_: K) {}
    // Even for a value type that is neither Send nor Sync: a key holds no value.
    const NOT_SEND: Key<Rc<u8>> = Key::new("rc");
    shareable(NOT_SEND);
    shareable(CART);
    assert_eq!(format!("{CART:?}"), r#"Key("cart")"#);
}
