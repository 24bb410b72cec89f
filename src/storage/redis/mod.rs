//! Sessions in Redis: a single server, a Redis Cluster, or a master watched by Sentinel.
//!
//! One hash per session under `prefix + hex SHA-256 of the id`, so that nothing in the
//! Redis is a usable session id; one Lua script per read (which sends a record only within
//! the size limit) and per write (a compare-and-set on the record's version).

mod backend;
mod calls;
mod cluster;
mod connect;
mod connection;
mod owners;
mod refusal;
mod replicas;
mod scripts;
mod slots;

use std::time::Duration;

pub use self::backend::RedisBackend;
use super::ServerStorage;
#[cfg(doc)]
use super::{Error, Record, id_digest};

/// Sessions in Redis: for several app servers behind a load balancer that share their
/// sessions.
///
/// Each session is one hash key, `key_prefix` (default `"session:"`) followed by the hex
/// SHA-256 of the session id ([`id_digest`], see [`key_for`](RedisStorage::key_for)), so
/// that a `SCAN`, a dump or a log line holds no usable session id. It has two fields: `v`,
/// a random version that every write draws anew, and `d`, the [`Record`] as compact JSON.
/// Every write sets the key's expiry from [`ttl`](ServerStorage::ttl) (and
/// [`max_lifetime`](ServerStorage::max_lifetime)), so Redis drops abandoned sessions by
/// itself; without either the keys never expire. A `Duration::MAX` of either means
/// "practically forever": the expiry is capped at a century, which Redis accepts.
///
/// A read is one Lua script (`EVALSHA`) that answers the record only if `d` is within
/// [`max_record_size`](ServerStorage::max_record_size), and only its size otherwise, so
/// that a huge record planted in the Redis is refused without being transferred; a save is
/// one Lua script that writes only if `v` still holds the version its request loaded (a
/// compare-and-set), so that concurrent saves of one session are merged rather than lost
/// (see [`ServerStorage`]). A new session is written only where no key exists, so a
/// colliding id can never overwrite another user's session.
///
/// A key that is not such a hash (a string, a list, a hash without `v` or `d`, a `v` that
/// is no number, a `d` that is not a record or is over the size limit) reads as
/// [`Error::Corrupt`], whose message names the key, never the id: the layer logs it and
/// starts a fresh session under a new id. Conditional writes and deletes treat such a key
/// as "not what was expected" rather than failing, and a destroy deletes it.
///
/// One connection is shared by all requests (commands are pipelined on it); when it
/// breaks, it is re-established in the background, and requests fail with an error (never
/// hang) until the server is back. Every operation is bounded by the
/// [response timeout](super::NetworkOptions#structfield.response_timeout). A Cluster
/// connection keeps one connection per master and follows failovers and resharding; a
/// Sentinel one asks Sentinel again when its master is gone (see docs/deployment.md). A
/// write sent again after it took effect writes nothing, so a request whose answer a
/// failure lost is sent again where that is safe.
///
/// ```no_run
/// use std::time::Duration;
/// use session_layer::RedisStorage;
///
/// # async fn run() -> Result<(), session_layer::Error> {
/// let storage = RedisStorage::connect("redis://127.0.0.1:6379")
///     .await?
///     .key_prefix("myapp:session:")
///     .ttl(Duration::from_secs(24 * 3600));
/// # let _ = storage;
/// # Ok(())
/// # }
/// ```
///
/// # Sessions of one owner
///
/// `RedisStorage` implements [`SessionIndex`](crate::SessionIndex). Each owner has a sorted
/// set, `prefix` + `owner:` + the hex SHA-256 of the owner, of its sessions' handles scored
/// by their expiry; every script that touches it drops the expired entries and makes it
/// expire with its newest session, so nothing of an owner outlives its sessions. An owned
/// session's hash also holds its owner's digest in field `o`. On a single server (or with
/// Sentinel) an owned save stays one script, which writes the record and its entry; on a
/// Cluster, where the two are in different slots, it is two: a new session's entry, then
/// its record; a saved session's record (only over one of the same owner), then its entry
/// rescored to the new expiry. A save that changes or clears the owner, and the destroy of
/// an owned session, are one script too on a single server: it is given the set of the owner
/// the request loaded the session with, and removes the entry there in the same step (one
/// more script when another request changed the owner meanwhile, as on a Cluster, where it
/// always takes one more). A listing reads the set,
/// then every record (in one pipeline on a single server), and lists only the records that
/// are still the owner's.
///
/// Run it on a Redis with `maxmemory-policy noeviction`: an evicted set would let its
/// owner's sessions escape [`end_sessions_of`](crate::SessionIndex::end_sessions_of) until
/// they are saved again. The first listing logs a warning when the policy is another.
///
/// With a Redis Cluster, use [`connect_cluster`](RedisStorage::connect_cluster), with
/// Sentinel [`connect_sentinel`](RedisStorage::connect_sentinel); timeouts are set with
/// [`connect_with`](RedisStorage::connect_with) and
/// [`NetworkOptions`](super::NetworkOptions), and
/// [`wait_for_replicas`](RedisStorage::wait_for_replicas) makes saves survive a failover.
pub type RedisStorage = ServerStorage<RedisBackend>;

impl RedisStorage {
    /// Puts every key under `prefix` (default `"session:"`): the key of a session is
    /// `prefix` followed by the hex SHA-256 of its id. Give each application its own prefix
    /// when they share a Redis.
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        self.backend_mut().set_prefix(prefix);
        self
    }

    /// Makes a save (a write, a regenerate or a destroy) succeed only once `replicas`
    /// replicas of the key's master hold it, so that a failover cannot lose it: `WAIT` is
    /// sent with the write, in the same round trip, on connections of their own (a waiting
    /// command holds up its connection). When fewer replicas acknowledge within `timeout`,
    /// the save fails, although the master holds it (see docs/deployment.md). `0` turns
    /// the wait off.
    pub fn wait_for_replicas(mut self, replicas: usize, timeout: Duration) -> Self {
        self.backend_mut().wait_for(replicas, timeout);
        self
    }

    /// The Redis key that holds the session `id`: the prefix followed by the hex SHA-256 of
    /// the id ([`id_digest`]), never the id itself.
    ///
    /// ```no_run
    /// use session_layer::RedisStorage;
    /// use session_layer::storage::id_digest;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = RedisStorage::connect("redis://127.0.0.1:6379").await?;
    /// let key = storage.key_for("some-session-id");
    /// assert_eq!(key, format!("session:{}", id_digest("some-session-id")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn key_for(&self, id: &str) -> String {
        self.backend().key(id)
    }
}
