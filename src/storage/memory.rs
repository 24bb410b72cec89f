//! Sessions in process memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{Error, Expected, Record, ServerStorage, SessionBackend, Versioned, unix_now_ms};

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
    /// the expired ones, then evicts the least recently used (read or saved) until there is
    /// room. Saving a session that is already held never evicts another.
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
        self.backend().sessions().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The [`SessionBackend`] behind [`MemoryStorage`]: the sessions, in order of use and of
/// expiry, behind one lock (exact LRU needs one order over all of them).
#[derive(Clone, Default)]
pub struct MemoryBackend {
    inner: Arc<Mutex<Sessions>>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend").finish_non_exhaustive()
    }
}

/// The sessions, in order of use and of expiry.
#[derive(Default)]
struct Sessions {
    /// Where each held session is in `slots`.
    slot_of: HashMap<Arc<str>, usize>,
    /// The held sessions, linked from the most to the least recently used: a doubly linked
    /// list, so that a use moves a session to the front in a few writes. `None` where a
    /// session was removed, until a new one takes the place.
    slots: Vec<Option<Slot>>,
    /// The `None` places in `slots`.
    free: Vec<usize>,
    newest: Option<usize>,
    oldest: Option<usize>,
    /// Soonest expiry first, so that removing what expired never scans what is alive; the
    /// version (unique) tells apart records that expire in the same millisecond.
    by_expiry: BTreeMap<(u64, u64), usize>,
    /// The last version given to a write: versions are never reused, even across a delete.
    last_version: u64,
    /// `None`: no limit.
    max_sessions: Option<usize>,
}

struct Slot {
    /// Shared with `slot_of`, to remove the session from it when it is evicted or expires.
    id: Arc<str>,
    stored: Versioned,
    /// The next more recently used session; `None` for the newest.
    newer: Option<usize>,
    /// The next less recently used session; `None` for the oldest.
    older: Option<usize>,
}

/// Its key in `by_expiry`, if the record expires.
fn expiry_key(stored: &Versioned) -> Option<(u64, u64)> {
    stored.record.expires_at_ms.map(|at| (at, stored.version))
}

impl Sessions {
    fn len(&self) -> usize {
        self.slot_of.len()
    }

    fn slot(&mut self, at: usize) -> &mut Slot {
        self.slots[at]
            .as_mut()
            .expect("every place that is linked or indexed holds a session")
    }

    fn load(&mut self, id: &str) -> Option<Versioned> {
        let at = *self.slot_of.get(id)?;
        self.mark_used(at);
        Some(self.slot(at).stored.clone())
    }

    fn store(&mut self, id: &str, record: Record, expected: Expected) -> Result<bool, Error> {
        let held = self.slot_of.get(id).copied();
        if !expected.is_met_by(held.map(|at| self.slot(at).stored.version)) {
            return Ok(false);
        }
        self.last_version += 1;
        let stored = Versioned {
            record,
            version: self.last_version,
        };
        let now_ms = unix_now_ms();
        match held {
            Some(at) => {
                self.unindex_expiry(at);
                self.slot(at).stored = stored;
                self.index_expiry(at);
                self.mark_used(at);
            }
            None => {
                // Expired sessions make room before any live one is evicted.
                self.remove_expired(now_ms);
                self.make_room()?;
                self.insert(id, stored);
            }
        }
        // Only once written: a request that loaded a record just before it expired still
        // saves over it, as the lifecycle promises.
        self.remove_expired(now_ms);
        Ok(true)
    }

    fn delete(&mut self, id: &str, expected: Expected) -> bool {
        let held = self.slot_of.get(id).copied();
        if !expected.is_met_by(held.map(|at| self.slot(at).stored.version)) {
            return false;
        }
        if let Some(at) = held {
            self.remove(at);
        }
        self.remove_expired(unix_now_ms());
        true
    }

    /// Evicts the least recently used sessions until one more fits under the limit.
    fn make_room(&mut self) -> Result<(), Error> {
        let Some(limit) = self.max_sessions else {
            return Ok(());
        };
        if limit == 0 {
            return Err(Error::Config(
                "MemoryStorage::max_sessions(0) holds no session, so none can be saved".into(),
            ));
        }
        while self.len() >= limit {
            let Some(oldest) = self.oldest else {
                break;
            };
            self.remove(oldest);
        }
        Ok(())
    }

    /// Removes the sessions expired at `now_ms` (as `Record::is_live` counts them): the
    /// front of `by_expiry`, so the cost follows what expired, not what is held.
    fn remove_expired(&mut self, now_ms: u64) -> usize {
        let mut removed = 0;
        while let Some(first) = self.by_expiry.first_entry() {
            if first.key().0 > now_ms {
                break;
            }
            let at = first.remove();
            self.remove(at);
            removed += 1;
        }
        removed
    }

