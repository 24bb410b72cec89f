//! The session handle that handlers read and write.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;
use crate::storage::{ChangeSet, KeyChange, Snapshot, Updater};

/// What a storage keeps for one session: its values and the flash for the next request.
///
/// ```
/// use session_layer::{Session, SessionData};
///
/// let mut data = SessionData::default();
/// data.values.insert("user".into(), "mj".into());
/// data.flash.insert("notice".into(), "Saved!".into());
///
/// let session = Session::from_data("some-id", data);
/// assert_eq!(session.get::<String>("user").as_deref(), Some("mj"));
/// assert_eq!(session.get::<String>("notice").as_deref(), Some("Saved!"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionData {
    /// Values that persist until they are unset or the session ends.
    #[serde(default)]
    pub values: Map<String, Value>,
    /// Values readable during one request only: the one after they were flashed.
    #[serde(default)]
    pub flash: Map<String, Value>,
}

/// How a session came to be; decides how a storage may write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// A new random id made here: nobody else can hold it.
    Generated,
    /// An id given by the caller (or kept by `use_unknown_ids`), with nothing stored yet.
    Given,
    /// Loaded from a storage.
    Loaded,
}

struct State {
    id: String,
    /// The id it was created or loaded with, once `id` has changed; `None` while `id` is
    /// still that id (most sessions: one allocation less).
    original_id: Option<String>,
    origin: Origin,
    /// Set once `regenerate_id(true)` was called: the original id must go on save.
    delete_original: bool,
    regenerated: bool,
    values: Map<String, Value>,
    /// Flash that arrived with this request (set by the previous one), as it arrived: a
    /// save consumes exactly these values. The flash maps are `None` while empty, as they
    /// almost always are: dropping even an empty map costs.
    incoming_flash: Option<Map<String, Value>>,
    /// Flash set during this request, for the next one.
    outgoing_flash: Option<Map<String, Value>>,
    /// Keys changed during this request, in first-changed order, so that a storage can
    /// replay the changes on a record another request changed meanwhile.
    changes: Vec<(String, Change)>,
    /// The stored version this session was loaded at, if the storage has versions.
    version: Option<u64>,
    destroyed: bool,
    /// When the session was first created (seconds since the Unix epoch); `None` for a
    /// fresh session until something needs it, so that a request which never touches its
    /// session reads no clock.
    created_at: Option<u64>,
}

impl State {
    /// Draws the id of a generated session on first use: a fresh session that no handler
    /// reads and nothing saves (most requests without a cookie) costs no random draw.
    fn ensure_id(&mut self) {
        if self.id.is_empty() && self.origin == Origin::Generated {
            self.id = generate_id();
        }
    }

    /// When the session was first created: a fresh session counts from the first time
    /// this is asked.
    fn created_at(&mut self) -> u64 {
        *self.created_at.get_or_insert_with(unix_now)
    }

    /// The id it was created or loaded with.
    fn original_id(&self) -> &str {
        self.original_id.as_deref().unwrap_or(&self.id)
    }

    /// Gives the session a new current id, remembering the original one.
    fn replace_id(&mut self, id: String) {
        let previous = std::mem::replace(&mut self.id, id);
        self.original_id.get_or_insert(previous);
    }

    fn mutable(&mut self) -> Result<&mut Self, Error> {
        if self.destroyed {
            Err(Error::Destroyed)
        } else {
            Ok(self)
        }
    }

    fn change_mut(&mut self, key: &str) -> Option<&mut Change> {
        self.changes
            .iter_mut()
            .find_map(|(k, change)| (k == key).then_some(change))
    }

    /// Records that `key` was set or unset: its value is now whatever `values` holds.
    fn record_write(&mut self, key: &str) {
        match self.change_mut(key) {
            Some(change) => *change = Change::Written,
            None => self.changes.push((key.to_owned(), Change::Written)),
        }
    }

    /// Records an `update` of `key` made when its value was `before`.
    fn record_update(&mut self, key: &str, before: Option<Value>, step: Updater) {
        match self.change_mut(key) {
            Some(Change::Updated { steps, .. }) => steps.push(step),
            Some(change) => {
                *change = Change::Updated {
                    start: Some(before),
                    steps: vec![step],
                }
            }
            None => self.changes.push((
                key.to_owned(),
                Change::Updated {
                    start: None,
                    steps: vec![step],
                },
            )),
        }
    }

    /// What a save writes: values plus outgoing flash; nothing once destroyed.
    fn data(&self) -> SessionData {
        if self.destroyed {
            return SessionData::default();
        }
        SessionData {
            values: self.values.clone(),
            flash: self.outgoing_flash.clone().unwrap_or_default(),
        }
    }

    /// The value, else the incoming flash, unless this request changed the key.
    fn lookup(&self, key: &str) -> Option<&Value> {
        if self.destroyed {
            return None;
        }
        self.values.get(key).or_else(|| {
            let flash = self.incoming_flash.as_ref()?.get(key)?;
            (!self.changed(key)).then_some(flash)
        })
    }

    /// Whether this request set, unset or updated `key`: its incoming flash is then hidden.
    fn changed(&self, key: &str) -> bool {
        self.changes.iter().any(|(k, _)| k == key)
    }
}

/// How a request changed one key; resolved into a [`KeyChange`] only if a save must merge.
enum Change {
    /// Set or unset: the value is what `values` holds at save time.
    Written,
    /// Updated: `start` is the value written earlier in this request (`None`: the stored
    /// value), and `steps` the closures to run on it.
    Updated {
        start: Option<Option<Value>>,
        steps: Vec<Updater>,
    },
}

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
    state: Mutex<State>,
}

