//! Where session data lives, and the session lifecycle every storage shares.
//!
//! Two traits:
//!
//! * [`SessionStorage`] is what the [`SessionLayer`](crate::SessionLayer) talks to: turn a
//!   verified cookie value into a [`Session`], and a session back into a cookie value.
//!   [`CookieStorage`] implements it directly (the data travels in the cookie).
//! * [`SessionBackend`] is what a server-side store implements: load, store and delete one
//!   [`Record`] by session id. [`ServerStorage`] turns any backend into a `SessionStorage`,
//!   with the whole lifecycle (unknown ids, regenerate, destroy, flash, expiry, id
//!   collisions) written once. [`MemoryStorage`], [`FsStorage`], `RedisStorage` and
//!   `MemcacheStorage` are `ServerStorage`s over their backends.
//!
//! # Writing your own backend
//!
//! A database table with an id, a blob and an expiry is a complete backend:
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use std::time::Duration;
//! use session_layer::storage::{id_digest, Record, ServerStorage, SessionBackend, WriteMode};
//! use session_layer::Error;
//!
//! #[derive(Default)]
//! struct MyTable(Mutex<HashMap<String, Vec<u8>>>);
//!
//! impl SessionBackend for MyTable {
//!     async fn load(&self, id: &str) -> Result<Option<Record>, Error> {
//!         let table = self.0.lock().unwrap();
//!         // Errors name the table, never the id: ids are credentials, logs are not secret.
//!         let row = table.get(&id_digest(id));
//!         row.map(|bytes| Record::decode("a row of my_table", bytes)).transpose()
//!     }
//!
//!     async fn store(
//!         &self,
//!         id: &str,
//!         record: &Record,
//!         _ttl: Option<Duration>, // a store with native expiry would pass this on
//!         mode: WriteMode,
//!     ) -> Result<bool, Error> {
//!         let mut table = self.0.lock().unwrap();
//!         let key = id_digest(id); // a dump of the table holds no usable id
//!         if mode == WriteMode::Create && table.contains_key(&key) {
//!             return Ok(false); // never overwrite another session
//!         }
//!         table.insert(key, record.encode());
//!         Ok(true)
//!     }
//!
//!     async fn delete(&self, id: &str) -> Result<(), Error> {
//!         self.0.lock().unwrap().remove(&id_digest(id));
//!         Ok(())
//!     }
//! }
//!
//! let storage = ServerStorage::with_backend(MyTable::default()).ttl(Duration::from_secs(3600));
//! # let _ = storage;
//! ```

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::session::{Snapshot, WriteTarget};
use crate::{Error, Session, SessionData};

mod cookie;
mod fs;
#[cfg(feature = "memcache")]
mod memcache;
mod memory;
#[cfg(feature = "redis")]
mod redis;

pub use self::cookie::CookieStorage;
pub use self::fs::{FsBackend, FsStorage};
#[cfg(feature = "memcache")]
pub use self::memcache::{MemcacheBackend, MemcacheStorage};
pub use self::memory::{MemoryBackend, MemoryStorage};
#[cfg(feature = "redis")]
pub use self::redis::{RedisBackend, RedisOptions, RedisStorage};

/// Turns a verified cookie value into a [`Session`] and a session back into a cookie value.
///
/// Implementors write `async fn read` and `async fn save`. Every storage of this crate saves
/// in this order: delete [`Session::delete_id`] if any; if destroyed, delete the current id
/// and return `Some("")`; else if dirty, write [`Session::data`] and return the cookie value;
/// else `None`.
pub trait SessionStorage: Send + Sync + 'static {
    /// `value`: the verified cookie value (an id, or for [`CookieStorage`] the data itself).
    ///
    /// `None`, `Some("")` and a value naming no stored session give a fresh session.
    fn read(&self, value: Option<&str>) -> impl Future<Output = Result<Session, Error>> + Send;

    /// `Ok(None)`: set no cookie. `Ok(Some(String::new()))`: destroyed, clear the cookie.
    /// `Ok(Some(v))`: send `v` as the new cookie value.
    fn save(&self, session: &Session)
    -> impl Future<Output = Result<Option<String>, Error>> + Send;
}

