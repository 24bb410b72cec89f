//! [`Sessions`]: the sessions a [`MemoryBackend`](super::MemoryBackend) holds, indexed by
//! id, by expiry and in two queues, so that a lookup, an eviction and the removal of what
//! expired each cost in proportion to what they touch.
//!
//! Eviction keeps sessions that were used again over sessions seen once (after S3-FIFO):
//! a new session enters `Queue::Probation`; when room is needed, the oldest there goes,
//! unless it was used since it entered, in which case it moves to `Queue::Main`. Sessions
//! in `Main` are evicted only while `Probation` holds at most a tenth of the limit, oldest
//! first, each use buying one more pass. A use only counts (an atomic add), so a read
//! needs no exclusive lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use super::owners::Owners;
use crate::storage::{Expected, Record, Versioned, unix_now_ms};
use crate::{Error, SessionHandle};

/// Uses counted beyond this one buy nothing more: a session evicted from `Main` is passed
/// over at most this many times, so an eviction never walks far.
const MAX_USES: u8 = 3;

/// The sessions, in their queues and by expiry.
#[derive(Default)]
pub(super) struct Sessions {
    /// Where each held session is in `slots`.
    slot_of: HashMap<Arc<str>, usize>,
    /// The held sessions, each linked into its queue: a doubly linked list, so that a
    /// session leaves its queue in a few writes. `None` where a session was removed, until
    /// a new one takes the place.
    slots: Vec<Option<Slot>>,
    /// The `None` places in `slots`.
    free: Vec<usize>,
    /// The ends of `Queue::Probation` and `Queue::Main`, in that order.
    queues: [Ends; 2],
    /// Soonest expiry first, so that removing what expired never scans what is alive.
    by_expiry: BTreeMap<ExpiryKey, usize>,
    /// The last version given to a write: versions are never reused, even across a delete.
    last_version: u64,
    /// The owned sessions by owner; kept in step by `insert`, `remove` and `store`.
    owners: Owners,
    /// `None`: no limit.
    pub(super) max_sessions: Option<usize>,
}

/// Which queue a session is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Queue {
    /// Saved once and not used since it entered: the first to go.
    Probation = 0,
    /// Used again after it was first saved.
    Main = 1,
}

/// The two ends of a queue and how many sessions it holds.
#[derive(Clone, Copy, Default)]
struct Ends {
    newest: Option<usize>,
    oldest: Option<usize>,
    len: usize,
}

struct Slot {
    /// Shared with `slot_of`, to remove the session from it when it is evicted or expires.
    id: Arc<str>,
    stored: Versioned,
    /// Reads and writes since it entered its queue or was last passed over, up to
    /// `MAX_USES`; atomic, so that a read under the shared lock can count itself.
    uses: AtomicU8,
    queue: Queue,
    /// The next newer session in its queue; `None` for the newest.
    newer: Option<usize>,
    /// The next older session in its queue; `None` for the oldest.
    older: Option<usize>,
}

impl Slot {
    /// Counts a use, up to `MAX_USES`. Two reads at once may count as one: a use is a hint.
    fn count_use(&self) {
        let uses = self.uses.load(Ordering::Relaxed);
        if uses < MAX_USES {
            self.uses.store(uses + 1, Ordering::Relaxed);
        }
    }
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

