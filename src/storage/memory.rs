//! Sessions in process memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockWriteGuard};
use std::time::Duration;

use super::{Error, Expected, Record, ServerStorage, SessionBackend, Versioned, unix_now_ms};

/// Sessions in process memory: for tests, development and single-process apps.
///
/// Everything is lost when the process exits. Clones share the same sessions.
///
/// ```
/// use std::time::Duration;
/// use session_layer::MemoryStorage;
///
/// let storage = MemoryStorage::new().ttl(Duration::from_secs(3600));
/// # let _ = storage;
/// ```
pub type MemoryStorage = ServerStorage<MemoryBackend>;

impl MemoryStorage {
    /// An empty in-memory storage.
    #[allow(clippy::new_without_default)] // mirrors the other storages' constructors
    pub fn new() -> Self {
        ServerStorage::with_backend(MemoryBackend::default())
    }

    /// Removes every expired session now and returns how many went. Writes already sweep
    /// a little at a time, so calling this is never required.
    pub fn remove_expired(&self) -> usize {
        let now = unix_now_ms();
        let backend = self.backend();
        (0..backend.inner.shards.len())
            .map(|i| backend.sweep_shard(i, now))
            .sum()
    }

    /// How many sessions are held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        let backend = self.backend();
        backend
            .inner
            .shards
            .iter()
            .map(|shard| read_lock(shard).len())
            .sum()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Enough shards that two cores (or many more) rarely wait on the same lock.
const SHARDS: usize = 16;

/// After this many writes, one shard is swept of expired records, so memory stays bounded
/// by the sessions alive within a TTL without a background task.
const WRITES_PER_SWEEP: usize = 64;

type Shard = RwLock<HashMap<String, Versioned>>;

/// The [`SessionBackend`] behind [`MemoryStorage`]: a sharded hash map.
#[derive(Clone, Default)]
pub struct MemoryBackend {
    inner: Arc<Shards>,
}

#[derive(Default)]
struct Shards {
    shards: [Shard; SHARDS],
    writes: AtomicUsize,
    /// The last version given to a write: versions are never reused.
    version: AtomicU64,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend").finish_non_exhaustive()
    }
}

// A panic while a lock is held cannot leave a map half-updated (every change is a single
// insert or remove), so a poisoned lock is still safe to use.
fn read_lock(shard: &Shard) -> std::sync::RwLockReadGuard<'_, HashMap<String, Versioned>> {
    shard
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_lock(shard: &Shard) -> RwLockWriteGuard<'_, HashMap<String, Versioned>> {
    shard
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The shard of `id`, picked by a multiply-xorshift over 8-byte words rather than the maps'
/// keyed SipHash, which then hashes the id once more inside the shard: a chosen id
/// (`use_unknown_ids`) can at worst crowd one shard's lock, while each map stays keyed
/// against collisions.
fn shard_index(id: &str) -> usize {
    let hash = id.as_bytes().chunks(8).fold(0_u64, |hash, chunk| {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        let mixed = (hash ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        mixed ^ (mixed >> 29)
    });
    // The high bits: they depend on every bit of every word.
    (hash >> 60) as usize % SHARDS
}

impl MemoryBackend {
    fn shard(&self, id: &str) -> &Shard {
        &self.inner.shards[shard_index(id)]
    }

    fn sweep_shard(&self, index: usize, now_ms: u64) -> usize {
        let mut map = write_lock(&self.inner.shards[index]);
        let before = map.len();
        map.retain(|_, stored| stored.record.expires_at_ms.is_none_or(|at| at > now_ms));
        before - map.len()
    }

    fn count_write(&self) {
        let writes = self.inner.writes.fetch_add(1, Ordering::Relaxed);
        if writes.is_multiple_of(WRITES_PER_SWEEP) {
            let index = (writes / WRITES_PER_SWEEP) % SHARDS;
            self.sweep_shard(index, unix_now_ms());
        }
    }
}

/// The version stored under `id`, if any.
fn version_in(map: &HashMap<String, Versioned>, id: &str) -> Option<u64> {
    map.get(id).map(|stored| stored.version)
}

impl SessionBackend for MemoryBackend {
    async fn load(&self, id: &str) -> Result<Option<Versioned>, Error> {
        Ok(read_lock(self.shard(id)).get(id).cloned())
    }

    async fn store(
        &self,
        id: &str,
        record: &Record,
        _ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        {
            let mut map = write_lock(self.shard(id));
            if !expected.is_met_by(version_in(&map, id)) {
                return Ok(false);
            }
            let stored = Versioned {
                record: record.clone(),
                version: self.inner.version.fetch_add(1, Ordering::Relaxed) + 1,
            };
            match map.get_mut(id) {
                Some(existing) => *existing = stored,
                None => {
                    map.insert(id.to_owned(), stored);
                }
            }
        }
        self.count_write();
        Ok(true)
    }

    async fn delete(&self, id: &str, expected: Expected) -> Result<bool, Error> {
        let mut map = write_lock(self.shard(id));
        if !expected.is_met_by(version_in(&map, id)) {
            return Ok(false);
        }
        map.remove(id);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random ids, and ids that differ only in their last character, spread over every
    /// shard: the cheap shard hash must not leave shards idle (or one lock hot).
    #[test]
    fn ids_spread_over_every_shard() {
        let random: Vec<String> = (0..16_000).map(|_| crate::session::generate_id()).collect();
        let sequential: Vec<String> = (0..16_000).map(|n| format!("user-{n:08}")).collect();
        for ids in [random, sequential] {
            let mut counts = [0usize; SHARDS];
            for id in &ids {
                counts[shard_index(id)] += 1;
            }
            // 1,000 expected per shard.
            assert!(
                counts.iter().all(|&n| (800..1200).contains(&n)),
                "{counts:?}"
            );
        }
    }
}