impl Session {
    /// A fresh, empty session with a random id (144 bits from the thread's CSPRNG,
    /// URL-safe base64).
    #[allow(clippy::new_without_default)] // a random id is not what `Default` promises
    pub fn new() -> Session {
        // The id is drawn when first needed (`State::ensure_id`).
        Session::build(
            String::new(),
            Origin::Generated,
            Map::new(),
            None,
            None,
            None,
        )
    }

    /// A fresh, empty session with the given id.
    pub fn with_id(id: impl Into<String>) -> Session {
        Session::build(id.into(), Origin::Given, Map::new(), None, None, None)
    }

    /// A session as loaded from storage: `data.values` are its values and `data.flash` the
    /// flash set by the previous request, readable now. It starts dirty when that flash is
    /// non-empty, so that the next save drops it.
    pub fn from_data(id: impl Into<String>, data: SessionData) -> Session {
        Session::build(
            id.into(),
            Origin::Loaded,
            data.values,
            Some(data.flash),
            None,
            None,
        )
    }

    /// A session loaded from a storage record at `version`, with the creation time stored
    /// with it.
    pub(crate) fn loaded(
        id: &str,
        data: SessionData,
        created_at_secs: u64,
        version: Option<u64>,
    ) -> Session {
        Session::build(
            id.to_owned(),
            Origin::Loaded,
            data.values,
            Some(data.flash),
            Some(created_at_secs),
            version,
        )
    }

    fn build(
        id: String,
        origin: Origin,
        values: Map<String, Value>,
        flash: Option<Map<String, Value>>,
        created_at: Option<u64>,
        version: Option<u64>,
    ) -> Session {
        let incoming_flash = flash.filter(|flash| !flash.is_empty());
        let dirty = incoming_flash.is_some();
        Session {
            shared: Arc::new(Shared {
                dirty: AtomicBool::new(dirty),
                state: Mutex::new(State {
                    original_id: None,
                    id,
                    origin,
                    delete_original: false,
                    regenerated: false,
                    values,
                    incoming_flash,
                    outgoing_flash: None,
                    changes: Vec::new(),
                    version,
                    destroyed: false,
                    created_at,
                }),
            }),
        }
    }

    /// Marks the session as having something to save.
    fn mark_dirty(&self) {
        self.shared.dirty.store(true, Ordering::Release);
    }

    /// The state, with the id drawn if it was not yet.
    fn lock_with_id(&self) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        state.ensure_id();
        state
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another holder cannot leave the state half-written: every method
        // finishes its change before it can panic, so a poisoned lock is still usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current id; it changes after [`regenerate_id`](Session::regenerate_id).
    pub fn id(&self) -> String {
        self.lock_with_id().id.clone()
    }

    /// The id the session was created or loaded with.
    pub fn original_id(&self) -> String {
        self.lock_with_id().original_id().to_owned()
    }

    /// The id whose data a storage must delete when saving: the original id once
    /// `regenerate_id(true)` has been called, even after further regenerations.
    pub fn delete_id(&self) -> Option<String> {
        let state = self.lock_with_id();
        state
            .delete_original
            .then(|| state.original_id().to_owned())
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
        state.record_write(&key);
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
        state.record_update(&key, before, step);
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
        state.record_write(key);
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

    /// Marks the session changed without changing a value, so that the next save writes it
    /// again and re-sends the cookie: this refreshes its expiry (the layer's `rolling`).
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
        let state = self.lock();
        if state.destroyed {
            return 0;
        }
        let flash_only = state.incoming_flash.as_ref().map_or(0, |flash| {
            flash
                .keys()
                .filter(|k| !state.values.contains_key(*k) && !state.changed(k))
                .count()
        });
        state.values.len() + flash_only
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
        let secs = self.lock().created_at().min(unix_now());
        UNIX_EPOCH + std::time::Duration::from_secs(secs)
    }

    /// Whether the session was loaded from a storage (as opposed to created fresh).
    pub fn is_loaded(&self) -> bool {
        self.lock().origin == Origin::Loaded
    }

    /// Draws another random id for a fresh session whose id collided on create. The
    /// original id is left alone: it is not ours to delete.
    pub(crate) fn redraw_id(&self) {
        self.lock_with_id().replace_id(generate_id());
    }

    /// Everything a save needs, taken under one lock.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut state = self.lock_with_id();
        Snapshot {
            created_at: state.created_at(),
            id: state.id.clone(),
            original_id: state.original_id.clone(),
            delete_original: state.delete_original,
            regenerated: state.regenerated,
            loaded: state.origin == Origin::Loaded,
            fresh: state.origin == Origin::Generated,
            version: state.version,
            destroyed: state.destroyed,
            // Every change marks the session dirty under this lock.
            dirty: self.is_dirty(),
            data: state.data(),
        }
    }

    /// What this request changed, to replay on the record as stored at save time.
    pub(crate) fn change_set(&self) -> ChangeSet {
        let state = self.lock();
        let keys = state
            .changes
            .iter()
            .map(|(key, change)| {
                let change = match change {
                    Change::Written => match state.values.get(key) {
                        Some(value) => KeyChange::Set(value.clone()),
                        None => KeyChange::Unset,
                    },
                    Change::Updated { start, steps } => KeyChange::Update {
                        start: start.clone(),
                        steps: steps.clone(),
                    },
                };
                (key.clone(), change)
            })
            .collect();
        ChangeSet {
            loaded: state.origin == Origin::Loaded,
            destroyed: state.destroyed,
            keys,
            flash: state.outgoing_flash.clone().unwrap_or_default(),
            seen_flash: state.incoming_flash.clone().unwrap_or_default(),
        }
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

/// 18 random bytes: 144 bits, exactly 24 URL-safe base64 characters without padding.
pub(crate) fn generate_id() -> String {
    let mut bytes = [0u8; 18];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
