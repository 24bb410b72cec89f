//! [`SessionState`]: what every clone of one session handle shares, behind its lock.

use serde_json::{Map, Value};

use super::change_log::ChangeLog;
use super::clock::unix_now_secs;
use super::id::{SessionId, generate_id};
use super::snapshot::{Origin, Pending, Regeneration, SaveSnapshot};
use super::{SessionData, change_set::ChangeSet};
use crate::Error;

pub(super) struct SessionState {
    /// `None` for a generated session until something needs its id, so that an untouched
    /// session draws none.
    id: Option<SessionId>,
    /// The id it was created or loaded with, once `id` has changed; `None` while `id` is
    /// still that id, as for most sessions.
    original_id: Option<SessionId>,
    pub(super) origin: Origin,
    /// Set once `regenerate_id(true)` was called: the original id must go on save.
    pub(super) delete_original: bool,
    pub(super) regenerated: bool,
    pub(super) values: Map<String, Value>,
    /// Flash that arrived with this request, as it arrived: a save consumes exactly these
    /// values. The flash maps are `None` while empty, as they almost always are, since
    /// even an empty map costs to drop.
    pub(super) incoming_flash: Option<Map<String, Value>>,
    /// Flash set during this request, for the next one.
    pub(super) outgoing_flash: Option<Map<String, Value>>,
    pub(super) changes: ChangeLog,
    pub(super) destroyed: bool,
    /// When the session was first created (seconds since the Unix epoch); `None` for a
    /// fresh session until something needs it, so that an untouched session reads no clock.
    pub(super) created_at: Option<u64>,
    /// The application's user the session belongs to, if any.
    pub(super) owner: Option<String>,
    /// Whether this request set or cleared the owner, so that a merge replays it.
    pub(super) owner_changed: bool,
    /// The owner the session had when it was created or loaded, once this request changed
    /// it: the owner of the stored record a save replaces.
    pub(super) first_owner: Option<String>,
}

impl SessionState {
    pub(super) fn new(
        id: Option<SessionId>,
        origin: Origin,
        values: Map<String, Value>,
        incoming_flash: Option<Map<String, Value>>,
        created_at: Option<u64>,
        owner: Option<String>,
    ) -> Self {
        SessionState {
            id,
            original_id: None,
            origin,
            delete_original: false,
            regenerated: false,
            values,
            incoming_flash,
            outgoing_flash: None,
            changes: ChangeLog::default(),
            destroyed: false,
            created_at,
            owner,
            owner_changed: false,
            first_owner: None,
        }
    }

    /// The current id, drawn for a generated session on first use: a fresh session that nothing
    /// reads or saves, as on most requests without a cookie, costs no random draw.
    pub(super) fn id(&mut self) -> &SessionId {
        self.id
            .get_or_insert_with(|| SessionId::from(generate_id()))
    }

    /// When the session was first created: a fresh one counts from the first time this is
    /// asked.
    pub(super) fn created_at(&mut self) -> u64 {
        *self.created_at.get_or_insert_with(unix_now_secs)
    }

    /// The id it was created or loaded with.
    pub(super) fn original_id(&mut self) -> &SessionId {
        let current = self
            .id
            .get_or_insert_with(|| SessionId::from(generate_id()));
        self.original_id.as_ref().unwrap_or(current)
    }

    /// Gives the session a new current id, remembering the original one.
    pub(super) fn replace_id(&mut self, id: String) {
        let previous = self.id.replace(SessionId::from(id));
        if self.original_id.is_none() {
            self.original_id = previous;
        }
    }

    pub(super) fn mutable(&mut self) -> Result<&mut Self, Error> {
        if self.destroyed {
            Err(Error::Destroyed)
        } else {
            Ok(self)
        }
    }

    /// What a save writes: values plus outgoing flash; nothing once destroyed.
    pub(super) fn data(&self) -> SessionData {
        if self.destroyed {
            return SessionData::default();
        }
        SessionData {
            values: self.values.clone(),
            flash: self.outgoing_flash.clone().unwrap_or_default(),
        }
    }

    /// The value, else the incoming flash, unless this request changed the key.
    pub(super) fn lookup(&self, key: &str) -> Option<&Value> {
        if self.destroyed {
            return None;
        }
        self.values.get(key).or_else(|| {
            let flash = self.incoming_flash.as_ref()?.get(key)?;
            (!self.changes.contains(key)).then_some(flash)
        })
    }

    /// How many keys can be read: values plus incoming flash, a key in both counted once.
    pub(super) fn readable_len(&self) -> usize {
        if self.destroyed {
            return 0;
        }
        let flash_only = self.incoming_flash.as_ref().map_or(0, |flash| {
            flash
                .keys()
                .filter(|k| !self.values.contains_key(*k) && !self.changes.contains(k))
                .count()
        });
        self.values.len() + flash_only
    }

    /// Everything a save needs; `dirty` says whether anything changed.
    pub(super) fn snapshot(&mut self, dirty: bool) -> SaveSnapshot {
        let id = self.id().clone();
        let pending = if self.destroyed {
            Pending::Destroy
        } else if dirty && self.only_touched() {
            Pending::Touch {
                created_at: self.created_at(),
                owner: self.owner.clone(),
            }
        } else if dirty {
            Pending::Write {
                created_at: self.created_at(),
                data: self.data(),
                owner: self.owner.clone(),
            }
        } else {
            Pending::Nothing
        };
        let regeneration = self.regenerated.then(|| Regeneration {
            original_id: self.original_id().clone(),
            delete_original: self.delete_original,
        });
        let stored_owner = if !self.origin.is_loaded() {
            None
        } else if self.owner_changed {
            self.first_owner.clone()
        } else {
            self.owner.clone()
        };
        SaveSnapshot {
            id,
            origin: self.origin,
            regeneration,
            pending,
            stored_owner,
        }
    }

    /// Whether the only change is a renewal of the expiry: a loaded session whose id, values,
    /// flash and owner this request left alone (incoming flash is consumed by the save, so
    /// it is a change of the data).
    fn only_touched(&self) -> bool {
        self.origin.is_loaded()
            && !self.regenerated
            && !self.owner_changed
            && self.changes.is_empty()
            && self.incoming_flash.is_none()
            && self.outgoing_flash.is_none()
    }

    /// What this request changed, to replay on the record as stored at save time.
    pub(super) fn change_set(&self) -> ChangeSet {
        ChangeSet {
            loaded: self.origin.is_loaded(),
            destroyed: self.destroyed,
            keys: self.changes.resolve(&self.values),
            flash: self.outgoing_flash.clone().unwrap_or_default(),
            seen_flash: self.incoming_flash.clone().unwrap_or_default(),
            owner: self.owner_changed.then(|| self.owner.clone()),
        }
    }
}
