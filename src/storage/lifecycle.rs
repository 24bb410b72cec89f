//! The session lifecycle every server-side storage shares: fresh and unknown ids, expiry,
//! regenerate, destroy, and saves that merge with what concurrent requests saved.

use std::time::Duration;

use super::{
    ChangeSet, DEFAULT_MAX_RECORD_SIZE, Error, Expected, Moved, Record, SessionBackend,
    SessionStorage, Versioned, saturating_millis, unix_now_ms,
};
use crate::storage::changes::Merged;
use crate::{Session, SessionData};

/// Expiry settings shared by every storage: an idle TTL refreshed on each write and an
/// absolute lifetime counted from the session's creation.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Expiry {
    pub ttl: Option<Duration>,
    pub max_lifetime: Option<Duration>,
}

impl Expiry {
    /// The record a save writes, and how long it should live.
    pub fn record(&self, data: SessionData, created_at: u64) -> (Record, Option<Duration>) {
        let now_ms = unix_now_ms();
        // A creation time in the future (see `live_since`) is written back as now.
        let created_at = created_at.min(now_ms / 1000);
        let remaining_lifetime = self.max_lifetime.map(|limit| {
            let ends_ms = created_at
                .saturating_add(limit.as_secs())
                .saturating_mul(1000);
            Duration::from_millis(ends_ms.saturating_sub(now_ms))
        });
        let ttl = match (self.ttl, remaining_lifetime) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let record = Record {
            data,
            created_at,
            expires_at_ms: ttl.map(|ttl| now_ms.saturating_add(saturating_millis(ttl))),
        };
        (record, ttl)
    }

    /// The creation time of a record that is still live, or `None` once it has expired.
    /// One clock read serves both checks, and none is made when neither applies. A creation
    /// time in the future (only a corrupt or tampered record has one: past `SystemTime`'s
    /// range it made `Session::created_at` panic, and the absolute lifetime would never
    /// end) counts as now: here when the lifetime is checked, else in `Session::created_at`
    /// and `record`.
    fn live_since(&self, record: &Record) -> Option<u64> {
        let mut created_at = record.created_at;
        if record.expires_at_ms.is_some() || self.max_lifetime.is_some() {
            let now_ms = unix_now_ms();
            if !record.is_live(now_ms, self.max_lifetime) {
                return None;
            }
            created_at = created_at.min(now_ms / 1000);
        }
        Some(created_at)
    }

    /// The session a loaded record holds, or `None` once it has expired.
    pub fn load(&self, id: &str, record: Record, version: Option<u64>) -> Option<Session> {
        let created_at = self.live_since(&record)?;
        Some(Session::loaded(id, record.data, created_at, version))
    }
}

/// Everything a save needs from a session, taken under one lock.
pub(crate) struct Snapshot {
    /// The current id: where the session is written.
    pub id: String,
    /// The id it was loaded or created with (where its stored record is), once `id` differs.
    pub original_id: Option<String>,
    /// `regenerate_id(true)` was called: the original id goes on save.
    pub delete_original: bool,
    pub regenerated: bool,
    /// Loaded from storage (rather than new).
    pub loaded: bool,
    /// New, with an id drawn here: nobody else can hold it.
    pub fresh: bool,
    /// The stored version it was loaded at.
    pub version: Option<u64>,
    pub destroyed: bool,
    pub dirty: bool,
    /// What the session holds now: what a save writes if nothing changed meanwhile.
    pub data: SessionData,
    pub created_at: u64,
}

/// How many fresh ids a save draws before it gives up on collisions. With 144 random bits
/// a second draw never happens in practice; the bound keeps a broken backend (one that
/// always answers "exists") from looping forever.
const MAX_ID_DRAWS: usize = 4;

/// How many conditional writes a save tries before it gives up on a session that other
/// requests keep changing: enough for hundreds of requests saving one session at once.
const MAX_SAVE_ATTEMPTS: u32 = 128;

/// The shortest unit of back-off, for stores that answer faster than a timer can wait.
const MIN_BACKOFF_UNIT: Duration = Duration::from_micros(100);

/// The back-off doubles at most this many times: its window then holds about 1,000
/// attempts, room for that many requests saving one session at once.
const MAX_BACKOFF_DOUBLINGS: u32 = 10;

