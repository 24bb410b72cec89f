//! The owner of a [`Session`] and its [`SessionHandle`]: what a storage implementing
//! [`SessionIndex`](crate::SessionIndex) lists and ends sessions by.

use super::handle::Session;
use super::session_handle::SessionHandle;
use crate::Error;

impl Session {
    /// Marks the session as `owner`'s: the application's id for the user, set at login, so
    /// that a storage implementing [`SessionIndex`](crate::SessionIndex) can list and end
    /// the user's sessions. A change like any other: it marks the session dirty, and a
    /// save merges it with what concurrent requests saved as it merges a [`set`](Session::set).
    ///
    /// ```
    /// use session_layer::Session;
    ///
    /// let session = Session::new();
    /// session.set_owner("user-42")?;
    /// assert_eq!(session.owner().as_deref(), Some("user-42"));
    /// session.clear_owner()?;
    /// assert_eq!(session.owner(), None);
    /// # Ok::<(), session_layer::Error>(())
    /// ```
    pub fn set_owner(&self, owner: impl Into<String>) -> Result<(), Error> {
        self.replace_owner(Some(owner.into()))
    }

    /// Makes the session nobody's, as at a logout that keeps the session; dirty, merged
    /// like [`set_owner`](Session::set_owner).
    pub fn clear_owner(&self) -> Result<(), Error> {
        self.replace_owner(None)
    }

    /// The owner set by [`set_owner`](Session::set_owner) in this request or a previous
    /// one; `None` when there is none or the session is destroyed.
    pub fn owner(&self) -> Option<String> {
        let state = self.lock();
        if state.destroyed {
            return None;
        }
        state.owner.clone()
    }

    fn replace_owner(&self, owner: Option<String>) -> Result<(), Error> {
        let mut guard = self.lock();
        let state = guard.mutable()?;
        let previous = std::mem::replace(&mut state.owner, owner);
        if !state.owner_changed {
            state.first_owner = previous;
            state.owner_changed = true;
        }
        self.mark_dirty();
        Ok(())
    }

    /// The session's [`SessionHandle`]: how a listing of its owner's sessions names it, to
    /// mark "this device". It follows the current id, so it changes with
    /// [`regenerate_id`](Session::regenerate_id).
    pub fn handle(&self) -> SessionHandle {
        SessionHandle::of_session_id(self.lock().id())
    }

    /// The handle of the id the session was created or loaded with, where it stays stored
    /// until a save moves it.
    pub(crate) fn original_handle(&self) -> SessionHandle {
        SessionHandle::of_session_id(self.lock().original_id())
    }
}
