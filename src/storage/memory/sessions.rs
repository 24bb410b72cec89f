//! [`Sessions`]: the sessions a [`MemoryBackend`](super::MemoryBackend) holds, indexed by
//! id, by expiry and by order of use, so that a lookup, an eviction of the least recently
//! used and the removal of what expired each cost in proportion to what they touch.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::Error;
use crate::storage::{Expected, Record, Versioned, unix_now_ms};

/// The sessions, in order of use and of expiry.
#[derive(Default)]
pub(super) struct Sessions {
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
    /// Soonest expiry first, so that removing what expired never scans what is alive.
    by_expiry: BTreeMap<ExpiryKey, usize>,
    /// The last version given to a write: versions are never reused, even across a delete.
    last_version: u64,
    /// `None`: no limit.
    pub(super) max_sessions: Option<usize>,
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

/// A session's place in `by_expiry`: its expiry, then its version, which is unique and so
/// tells apart records that expire in the same millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ExpiryKey {
    at_ms: u64,
    version: u64,
}

/// Its key in `by_expiry`, if the record expires.
fn expiry_key(stored: &Versioned) -> Option<ExpiryKey> {
    let at_ms = stored.record.expires_at_ms?;
    Some(ExpiryKey {
        at_ms,
        version: stored.version,
    })
}

impl Sessions {
    pub(super) fn len(&self) -> usize {
        self.slot_of.len()
    }

    fn slot(&mut self, at: usize) -> &mut Slot {
        self.slots[at]
            .as_mut()
            .expect("every place that is linked or indexed holds a session")
    }

    pub(super) fn load(&mut self, id: &str) -> Option<Versioned> {
        let at = *self.slot_of.get(id)?;
        self.mark_used(at);
        Some(self.slot(at).stored.clone())
    }

    pub(super) fn store(
        &mut self,
        id: &str,
        record: Record,
        expected: Expected,
    ) -> Result<bool, Error> {
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

    pub(super) fn delete(&mut self, id: &str, expected: Expected) -> bool {
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
    pub(super) fn remove_expired(&mut self, now_ms: u64) -> usize {
        let mut removed = 0;
        while let Some(first) = self.by_expiry.first_entry() {
            if first.key().at_ms > now_ms {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_at_ms: Option<u64>) -> Record {
        Record {
            data: Default::default(),
            created_at: 0,
            expires_at_ms,
            ..Record::default()
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
}
