//! Sessions in process memory.

mod owners;
mod sessions;

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use self::sessions::Sessions;
use super::{
    Error, Expected, OwnerIndexBackend, Record, Renewal, ServerStorage, SessionBackend, SessionId,
    Versioned, unix_now_ms,
};
use crate::SessionHandle;
use crate::observe;

/// Sessions in process memory: for tests, development and single-process apps.
///
/// Everything is lost when the process exits. Clones share the same sessions.
///
/// Without [`max_sessions`](MemoryStorage::max_sessions) nothing bounds how many sessions
/// are held: every client without a cookie that gets one saved adds a session until it
/// expires, so set a limit (and a [`ttl`](ServerStorage::ttl)) on anything reachable from
/// the internet.
///
/// ```
/// use std::time::Duration;
/// use session_layer::MemoryStorage;
///
/// let storage = MemoryStorage::new()
///     .ttl(Duration::from_secs(3600))
///     .max_sessions(100_000);
/// # let _ = storage;
/// ```
pub type MemoryStorage = ServerStorage<MemoryBackend>;

impl MemoryStorage {
    /// An empty in-memory storage, with no limit on how many sessions it holds.
    #[allow(clippy::new_without_default)] // mirrors the other storages' constructors
    pub fn new() -> Self {
        ServerStorage::with_backend(MemoryBackend::default())
    }

    /// Holds at most `n` sessions: saving a new session when `n` are held first removes
    /// the expired ones, then evicts until there is room, sessions seen once before
    /// sessions used again. Saving a session that is already held never evicts another.
    ///
    /// A new session waits in a probation queue; the oldest there goes first, unless it was
    /// read or saved again since, in which case it joins the main queue of sessions in use.
    /// Those are evicted only while probation holds at most a tenth of `n` (oldest first,
    /// each recent use buying one more pass), so a flood of one-shot sessions (a crawler, a
    /// script, an attack on the login page) evicts other one-shot sessions, not the users
    /// who come back. A new session is always stored, and never more than `n` are held.
    ///
    /// With `n == 0` no session can be held: saving a new one fails with [`Error::Config`]
    /// (the layer answers a bare 500), while requests that save nothing still work.
    ///
    /// The limit belongs to the sessions, so every clone of this storage shares it.
    pub fn max_sessions(self, n: usize) -> Self {
        self.backend().sessions().max_sessions = Some(n);
        self
    }

    /// Removes every expired session now and returns how many went. Every write already
    /// removes the sessions expired by then, so calling this is never required; it frees
    /// their memory sooner when no writes come.
    pub fn remove_expired(&self) -> usize {
        self.backend().sessions().remove_expired(unix_now_ms())
    }

    /// How many sessions are held, expired ones not yet removed included.
    pub fn len(&self) -> usize {
        self.backend().shared().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The [`SessionBackend`] behind [`MemoryStorage`]: the sessions, in their eviction queues
/// and by expiry, behind one read-write lock. A read takes it shared (it only counts a use
/// on the session), a write exclusive.
#[derive(Clone, Default)]
pub struct MemoryBackend {
    inner: Arc<RwLock<Sessions>>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend").finish_non_exhaustive()
    }
}

impl MemoryBackend {
    /// The sessions, locked for writing. Nothing under the lock panics but a broken
    /// invariant (a bug), so a poisoned lock is taken over as it is rather than failing
    /// every later request.
    fn sessions(&self) -> RwLockWriteGuard<'_, Sessions> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The sessions, locked for reading, shared with other reads.
    fn shared(&self) -> RwLockReadGuard<'_, Sessions> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SessionBackend for MemoryBackend {
    const NAME: &'static str = "memory";

    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
        Ok(self.shared().load(id))
    }

    async fn store(
        &self,
        id: &SessionId,
        record: &Record,
        _ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        // Copied before locking, to keep the lock held briefly.
        let record = record.clone();
        let mut sessions = self.sessions();
        let stored = sessions.store(id, record, expected);
        observe::memory_held(sessions.len());
        stored
    }

    async fn store_owned(
        &self,
        id: &SessionId,
        record: Record,
        _ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        self.sessions().store(id, record, expected)
    }

    /// In place, under the write lock: the record keeps its data and its version.
    async fn renew(&self, id: &SessionId, renewal: Renewal<'_>) -> Result<bool, Error> {
        let renewed = self
            .sessions()
            .renew(id, renewal.expires_at_ms, renewal.now_ms);
        Ok(renewed)
    }

    async fn delete(&self, id: &SessionId, expected: Expected) -> Result<bool, Error> {
        let mut sessions = self.sessions();
        let deleted = sessions.delete(id, expected);
        observe::memory_held(sessions.len());
        Ok(deleted)
    }
}

/// Every operation takes the one lock once, so that ending all of an owner's sessions is
/// one step that no concurrent save or move can slip through.
impl OwnerIndexBackend for MemoryBackend {
    async fn records_of(&self, owner: &str) -> Result<Vec<(SessionHandle, Record)>, Error> {
        Ok(self.shared().records_of(owner))
    }

    async fn delete_owned(&self, owner: &str, handle: &SessionHandle) -> Result<bool, Error> {
        Ok(self.sessions().delete_owned(owner, handle))
    }

    async fn delete_all_owned(&self, owner: &str, except: &[SessionHandle]) -> Result<u64, Error> {
        Ok(self.sessions().delete_all_owned(owner, except))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_at_ms: Option<u64>) -> Record {
        Record {
            expires_at_ms,
            ..Record::default()
        }
    }

    /// A panic while the lock was held (here on purpose) does not make every later request
    /// panic too: the lock is taken over as it is.
    #[tokio::test]
    async fn a_poisoned_lock_still_serves() {
        let backend = MemoryBackend::default();
        let poisoner = backend.clone();
        let panicked = std::thread::spawn(move || {
            let _sessions = poisoner.sessions();
            panic!("a panic while the lock is held");
        })
        .join();
        assert!(panicked.is_err() && backend.inner.is_poisoned());
        let record = record(None);
        let id = SessionId::from("id");
        let stored = backend.store(&id, &record, None, Expected::Absent);
        assert!(stored.await.unwrap());
        assert!(backend.load(&id).await.unwrap().is_some());
        assert!(backend.delete(&id, Expected::Any).await.unwrap());
    }

    /// Through the whole lifecycle (a login that moves the session, an owner change, a
    /// destroy), the owner index keeps no entry of a session that is gone.
    #[tokio::test]
    async fn the_owner_index_keeps_nothing_of_gone_sessions() {
        use crate::{SessionIndex, SessionStorage};
        let storage = MemoryStorage::new();
        let owners = || storage.backend().sessions().owner_count();
        let session = storage.read(None).await.unwrap();
        session.set_owner("ann").unwrap();
        let id = storage.save(&session).await.unwrap().unwrap();
        let session = storage.read(Some(&id)).await.unwrap();
        session.regenerate_id(true).unwrap();
        let id = storage.save(&session).await.unwrap().unwrap();
        assert_eq!(storage.sessions_of("ann").await.unwrap().len(), 1);
        let session = storage.read(Some(&id)).await.unwrap();
        session.set_owner("bob").unwrap();
        storage.save(&session).await.unwrap();
        assert_eq!(owners(), 1, "ann is gone, bob is there");
        assert!(storage.sessions_of("ann").await.unwrap().is_empty());
        session.destroy();
        storage.save(&session).await.unwrap();
        assert_eq!(owners(), 0);
    }
}