    /// The record under `id`, counted as a use: takes `&self`, so reads share the lock.
    pub(super) fn load(&self, id: &str) -> Option<Versioned> {
        let slot = self.slots[*self.slot_of.get(id)?].as_ref()?;
        slot.count_use();
        Some(slot.stored.clone())
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
                let slot = self.slot(at);
                let previous = std::mem::replace(&mut slot.stored, stored);
                slot.count_use();
                self.index_expiry(at);
                self.reindex_owner(at, previous.record.owner);
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

    /// Moves the expiry of the live record under `id` in place (see
    /// [`SessionBackend::renew`](crate::storage::SessionBackend::renew)), keeping its
    /// version; returns whether there was one.
    pub(super) fn renew(&mut self, id: &str, expires_at_ms: Option<u64>, now_ms: u64) -> bool {
        let Some(at) = self.slot_of.get(id).copied() else {
            return false;
        };
        let slot = self.slot(at);
        if !slot.stored.record.is_live(now_ms, None) {
            return false;
        }
        slot.count_use();
        self.unindex_expiry(at);
        self.slot(at).stored.record.renew(expires_at_ms, now_ms);
        self.index_expiry(at);
        true
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

    /// Evicts sessions until one more fits under the limit: from `Probation` while it holds
    /// more than a tenth of the limit (or `Main` is empty), else from `Main`. A used session
    /// at the old end of `Probation` moves to `Main`; one at the old end of `Main` goes to
    /// its new end, one use spent. Each step removes, moves or spends a use, so this ends.
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
            let probation = self.queues[Queue::Probation as usize];
            let main = self.queues[Queue::Main as usize];
            let (queue, oldest) = match (probation.oldest, main.oldest) {
                (Some(at), _) if probation.len > limit / 10 || main.len == 0 => {
                    (Queue::Probation, at)
                }
                (_, Some(at)) => (Queue::Main, at),
                (Some(at), None) => (Queue::Probation, at),
                (None, None) => break,
            };
            let uses = self.slot(oldest).uses.get_mut();
            if *uses == 0 {
                self.remove(oldest);
                crate::observe::memory_evicted();
                continue;
            }
            *uses = match queue {
                Queue::Probation => 0,
                Queue::Main => *uses - 1,
            };
            self.unlink(oldest);
            self.link_as_newest(oldest, Queue::Main);
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
            uses: AtomicU8::new(0),
            queue: Queue::Probation,
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
        self.reindex_owner(at, None);
        self.link_as_newest(at, Queue::Probation);
    }

    fn remove(&mut self, at: usize) {
        self.unlink(at);
        self.unindex_expiry(at);
        if let Some(slot) = self.slots[at].take() {
            self.slot_of.remove(&slot.id);
            if let Some(owner) = &slot.stored.record.owner {
                self.owners.remove(owner, &slot.id);
            }
        }
        self.free.push(at);
    }

    /// Moves the session at `at` from `previous`'s sessions to its owner's now; costs
    /// nothing while the owner stays the same.
    fn reindex_owner(&mut self, at: usize, previous: Option<String>) {
        let Some(slot) = self.slots[at].as_ref() else {
            return;
        };
        let owner = &slot.stored.record.owner;
        if *owner == previous {
            return;
        }
        if let Some(previous) = &previous {
            self.owners.remove(previous, &slot.id);
        }
        if let Some(owner) = owner {
            self.owners.add(owner, &slot.id, at);
        }
    }

    /// The records of `owner`'s sessions, each with its handle.
    pub(super) fn records_of(&self, owner: &str) -> Vec<(SessionHandle, Record)> {
        let held = self.owners.of(owner).filter_map(|(handle, at)| {
            let slot = self.slots[at].as_ref()?;
            Some((handle.clone(), slot.stored.record.clone()))
        });
        held.collect()
    }

    /// Deletes the session named by `handle` if it is `owner`'s and live.
    pub(super) fn delete_owned(&mut self, owner: &str, handle: &SessionHandle) -> bool {
        self.remove_expired(unix_now_ms());
        let Some(at) = self.owners.find(owner, handle) else {
            return false;
        };
        self.remove(at);
        true
    }

    /// Deletes every live session of `owner` not named in `except`; returns how many.
    pub(super) fn delete_all_owned(&mut self, owner: &str, except: &[SessionHandle]) -> u64 {
        self.remove_expired(unix_now_ms());
        let ending: Vec<usize> = self
            .owners
            .of(owner)
            .filter(|(handle, _)| !except.contains(handle))
            .map(|(_, at)| at)
            .collect();
        for &at in &ending {
            self.remove(at);
        }
        ending.len() as u64
    }

    /// How many owners have a session held: none once all their sessions are gone.
    #[cfg(test)]
    pub(super) fn owner_count(&self) -> usize {
        self.owners.len()
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

    /// Takes the session at `at` out of its queue, joining its neighbours.
    fn unlink(&mut self, at: usize) {
        let slot = self.slot(at);
        let (newer, older, queue) = (slot.newer.take(), slot.older.take(), slot.queue);
        let ends = &mut self.queues[queue as usize];
        ends.len -= 1;
        match newer {
            Some(newer) => self.slot(newer).older = older,
            None => self.queues[queue as usize].newest = older,
        }
        match older {
            Some(older) => self.slot(older).newer = newer,
            None => self.queues[queue as usize].oldest = newer,
        }
    }

    /// Puts the (unlinked) session at `at` at the new end of `queue`.
    fn link_as_newest(&mut self, at: usize, queue: Queue) {
        let ends = &mut self.queues[queue as usize];
        ends.len += 1;
        let previous = ends.newest.replace(at);
        if previous.is_none() {
            ends.oldest = Some(at);
        }
        let slot = self.slot(at);
        slot.older = previous;
        slot.queue = queue;
        if let Some(previous) = previous {
            self.slot(previous).newer = Some(at);
        }
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

    fn owned(owner: Option<&str>, expires_at_ms: Option<u64>) -> Record {
        Record {
            owner: owner.map(str::to_owned),
            ..record(expires_at_ms)
        }
    }

    /// Checks that the queues, the id index and the expiry index all describe the same
    /// sessions.
    fn assert_consistent(sessions: &Sessions) {
        let mut in_order = 0;
        for queue in [Queue::Probation, Queue::Main] {
            let ends = sessions.queues[queue as usize];
            let mut in_queue = 0;
            let mut newer = None;
            let mut at = ends.newest;
            while let Some(here) = at {
                let slot = sessions.slots[here]
                    .as_ref()
                    .expect("a linked place is held");
                assert_eq!(slot.newer, newer);
                assert_eq!(slot.queue, queue);
                assert_eq!(sessions.slot_of.get(&slot.id), Some(&here));
                if let Some(key) = expiry_key(&slot.stored) {
                    assert_eq!(sessions.by_expiry.get(&key), Some(&here));
                }
                in_queue += 1;
                newer = at;
                at = slot.older;
            }
            assert_eq!(ends.oldest, newer);
            assert_eq!(ends.len, in_queue);
            in_order += in_queue;
        }
        assert_eq!(in_order, sessions.len());
        let held = sessions.slots.iter().filter(|slot| slot.is_some()).count();
        assert_eq!(held, sessions.len());
        assert_eq!(sessions.free.len(), sessions.slots.len() - held);
        let expiring = sessions.slots.iter().flatten();
        let expiring = expiring.filter(|slot| slot.stored.record.expires_at_ms.is_some());
        assert_eq!(sessions.by_expiry.len(), expiring.count());
        assert_owners_consistent(sessions);
    }

    /// Checks that the owner index names exactly the held owned sessions, and no owner
    /// without one.
    fn assert_owners_consistent(sessions: &Sessions) {
        let mut owners = std::collections::HashSet::new();
        for (at, slot) in sessions.slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            if let Some(owner) = &slot.stored.record.owner {
                let handle = SessionHandle::of_id(&slot.id);
                assert_eq!(sessions.owners.find(owner, &handle), Some(at));
                owners.insert(owner.clone());
            }
        }
        assert_eq!(sessions.owners.len(), owners.len());
        let owned = sessions.slots.iter().flatten();
        let owned = owned.filter(|slot| slot.stored.record.owner.is_some());
        assert_eq!(sessions.owners.sessions(), owned.count());
    }

    /// After any mix of stores, loads, deletes, evictions and expiries, the indexes and the
    /// queues describe the same sessions, and the limit holds.
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
            let owner = [None, Some("ann"), Some("bob")][(n % 11 % 3) as usize];
            match n % 13 {
                0 => assert!(sessions.delete(&id, Expected::Any)),
                1 | 2 => {
                    let _ = sessions.load(&id);
                }
                5 => {
                    let _ = sessions.renew(&id, Some(now + 90_000), now);
                }
                3 => {
                    let handle = SessionHandle::of_id(&id);
                    let _ = sessions.delete_owned("ann", &handle);
                }
                4 if n % 4 == 0 => {
                    let _ = sessions.delete_all_owned("bob", &[SessionHandle::of_id(&id)]);
                }
                _ => {
                    let stored = sessions.store(&id, owned(owner, expires), Expected::Any);
                    assert!(stored.unwrap());
                }
            }
            assert!(sessions.len() <= 50);
            assert_consistent(&sessions);
        }
    }

