//! MemoryStorage against the shared scenario suite.
mod common;

use std::time::Duration;

use common::scenarios::{server_storage_scenarios, storage_scenarios};
use session_layer::{Error, MemoryStorage, SessionStorage};

storage_scenarios! {
    plain: async { MemoryStorage::new() },
    ttl: |ttl: Duration| async move { MemoryStorage::new().ttl(ttl) },
    max_lifetime: |limit: Duration| async move {
        MemoryStorage::new().ttl(Duration::from_secs(60)).max_lifetime(limit)
    },
}

server_storage_scenarios! {
    plain: async { MemoryStorage::new() },
    unknown_ids: async { MemoryStorage::new().use_unknown_ids(true) },
}

/// The whole suite again with a limit, so that the bookkeeping of use is exercised too.
mod with_max_sessions {
    use super::*;

    storage_scenarios! {
        plain: async { MemoryStorage::new().max_sessions(1000) },
        ttl: |ttl: Duration| async move { MemoryStorage::new().max_sessions(1000).ttl(ttl) },
        max_lifetime: |limit: Duration| async move {
            MemoryStorage::new().max_sessions(1000).ttl(Duration::from_secs(60)).max_lifetime(limit)
        },
    }

    server_storage_scenarios! {
        plain: async { MemoryStorage::new().max_sessions(1000) },
        unknown_ids: async { MemoryStorage::new().max_sessions(1000).use_unknown_ids(true) },
    }
}

/// Saves a new session holding `name`, and returns its id.
async fn create(storage: &MemoryStorage, name: &str) -> String {
    let session = storage.read(None).await.unwrap();
    session.set("name", name).unwrap();
    storage
        .save(&session)
        .await
        .unwrap()
        .expect("a cookie value")
}

/// Reads the session `id` as a request would (which counts as a use), and says whether it
/// was still held.
async fn is_held(storage: &MemoryStorage, id: &str) -> bool {
    let session = storage.read(Some(id)).await.unwrap();
    session.get::<String>("name").is_some()
}

/// Ids are random, so each round puts the sessions in a different place in the map:
/// eviction must follow the order of use whatever that place is.
const ROUNDS: usize = 20;

/// The session used least recently goes first, and only one: the storage never holds more
/// than its limit.
#[tokio::test]
async fn a_new_session_evicts_the_least_recently_used() {
    for _ in 0..ROUNDS {
        let storage = MemoryStorage::new().max_sessions(3);
        let a = create(&storage, "a").await;
        let b = create(&storage, "b").await;
        let c = create(&storage, "c").await;
        let d = create(&storage, "d").await;
        assert_eq!(storage.len(), 3);
        assert!(!is_held(&storage, &a).await, "a was used least recently");
        for id in [&b, &c, &d] {
            assert!(is_held(&storage, id).await);
        }
    }
}

/// Reading a session counts as a use: of three held, the one read survives a fourth, and
/// the least recently used of the others goes.
#[tokio::test]
async fn a_read_makes_a_session_recently_used() {
    for _ in 0..ROUNDS {
        let storage = MemoryStorage::new().max_sessions(3);
        let a = create(&storage, "a").await;
        let b = create(&storage, "b").await;
        let c = create(&storage, "c").await;
        assert!(is_held(&storage, &a).await);
        let d = create(&storage, "d").await;
        assert!(!is_held(&storage, &b).await, "b was used least recently");
        for id in [&a, &c, &d] {
            assert!(is_held(&storage, id).await);
        }
    }
}

/// Saving a held session counts as a use, and never evicts another even at the limit.
#[tokio::test]
async fn an_update_is_a_use_and_never_evicts() {
    for _ in 0..ROUNDS {
        let storage = MemoryStorage::new().max_sessions(3);
        let a = create(&storage, "a").await;
        let b = create(&storage, "b").await;
        let c = create(&storage, "c").await;
        let session = storage.read(Some(&a)).await.unwrap();
        session.set("name", "a again").unwrap();
        assert_eq!(storage.save(&session).await.unwrap(), Some(a.clone()));
        assert_eq!(storage.len(), 3, "an update evicts nothing");
        let d = create(&storage, "d").await;
        assert!(!is_held(&storage, &b).await, "b was used least recently");
        for id in [&a, &c, &d] {
            assert!(is_held(&storage, id).await);
        }
    }
}

