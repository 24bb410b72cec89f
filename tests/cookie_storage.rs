//! CookieStorage: the shared scenario suite, plus what is special about data in the cookie.
mod common;

use std::time::Duration;

use common::logs::Captured;
use common::scenarios::{request, storage_scenarios};
use session_layer::{CookieStorage, SessionStorage};

storage_scenarios! {
    plain: async { CookieStorage::new() },
    ttl: |ttl: Duration| async move { CookieStorage::new().ttl(ttl) },
    max_lifetime: |limit: Duration| async move {
        CookieStorage::new().ttl(Duration::from_secs(60)).max_lifetime(limit)
    },
}

#[tokio::test]
async fn the_data_is_in_the_value() {
    let storage = CookieStorage::new();
    let (_, value) = request(&storage, None, |s| s.set("user", "mjackson").unwrap()).await;
    let value = value.unwrap();
    assert!(value.contains("mjackson"), "{value}");
    // Any other instance reads it: there is no server-side state.
    let other = CookieStorage::new();
    let loaded = other.read(Some(&value)).await.unwrap();
    assert_eq!(loaded.get::<String>("user").as_deref(), Some("mjackson"));
}

#[tokio::test]
async fn the_id_is_stable_across_requests() {
    let storage = CookieStorage::new();
    let (s1, c1) = request(&storage, None, |s| s.set("n", 1).unwrap()).await;
    let (s2, c2) = request(&storage, c1.as_deref(), |s| s.set("n", 2).unwrap()).await;
    let (s3, _) = request(&storage, c2.as_deref(), |_| {}).await;
    assert_eq!(s1.id(), s2.id());
    assert_eq!(s2.id(), s3.id());
}

#[tokio::test]
async fn undecodable_values_give_fresh_sessions() {
    let storage = CookieStorage::new();
    for value in [
        "not json",
        "{}",
        "[]",
        "null",
        "{\"i\":\"\"}",
        "{\"i\":5}",
        "\u{0}",
    ] {
        let session = storage.read(Some(value)).await.expect("not an error");
        assert!(session.is_empty(), "{value}");
        assert!(session.id().len() >= 22, "{value}");
    }
}

#[tokio::test]
async fn regenerate_with_delete_warns_and_still_works() {
    let (logs, _guard) = Captured::start();

    let storage = CookieStorage::new();
    let (s1, c1) = request(&storage, None, |s| s.set("user", "anon").unwrap()).await;
    let (_, c2) = request(&storage, c1.as_deref(), |s| s.regenerate_id(false).unwrap()).await;
    assert!(
        logs.text().is_empty(),
        "no warning without delete: {}",
        logs.text()
    );

    let (s3, c3) = request(&storage, c2.as_deref(), |s| s.regenerate_id(true).unwrap()).await;
    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("regenerate_id"), "{text}");
    assert_ne!(s3.id(), s1.id());
    let (s4, _) = request(&storage, c3.as_deref(), |_| {}).await;
    assert_eq!(s4.id(), s3.id());
    assert_eq!(s4.get::<String>("user").as_deref(), Some("anon"));
}

#[tokio::test]
async fn old_values_are_refused_after_the_ttl() {
    let storage = CookieStorage::new().ttl(Duration::from_millis(500));
    let (_, c1) = request(&storage, None, |s| s.set("user", "mj").unwrap()).await;
    let value = c1.unwrap();
    let fresh = storage.read(Some(&value)).await.unwrap();
    assert_eq!(fresh.get::<String>("user").as_deref(), Some("mj"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let replayed = storage.read(Some(&value)).await.unwrap();
    assert!(
        replayed.is_empty(),
        "a value older than the ttl must be refused"
    );
    // The expiry is sealed in the value: another instance refuses it too.
    let other = CookieStorage::new();
    assert!(other.read(Some(&value)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_write_renews_the_ttl() {
    let storage = CookieStorage::new().ttl(Duration::from_millis(600));
    let (_, c1) = request(&storage, None, |s| s.set("n", 1).unwrap()).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, c2) = request(&storage, c1.as_deref(), |s| s.set("n", 2).unwrap()).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (s3, _) = request(&storage, c2.as_deref(), |_| {}).await;
    assert_eq!(s3.get::<u32>("n"), Some(2));
    let (s_old, _) = request(&storage, c1.as_deref(), |_| {}).await;
    assert!(s_old.is_empty());
}

/// `Duration::MAX` as TTL or lifetime means "never expires here": no panic, no wrap into an
/// expiry in the past.
#[tokio::test]
async fn extreme_durations_neither_panic_nor_expire() {
    for storage in [
        CookieStorage::new().ttl(Duration::MAX),
        CookieStorage::new().max_lifetime(Duration::MAX),
        CookieStorage::new()
            .ttl(Duration::MAX)
            .max_lifetime(Duration::MAX),
        CookieStorage::new()
            .ttl(Duration::from_secs(u64::MAX))
            .max_lifetime(Duration::from_secs(u64::MAX / 1000 + 1)),
    ] {
        let (s1, c1) = request(&storage, None, |s| s.set("n", 1).unwrap()).await;
        let value = c1.expect("a dirty session is written");
        let loaded = storage.read(Some(&value)).await.unwrap();
        assert_eq!(loaded.id(), s1.id(), "{storage:?}");
        assert_eq!(loaded.get::<u32>("n"), Some(1), "{storage:?}");
    }
}