/// The longest pause between two attempts, however slow the store.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Pauses between the attempts of one save: exponential back-off with full jitter, in units
/// of how long the last attempt took.
///
/// An attempt succeeds only if no other request writes the session between its load and its
/// write, so the requests saving one session get through one attempt-time apart: N of them
/// need their retries spread over N attempt-times. A fixed window cannot fit every store: an
/// attempt takes microseconds in memory but milliseconds over a SQL pool, where waiting for a
/// connection is part of it. Measuring the attempt scales the window to the store, and to
/// the queueing that contention itself causes.
struct Backoff {
    attempt: u32,
    started: std::time::Instant,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            attempt: 0,
            started: std::time::Instant::now(),
        }
    }

    /// Starts timing the next attempt.
    fn start(&mut self) {
        self.started = std::time::Instant::now();
    }

    /// The attempt just timed failed: waits a random time up to its duration times
    /// 2^(attempts so far), within the bounds above.
    async fn wait(&mut self) {
        self.attempt += 1;
        let unit = self.started.elapsed().max(MIN_BACKOFF_UNIT);
        let ceiling = unit
            .saturating_mul(1 << self.attempt.min(MAX_BACKOFF_DOUBLINGS))
            .min(MAX_BACKOFF);
        tokio::time::sleep(ceiling.mul_f64(rand::random::<f64>())).await;
    }
}

/// The session lifecycle over a [`SessionBackend`]: every server-side storage of this crate
/// is one of these.
///
/// Options are consuming builder methods:
///
/// ```
/// use std::time::Duration;
/// use session_layer::MemoryStorage;
///
/// let storage = MemoryStorage::new()
///     .ttl(Duration::from_secs(30 * 60))              // idle timeout
///     .max_lifetime(Duration::from_secs(12 * 3600))   // absolute limit
///     .use_unknown_ids(false);
/// # let _ = storage;
/// ```
///
/// # Concurrent requests
///
/// A save applies only what its request changed to the record as stored at save time: it
/// writes conditionally on the version it loaded, and when another request saved first it
/// loads the record again, replays its changes on it (re-running
/// [`Session::update`] closures) and tries again, backing off. So the stored session is
/// always what running the requests one after another, in the order of their saves, would
/// give; a session that another request destroyed or moved (`regenerate_id(true)`) is never
/// written back, and the late request's response clears its cookie.
#[derive(Clone, Debug)]
pub struct ServerStorage<B> {
    backend: B,
    use_unknown_ids: bool,
    expiry: Expiry,
    max_record_size: usize,
}

/// How a save ended.
enum Saved {
    /// Written under this id.
    Written(String),
    /// The session is gone (destroyed, moved, expired): nothing written.
    Gone,
}

impl<B: SessionBackend> ServerStorage<B> {
    /// A storage over your own backend.
    pub fn with_backend(mut backend: B) -> Self {
        backend.limit_record_size(DEFAULT_MAX_RECORD_SIZE);
        ServerStorage {
            backend,
            use_unknown_ids: false,
            expiry: Expiry::default(),
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
        }
    }

    /// Keep a non-empty id that names no stored session instead of drawing a new one
    /// (off by default: a client could otherwise choose its own session id).
    pub fn use_unknown_ids(mut self, enabled: bool) -> Self {
        self.use_unknown_ids = enabled;
        self
    }

