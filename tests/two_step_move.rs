//! A login (`regenerate_id(true)`) on a backend without a one-step move: the new id is
//! written, then the old one deleted at the version loaded. When the store fails between the
//! two steps, the move leaves no orphan and never brings back a session it cannot account
//! for.

use std::sync::Mutex;
use std::time::Duration;

use session_layer::storage::{
    Expected, MemoryBackend, Record, ServerStorage, SessionBackend, SessionId, Versioned,
};
use session_layer::{Error, SessionStorage};

/// How the next conditional delete fails.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// Fails without deleting: the store was unreachable.
    BeforeDeleting,
    /// Deletes, then fails: the answer was lost.
    AfterDeleting,
}

/// A memory backend whose next conditional delete fails as told.
#[derive(Default)]
struct Flaky {
    inner: MemoryBackend,
    fault: Mutex<Option<Fault>>,
}

impl SessionBackend for Flaky {
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
        self.inner.load(id).await
    }

    async fn store(
        &self,
        id: &SessionId,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        self.inner.store(id, record, ttl, expected).await
    }

    async fn delete(&self, id: &SessionId, expected: Expected) -> Result<bool, Error> {
        let fault = match expected {
            Expected::Version(_) => self.fault.lock().unwrap().take().unwrap_or(Fault::None),
            _ => Fault::None,
        };
        match fault {
            Fault::None => self.inner.delete(id, expected).await,
            Fault::BeforeDeleting => Err(Error::Timeout),
            Fault::AfterDeleting => {
                self.inner.delete(id, expected).await?;
                Err(Error::Timeout)
            }
        }
    }
}

/// A signed-in session, then a login that meets `fault`: the save's outcome, the old id, and
/// the id the login drew.
async fn login_meeting(
    fault: Fault,
) -> (
    ServerStorage<Flaky>,
    Result<Option<String>, Error>,
    SessionId,
    SessionId,
) {
    let storage = ServerStorage::with_backend(Flaky::default());
    let first = storage.read(None).await.unwrap();
    first.set("cart", 3).unwrap();
    let old = storage
        .save(&first)
        .await
        .unwrap()
        .expect("a new session's id");

    let login = storage.read(Some(&old)).await.unwrap();
    login.regenerate_id(true).unwrap();
    *storage.backend().fault.lock().unwrap() = Some(fault);
    let saved = storage.save(&login).await;
    (storage, saved, old.into(), login.id().into())
}

#[tokio::test]
async fn a_move_that_fails_before_deleting_leaves_no_orphan() {
    let (storage, saved, old, new) = login_meeting(Fault::BeforeDeleting).await;
    assert!(matches!(saved, Err(Error::Timeout)), "{saved:?}");
    let kept = storage
        .backend()
        .load(&old)
        .await
        .unwrap()
        .expect("the old id is kept");
    assert_eq!(kept.record.data.values["cart"], 3);
    assert!(
        storage.backend().load(&new).await.unwrap().is_none(),
        "the new id is an orphan"
    );
}

#[tokio::test]
async fn a_move_whose_answer_is_lost_brings_nothing_back() {
    let (storage, saved, old, new) = login_meeting(Fault::AfterDeleting).await;
    assert!(matches!(saved, Err(Error::Timeout)), "{saved:?}");
    assert!(storage.backend().load(&old).await.unwrap().is_none());
    // The old id may have been ended by another request as well: the new one, which only
    // this failed request knows, stays until its expiry rather than revive it.
    assert!(storage.backend().load(&new).await.unwrap().is_some());
}

#[tokio::test]
async fn a_move_that_succeeds_deletes_the_old_id() {
    let (storage, saved, old, new) = login_meeting(Fault::None).await;
    assert_eq!(saved.unwrap().as_deref(), Some(new.as_str()));
    assert!(storage.backend().load(&old).await.unwrap().is_none());
    assert!(storage.backend().load(&new).await.unwrap().is_some());
}