/// How [`SessionBackend::store`] may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Write only if nothing is stored under the id (`SET NX`, `add`, an exclusive create);
    /// return `Ok(false)` otherwise. Used for new ids, so that a collision can never
    /// overwrite another user's session.
    Create,
    /// Write whether or not something is stored.
    Overwrite,
}

/// A server-side store of session records, keyed by session id.
///
/// Implement these three methods (as `async fn`) and wrap the backend in
/// [`ServerStorage::with_backend`]: the lifecycle is done for you. Expiry is enforced by the
/// lifecycle on read (from [`Record::expires_at_ms`]); a store with native expiry (Redis,
/// Memcached, a `DELETE ... WHERE expires < now()` job) should also use `ttl` so that
/// expired records do not pile up.
pub trait SessionBackend: Send + Sync + 'static {
    /// The record stored under `id`, if any.
    fn load(&self, id: &str) -> impl Future<Output = Result<Option<Record>, Error>> + Send;

    /// Stores `record` under `id` for `ttl` (`None`: no expiry). With [`WriteMode::Create`],
    /// returns `Ok(false)` and writes nothing when a record exists already.
    fn store(
        &self,
        id: &str,
        record: &Record,
        ttl: Option<Duration>,
        mode: WriteMode,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Deletes the record under `id`; deleting a missing record is not an error.
    fn delete(&self, id: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Deletes the records under every id in `ids` (a destroyed session that was also
    /// regenerated has two), as one round trip where the store allows. The default deletes
    /// them in turn.
    fn delete_many(&self, ids: &[&str]) -> impl Future<Output = Result<(), Error>> + Send {
        async move {
            for id in ids {
                self.delete(id).await?;
            }
            Ok(())
        }
    }

    /// Deletes `old_id` and stores under `id`, as one round trip where the store allows
    /// (`regenerate_id(true)`). The default does the two steps in turn.
    fn delete_and_store(
        &self,
        old_id: &str,
        id: &str,
        record: &Record,
        ttl: Option<Duration>,
        mode: WriteMode,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        async move {
            self.delete(old_id).await?;
            self.store(id, record, ttl, mode).await
        }
    }
}

/// One stored session: its data plus the times the lifecycle checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Values and the flash for the next request.
    #[serde(rename = "d")]
    pub data: SessionData,
    /// When the session was first created, in seconds since the Unix epoch.
    #[serde(rename = "c", default)]
    pub created_at: u64,
    /// When the record stops being valid, in milliseconds since the Unix epoch.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

impl Record {
    /// The record as compact JSON bytes, the format every built-in backend stores.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing maps of JSON values to a Vec cannot fail.
        serde_json::to_vec(self).expect("a session record always serializes")
    }

    /// Decodes bytes written by [`encode`](Record::encode). `name` says which record it is in
    /// the error (a key or a path), never its content.
    pub fn decode(name: &str, bytes: &[u8]) -> Result<Record, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::corrupt(name, json_error_summary(&e)))
    }

    /// Whether the record is still valid at `now_ms` given an absolute lifetime limit.
    pub fn is_live(&self, now_ms: u64, max_lifetime: Option<Duration>) -> bool {
        let unexpired = self.expires_at_ms.is_none_or(|at| at > now_ms);
        let young = max_lifetime
            .is_none_or(|limit| self.created_at.saturating_add(limit.as_secs()) > now_ms / 1000);
        unexpired && young
    }
}

/// Expiry settings shared by every storage: an idle TTL refreshed on each write and an
/// absolute lifetime counted from the session's creation.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Expiry {
    pub ttl: Option<Duration>,
    pub max_lifetime: Option<Duration>,
}

impl Expiry {
    /// The record a save writes, and how long it should live.
    pub fn record(&self, snapshot: Snapshot) -> (Record, Option<Duration>) {
        let now_ms = unix_now_ms();
        // A creation time in the future (see `load`) is written back as now.
        let created_at = snapshot.created_at.min(now_ms / 1000);
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
            data: snapshot.data,
            created_at,
            expires_at_ms: ttl.map(|ttl| now_ms.saturating_add(ttl.as_millis() as u64)),
        };
        (record, ttl)
    }

    /// The session a loaded record holds, or `None` once it has expired. One clock read
    /// serves both checks, and none is made when neither applies. A creation time in the
    /// future (only a corrupt or tampered record has one: past `SystemTime`'s range it made
    /// `Session::created_at` panic, and the absolute lifetime would never end) counts as
    /// now: here when the lifetime is checked, else in `Session::created_at` and `record`.
    pub fn load(&self, id: &str, record: Record) -> Option<Session> {
        let mut created_at = record.created_at;
        if record.expires_at_ms.is_some() || self.max_lifetime.is_some() {
            let now_ms = unix_now_ms();
            if !record.is_live(now_ms, self.max_lifetime) {
                return None;
            }
            created_at = created_at.min(now_ms / 1000);
        }
        Some(Session::loaded(id, record.data, created_at))
    }
}