    /// Once every session of an owner is gone, however it went, nothing of the owner is
    /// left; an unowned session never enters the index.
    #[test]
    fn no_owner_outlives_its_sessions() {
        let mut sessions = Sessions {
            max_sessions: Some(2),
            ..Sessions::default()
        };
        let now = unix_now_ms();
        let store = |sessions: &mut Sessions, id: &str, record: Record| {
            assert!(sessions.store(id, record, Expected::Any).unwrap());
            assert_consistent(sessions);
        };
        store(&mut sessions, "unowned", record(None));
        assert_eq!(sessions.owner_count(), 0);
        // Owner changed, then cleared.
        store(&mut sessions, "a", owned(Some("ann"), None));
        store(&mut sessions, "a", owned(Some("bob"), None));
        assert_eq!(sessions.records_of("ann"), []);
        store(&mut sessions, "a", owned(None, None));
        assert_eq!(sessions.owner_count(), 0);
        // Evicted by the limit: seen once, so the first to go.
        store(&mut sessions, "d", owned(Some("ann"), None));
        store(&mut sessions, "b", record(None));
        assert!(sessions.load("d").is_none());
        assert_eq!(sessions.owner_count(), 0, "evicted");
        // Expired, then removed.
        store(&mut sessions, "a", owned(Some("ann"), Some(now + 50)));
        assert_eq!(sessions.owner_count(), 1);
        assert_eq!(sessions.remove_expired(now + 100), 1);
        assert_eq!(sessions.owner_count(), 0, "expired");
        // Deleted (destroyed, or moved away by a login).
        store(&mut sessions, "a", owned(Some("ann"), None));
        assert!(sessions.delete("a", Expected::Any));
        assert_eq!(sessions.owner_count(), 0, "deleted");
        // Ended.
        store(&mut sessions, "a", owned(Some("ann"), None));
        assert!(!sessions.delete_owned("bob", &SessionHandle::of_id("a")));
        assert!(sessions.delete_owned("ann", &SessionHandle::of_id("a")));
        store(&mut sessions, "a", owned(Some("ann"), None));
        assert_eq!(sessions.delete_all_owned("ann", &[]), 1);
        assert_eq!(sessions.owner_count(), 0, "ended");
        assert_consistent(&sessions);
    }
}