/// Many requests creating sessions at once never push the storage past its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_new_sessions_stay_within_the_limit() {
    const LIMIT: usize = 100;
    let storage = MemoryStorage::new().max_sessions(LIMIT);
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let storage = storage.clone();
            tokio::spawn(async move {
                for n in 0..1000 {
                    create(&storage, &format!("{task}-{n}")).await;
                    assert!(storage.len() <= LIMIT, "{} sessions held", storage.len());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(storage.len(), LIMIT);
}

/// A limit of zero holds nothing: saving a new session is a configuration error, while a
/// request that saves nothing still works.
#[tokio::test]
async fn max_sessions_zero_refuses_new_sessions() {
    let storage = MemoryStorage::new().max_sessions(0);
    let untouched = storage.read(None).await.unwrap();
    assert_eq!(storage.save(&untouched).await.unwrap(), None);
    let session = storage.read(None).await.unwrap();
    session.set("name", "a").unwrap();
    let saved = storage.save(&session).await;
    assert!(
        matches!(&saved, Err(Error::Config(message)) if message.contains("max_sessions(0)")),
        "{saved:?}"
    );
    assert!(storage.is_empty());
}

/// Writes remove expired sessions by themselves: no `remove_expired` call is needed for
/// them not to pile up.
#[tokio::test]
async fn writes_remove_expired_sessions() {
    let storage = MemoryStorage::new().ttl(Duration::from_millis(300));
    for n in 0..10 {
        create(&storage, &n.to_string()).await;
    }
    assert_eq!(storage.len(), 10);
    tokio::time::sleep(Duration::from_millis(400)).await;
    create(&storage, "live").await;
    assert_eq!(storage.len(), 1);
}

/// `remove_expired` removes the expired sessions and only them. The two storages are
/// clones, so they share sessions but give them different TTLs.
#[tokio::test]
async fn remove_expired_keeps_live_sessions() {
    let short = MemoryStorage::new().ttl(Duration::from_millis(300));
    let long = short.clone().ttl(Duration::from_secs(3600));
    for n in 0..10 {
        create(&short, &n.to_string()).await;
    }
    let mut live = Vec::new();
    for n in 0..5 {
        live.push(create(&long, &n.to_string()).await);
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(short.remove_expired(), 10);
    assert_eq!(short.remove_expired(), 0);
    assert_eq!(short.len(), 5);
    for id in &live {
        assert!(is_held(&long, id).await);
    }
}

/// An expired session does not count against the limit when there are live ones to keep:
/// a new session takes its room before any live session is evicted.
#[tokio::test]
async fn expired_sessions_make_room_before_live_ones_are_evicted() {
    let short = MemoryStorage::new()
        .max_sessions(3)
        .ttl(Duration::from_millis(300));
    let long = short.clone().ttl(Duration::from_secs(3600));
    let kept = create(&long, "kept").await;
    create(&short, "a").await;
    create(&short, "b").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let new = create(&long, "new").await;
    assert_eq!(long.len(), 2);
    assert!(
        is_held(&long, &kept).await,
        "the live session was used least recently"
    );
    assert!(is_held(&long, &new).await);
}

/// A TTL and an absolute lifetime of `Duration::MAX` mean "never expires": no panic, no
/// wrap to a short expiry, and nothing removes the session.
#[tokio::test]
async fn duration_max_never_expires() {
    let storage = MemoryStorage::new()
        .ttl(Duration::MAX)
        .max_lifetime(Duration::MAX)
        .max_sessions(10);
    let id = create(&storage, "forever").await;
    create(&storage, "another write, which removes what expired").await;
    assert_eq!(storage.remove_expired(), 0);
    assert_eq!(storage.len(), 2);
    assert!(is_held(&storage, &id).await);
}

/// A visit of a returning user: reads the session and writes it back, as a signed-in page
/// does; says whether the session was still held.
async fn revisit(storage: &MemoryStorage, id: &str) -> bool {
    let session = storage.read(Some(id)).await.unwrap();
    let held = session.get::<String>("name").is_some();
    session.set("seen", true).unwrap();
    storage.save(&session).await.unwrap();
    held
}

/// Returning users survive floods: with a cap of 1,000, 100 users who came back twice keep
/// their sessions through 10 rounds of 10,000 one-shot sessions each (the 10,000,
/// 1,000 and 100,000 scaled down tenfold), while every new session is still stored and the
/// cap holds. Exact LRU kept none: each burst alone is ten times the cap.
#[tokio::test]
async fn returning_users_survive_a_flood_of_one_shot_sessions() {
    const CAP: usize = 1_000;
    let storage = MemoryStorage::new().max_sessions(CAP);
    let mut users = Vec::new();
    for n in 0..CAP / 10 {
        let id = create(&storage, &format!("user {n}")).await;
        for _ in 0..2 {
            assert!(revisit(&storage, &id).await);
        }
        users.push(id);
    }
    let mut kept = 0;
    for _ in 0..10 {
        let mut last = String::new();
        for _ in 0..CAP * 10 {
            last = create(&storage, "one-shot").await;
            assert!(storage.len() <= CAP);
        }
        assert_eq!(storage.len(), CAP);
        // Read once only, as a read counts as a use.
        assert!(
            is_held(&storage, &last).await,
            "a new session is always stored"
        );
        for id in &users {
            kept += usize::from(revisit(&storage, id).await);
        }
    }
    assert!(
        kept >= 99 * 10,
        "{kept} of 1,000 returning visits found their session"
    );
}
