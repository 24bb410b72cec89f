//! [`Session`]: the handle that handlers read and write.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::SessionData;
use super::change_set::{ChangeSet, Updater};
use super::clock::unix_now_secs;
use super::id::{SessionId, generate_id};
use super::snapshot::{Origin, SaveSnapshot};
use super::state::SessionState;
use crate::Error;

/// A user's session: a cheap-to-clone handle on shared state.
///
/// The [`SessionLayer`](crate::SessionLayer) puts one into the request extensions; with the
/// `axum` feature, handlers take it as an extractor. Every clone sees the same state, so what
/// a handler changes is what the layer saves after the handler returns.
///
/// ```
/// use session_layer::Session;
///
/// let session = Session::new();
/// session.set("count", 1)?;
/// assert_eq!(session.get::<u32>("count"), Some(1));
///
/// // Flash values are for the next request: invisible in this one.
/// session.flash("notice", "Saved!")?;
/// assert_eq!(session.get::<String>("notice"), None);
/// assert!(session.data().flash.contains_key("notice"));
/// # Ok::<(), session_layer::Error>(())
/// ```
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

/// What every clone of a session shares.
struct Shared {
    /// Whether a save has anything to write. Outside the lock: the layer asks after every
    /// request, and most requests change nothing.
    dirty: AtomicBool,
    state: Mutex<SessionState>,
}

impl Session {
    /// A fresh, empty session with a random id (144 bits from the thread's CSPRNG,
    /// URL-safe base64).
    #[allow(clippy::new_without_default)] // a random id is not what `Default` promises
    pub fn new() -> Session {
        // The id is drawn when first needed (`SessionState::ensure_id`).
        Session::build(SessionState::new(
            None,
            Origin::Generated,
            Map::new(),
            None,
            None,
            None,
        ))
    }

    /// A fresh, empty session with the given id.
    pub fn with_id(id: impl Into<String>) -> Session {
        Session::build(SessionState::new(
            Some(SessionId::from(id.into())),
            Origin::Given,
            Map::new(),
            None,
            None,
            None,
        ))
    }

    /// A session as loaded from storage: `data.values` are its values and `data.flash` the
    /// flash set by the previous request, readable now. It starts dirty when that flash is
    /// non-empty, so that the next save drops it.
    pub fn from_data(id: impl Into<String>, data: SessionData) -> Session {
        Session::loaded(SessionId::from(id.into()), data, None, None, None)
    }

    /// A session loaded from a storage record at `version`, created at `created_at_secs`
    /// and belonging to `owner`.
    pub(crate) fn loaded(
        id: SessionId,
        data: SessionData,
        created_at_secs: Option<u64>,
        version: Option<u64>,
        owner: Option<String>,
    ) -> Session {
        let incoming_flash = Some(data.flash).filter(|flash| !flash.is_empty());
        Session::build(SessionState::new(
            Some(id),
            Origin::Loaded { version },
            data.values,
            incoming_flash,
            created_at_secs,
            owner,
        ))
    }

    fn build(state: SessionState) -> Session {
        // Flash that arrived must be dropped by the next save.
        let dirty = state.incoming_flash.is_some();
        Session {
            shared: Arc::new(Shared {
                dirty: AtomicBool::new(dirty),
                state: Mutex::new(state),
            }),
        }
    }

    /// Marks the session as having something to save.
    pub(super) fn mark_dirty(&self) {
        self.shared.dirty.store(true, Ordering::Release);
    }

