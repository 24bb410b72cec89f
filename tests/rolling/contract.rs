//! What a renewal promises, each scenario written once for any server-side storage:
//! `storages` runs them on each.

use std::any::Any;
use std::time::{Duration, SystemTime};

use session_layer::storage::{OwnerIndexBackend, ServerStorage, SessionBackend, Versioned};
use session_layer::{SessionIndex, SessionStorage};

use crate::common::sessions::{saved, stored_session};

/// A storage under test.
pub(crate) struct Fixture<B> {
    pub storage: ServerStorage<B>,
    /// Whether the backend renews in place; `false` for one that keeps the default
    /// `renew`, which stores the record again.
    pub in_place: bool,
    /// Servers and directories the storage uses, kept until the scenario ends.
    #[expect(dead_code, reason = "held for its drop, never read")]
    pub keep: Box<dyn Any + Send>,
}

/// The TTL of the scenarios that wait past it: long enough for a few round trips.
pub(crate) const SHORT_TTL: Duration = Duration::from_millis(2_000);

/// The TTL of the owned scenario that waits past it: the entry of a Redis Cluster owner's
/// set is scored past its record by a margin of 2 s (the response timeout and a second of
/// clock skew), which a shorter TTL would hide a missed rescore behind.
pub(crate) const OWNED_TTL: Duration = Duration::from_millis(6_000);

/// The TTL of the scenarios that do not wait for an expiry.
pub(crate) const TTL: Duration = Duration::from_secs(600);

/// The record as the store holds it: its version (which every write of any backend
/// changes) and its data.
async fn stored<B: SessionBackend>(storage: &ServerStorage<B>, id: &str) -> Option<Versioned> {
    storage.backend().load(&id.into()).await.unwrap()
}

/// A request that only renews the session `id`: what `rolling(true)` does on a request
/// that changes nothing. Answers the save's cookie value.
async fn renewed<St: SessionStorage>(storage: &St, id: &str) -> Option<String> {
    let session = storage.read(Some(id)).await.unwrap();
    assert!(
        session.is_loaded(),
        "the session is there before its renewal"
    );
    session.touch().unwrap();
    storage.save(&session).await.unwrap()
}

/// A renewal moves the expiry, so that a session past its first TTL lives on, and leaves
/// the record as stored: same version, same data.
pub(crate) async fn a_renewal_moves_the_expiry_without_rewriting<B: SessionBackend>(
    fixture: Fixture<B>,
) {
    let storage = &fixture.storage;
    let id = stored_session(storage, 0, None).await;
    let before = stored(storage, &id).await.expect("stored");
    tokio::time::sleep(SHORT_TTL * 3 / 5).await;
    assert_eq!(renewed(storage, &id).await.as_deref(), Some(id.as_str()));
    let after = stored(storage, &id).await.expect("still stored");
    assert!(
        after.record.expires_at_ms > before.record.expires_at_ms,
        "the expiry moved"
    );
    assert_eq!(after.record.data, before.record.data);
    if fixture.in_place {
        assert_eq!(
            after.version, before.version,
            "the record was written again"
        );
    } else {
        assert_ne!(
            after.version, before.version,
            "the default renew stores the record"
        );
    }
    tokio::time::sleep(SHORT_TTL * 3 / 5).await;
    let session = storage.read(Some(&id)).await.unwrap();
    assert!(
        session.is_loaded(),
        "a renewed session outlives its first TTL"
    );
    assert_eq!(session.get::<u64>("n"), Some(0));
    // And it still ends one TTL after the renewal.
    tokio::time::sleep(SHORT_TTL * 3 / 5).await;
    assert!(
        !storage.read(Some(&id)).await.unwrap().is_loaded(),
        "expired"
    );
}

/// A request that loaded the session before another destroyed it renews nothing: the
/// session stays gone and the save answers "clear the cookie".
pub(crate) async fn a_renewal_after_a_destroy_brings_nothing_back<B: SessionBackend>(
    fixture: Fixture<B>,
) {
    let storage = &fixture.storage;
    let id = stored_session(storage, 0, None).await;
    let late = storage.read(Some(&id)).await.unwrap();
    let logout = storage.read(Some(&id)).await.unwrap();
    logout.destroy();
    assert_eq!(storage.save(&logout).await.unwrap().as_deref(), Some(""));
    late.touch().unwrap();
    assert_eq!(
        storage.save(&late).await.unwrap().as_deref(),
        Some(""),
        "cookie cleared"
    );
    assert!(stored(storage, &id).await.is_none(), "nothing stored again");
    assert!(!storage.read(Some(&id)).await.unwrap().is_loaded());
}

/// A renewal of a session that expired since it was loaded brings nothing back either.
pub(crate) async fn a_renewal_after_the_expiry_brings_nothing_back<B: SessionBackend>(
    fixture: Fixture<B>,
) {
    let storage = &fixture.storage;
    let id = stored_session(storage, 0, None).await;
    let late = storage.read(Some(&id)).await.unwrap();
    tokio::time::sleep(SHORT_TTL + Duration::from_millis(200)).await;
    late.touch().unwrap();
    assert_eq!(
        storage.save(&late).await.unwrap().as_deref(),
        Some(""),
        "cookie cleared"
    );
    assert!(!storage.read(Some(&id)).await.unwrap().is_loaded());
}