    /// Idle timeout: a session not written for this long is gone. Every save writes a new
    /// expiry; with the layer's `rolling(true)`, every request does.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.expiry.ttl = Some(ttl);
        self
    }

    /// Absolute limit: a session older than this (since it was first created) is gone,
    /// however active it is.
    pub fn max_lifetime(mut self, limit: Duration) -> Self {
        self.expiry.max_lifetime = Some(limit);
        self
    }

    /// The largest session record, in bytes of its JSON encoding, kept either way (1 MiB
    /// unless set): a save of a bigger one fails with [`Error::RecordTooLarge`] (the layer
    /// answers a bare 500), and a stored one over the limit is not loaded but handled like
    /// a corrupt record (a fresh session).
    pub fn max_record_size(mut self, bytes: usize) -> Self {
        self.max_record_size = bytes;
        self.backend.limit_record_size(bytes);
        self
    }

    /// The record a save writes and its TTL, once it is known to fit the size limit.
    fn record(
        &self,
        data: SessionData,
        created_at: u64,
    ) -> Result<(Record, Option<Duration>), Error> {
        let (record, ttl) = self.expiry.record(data, created_at);
        let size = record.encoded_len();
        if size > self.max_record_size {
            return Err(Error::RecordTooLarge {
                size,
                limit: self.max_record_size,
            });
        }
        Ok((record, ttl))
    }

    /// The backend, for backend-specific operations.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub(crate) fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    fn unknown(&self, id: &str) -> Session {
        if self.use_unknown_ids {
            Session::with_id(id)
        } else {
            Session::new()
        }
    }

    /// Writes `data` under `id` if what is stored is `expected`.
    async fn store(
        &self,
        id: &str,
        data: SessionData,
        created_at: u64,
        expected: Expected,
    ) -> Result<bool, Error> {
        let (record, ttl) = self.record(data, created_at)?;
        self.backend.store(id, &record, ttl, expected).await
    }

    /// Writes a new session under a fresh id, drawing another on a collision. Returns the
    /// id it was written under.
    async fn create(
        &self,
        session: &Session,
        data: SessionData,
        created_at: u64,
    ) -> Result<String, Error> {
        let (record, ttl) = self.record(data, created_at)?;
        for _ in 0..MAX_ID_DRAWS {
            let id = session.id();
            if self
                .backend
                .store(&id, &record, ttl, Expected::Absent)
                .await?
            {
                return Ok(id);
            }
            // Another session holds this id: ours is new, so take another.
            session.redraw_id();
        }
        Err(ids_taken())
    }

    /// Replays `changes` on what is stored under `id` now: the data to write and the
    /// version to expect, or `None` when the session is gone.
    async fn merge(
        &self,
        id: &str,
        changes: &ChangeSet,
    ) -> Result<Option<(SessionData, u64, Expected)>, Error> {
        let now = crate::session::unix_now();
        let (data, created_at, expected) = match self.backend.load(id).await? {
            // An expired record is overwritten as if nothing were stored.
            Some(Versioned { record, version }) => match self.expiry.live_since(&record) {
                Some(created_at) => (Some(record.data), created_at, Expected::Version(version)),
                None => (None, now, Expected::Version(version)),
            },
            None => (None, now, Expected::Absent),
        };
        match changes.apply(data)? {
            Merged::Write(data) => Ok(Some((data, created_at, expected))),
            Merged::Gone | Merged::Delete => Ok(None),
        }
    }

    /// Saves the changes of a session that keeps its id: the data the session holds, at
    /// the version it loaded.
    async fn save_in_place(&self, session: &Session, snapshot: Snapshot) -> Result<Saved, Error> {
        let id = snapshot.id;
        let expected = match snapshot.version {
            Some(version) => Some(Expected::Version(version)),
            // A session that was never stored.
            None if !snapshot.loaded => Some(Expected::Absent),
            // Loaded, but with no version (`Session::from_data`): merge.
            None => None,
        };
        if let Some(expected) = expected
            && self
                .store(&id, snapshot.data, snapshot.created_at, expected)
                .await?
        {
            return Ok(Saved::Written(id));
        }
        // Boxed: the rare path would otherwise more than double every save's future.
        Box::pin(self.merge_until_stored(session, id)).await
    }

    /// Another request saved first: replays this request's changes on what is stored now
    /// and writes at that version, backing off between attempts.
    async fn merge_until_stored(&self, session: &Session, id: String) -> Result<Saved, Error> {
        let changes = session.change_set();
        let mut backoff = Backoff::new();
        for _ in 0..MAX_SAVE_ATTEMPTS {
            backoff.start();
            let Some((data, created_at, expected)) = self.merge(&id, &changes).await? else {
                return Ok(Saved::Gone);
            };
            if self.store(&id, data, created_at, expected).await? {
                return Ok(Saved::Written(id));
            }
            backoff.wait().await;
        }
        Err(conflict())
    }

    /// Saves a session whose id changed: moves it to the new id if the old record is still
    /// the one it merged, else merges its changes into the old record as stored now and
    /// tries again.
    async fn save_moved(&self, session: &Session, snapshot: Snapshot) -> Result<Saved, Error> {
        let old = snapshot.original_id.unwrap_or(snapshot.id);
        let created_at = snapshot.created_at;
        let mut base = match snapshot.version {
            Some(version) => {
                let (record, ttl) = self.record(snapshot.data, created_at)?;
                Some((record, ttl, version))
            }
            None => None,
        };
        let mut changes = None;
        let mut draws = 1;
        let mut backoff = Backoff::new();
        for _ in 0..MAX_SAVE_ATTEMPTS {
            backoff.start();
            let (record, ttl, version) = match base.take() {
                Some(base) => base,
                // Nothing known about the old record, or it changed: merge into it as it is.
                None => {
                    let changes = changes.get_or_insert_with(|| session.change_set());
                    match self.merge(&old, changes).await? {
                        Some((merged, _, Expected::Version(version))) => {
                            let (record, ttl) = self.record(merged, created_at)?;
                            (record, ttl, version)
                        }
                        _ => return Ok(Saved::Gone),
                    }
                }
            };
            let id = session.id();
            let moved = self.backend.store_moved(
                &old,
                version,
                snapshot.delete_original,
                &id,
                &record,
                ttl,
            );
            match moved.await? {
                Moved::Stored => return Ok(Saved::Written(id)),
                Moved::IdTaken if draws < MAX_ID_DRAWS => {
                    // Another session holds the fresh id: draw another.
                    session.redraw_id();
                    draws += 1;
                    base = Some((record, ttl, version));
                }
                Moved::IdTaken => return Err(ids_taken()),
                Moved::SourceChanged => backoff.wait().await,
            }
        }
        Err(conflict())
    }
}