    /// The state, with the id drawn if it was not yet.
    pub(super) fn lock_with_id(&self) -> MutexGuard<'_, SessionState> {
        let mut state = self.lock();
        state.id();
        state
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, SessionState> {
        // A panic in another holder cannot leave the state half-written: every method
        // finishes its change before it can panic, so a poisoned lock is still usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current id; it changes after [`regenerate_id`](Session::regenerate_id).
    pub fn id(&self) -> String {
        self.lock().id().to_string()
    }

    /// The current id with its digest, kept from the load to the save.
    pub(crate) fn session_id(&self) -> SessionId {
        self.lock().id().clone()
    }

    /// The id the session was created or loaded with.
    pub fn original_id(&self) -> String {
        self.lock().original_id().to_string()
    }

    /// The id whose data a storage must delete when saving: the original id once
    /// `regenerate_id(true)` has been called, even after further regenerations.
    pub fn delete_id(&self) -> Option<String> {
        let mut state = self.lock();
        state
            .delete_original
            .then(|| state.original_id().to_string())
    }

    /// The value under `key`, else the flash value that arrived with this request.
    ///
    /// `None` when absent, when the session is destroyed, or when the value is not a `T`.
    /// Reading removes nothing: a flash value stays readable for the whole request.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let state = self.lock();
        T::deserialize(state.lookup(key)?).ok()
    }

    /// Like [`get`](Session::get), as untyped JSON.
    pub fn get_value(&self, key: &str) -> Option<Value> {
        self.lock().lookup(key).cloned()
    }

    /// Whether `key` has a value or an incoming flash value.
    pub fn has(&self, key: &str) -> bool {
        self.lock().lookup(key).is_some()
    }

    /// Stores `value` under `key`. A value that serializes to JSON `null` removes the key.
    pub fn set(&self, key: impl Into<String>, value: impl Serialize) -> Result<(), Error> {
        let key = key.into();
        let value = serde_json::to_value(value)?;
        let mut guard = self.lock();
        let state = guard.mutable()?;
        state.changes.record_write(&key);
        self.mark_dirty();
        if value.is_null() {
            state.values.remove(&key);
        } else {
            state.values.insert(key, value);
        }
        Ok(())
    }

    /// Sets `key` to `f(current value)` and returns the new value. `f` gets `None` when the
    /// key is absent or its value is not a `T`; a result that serializes to JSON `null`
    /// removes the key.
    ///
    /// Unlike a [`get`](Session::get) followed by a [`set`](Session::set), no concurrent
    /// update is lost: a server-side storage runs `f` again at save time on the value stored
    /// then, if another request changed the session meanwhile. So `f` should depend on
    /// nothing but its argument. It runs while the session is locked: it must not use the
    /// session itself.
    ///
    /// ```
    /// use session_layer::Session;
    ///
    /// let session = Session::new();
    /// let cart = session.update("cart", |cart: Option<Vec<String>>| {
    ///     let mut cart = cart.unwrap_or_default();
    ///     cart.push("apple".into());
    ///     cart
    /// })?;
    /// assert_eq!(cart, ["apple"]);
    /// assert_eq!(session.update("visits", |n: Option<u64>| n.unwrap_or(0) + 1)?, 1);
    /// # Ok::<(), session_layer::Error>(())
    /// ```
    pub fn update<T, F>(&self, key: impl Into<String>, f: F) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(Option<T>) -> T + Send + Sync + 'static,
    {
        let key = key.into();
        let step: Updater = Arc::new(move |value: Option<&Value>| {
            let current = value.and_then(|v| T::deserialize(v).ok());
            Ok(serde_json::to_value(f(current))?)
        });
        let mut guard = self.lock();
        let state = guard.mutable()?;
        let before = state.values.get(&key).cloned();
        let after = step(before.as_ref())?;
        let result = T::deserialize(&after)?;
        state.changes.record_update(&key, before, step);
        self.mark_dirty();
        if after.is_null() {
            state.values.remove(&key);
        } else {
            state.values.insert(key, after);
        }
        Ok(result)
    }

    /// Removes `key` (its value and any flash under it). Marks the session dirty even if
    /// the key was absent.
    pub fn unset(&self, key: &str) -> Result<(), Error> {
        let mut guard = self.lock();
        let state = guard.mutable()?;
        state.changes.record_write(key);
        self.mark_dirty();
        state.values.remove(key);
        if let Some(flash) = &mut state.outgoing_flash {
            flash.remove(key);
        }
        Ok(())
    }

