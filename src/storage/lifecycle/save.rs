//! How [`ServerStorage`] writes a session: create under a fresh id, write in place at the
//! version it loaded, move to a new id, and merge with what other requests saved meanwhile.

use std::time::Duration;

use super::backoff::Backoff;
use super::{Saved, ServerStorage};
use crate::observe;
use crate::session::clock::unix_now_secs;
use crate::session::{ChangeSet, Merged, Origin, Regeneration, SessionId, StoredSession};
use crate::storage::{Expected, Moved, Record, SessionBackend, Versioned};
use crate::{Error, Session};

/// How many fresh ids a save draws before it gives up on collisions. With 144 random bits
/// a second draw never happens in practice; the bound keeps a broken backend (one that
/// always answers "exists") from looping forever.
const MAX_ID_DRAWS: usize = 4;

/// How many conditional writes a save tries before it gives up on a session that other
/// requests keep changing: enough for hundreds of requests saving one session at once.
const MAX_SAVE_ATTEMPTS: u32 = 128;

impl<B: SessionBackend> ServerStorage<B> {
    /// The record a save writes and its TTL, once it is known to fit the size limit.
    fn record(
        &self,
        stored: StoredSession,
        created_at: u64,
    ) -> Result<(Record, Option<Duration>), Error> {
        let (record, ttl) = self.expiry.record(stored, created_at);
        let size = record.encoded_len();
        if size > self.max_record_size {
            observe::record_too_large(B::NAME);
            return Err(Error::RecordTooLarge {
                size,
                limit: self.max_record_size,
            });
        }
        Ok((record, ttl))
    }

    /// Writes `stored` under `id` if what is stored is `expected`, a record of
    /// `stored_owner` as far as this request knows.
    async fn store(
        &self,
        id: &SessionId,
        stored: StoredSession,
        created_at: u64,
        expected: Expected,
        stored_owner: Option<&str>,
    ) -> Result<bool, Error> {
        let (record, ttl) = self.record(stored, created_at)?;
        match stored_owner {
            // Only a replaced owned record can leave an index entry behind.
            Some(owner) if record.owner.as_deref() != Some(owner) => {
                let store = self
                    .backend
                    .store_replacing(id, record, ttl, expected, Some(owner));
                observe::timed(B::NAME, "store", store).await
            }
            _ => {
                let store = self.backend.store_owned(id, record, ttl, expected);
                observe::timed(B::NAME, "store", store).await
            }
        }
    }

    /// Deletes a destroyed session: its current id and, for a loaded session, the id it was
    /// loaded under, since its record is still there after a `regenerate_id(false)`. The
    /// loaded record is `stored_owner`'s.
    pub(super) async fn delete(
        &self,
        id: &SessionId,
        origin: Origin,
        regeneration: Option<Regeneration>,
        stored_owner: Option<&str>,
    ) -> Result<(), Error> {
        let stored_owner = stored_owner.filter(|_| origin.is_loaded());
        if let Some(regeneration) = regeneration
            && (regeneration.delete_original || origin.is_loaded())
        {
            let original = &regeneration.original_id;
            self.delete_record(original, stored_owner).await?;
            let delete = self.backend.delete(id, Expected::Any);
            observe::timed(B::NAME, "delete", delete).await?;
            return Ok(());
        }
        self.delete_record(id, stored_owner).await?;
        Ok(())
    }

    /// Deletes whatever is under `id`, a record of `stored_owner` as far as this request
    /// knows.
    async fn delete_record(
        &self,
        id: &SessionId,
        stored_owner: Option<&str>,
    ) -> Result<bool, Error> {
        match stored_owner {
            Some(_) => {
                let delete = self
                    .backend
                    .delete_replacing(id, Expected::Any, stored_owner);
                observe::timed(B::NAME, "delete", delete).await
            }
            None => {
                let delete = self.backend.delete(id, Expected::Any);
                observe::timed(B::NAME, "delete", delete).await
            }
        }
    }

    /// Writes a new session under a fresh id, drawing another on a collision. Returns the
    /// id it was written under.
    pub(super) async fn create(
        &self,
        session: &Session,
        stored: StoredSession,
        created_at: u64,
    ) -> Result<String, Error> {
        let (record, ttl) = self.record(stored, created_at)?;
        for _ in 0..MAX_ID_DRAWS {
            let id = session.session_id();
            let store = self.backend.store(&id, &record, ttl, Expected::Absent);
            if observe::timed(B::NAME, "store", store).await? {
                return Ok(id.to_string());
            }
            // Another session holds this id: ours is new, so take another.
            session.redraw_id();
        }
        Err(ids_taken())
    }

    /// Replays `changes` on what is stored under `id` now: the session to write, its
    /// creation time, the version to expect and the owner of what is stored, or `None` when
    /// the session is gone.
    async fn merge(&self, id: &SessionId, changes: &ChangeSet) -> Result<Option<Merge>, Error> {
        let now = unix_now_secs();
        let loaded = observe::timed(B::NAME, "load", self.backend.load(id)).await?;
        let stored_owner = loaded
            .as_ref()
            .and_then(|loaded| loaded.record.owner.clone());
        let (data, created_at, expected) = match loaded {
            // An expired record is overwritten as if nothing were stored.
            Some(Versioned { record, version }) => match self.expiry.live_since(&record) {
                Some(created_at) => {
                    let stored = StoredSession {
                        data: record.data,
                        owner: record.owner,
                    };
                    (Some(stored), created_at, Expected::Version(version))
                }
                None => (None, now, Expected::Version(version)),
            },
            None => (None, now, Expected::Absent),
        };
        match changes.apply(data)? {
            Merged::Write(stored) => Ok(Some(Merge {
                stored,
                created_at,
                expected,
                stored_owner,
            })),
            Merged::Gone | Merged::Delete => Ok(None),
        }
    }

