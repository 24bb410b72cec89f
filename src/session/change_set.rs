//! What one request changed in its session, and the one set of merge rules that applies it
//! to a record as stored at save time.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::SessionData;
use crate::Error;

/// A type-erased [`Session::update`](crate::Session::update) closure: the stored value in,
/// the new value out.
pub(crate) type Updater = Arc<dyn Fn(Option<&Value>) -> Result<Value, Error> + Send + Sync>;

/// What a request did to one key.
#[derive(Clone)]
pub(crate) enum KeyChange {
    /// Set to this value (a JSON `null` never gets here: it is an unset).
    Set(Value),
    /// Removed.
    Unset,
    /// `update` closures, applied in order to `start`: the value written earlier in the
    /// request (`Some`), or the value stored at save time (`None`).
    Update {
        start: Option<Option<Value>>,
        steps: Vec<Updater>,
    },
}

impl fmt::Debug for KeyChange {
    /// Shows what kind of change, never a value: values are user data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyChange::Set(_) => f.write_str("Set"),
            KeyChange::Unset => f.write_str("Unset"),
            KeyChange::Update { start, steps } => f
                .debug_struct("Update")
                .field("from_stored", &start.is_none())
                .field("steps", &steps.len())
                .finish(),
        }
    }
}

/// Everything one request changed in its session's data, replayable on any record.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChangeSet {
    /// Whether the request loaded a stored session: if its record is gone at save time, the
    /// session was destroyed or moved by another request and must not come back.
    pub loaded: bool,
    /// The session was destroyed.
    pub destroyed: bool,
    /// Keys in the order they were first changed; one entry per key.
    pub keys: Vec<(String, KeyChange)>,
    /// Flash set for the next request.
    pub flash: Map<String, Value>,
    /// Flash that arrived with the request, as it was seen: consumed, but only while the
    /// stored value is still this one.
    pub seen_flash: Map<String, Value>,
    /// The owner this request set (`Some(Some(_))`) or cleared (`Some(None)`); `None` when
    /// it left the owner alone, so that the stored one stays.
    pub owner: Option<Option<String>>,
}

/// A session as stored, as far as the merge rules read and write it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct StoredSession {
    pub data: SessionData,
    /// The application's user the session belongs to, if any.
    pub owner: Option<String>,
}

/// What a save must do, given the record stored now.
#[derive(Debug, PartialEq)]
pub(crate) enum Merged {
    /// Write this data and owner.
    Write(StoredSession),
    /// This request destroyed the session: delete it.
    Delete,
    /// The session this request loaded is gone: write nothing, clear the cookie.
    Gone,
}

