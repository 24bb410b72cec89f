//! [`SessionBackend`]: what a server-side store implements, and what it is told and answers.

use std::future::Future;
use std::time::Duration;

#[cfg(doc)]
use super::ServerStorage;
use super::{Record, SessionId};
use crate::Error;

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

/// What [`SessionBackend::renew`] moves a stored record to, as the lifecycle computed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Renewal<'a> {
    /// The record's new expiry, in milliseconds since the Unix epoch; `None` when sessions
    /// do not expire, so that there is nothing to move.
    pub expires_at_ms: Option<u64>,
    /// The same expiry as a time to live from now, for a store with native expiry.
    pub ttl: Option<Duration>,
    /// When the renewal was made, in milliseconds since the Unix epoch: an owned record's
    /// new last-active time ([`Record::saved_at_ms`]).
    pub now_ms: u64,
    /// The owner of the record as the request loaded it: a hint, as in
    /// [`SessionBackend::store_replacing`], for an index keyed by owner.
    pub owner: Option<&'a str>,
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
    /// The store's name in the `session` span (`db.system.name`) and in metric labels: a
    /// fixed name per backend type, after OpenTelemetry's `db.system.name` where the store
    /// has one. `"custom"` unless set.
    const NAME: &'static str = "custom";

    /// The record stored under `id`, if any, with its version.
    fn load(&self, id: &SessionId)
    -> impl Future<Output = Result<Option<Versioned>, Error>> + Send;

    /// Stores `record` under `id` for `ttl` (`None`: no expiry), with a new version, if what
    /// is stored there is what `expected` says; returns whether it wrote.
    fn store(
        &self,
        id: &SessionId,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// [`store`](SessionBackend::store), handed the record itself: the lifecycle calls this
    /// where it needs the record no more. The default stores it by reference; a backend
    /// that keeps records as they are (in memory) overrides it to keep this one rather than
    /// a copy.
    fn store_owned(
        &self,
        id: &SessionId,
        record: Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        async move { self.store(id, &record, ttl, expected).await }
    }

    /// Deletes the record under `id` if what is stored there is what `expected` says, and
    /// returns whether it matched: with [`Expected::Any`] always `true` (a missing record is
    /// not an error), with [`Expected::Absent`] whether nothing is stored.
    fn delete(
        &self,
        id: &SessionId,
        expected: Expected,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// [`store_owned`](SessionBackend::store_owned), told the owner of the record the
    /// lifecycle expects to replace (that of the record it loaded, or reloaded after a
    /// conflict; `None` for an unowned one): the lifecycle calls this when a write may
    /// replace an owned record. The owner is a hint, which another request may have made
    /// stale: an index whose entries are keyed by owner (Redis) uses it to remove the
    /// entry of a former owner in the same step, and must still find the owner stored when
    /// it differs. The default ignores it.
    fn store_replacing(
        &self,
        id: &SessionId,
        record: Record,
        ttl: Option<Duration>,
        expected: Expected,
        stored_owner: Option<&str>,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        let _ = stored_owner;
        self.store_owned(id, record, ttl, expected)
    }

    /// [`delete`](SessionBackend::delete), told the owner of the record the lifecycle
    /// expects to delete, as [`store_replacing`](SessionBackend::store_replacing) is. The
    /// default ignores it.
    fn delete_replacing(
        &self,
        id: &SessionId,
        expected: Expected,
        stored_owner: Option<&str>,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        let _ = stored_owner;
        self.delete(id, expected)
    }

    /// Renews the record under `id`: moves its expiry to `renewal.expires_at_ms` (never
    /// earlier than it is) and an owned record's last-active time with it, without writing
    /// its data, if a live record is there; returns whether one was. The lifecycle calls
    /// this instead of a store when a request changed nothing but the expiry (`rolling`, or
    /// [`Session::touch`](crate::Session::touch) alone).
    ///
    /// It must never bring back a record that is gone (destroyed, moved, ended or expired)
    /// nor lose a concurrent write: act only on a record that exists, atomically with the
    /// check. The default loads the record and stores it back with the new expiry on the
    /// version it loaded, loading again when another request wrote first, so any backend
    /// is correct with it; override it where the store can move an expiry in place (Redis
    /// `PEXPIREAT`, SQL `UPDATE ... SET expires_at`), and have `load` report the moved
    /// expiry ([`Record::extend_to`]).
    fn renew(
        &self,
        id: &SessionId,
        renewal: Renewal<'_>,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        renew_by_rewriting(self, id, renewal)
    }

    /// Moves a session to a new id (`regenerate_id`): stores `record` under `to`, which must
    /// be free, if `from` still holds version `expected`, and with `delete_from` deletes
    /// `from` in the same step. Override it where the store can do that in one round trip
    /// (a Lua script over both keys); the default takes two conditional steps and undoes
    /// the first when the second finds `from` changed.
    fn store_moved(
        &self,
        from: &SessionId,
        expected: u64,
        delete_from: bool,
        to: &SessionId,
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

/// How many times the default [`SessionBackend::renew`] loads and stores before it gives up
/// on a session that other requests keep writing (each of which renewed it too).
const MAX_RENEW_ATTEMPTS: u32 = 16;

/// The default [`SessionBackend::renew`]: the record as loaded, stored back with the new
/// expiry on the version it was loaded at, again from a fresh load while other requests
/// write first.
pub(crate) async fn renew_by_rewriting<B: SessionBackend + ?Sized>(
    backend: &B,
    id: &SessionId,
    renewal: Renewal<'_>,
) -> Result<bool, Error> {
    for _ in 0..MAX_RENEW_ATTEMPTS {
        let Some(Versioned {
            mut record,
            version,
        }) = backend.load(id).await?
        else {
            return Ok(false);
        };
        if !record.is_live(renewal.now_ms, None) {
            return Ok(false);
        }
        if !record.renew(renewal.expires_at_ms, renewal.now_ms) {
            return Ok(true);
        }
        let expected = Expected::Version(version);
        if backend
            .store_owned(id, record, renewal.ttl, expected)
            .await?
        {
            return Ok(true);
        }
    }
    Err(Error::backend(
        "the session kept changing under every renewal attempt",
    ))
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
    from: &SessionId,
    expected: u64,
    delete_from: bool,
    to: &SessionId,
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
    id: &SessionId,
    version: u64,
) -> Result<bool, Error> {
    let stored = backend.load(id).await?;
    Ok(stored.is_some_and(|stored| stored.version == version))
}