    /// Saves the changes of a session that keeps its id: the data it holds, at the version
    /// it loaded.
    pub(super) async fn save_in_place(
        &self,
        session: &Session,
        id: SessionId,
        origin: Origin,
        stored: StoredSession,
        created_at: u64,
        stored_owner: Option<&str>,
    ) -> Result<Saved, Error> {
        let expected = match origin {
            Origin::Loaded {
                version: Some(version),
            } => Some(Expected::Version(version)),
            // Loaded without a version (`Session::from_data`): merge.
            Origin::Loaded { version: None } => None,
            Origin::Generated | Origin::Given => Some(Expected::Absent),
        };
        if let Some(expected) = expected
            && self
                .store(&id, stored, created_at, expected, stored_owner)
                .await?
        {
            observe::save_attempts(B::NAME, 1);
            return Ok(Saved::Written(id.to_string()));
        }
        let tried = u32::from(expected.is_some());
        if tried > 0 {
            observe::conflict(B::NAME);
        }
        // Boxed: the rare path would otherwise more than double every save's future.
        Box::pin(self.merge_until_stored(session, id, tried)).await
    }

    /// Another request saved first: replays this request's changes on what is stored now
    /// and writes at that version, backing off between attempts; `tried`: the writes
    /// already tried.
    async fn merge_until_stored(
        &self,
        session: &Session,
        id: SessionId,
        tried: u32,
    ) -> Result<Saved, Error> {
        let changes = session.change_set();
        let mut backoff = Backoff::new();
        for attempt in tried + 1..=tried + MAX_SAVE_ATTEMPTS {
            backoff.start();
            let Some(merge) = self.merge(&id, &changes).await? else {
                return Ok(Saved::Gone);
            };
            let owner = merge.stored_owner.as_deref();
            let stored = self.store(&id, merge.stored, merge.created_at, merge.expected, owner);
            if stored.await? {
                observe::save_attempts(B::NAME, attempt);
                return Ok(Saved::Written(id.to_string()));
            }
            observe::conflict(B::NAME);
            backoff.wait().await;
        }
        Err(self.conflict(tried + MAX_SAVE_ATTEMPTS))
    }

    /// Saves a loaded session whose id changed: moves it to the new id if the old record is
    /// still the one it loaded, else merges its changes into the old record as stored now
    /// and tries again.
    pub(super) async fn save_moved(
        &self,
        session: &Session,
        regeneration: Regeneration,
        version: Option<u64>,
        stored: StoredSession,
        created_at: u64,
    ) -> Result<Saved, Error> {
        let old = regeneration.original_id;
        let mut base = match version {
            Some(version) => {
                let (record, ttl) = self.record(stored, created_at)?;
                Some((record, ttl, version))
            }
            None => None,
        };
        let mut changes = None;
        let mut draws = 1;
        let mut backoff = Backoff::new();
        for attempt in 1..=MAX_SAVE_ATTEMPTS {
            backoff.start();
            let (record, ttl, version) = match base.take() {
                Some(base) => base,
                // Nothing known about the old record, or it changed: merge into it as it is.
                None => {
                    let changes = changes.get_or_insert_with(|| session.change_set());
                    match self.merge(&old, changes).await? {
                        Some(Merge {
                            stored: merged,
                            expected: Expected::Version(version),
                            ..
                        }) => {
                            let (record, ttl) = self.record(merged, created_at)?;
                            (record, ttl, version)
                        }
                        _ => return Ok(Saved::Gone),
                    }
                }
            };
            let id = session.session_id();
            let delete_old = regeneration.delete_original;
            let moved = self
                .backend
                .store_moved(&old, version, delete_old, &id, &record, ttl);
            match observe::timed(B::NAME, "store_moved", moved).await? {
                Moved::Stored => {
                    observe::save_attempts(B::NAME, attempt);
                    return Ok(Saved::Written(id.to_string()));
                }
                Moved::IdTaken if draws < MAX_ID_DRAWS => {
                    // Another session holds the fresh id: draw another.
                    session.redraw_id();
                    draws += 1;
                    base = Some((record, ttl, version));
                }
                Moved::IdTaken => return Err(ids_taken()),
                Moved::SourceChanged => {
                    observe::conflict(B::NAME);
                    backoff.wait().await;
                }
            }
        }
        Err(self.conflict(MAX_SAVE_ATTEMPTS))
    }

    /// Gives up on a session that other requests kept changing, after `attempts`.
    fn conflict(&self, attempts: u32) -> Error {
        observe::retries_exhausted(B::NAME, attempts);
        Error::backend("the session kept changing under every save attempt")
    }
}

/// What [`ServerStorage::merge`] makes of a session's changes and its stored record.
struct Merge {
    /// The session to write.
    stored: StoredSession,
    /// When it was first created.
    created_at: u64,
    /// What the write expects to find.
    expected: Expected,
    /// The owner of the stored record.
    stored_owner: Option<String>,
}

fn ids_taken() -> Error {
    Error::backend("the backend reported every freshly drawn session id as taken")
}
