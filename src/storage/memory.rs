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
        self.backend().sessions().map.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The [`SessionBackend`] behind [`MemoryStorage`]: one map of sessions, with their order
/// of use and of expiry, behind one lock.
#[derive(Clone, Default)]
pub struct MemoryBackend {
    inner: Arc<Mutex<Sessions>>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend").finish_non_exhaustive()
    }
}

/// The sessions and two indexes over them, so that eviction and expiry each take the first
/// entry of an ordered map instead of a scan. Every session in `map` has exactly one entry
/// in `by_use`, and one in `by_expiry` if its record expires.
#[derive(Default)]
struct Sessions {
    /// Each id is allocated once and shared by the three maps.
    map: HashMap<Arc<str>, Entry>,
    /// Least recently used first, by the tick of the last load or store.
    by_use: BTreeMap<u64, Arc<str>>,
    /// Soonest expiry first; the version (unique) tells apart records that expire in the
    /// same millisecond.
    by_expiry: BTreeMap<(u64, u64), Arc<str>>,
    /// The last tick given to a load or store.
    last_use: u64,
    /// The last version given to a write: versions are never reused, even across a delete.
    last_version: u64,
    /// `None`: no limit.
    max_sessions: Option<usize>,
}

struct Entry {
    stored: Versioned,
    /// Its key in `by_use`.
    last_use: u64,
}

/// Its key in `by_expiry`, if the record expires.
fn expiry_key(stored: &Versioned) -> Option<(u64, u64)> {
    stored.record.expires_at_ms.map(|at| (at, stored.version))
}

impl Sessions {
    fn next_use(&mut self) -> u64 {
        self.last_use += 1;
        self.last_use
    }

    fn load(&mut self, id: &str) -> Option<Versioned> {
        let tick = self.next_use();
        let entry = self.map.get_mut(id)?;
        if let Some(key) = self.by_use.remove(&entry.last_use) {
            self.by_use.insert(tick, key);
        }
        entry.last_use = tick;
        Some(entry.stored.clone())
    }

    fn store(&mut self, id: &str, record: Record, expected: Expected) -> Result<bool, Error> {
        if !expected.is_met_by(self.map.get(id).map(|entry| entry.stored.version)) {
            return Ok(false);
        }
        // Only after the check: a request that loaded a record just before it expired
        // still saves over it, as the lifecycle promises.
        self.remove_expired(unix_now_ms());
        self.last_version += 1;
        let stored = Versioned {
            record,
            version: self.last_version,
        };
        let tick = self.next_use();
        let key = match self.map.remove_entry(id) {
            Some((key, old)) => {
                self.unindex(&old);
                key
            }
            None => {
                self.make_room()?;
                Arc::from(id)
            }
        };
        self.by_use.insert(tick, Arc::clone(&key));
        if let Some(expiry) = expiry_key(&stored) {
            self.by_expiry.insert(expiry, Arc::clone(&key));
        }
        let entry = Entry {
            stored,
            last_use: tick,
        };
        self.map.insert(key, entry);
        Ok(true)
    }

    fn delete(&mut self, id: &str, expected: Expected) -> bool {
        if !expected.is_met_by(self.map.get(id).map(|entry| entry.stored.version)) {
            return false;
        }
        if let Some(old) = self.map.remove(id) {
            self.unindex(&old);
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
        while self.map.len() >= limit {
            let Some((_, id)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(old) = self.map.remove(&id) {
                self.unindex(&old);
            }
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
            let id = first.remove();
            if let Some(old) = self.map.remove(&id) {
                self.by_use.remove(&old.last_use);
                removed += 1;
            }
        }
        removed
    }

    /// Removes a session that has left `map` from both indexes.
    fn unindex(&mut self, old: &Entry) {
        self.by_use.remove(&old.last_use);
        if let Some(expiry) = expiry_key(&old.stored) {
            self.by_expiry.remove(&expiry);
        }
    }
}

impl MemoryBackend {
    /// The sessions, locked. Nothing under the lock panics except on a bug, and every
    /// removal above tolerates an index entry without a session, so a poisoned lock is
    /// still safe to use: at worst a stale index entry goes unused.
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

    /// After any mix of stores, loads, deletes, evictions and expiries, the three maps
    /// describe the same sessions: nothing is left behind in an index.
    #[test]
    fn the_indexes_follow_the_map() {
        let mut sessions = Sessions {
            max_sessions: Some(50),
            ..Sessions::default()
        };
        let now = unix_now_ms();
        for n in 0..1_000u64 {
            let id = format!("id-{}", n % 80);
            let expires = match n % 3 {
                0 => None,
                1 => Some(now - 1),
                _ => Some(now + 60_000),
            };
            match n % 7 {
                0 => assert!(sessions.delete(&id, Expected::Any)),
                1 => {
                    let _ = sessions.load(&id);
                }
                _ => assert!(sessions.store(&id, record(expires), Expected::Any).unwrap()),
            }
            assert!(sessions.map.len() <= 50);
            assert_eq!(sessions.by_use.len(), sessions.map.len());
            let expiring = sessions
                .map
                .values()
                .filter(|entry| entry.stored.record.expires_at_ms.is_some())
                .count();
            assert_eq!(sessions.by_expiry.len(), expiring);
            for (id, entry) in &sessions.map {
                assert_eq!(sessions.by_use.get(&entry.last_use), Some(id));
                if let Some(key) = expiry_key(&entry.stored) {
                    assert_eq!(sessions.by_expiry.get(&key), Some(id));
                }
            }
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