/// What is wrong with undecodable JSON and where, without quoting any of it: serde_json's
/// own messages quote the offending string or number, which here is session data, and the
/// message goes to the log.
pub(crate) fn json_error_summary(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Io => "unreadable",
        Category::Syntax => "not valid JSON",
        Category::Data => "JSON that is not a session record",
        Category::Eof => "truncated JSON",
    };
    format!("{what} (line {}, column {})", error.line(), error.column())
}

/// The hex SHA-256 of a session id: 64 characters safe in any key, path or column, from
/// which the id cannot be recovered. Store records under it rather than under the id, so
/// that a dump of the store or a log line holds no usable session id.
///
/// ```
/// let key = session_layer::storage::id_digest("some-session-id");
/// assert_eq!(key.len(), 64);
/// assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
/// ```
pub fn id_digest(id: &str) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(id.as_bytes()) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How many fresh ids a save draws before it gives up on collisions. With 144 random bits
/// a second draw never happens in practice; the bound keeps a broken backend (one that
/// always answers "exists") from looping forever.
const MAX_ID_DRAWS: usize = 4;

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
#[derive(Clone, Debug)]
pub struct ServerStorage<B> {
    backend: B,
    use_unknown_ids: bool,
    expiry: Expiry,
}

impl<B: SessionBackend> ServerStorage<B> {
    /// A storage over your own backend.
    pub fn with_backend(backend: B) -> Self {
        ServerStorage {
            backend,
            use_unknown_ids: false,
            expiry: Expiry::default(),
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
}

impl<B: SessionBackend> SessionStorage for ServerStorage<B> {
    async fn read(&self, value: Option<&str>) -> Result<Session, Error> {
        let Some(id) = value.filter(|v| !v.is_empty()) else {
            return Ok(Session::new());
        };
        let record = self.backend.load(id).await?;
        match record.and_then(|record| self.expiry.load(id, record)) {
            Some(session) => Ok(session),
            // An expired record is left to the store's own expiry or a sweep: deleting it
            // here could delete a save that a request which loaded it just before it
            // expired makes meanwhile (tests/concurrency.rs,
            // expired_read_keeps_a_concurrent_save).
            None => Ok(self.unknown(id)),
        }
    }

    async fn save(&self, session: &Session) -> Result<Option<String>, Error> {
        let target = session.write_target();
        let mut snapshot = session.snapshot();
        if snapshot.destroyed {
            match &snapshot.delete_id {
                Some(old) => self.backend.delete_many(&[old, &snapshot.id]).await?,
                None => self.backend.delete(&snapshot.id).await?,
            }
            return Ok(Some(String::new()));
        }
        if !snapshot.dirty {
            return Ok(None);
        }
        let mut delete_id = snapshot.delete_id.take();
        let mut id = snapshot.id.clone();
        let (record, ttl) = self.expiry.record(snapshot);
        let mut mode = match target {
            WriteTarget::Existing => WriteMode::Overwrite,
            WriteTarget::Fresh | WriteTarget::Chosen => WriteMode::Create,
        };
        for _ in 0..MAX_ID_DRAWS {
            let stored = match delete_id.take() {
                Some(old) => {
                    self.backend
                        .delete_and_store(&old, &id, &record, ttl, mode)
                        .await?
                }
                None => self.backend.store(&id, &record, ttl, mode).await?,
            };
            if stored {
                return Ok(Some(id));
            }
            match target {
                // Another session holds this id: ours is new, so take another.
                WriteTarget::Fresh => {
                    session.redraw_id();
                    id = session.id();
                }
                // A concurrent request of the same client created it: same owner.
                _ => mode = WriteMode::Overwrite,
            }
        }
        Err(Error::backend(
            "the backend reported every freshly drawn session id as taken",
        ))
    }
}
