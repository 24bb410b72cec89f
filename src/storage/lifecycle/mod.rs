//! [`ServerStorage`]: the session lifecycle every server-side storage shares: fresh and
//! unknown ids, expiry, regenerate, destroy, and saves that merge with what concurrent
//! requests saved.

mod backoff;
mod expiry;
mod index;
mod save;

use std::time::Duration;

pub(crate) use self::expiry::Expiry;
use super::{DEFAULT_MAX_RECORD_SIZE, Expected, SessionBackend, SessionStorage, Versioned};
use crate::observe::{self, Load};
use crate::session::{Origin, Pending, SaveSnapshot, SessionId, StoredSession};
use crate::{Error, Session};

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
    /// expiry; with the layer's `rolling(true)`, every request renews it, and a request that
    /// changed nothing else only moves the stored expiry ([`SessionBackend::renew`]).
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
    const NAME: &'static str = B::NAME;

    async fn read(&self, value: Option<&str>) -> Result<Session, Error> {
        let Some(id) = value.filter(|v| !v.is_empty()) else {
            return Ok(Session::new());
        };
        let id = SessionId::from(id);
        let loaded = observe::timed(B::NAME, "load", self.backend.load(&id)).await?;
        let (id, outcome) = match loaded {
            Some(Versioned { record, version }) => {
                match self.expiry.load(id, record, Some(version)) {
                    Ok(session) => return Ok(session),
                    Err(id) => (id, Load::Expired),
                }
            }
            None => (id, Load::UnknownId),
        };
        // An expired record is left to the store's own expiry or a sweep: deleting it here
        // could delete a save that a request which loaded it just before it expired makes
        // meanwhile.
        observe::load(B::NAME, outcome);
        Ok(self.unknown(&id))
    }

    async fn save(&self, session: &Session) -> Result<Option<String>, Error> {
        let SaveSnapshot {
            id,
            origin,
            regeneration,
            pending,
            stored_owner,
        } = session.snapshot();
        let (stored, created_at) = match pending {
            Pending::Nothing => return Ok(None),
            Pending::Destroy => {
                self.delete(&id, origin, regeneration, stored_owner.as_deref())
                    .await?;
                return Ok(Some(String::new()));
            }
            // Only a loaded session that keeps its id is ever a touch.
            Pending::Touch { created_at, owner } => {
                let renewal = self.expiry.renewal(created_at, owner.as_deref());
                let renew = self.backend.renew(&id, renewal);
                let renewed = observe::timed(B::NAME, "renew", renew).await?;
                return Ok(Some(if renewed {
                    id.to_string()
                } else {
                    String::new()
                }));
            }
            Pending::Write {
                data,
                created_at,
                owner,
            } => (StoredSession { data, owner }, created_at),
        };
        let saved = match (origin, regeneration) {
            (Origin::Generated, None) => {
                Saved::Written(self.create(session, stored, created_at).await?)
            }
            (_, None) => {
                let owner = stored_owner.as_deref();
                self.save_in_place(session, id, origin, stored, created_at, owner)
                    .await?
            }
            // Boxed, as logins are rare: see `save_in_place`.
            (Origin::Loaded { version }, Some(regeneration)) => {
                let moved = self.save_moved(session, regeneration, version, stored, created_at);
                Box::pin(moved).await?
            }
            // A new session given a new id: nothing stored to move.
            (_, Some(regeneration)) => {
                let id = self.create(session, stored, created_at).await?;
                if regeneration.delete_original {
                    let original = &regeneration.original_id;
                    let delete = self.backend.delete(original, Expected::Any);
                    observe::timed(B::NAME, "delete", delete).await?;
                }
                Saved::Written(id)
            }
        };
        Ok(Some(match saved {
            Saved::Written(id) => id,
            Saved::Gone => String::new(),
        }))
    }
}

#[cfg(test)]
mod tests;
