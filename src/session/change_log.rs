//! [`ChangeLog`]: which keys a request changed, and how, so that a save can replay them.

use serde_json::{Map, Value};

use super::change_set::{KeyChange, Updater};

/// How a request changed one key, kept cheap until a save has to merge.
enum LoggedChange {
    /// Set or unset: the value is what the session holds at save time.
    Written,
    /// Updated: `start` is the value written earlier in this request (`None`: the stored
    /// value), and `steps` the closures to run on it.
    Updated {
        start: Option<Option<Value>>,
        steps: Vec<Updater>,
    },
}

/// The keys a request changed, in first-changed order, one entry per key.
#[derive(Default)]
pub(super) struct ChangeLog(Vec<(String, LoggedChange)>);

impl ChangeLog {
    fn entry_mut(&mut self, key: &str) -> Option<&mut LoggedChange> {
        self.0
            .iter_mut()
            .find_map(|(k, change)| (k == key).then_some(change))
    }

    /// Records that `key` was set or unset.
    pub(super) fn record_write(&mut self, key: &str) {
        match self.entry_mut(key) {
            Some(change) => *change = LoggedChange::Written,
            None => self.0.push((key.to_owned(), LoggedChange::Written)),
        }
    }

    /// Records an `update` of `key` made when its value was `before`.
    pub(super) fn record_update(&mut self, key: &str, before: Option<Value>, step: Updater) {
        match self.entry_mut(key) {
            Some(LoggedChange::Updated { steps, .. }) => steps.push(step),
            Some(change) => {
                *change = LoggedChange::Updated {
                    start: Some(before),
                    steps: vec![step],
                }
            }
            None => self.0.push((
                key.to_owned(),
                LoggedChange::Updated {
                    start: None,
                    steps: vec![step],
                },
            )),
        }
    }

    /// Whether the request changed no key.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the request set, unset or updated `key`.
    pub(super) fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Each change as a storage replays it, given the values the session holds now.
    pub(super) fn resolve(&self, values: &Map<String, Value>) -> Vec<(String, KeyChange)> {
        self.0
            .iter()
            .map(|(key, change)| {
                let change = match change {
                    LoggedChange::Written => match values.get(key) {
                        Some(value) => KeyChange::Set(value.clone()),
                        None => KeyChange::Unset,
                    },
                    LoggedChange::Updated { start, steps } => KeyChange::Update {
                        start: start.clone(),
                        steps: steps.clone(),
                    },
                };
                (key.clone(), change)
            })
            .collect()
    }
}
