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
//!   collisions, and the merge of concurrent requests) written once. [`MemoryStorage`], [`FsStorage`], `RedisStorage` and
//!   `MemcacheStorage` are `ServerStorage`s over their backends.
//!
//! # Writing your own backend
//!
//! A table with an id, a blob and a version is a complete backend. Each write names the
//! version it expects, so that the lifecycle can merge concurrent requests:
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use std::time::Duration;
//! use session_layer::storage::{
//!     id_digest, Expected, Record, ServerStorage, SessionBackend, Versioned,
//! };
//! use session_layer::Error;
//!
//! /// Rows of (record bytes, version), keyed by the id's digest: a dump of the table
//! /// holds no usable id. Versions come from one counter, so they never repeat.
//! #[derive(Default)]
//! struct MyTable(Mutex<(HashMap<String, (Vec<u8>, u64)>, u64)>);
//!
//! impl SessionBackend for MyTable {
//!     async fn load(&self, id: &str) -> Result<Option<Versioned>, Error> {
//!         let table = self.0.lock().unwrap();
//!         let Some((bytes, version)) = table.0.get(&id_digest(id)) else {
//!             return Ok(None);
//!         };
//!         // Errors name the table, never the id: ids are credentials, logs are not secret.
//!         let record = Record::decode("a row of my_table", bytes)?;
//!         Ok(Some(Versioned { record, version: *version }))
//!     }
//!
//!     async fn store(
//!         &self,
//!         id: &str,
//!         record: &Record,
//!         _ttl: Option<Duration>, // a store with native expiry would pass this on
//!         expected: Expected,
//!     ) -> Result<bool, Error> {
//!         let (rows, last_version) = &mut *self.0.lock().unwrap();
//!         let key = id_digest(id);
//!         if !expected.is_met_by(rows.get(&key).map(|(_, v)| *v)) {
//!             return Ok(false); // another request wrote first: the lifecycle merges
//!         }
//!         *last_version += 1;
//!         rows.insert(key, (record.encode(), *last_version));
//!         Ok(true)
//!     }
//!
//!     async fn delete(&self, id: &str, expected: Expected) -> Result<bool, Error> {
//!         let (rows, _) = &mut *self.0.lock().unwrap();
//!         let key = id_digest(id);
//!         if !expected.is_met_by(rows.get(&key).map(|(_, v)| *v)) {
//!             return Ok(false);
//!         }
//!         rows.remove(&key);
//!         Ok(true)
//!     }
//! }
//!
//! let storage = ServerStorage::with_backend(MyTable::default()).ttl(Duration::from_secs(3600));
//! # let _ = storage;
//! ```

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Error, Session, SessionData};

mod changes;
mod cookie;
mod fs;
mod lifecycle;
#[cfg(feature = "memcache")]
mod memcache;
mod memory;
#[cfg(any(feature = "redis", feature = "memcache"))]
mod network;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod sql;

pub(crate) use self::changes::{ChangeSet, KeyChange, Updater};
pub use self::cookie::CookieStorage;
pub use self::fs::{FsBackend, FsStorage};
pub use self::lifecycle::ServerStorage;
pub(crate) use self::lifecycle::{Expiry, Snapshot};
#[cfg(feature = "memcache")]
pub use self::memcache::{MemcacheBackend, MemcacheStorage};
pub use self::memory::{MemoryBackend, MemoryStorage};
#[cfg(any(feature = "redis", feature = "memcache"))]
pub use self::network::NetworkOptions;
#[cfg(feature = "redis")]
pub use self::redis::{RedisBackend, RedisStorage};
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub use self::sql::DEFAULT_TABLE as DEFAULT_SQL_TABLE;
#[cfg(feature = "mysql")]
pub use self::sql::{MySqlBackend, MySqlStorage};
#[cfg(feature = "postgres")]
pub use self::sql::{PostgresBackend, PostgresStorage};
#[cfg(feature = "sqlite")]
pub use self::sql::{SqliteBackend, SqliteStorage};

/// Turns a verified cookie value into a [`Session`] and a session back into a cookie value.
///
/// Implementors write `async fn read` and `async fn save`. Every storage of this crate saves
/// in this order: delete [`Session::delete_id`] if any; if destroyed, delete the current id
/// (and the id a loaded session was read under, even after `regenerate_id(false)`: a logout
/// ends the stored session) and return `Some("")`; else if dirty, write [`Session::data`]
/// and return the cookie value; else `None`.
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