    fn insert(&mut self, id: &str, stored: Versioned) {
        let id: Arc<str> = Arc::from(id);
        let slot = Slot {
            id: Arc::clone(&id),
            stored,
            newer: None,
            older: None,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.slots[at] = Some(slot);
                at
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        self.slot_of.insert(id, at);
        self.index_expiry(at);
        self.link_as_newest(at);
    }

    fn remove(&mut self, at: usize) {
        self.unlink(at);
        self.unindex_expiry(at);
        if let Some(slot) = self.slots[at].take() {
            self.slot_of.remove(&slot.id);
        }
        self.free.push(at);
    }

    fn index_expiry(&mut self, at: usize) {
        if let Some(key) = expiry_key(&self.slot(at).stored) {
            self.by_expiry.insert(key, at);
        }
    }

    fn unindex_expiry(&mut self, at: usize) {
        if let Some(key) = expiry_key(&self.slot(at).stored) {
            self.by_expiry.remove(&key);
        }
    }

    fn mark_used(&mut self, at: usize) {
        if self.newest != Some(at) {
            self.unlink(at);
            self.link_as_newest(at);
        }
    }

    /// Takes the session at `at` out of the order of use, joining its neighbours.
    fn unlink(&mut self, at: usize) {
        let slot = self.slot(at);
        let (newer, older) = (slot.newer.take(), slot.older.take());
        match newer {
            Some(newer) => self.slot(newer).older = older,
            None => self.newest = older,
        }
        match older {
            Some(older) => self.slot(older).newer = newer,
            None => self.oldest = newer,
        }
    }

    /// Puts the (unlinked) session at `at` first in the order of use.
    fn link_as_newest(&mut self, at: usize) {
        let previous = self.newest.replace(at);
        self.slot(at).older = previous;
        match previous {
            Some(previous) => self.slot(previous).newer = Some(at),
            None => self.oldest = Some(at),
        }
    }
}

impl MemoryBackend {
    /// The sessions, locked. Nothing under the lock panics but a broken invariant (a bug),
    /// so a poisoned lock is taken over as it is rather than failing every later request.
    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SessionBackend for MemoryBackend {
    async fn load(&self, id: &str) -> Result<Option<Versioned>, Error> {
        Ok(self.sessions().load(id))
    }

    async fn store(
        &self,
        id: &str,
        record: &Record,
        _ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        // Copied before locking, to keep the lock held briefly.
        let record = record.clone();
        self.sessions().store(id, record, expected)
    }

    async fn delete(&self, id: &str, expected: Expected) -> Result<bool, Error> {
        Ok(self.sessions().delete(id, expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_at_ms: Option<u64>) -> Record {
        Record {
            data: Default::default(),
            created_at: 0,
            expires_at_ms,
        }
    }

    /// Checks that the order of use, the id index and the expiry index all describe the
    /// same sessions.
    fn assert_consistent(sessions: &Sessions) {
        let mut in_order = 0;
        let mut newer = None;
        let mut at = sessions.newest;
        while let Some(here) = at {
            let slot = sessions.slots[here]
                .as_ref()
                .expect("a linked place is held");
            assert_eq!(slot.newer, newer);
            assert_eq!(sessions.slot_of.get(&slot.id), Some(&here));
            if let Some(key) = expiry_key(&slot.stored) {
                assert_eq!(sessions.by_expiry.get(&key), Some(&here));
            }
            in_order += 1;
            newer = at;
            at = slot.older;
        }
        assert_eq!(sessions.oldest, newer);
        assert_eq!(in_order, sessions.len());
        let held = sessions.slots.iter().filter(|slot| slot.is_some()).count();
        assert_eq!(held, sessions.len());
        assert_eq!(sessions.free.len(), sessions.slots.len() - held);
        let expiring = sessions.slots.iter().flatten();
        let expiring = expiring.filter(|slot| slot.stored.record.expires_at_ms.is_some());
        assert_eq!(sessions.by_expiry.len(), expiring.count());
    }

    /// After any mix of stores, loads, deletes, evictions and expiries, the indexes and the
    /// order of use describe the same sessions, and the limit holds.
    #[test]
    fn the_indexes_follow_the_sessions() {
        let mut sessions = Sessions {
            max_sessions: Some(50),
            ..Sessions::default()
        };
        let now = unix_now_ms();
        for n in 0..2_000u64 {
            let id = format!("id-{}", n % 80);
            let expires = match n % 3 {
                0 => None,
                1 => Some(now - 1),
                _ => Some(now + 60_000),
            };
            match n % 7 {
                0 => assert!(sessions.delete(&id, Expected::Any)),
                1 | 2 => {
                    let _ = sessions.load(&id);
                }
                _ => assert!(sessions.store(&id, record(expires), Expected::Any).unwrap()),
            }
            assert!(sessions.len() <= 50);
            assert_consistent(&sessions);
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
        let stored = backend.store("id", &record, None, Expected::Absent);
        assert!(stored.await.unwrap());
        assert!(backend.load("id").await.unwrap().is_some());
        assert!(backend.delete("id", Expected::Any).await.unwrap());
    }
}