/// Renewals racing writes of one session lose none of the writes, whichever saves first.
pub(crate) async fn renewals_racing_writes_lose_no_write<B: SessionBackend + Clone>(
    fixture: Fixture<B>,
) {
    let storage = &fixture.storage;
    let id = stored_session(storage, 0, None).await;
    // Loaded before a write, saved after it; then loaded before a renewal, saved after it.
    let renewing = storage.read(Some(&id)).await.unwrap();
    let writing = storage.read(Some(&id)).await.unwrap();
    writing
        .update("n", |n: Option<u64>| n.unwrap_or(0) + 1)
        .unwrap();
    saved(storage, &writing).await;
    renewing.touch().unwrap();
    assert_eq!(
        storage.save(&renewing).await.unwrap().as_deref(),
        Some(id.as_str())
    );
    let writing = storage.read(Some(&id)).await.unwrap();
    let renewing = storage.read(Some(&id)).await.unwrap();
    renewing.touch().unwrap();
    saved(storage, &renewing).await;
    writing
        .update("n", |n: Option<u64>| n.unwrap_or(0) + 1)
        .unwrap();
    saved(storage, &writing).await;
    assert_eq!(
        storage.read(Some(&id)).await.unwrap().get::<u64>("n"),
        Some(2)
    );
    // Then many at once.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..24 {
        let (storage, id) = (storage.clone(), id.clone());
        tasks.spawn(async move {
            let session = storage.read(Some(&id)).await.unwrap();
            if n % 2 == 0 {
                session
                    .update("n", |n: Option<u64>| n.unwrap_or(0) + 1)
                    .unwrap();
            } else {
                session.touch().unwrap();
            }
            assert_eq!(storage.save(&session).await.unwrap(), Some(id));
        });
    }
    while let Some(task) = tasks.join_next().await {
        task.unwrap();
    }
    assert_eq!(
        storage.read(Some(&id)).await.unwrap().get::<u64>("n"),
        Some(14)
    );
}

/// An owned session renewed past its first TTL stays listed, with its last-active time
/// moved, and `end_sessions_of` still ends it.
pub(crate) async fn a_renewed_owned_session_stays_listed_and_ended<B>(fixture: Fixture<B>)
where
    B: OwnerIndexBackend,
{
    let storage = &fixture.storage;
    let id = stored_session(storage, 0, Some("ann")).await;
    let first = storage.sessions_of("ann").await.unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(OWNED_TTL * 3 / 4).await;
    let renewed_at = SystemTime::now();
    assert_eq!(renewed(storage, &id).await.as_deref(), Some(id.as_str()));
    tokio::time::sleep(OWNED_TTL * 3 / 4).await;
    let listed = storage.sessions_of("ann").await.unwrap();
    assert_eq!(listed.len(), 1, "still listed past its first expiry");
    let slack = Duration::from_millis(100);
    assert!(
        listed[0].saved + slack >= renewed_at,
        "the last-active time moved"
    );
    assert!(
        listed[0].expires > first[0].expires,
        "the listed expiry moved"
    );
    assert_eq!(storage.end_sessions_of("ann", None).await.unwrap(), 1);
    assert!(!storage.read(Some(&id)).await.unwrap().is_loaded(), "ended");
    assert!(storage.sessions_of("ann").await.unwrap().is_empty());
}

/// A request that loaded an owned session before `end_sessions_of` renews nothing.
pub(crate) async fn a_renewal_after_end_sessions_of_brings_nothing_back<B>(fixture: Fixture<B>)
where
    B: OwnerIndexBackend,
{
    let storage = &fixture.storage;
    let id = stored_session(storage, 0, Some("ann")).await;
    let late = storage.read(Some(&id)).await.unwrap();
    assert_eq!(storage.end_sessions_of("ann", None).await.unwrap(), 1);
    late.touch().unwrap();
    assert_eq!(
        storage.save(&late).await.unwrap().as_deref(),
        Some(""),
        "cookie cleared"
    );
    assert!(stored(storage, &id).await.is_none());
    assert!(storage.sessions_of("ann").await.unwrap().is_empty());
}

/// A session with flash that arrived, or a value set, is written, not renewed.
pub(crate) async fn a_change_is_written_not_renewed<B: SessionBackend>(fixture: Fixture<B>) {
    let storage = &fixture.storage;
    let session = storage.read(None).await.unwrap();
    session.flash("notice", "hi").unwrap();
    let id = saved(storage, &session).await;
    let before = stored(storage, &id).await.unwrap();
    let session = storage.read(Some(&id)).await.unwrap();
    assert_eq!(session.get::<String>("notice").as_deref(), Some("hi"));
    session.touch().unwrap();
    saved(storage, &session).await;
    let after = stored(storage, &id).await.unwrap();
    assert_ne!(
        after.version, before.version,
        "the flash read is consumed by a write"
    );
    assert!(after.record.data.flash.is_empty());
}