/// What [`SessionBackend::store`] and [`SessionBackend::delete`] expect to find under the
/// id: they act only if it is there, and answer `Ok(false)` otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Nothing (`SET NX`, `add`, `INSERT ... ON CONFLICT DO NOTHING`): a new id, so that a
    /// collision can never overwrite another session.
    Absent,
    /// The record at this version, as [`SessionBackend::load`] gave it: a compare-and-swap,
    /// so that a save never overwrites what another request saved since this one loaded.
    Version(u64),
    /// Whatever is there, or nothing.
    Any,
}

impl Expected {
    /// Whether a store holding `stored` (the version of its record, `None` when it holds
    /// nothing) is what this expects.
    ///
    /// ```
    /// use session_layer::storage::Expected;
    ///
    /// assert!(Expected::Absent.is_met_by(None));
    /// assert!(Expected::Version(7).is_met_by(Some(7)));
    /// assert!(!Expected::Version(7).is_met_by(Some(8)));
    /// assert!(Expected::Any.is_met_by(Some(8)));
    /// ```
    pub fn is_met_by(self, stored: Option<u64>) -> bool {
        match self {
            Expected::Absent => stored.is_none(),
            Expected::Version(version) => stored == Some(version),
            Expected::Any => true,
        }
    }
}

/// A record as loaded, with the version a later conditional write expects.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned {
    /// The record.
    pub record: Record,
    /// Changes whenever the record is written (a counter, a random number, Memcached's
    /// CAS value). A version may repeat for one id only across a delete, and then a
    /// conditional write could take a re-created record for the deleted one: a counter
    /// shared by the whole store, or a random number, rules that out.
    pub version: u64,
}

