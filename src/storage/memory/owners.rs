//! [`Owners`]: which held sessions belong to which owner, so that listing or ending an
//! owner's sessions touches only those.

use std::collections::HashMap;

use crate::SessionHandle;

/// Owner → the places (in `Sessions::slots`) of the owner's sessions, by handle. An owner
/// is here exactly while it has a session held, and an unowned session is never here.
#[derive(Default)]
pub(super) struct Owners(HashMap<String, HashMap<SessionHandle, usize>>);

impl Owners {
    /// Records that the session `id`, held at `at`, is `owner`'s.
    pub(super) fn add(&mut self, owner: &str, id: &str, at: usize) {
        let handle = SessionHandle::of_id(id);
        match self.0.get_mut(owner) {
            Some(sessions) => {
                sessions.insert(handle, at);
            }
            None => {
                self.0
                    .insert(owner.to_owned(), HashMap::from([(handle, at)]));
            }
        }
    }

    /// Forgets that the session `id` is `owner`'s, and the owner with its last session.
    pub(super) fn remove(&mut self, owner: &str, id: &str) {
        let Some(sessions) = self.0.get_mut(owner) else {
            return;
        };
        sessions.remove(&SessionHandle::of_id(id));
        if sessions.is_empty() {
            self.0.remove(owner);
        }
    }

    /// The owner's sessions: handle and place.
    pub(super) fn of(&self, owner: &str) -> impl Iterator<Item = (&SessionHandle, usize)> {
        self.0
            .get(owner)
            .into_iter()
            .flat_map(|sessions| sessions.iter().map(|(handle, at)| (handle, *at)))
    }

    /// Where the session named by `handle` is held, if it is `owner`'s.
    pub(super) fn find(&self, owner: &str, handle: &SessionHandle) -> Option<usize> {
        self.0.get(owner)?.get(handle).copied()
    }

    /// How many owners have a session held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// How many sessions have an owner.
    #[cfg(test)]
    pub(super) fn sessions(&self) -> usize {
        self.0.values().map(HashMap::len).sum()
    }
}
