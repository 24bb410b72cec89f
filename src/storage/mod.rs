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
//!     Expected, Record, ServerStorage, SessionBackend, SessionId, Versioned,
//! };
//! use session_layer::Error;
//!
//! /// Rows of (record bytes, version), keyed by the id's digest: a dump of the table
//! /// holds no usable id. Versions come from one counter, so they never repeat.
//! #[derive(Default)]
//! struct MyTable(Mutex<(HashMap<String, (Vec<u8>, u64)>, u64)>);
//!
//! impl SessionBackend for MyTable {
//!     async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
//!         let table = self.0.lock().unwrap();
//!         let Some((bytes, version)) = table.0.get(id.digest()) else {
//!             return Ok(None);
//!         };
//!         // Errors name the table, never the id: ids are credentials, logs are not secret.
//!         let record = Record::decode("a row of my_table", bytes)?;
//!         Ok(Some(Versioned { record, version: *version }))
//!     }
//!
//!     async fn store(
//!         &self,
//!         id: &SessionId,
//!         record: &Record,
//!         _ttl: Option<Duration>, // a store with native expiry would pass this on
//!         expected: Expected,
//!     ) -> Result<bool, Error> {
//!         let (rows, last_version) = &mut *self.0.lock().unwrap();
//!         let key = id.digest();
//!         if !expected.is_met_by(rows.get(key).map(|(_, v)| *v)) {
//!             return Ok(false); // another request wrote first: the lifecycle merges
//!         }
//!         *last_version += 1;
//!         rows.insert(key.to_owned(), (record.encode(), *last_version));
//!         Ok(true)
//!     }
//!
//!     async fn delete(&self, id: &SessionId, expected: Expected) -> Result<bool, Error> {
//!         let (rows, _) = &mut *self.0.lock().unwrap();
//!         let key = id.digest();
//!         if !expected.is_met_by(rows.get(key).map(|(_, v)| *v)) {
//!             return Ok(false);
//!         }
//!         rows.remove(key);
//!         Ok(true)
//!     }
//! }
//!
//! let storage = ServerStorage::with_backend(MyTable::default()).ttl(Duration::from_secs(3600));
//! # let _ = storage;
//! ```
//!
//! The other methods have defaults that are correct for any backend. Override
//! [`SessionBackend::renew`] where the store can move a record's expiry without writing the
//! record (a column, a field, a key's TTL): with the layer's `rolling(true)` it is what every
//! request that changed nothing costs.

use std::future::Future;

use crate::{Error, Session};

mod backend;
mod cookie_storage;
mod fs;
mod index;
mod lifecycle;
#[cfg(feature = "memcache")]
mod memcache;
mod memory;
#[cfg(any(feature = "redis", feature = "memcache"))]
mod network;
mod record;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod sql;

#[cfg(feature = "redis")]
pub(crate) use self::backend::store_moved_in_steps;
pub use self::backend::{
    DEFAULT_MAX_RECORD_SIZE, Expected, Moved, Renewal, SessionBackend, Versioned,
};
pub use self::cookie_storage::CookieStorage;
pub use self::fs::{FsBackend, FsStorage};
pub(crate) use self::index::delete_all_owned_in_rounds;
pub use self::index::{OwnerIndexBackend, SessionIndex, SessionInfo};
pub(crate) use self::lifecycle::Expiry;
pub use self::lifecycle::ServerStorage;
#[cfg(feature = "memcache")]
pub use self::memcache::{MemcacheBackend, MemcacheStorage};
pub use self::memory::{MemoryBackend, MemoryStorage};
#[cfg(any(feature = "redis", feature = "memcache"))]
pub use self::network::NetworkOptions;
pub use self::record::Record;
pub(crate) use self::record::json_error_summary;
#[cfg(feature = "redis")]
pub use self::redis::{RedisBackend, RedisStorage};
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub use self::sql::DEFAULT_TABLE as DEFAULT_SQL_TABLE;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub use self::sql::{Dialect, SqlBackend};
#[cfg(feature = "mysql")]
pub use self::sql::{MySqlBackend, MySqlStorage};
#[cfg(feature = "postgres")]
pub use self::sql::{PostgresBackend, PostgresStorage};
#[cfg(feature = "sqlite")]
pub use self::sql::{SqliteBackend, SqliteStorage};
pub(crate) use crate::session::clock::unix_now_ms;
pub use crate::session::{SessionId, id_digest};

/// Turns a verified cookie value into a [`Session`] and a session back into a cookie value.
///
/// Implementors write `async fn read` and `async fn save`. Every storage of this crate saves
/// in this order: delete [`Session::delete_id`] if any; if destroyed, delete the current id
/// (and the id a loaded session was read under, even after `regenerate_id(false)`: a logout
/// ends the stored session) and return `Some("")`; else if dirty, write [`Session::data`]
/// and return the cookie value; else `None`.
pub trait SessionStorage: Send + Sync + 'static {
    /// The storage's name in the `session` span (`db.system.name`) and in metric labels: a
    /// fixed name per storage type. `"custom"` unless set.
    const NAME: &'static str = "custom";

    /// `value`: the verified cookie value (an id, or for [`CookieStorage`] the data itself).
    ///
    /// `None`, `Some("")` and a value naming no stored session give a fresh session.
    fn read(&self, value: Option<&str>) -> impl Future<Output = Result<Session, Error>> + Send;

    /// `Ok(None)`: set no cookie. `Ok(Some(String::new()))`: destroyed, clear the cookie.
    /// `Ok(Some(v))`: send `v` as the new cookie value.
    fn save(&self, session: &Session)
    -> impl Future<Output = Result<Option<String>, Error>> + Send;
}