/// A server-side store of session records, keyed by session id.
///
/// Implement these three methods (as `async fn`) and wrap the backend in
/// [`ServerStorage::with_backend`]: the lifecycle is done for you, concurrent requests
/// included. Each write is conditional on what is stored ([`Expected`]); the lifecycle
/// merges and retries when another request wrote first, so a backend needs nothing more
/// than a version it can compare atomically (a version column and a conditional `UPDATE`,
/// a Lua script, Memcached's `cas`).
///
/// Expiry is enforced by the lifecycle on read (from [`Record::expires_at_ms`]); a store
/// with native expiry (Redis, Memcached, a `DELETE ... WHERE expires < now()` job) should
/// also use `ttl` so that expired records do not pile up.
pub trait SessionBackend: Send + Sync + 'static {
    /// The record stored under `id`, if any, with its version.
    fn load(&self, id: &str) -> impl Future<Output = Result<Option<Versioned>, Error>> + Send;

    /// Stores `record` under `id` for `ttl` (`None`: no expiry), with a new version, if what
    /// is stored there is what `expected` says; returns whether it wrote.
    fn store(
        &self,
        id: &str,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Deletes the record under `id` if what is stored there is what `expected` says, and
    /// returns whether it matched: with [`Expected::Any`] always `true` (a missing record is
    /// not an error), with [`Expected::Absent`] whether nothing is stored.
    fn delete(
        &self,
        id: &str,
        expected: Expected,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Moves a session to a new id (`regenerate_id`): stores `record` under `to`, which must
    /// be free, if `from` still holds version `expected`, and with `delete_from` deletes
    /// `from` in the same step. Override it where the store can do that in one round trip
    /// (a Lua script over both keys); the default takes two conditional steps and undoes
    /// the first when the second finds `from` changed.
    fn store_moved(
        &self,
        from: &str,
        expected: u64,
        delete_from: bool,
        to: &str,
        record: &Record,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<Moved, Error>> + Send {
        store_moved_in_steps(self, from, expected, delete_from, to, record, ttl)
    }

    /// The largest encoded record, in bytes, that `load` accepts: set by
    /// [`ServerStorage::max_record_size`], and to [`DEFAULT_MAX_RECORD_SIZE`] when the
    /// storage is built.
    ///
    /// A backend that can tell a stored record's size before fetching it (a file's length,
    /// Redis `HSTRLEN`, Memcached's reply header, SQL `length()`) should refuse a bigger one
    /// without reading it, with [`Record::check_stored_size`]. The default ignores the limit:
    /// the lifecycle never saves a bigger record, so only one written by something else can
    /// be loaded whole.
    fn limit_record_size(&mut self, bytes: usize) {
        let _ = bytes;
    }
}

/// The default of [`ServerStorage::max_record_size`]: 1 MiB.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 1 << 20;

/// What [`SessionBackend::store_moved`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moved {
    /// The record is under the new id (and the old one deleted, if asked).
    Stored,
    /// Something is stored under the new id already: nothing was written.
    IdTaken,
    /// The old id no longer holds the expected version (or nothing): nothing was written.
    SourceChanged,
}

/// [`SessionBackend::store_moved`] in two conditional steps: create `to`, then delete (or
/// check) `from` at `expected`. The session is under `to` once the second step finds `from`
/// unchanged; nobody else knows `to` before that, so it is deleted again when it does not,
/// and when the second step fails while `from` is still as expected (a store going down
/// between the steps), so that a failed move leaves no orphan behind.
pub(crate) async fn store_moved_in_steps<B: SessionBackend + ?Sized>(
    backend: &B,
    from: &str,
    expected: u64,
    delete_from: bool,
    to: &str,
    record: &Record,
    ttl: Option<Duration>,
) -> Result<Moved, Error> {
    if !backend.store(to, record, ttl, Expected::Absent).await? {
        return Ok(Moved::IdTaken);
    }
    let unchanged = if delete_from {
        backend.delete(from, Expected::Version(expected)).await
    } else {
        holds(backend, from, expected).await
    };
    match unchanged {
        Ok(true) => Ok(Moved::Stored),
        Ok(false) => {
            backend.delete(to, Expected::Any).await?;
            Ok(Moved::SourceChanged)
        }
        Err(error) => {
            // A `from` now gone may have been deleted by this very step, or ended by another
            // request: `to` then stays until its expiry rather than bring back an ended session.
            if holds(backend, from, expected).await.unwrap_or(false) {
                backend.delete(to, Expected::Any).await?;
            }
            Err(error)
        }
    }
}

/// Whether `id` holds the record at `version`.
async fn holds<B: SessionBackend + ?Sized>(
    backend: &B,
    id: &str,
    version: u64,
) -> Result<bool, Error> {
    let stored = backend.load(id).await?;
    Ok(stored.is_some_and(|stored| stored.version == version))
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

    /// The length of [`encode`](Record::encode)'s bytes, counted without building them.
    pub fn encoded_len(&self) -> usize {
        let mut counter = ByteCounter(0);
        // Serializing maps of JSON values into a writer that never fails cannot fail.
        serde_json::to_writer(&mut counter, self).expect("a session record always serializes");
        counter.0
    }

    /// Decodes bytes written by [`encode`](Record::encode). `name` says which record it is in
    /// the error (a key or a path), never its content.
    pub fn decode(name: &str, bytes: &[u8]) -> Result<Record, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::corrupt(name, json_error_summary(&e)))
    }

    /// Refuses a stored record of `size` bytes over `limit`
    /// ([`SessionBackend::limit_record_size`]) as corrupt, so that the layer starts a fresh
    /// session instead of loading it.
    ///
    /// ```
    /// use session_layer::{Error, storage::Record};
    ///
    /// assert!(Record::check_stored_size("row 7", 1024, 1024).is_ok());
    /// let refused = Record::check_stored_size("row 7", 1025, 1024);
    /// assert!(matches!(refused, Err(Error::Corrupt { .. })));
    /// ```
    pub fn check_stored_size(name: &str, size: u64, limit: usize) -> Result<(), Error> {
        if size > limit as u64 {
            return Err(Error::corrupt(
                name,
                format!("{size} bytes, over the {limit}-byte record size limit"),
            ));
        }
        Ok(())
    }

    /// Whether the record is still valid at `now_ms` given an absolute lifetime limit.
    pub fn is_live(&self, now_ms: u64, max_lifetime: Option<Duration>) -> bool {
        let unexpired = self.expires_at_ms.is_none_or(|at| at > now_ms);
        let young = max_lifetime
            .is_none_or(|limit| self.created_at.saturating_add(limit.as_secs()) > now_ms / 1000);
        unexpired && young
    }
}

/// An `io::Write` that only counts what is written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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

/// A duration in whole milliseconds, `u64::MAX` for anything longer (a `Duration::MAX` TTL
/// means "forever", never a wrapped short one).
pub(crate) fn saturating_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(saturating_millis)
        .unwrap_or(0)
}