impl ChangeSet {
    /// The merge rules: applies this change set to `stored` (`None`: nothing is stored).
    ///
    /// A set or unset replaces what is stored under its key, an update is re-run on the
    /// stored value, other keys keep what is stored, a seen flash value goes only while
    /// unchanged, a new flash replaces one under the same key, and the owner is replaced
    /// only when this request set or cleared it, as a key is.
    pub fn apply(&self, stored: Option<StoredSession>) -> Result<Merged, Error> {
        if self.destroyed {
            return Ok(Merged::Delete);
        }
        let StoredSession { mut data, owner } = match stored {
            Some(stored) => stored,
            None if self.loaded => return Ok(Merged::Gone),
            None => StoredSession::default(),
        };
        let owner = match &self.owner {
            Some(changed) => changed.clone(),
            None => owner,
        };
        for (key, change) in &self.keys {
            let value = match change {
                KeyChange::Set(value) => Some(value.clone()),
                KeyChange::Unset => None,
                KeyChange::Update { start, steps } => {
                    let mut value = match start {
                        Some(written) => written.clone(),
                        None => data.values.get(key).cloned(),
                    };
                    for step in steps {
                        value = Some(step(value.as_ref())?).filter(|v| !v.is_null());
                    }
                    value
                }
            };
            match value {
                Some(value) => data.values.insert(key.clone(), value),
                None => data.values.remove(key),
            };
        }
        for (key, seen) in &self.seen_flash {
            if data.flash.get(key) == Some(seen) {
                data.flash.remove(key);
            }
        }
        for (key, value) in &self.flash {
            data.flash.insert(key.clone(), value.clone());
        }
        Ok(Merged::Write(StoredSession { data, owner }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(values: Value, flash: Value) -> SessionData {
        let map = |v: Value| v.as_object().cloned().unwrap_or_default();
        SessionData {
            values: map(values),
            flash: map(flash),
        }
    }

    fn increment() -> Updater {
        Arc::new(|v: Option<&Value>| Ok(json!(v.and_then(Value::as_u64).unwrap_or(0) + 1)))
    }

    fn loaded() -> ChangeSet {
        ChangeSet {
            loaded: true,
            ..ChangeSet::default()
        }
    }

    fn written(merged: Merged) -> SessionData {
        written_with_owner(merged).data
    }

    fn written_with_owner(merged: Merged) -> StoredSession {
        match merged {
            Merged::Write(stored) => stored,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    fn unowned(data: SessionData) -> Option<StoredSession> {
        Some(StoredSession { data, owner: None })
    }

    fn owned_by(owner: &str, values: Value) -> Option<StoredSession> {
        Some(StoredSession {
            data: data(values, json!({})),
            owner: Some(owner.into()),
        })
    }

    #[test]
    fn untouched_keys_keep_what_is_stored() {
        let mut changes = loaded();
        changes.keys.push(("mine".into(), KeyChange::Set(json!(1))));
        let stored = data(json!({"theirs": 2, "mine": 0}), json!({}));
        let merged = written(changes.apply(unowned(stored)).unwrap());
        assert_eq!(merged, data(json!({"theirs": 2, "mine": 1}), json!({})));
    }

    #[test]
    fn an_unset_key_stays_unset() {
        let mut changes = loaded();
        changes.keys.push(("gone".into(), KeyChange::Unset));
        let stored = data(json!({"gone": "set again elsewhere", "kept": 1}), json!({}));
        let merged = written(changes.apply(unowned(stored)).unwrap());
        assert_eq!(merged, data(json!({"kept": 1}), json!({})));
    }

    #[test]
    fn updates_rerun_on_the_stored_value() {
        let mut changes = loaded();
        let steps = vec![increment(), increment()];
        changes
            .keys
            .push(("n".into(), KeyChange::Update { start: None, steps }));
        let merged = written(
            changes
                .apply(unowned(data(json!({"n": 40}), json!({}))))
                .unwrap(),
        );
        assert_eq!(merged.values["n"], json!(42));
        // Absent when stored: the closure gets None.
        let merged = written(changes.apply(unowned(SessionData::default())).unwrap());
        assert_eq!(merged.values["n"], json!(2));
    }

    #[test]
    fn an_update_after_a_set_starts_from_the_set_value() {
        let mut changes = loaded();
        changes.keys.push((
            "n".into(),
            KeyChange::Update {
                start: Some(Some(json!(10))),
                steps: vec![increment()],
            },
        ));
        let merged = written(
            changes
                .apply(unowned(data(json!({"n": 99}), json!({}))))
                .unwrap(),
        );
        assert_eq!(merged.values["n"], json!(11));
        // After an unset, from nothing.
        changes.keys[0].1 = KeyChange::Update {
            start: Some(None),
            steps: vec![increment()],
        };
        let merged = written(
            changes
                .apply(unowned(data(json!({"n": 99}), json!({}))))
                .unwrap(),
        );
        assert_eq!(merged.values["n"], json!(1));
    }

    #[test]
    fn an_update_to_null_removes_the_key() {
        let mut changes = loaded();
        let to_null: Updater = Arc::new(|_| Ok(Value::Null));
        changes.keys.push((
            "n".into(),
            KeyChange::Update {
                start: None,
                steps: vec![to_null],
            },
        ));
        let merged = written(
            changes
                .apply(unowned(data(json!({"n": 1}), json!({}))))
                .unwrap(),
        );
        assert!(merged.values.is_empty());
    }

    #[test]
    fn a_failing_update_fails_the_merge() {
        let mut changes = loaded();
        let failing: Updater = Arc::new(|_| Err(Error::Destroyed));
        changes.keys.push((
            "n".into(),
            KeyChange::Update {
                start: None,
                steps: vec![failing],
            },
        ));
        assert!(changes.apply(unowned(SessionData::default())).is_err());
    }

    #[test]
    fn seen_flash_goes_only_while_unchanged() {
        let mut changes = loaded();
        changes.seen_flash = data(json!({}), json!({"a": "old", "b": "old"})).flash;
        let stored = data(json!({}), json!({"a": "old", "b": "newer", "c": "unseen"}));
        let merged = written(changes.apply(unowned(stored)).unwrap());
        assert_eq!(
            merged.flash,
            data(json!({}), json!({"b": "newer", "c": "unseen"})).flash
        );
    }

    #[test]
    fn new_flash_replaces_stored_flash() {
        let mut changes = loaded();
        changes.seen_flash = data(json!({}), json!({"a": "seen"})).flash;
        changes.flash = data(json!({}), json!({"a": "mine"})).flash;
        let stored = data(json!({}), json!({"a": "seen"}));
        let merged = written(changes.apply(unowned(stored)).unwrap());
        assert_eq!(merged.flash["a"], json!("mine"));
    }

    #[test]
    fn a_loaded_session_that_is_gone_stays_gone() {
        let mut changes = loaded();
        changes.keys.push(("k".into(), KeyChange::Set(json!(1))));
        assert_eq!(changes.apply(None).unwrap(), Merged::Gone);
    }

    #[test]
    fn a_new_session_starts_from_nothing() {
        let mut changes = ChangeSet::default();
        changes.keys.push(("k".into(), KeyChange::Set(json!(1))));
        let merged = written(changes.apply(None).unwrap());
        assert_eq!(merged, data(json!({"k": 1}), json!({})));
    }

    #[test]
    fn destroy_deletes_whatever_is_stored() {
        let mut changes = loaded();
        changes.destroyed = true;
        changes.keys.push(("k".into(), KeyChange::Set(json!(1))));
        assert_eq!(changes.apply(None).unwrap(), Merged::Delete);
        assert_eq!(
            changes.apply(unowned(SessionData::default())).unwrap(),
            Merged::Delete
        );
    }

    #[test]
    fn an_untouched_owner_keeps_what_is_stored() {
        let mut changes = loaded();
        changes.keys.push(("k".into(), KeyChange::Set(json!(1))));
        let merged = written_with_owner(changes.apply(owned_by("ann", json!({}))).unwrap());
        assert_eq!(merged.owner.as_deref(), Some("ann"));
    }

    #[test]
    fn a_set_owner_replaces_the_stored_one_and_keeps_other_keys() {
        let mut changes = loaded();
        changes.owner = Some(Some("bob".into()));
        let stored = owned_by("ann", json!({"theirs": 1}));
        let merged = written_with_owner(changes.apply(stored).unwrap());
        assert_eq!(merged.owner.as_deref(), Some("bob"));
        assert_eq!(merged.data, data(json!({"theirs": 1}), json!({})));
    }

    #[test]
    fn a_cleared_owner_stays_cleared() {
        let mut changes = loaded();
        changes.owner = Some(None);
        let merged = written_with_owner(changes.apply(owned_by("ann", json!({}))).unwrap());
        assert_eq!(merged.owner, None);
    }

    #[test]
    fn an_owned_session_that_is_gone_or_destroyed_writes_no_owner() {
        let mut changes = loaded();
        changes.owner = Some(Some("ann".into()));
        assert_eq!(changes.apply(None).unwrap(), Merged::Gone);
        changes.destroyed = true;
        let stored = owned_by("ann", json!({}));
        assert_eq!(changes.apply(stored).unwrap(), Merged::Delete);
    }

    #[test]
    fn a_new_session_gets_the_owner_it_set() {
        let changes = ChangeSet {
            owner: Some(Some("ann".into())),
            ..ChangeSet::default()
        };
        let merged = written_with_owner(changes.apply(None).unwrap());
        assert_eq!(merged.owner.as_deref(), Some("ann"));
    }
}