    /// Sets a value that is readable during the next request only.
    pub fn flash(&self, key: impl Into<String>, value: impl Serialize) -> Result<(), Error> {
        let value = serde_json::to_value(value)?;
        let mut guard = self.lock();
        let state = guard.mutable()?;
        self.mark_dirty();
        state
            .outgoing_flash
            .get_or_insert_with(Map::new)
            .insert(key.into(), value);
        Ok(())
    }

    /// Gives the session a new random id, keeping its data; call it after a login to
    /// prevent session fixation. With `delete_old`, the save deletes the data stored under
    /// the original id.
    pub fn regenerate_id(&self, delete_old: bool) -> Result<(), Error> {
        let id = generate_id();
        let mut guard = self.lock_with_id();
        let state = guard.mutable()?;
        state.replace_id(id);
        state.regenerated = true;
        self.mark_dirty();
        state.delete_original |= delete_old;
        Ok(())
    }

    /// Marks the session destroyed: its values are gone at once, and the next save deletes
    /// the stored data and clears the cookie.
    pub fn destroy(&self) {
        let mut state = self.lock();
        state.destroyed = true;
        self.mark_dirty();
    }

    /// Marks the session for renewal without changing a value, so that the next save renews
    /// its expiry and re-sends the cookie (the layer's `rolling`). When nothing else changed
    /// in a session loaded from a server-side storage, the save only moves the stored
    /// record's expiry ([`SessionBackend::renew`](crate::storage::SessionBackend::renew))
    /// rather than write the record again.
    pub fn touch(&self) -> Result<(), Error> {
        let mut state = self.lock();
        state.mutable()?;
        self.mark_dirty();
        Ok(())
    }

    /// Whether [`destroy`](Session::destroy) was called.
    pub fn is_destroyed(&self) -> bool {
        self.lock().destroyed
    }

    /// Whether a save has anything to write (or to delete).
    pub fn is_dirty(&self) -> bool {
        self.shared.dirty.load(Ordering::Acquire)
    }

    /// How many keys can be read: values plus incoming flash (a key in both counts once).
    pub fn len(&self) -> usize {
        self.lock().readable_len()
    }

    /// Whether nothing can be read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What a save writes: the current values plus the flash set during this request.
    /// Empty when destroyed.
    pub fn data(&self) -> SessionData {
        self.lock().data()
    }

    /// When the session was first created, as stored with it. A stored time in the future
    /// (only a corrupt or tampered record has one) counts as now.
    pub fn created_at(&self) -> SystemTime {
        let secs = self.lock().created_at().min(unix_now_secs());
        UNIX_EPOCH + std::time::Duration::from_secs(secs)
    }

    /// Whether the session was loaded from a storage (as opposed to created fresh).
    pub fn is_loaded(&self) -> bool {
        self.lock().origin.is_loaded()
    }

    /// Draws another random id for a fresh session whose id collided on create. The
    /// original id is left alone: it is not ours to delete.
    pub(crate) fn redraw_id(&self) {
        self.lock_with_id().replace_id(generate_id());
    }

    /// Everything a save needs, taken under one lock.
    pub(crate) fn snapshot(&self) -> SaveSnapshot {
        let mut state = self.lock();
        // Every change marks the session dirty under this lock.
        state.snapshot(self.is_dirty())
    }

    /// What this request changed, to replay on the record as stored at save time.
    pub(crate) fn change_set(&self) -> ChangeSet {
        self.lock().change_set()
    }
}

impl fmt::Debug for Session {
    /// Shows the state but never the id: ids are credentials and logs are not secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Session")
            .field("id", &"[redacted]")
            .field("keys", &state.values.keys().collect::<Vec<_>>())
            .field(
                "flash_keys",
                &state
                    .incoming_flash
                    .iter()
                    .flat_map(Map::keys)
                    .collect::<Vec<_>>(),
            )
            .field("dirty", &self.is_dirty())
            .field("destroyed", &state.destroyed)
            .finish()
    }
}