fn ids_taken() -> Error {
    Error::backend("the backend reported every freshly drawn session id as taken")
}

fn conflict() -> Error {
    Error::backend("the session kept changing under every save attempt")
}

impl<B: SessionBackend> SessionStorage for ServerStorage<B> {
    async fn read(&self, value: Option<&str>) -> Result<Session, Error> {
        let Some(id) = value.filter(|v| !v.is_empty()) else {
            return Ok(Session::new());
        };
        let loaded = self.backend.load(id).await?;
        let session = loaded
            .and_then(|Versioned { record, version }| self.expiry.load(id, record, Some(version)));
        // An expired record is left to the store's own expiry or a sweep: deleting it here
        // could delete a save that a request which loaded it just before it expired makes
        // meanwhile.
        Ok(session.unwrap_or_else(|| self.unknown(id)))
    }

    async fn save(&self, session: &Session) -> Result<Option<String>, Error> {
        let snapshot = session.snapshot();
        if snapshot.destroyed {
            // A loaded session's record is still under its original id after a
            // `regenerate_id(false)`: a destroy deletes it too.
            let delete_original = snapshot.delete_original || snapshot.loaded;
            if let Some(original) = snapshot.original_id.filter(|_| delete_original) {
                self.backend.delete(&original, Expected::Any).await?;
            }
            self.backend.delete(&snapshot.id, Expected::Any).await?;
            return Ok(Some(String::new()));
        }
        if !snapshot.dirty {
            return Ok(None);
        }
        let saved = if snapshot.fresh && !snapshot.regenerated {
            Saved::Written(
                self.create(session, snapshot.data, snapshot.created_at)
                    .await?,
            )
        } else if !snapshot.regenerated {
            self.save_in_place(session, snapshot).await?
        } else if snapshot.loaded {
            // Boxed, as logins are rare: see `save_in_place`.
            Box::pin(self.save_moved(session, snapshot)).await?
        } else {
            // A new session given a new id: nothing stored to move.
            let old = snapshot.original_id.filter(|_| snapshot.delete_original);
            let id = self
                .create(session, snapshot.data, snapshot.created_at)
                .await?;
            if let Some(old) = old {
                self.backend.delete(&old, Expected::Any).await?;
            }
            Saved::Written(id)
        };
        Ok(Some(match saved {
            Saved::Written(id) => id,
            Saved::Gone => String::new(),
        }))
    }
}
