//! [`SessionHandle`]: a name for one session that a page can show and post back, and that
//! cannot be used as its cookie.

use std::fmt;
use std::str::FromStr;

use super::id::{SessionId, id_digest};

/// Names one session in a listing of [`SessionIndex::sessions_of`](crate::SessionIndex),
/// so that a page can post it back to [`end_session`](crate::SessionIndex::end_session).
///
/// It is the SHA-256 digest of the session id, as 64 lowercase hexadecimal characters: the
/// id cannot be recovered from it, so showing it to the user (or anyone) gives nothing that
/// works as a cookie. [`Session::handle`](crate::Session::handle) gives the current session's,
/// to mark "this device" in a listing. A session gets a new handle with a new id
/// ([`regenerate_id`](crate::Session::regenerate_id)).
///
/// ```
/// use session_layer::{Session, SessionHandle};
///
/// let session = Session::new();
/// let handle = session.handle();
/// // Shown in a page, posted back, parsed again:
/// let posted: SessionHandle = handle.to_string().parse()?;
/// assert_eq!(posted, handle);
/// assert!(!handle.to_string().contains(&session.id()));
/// assert!("not a handle".parse::<SessionHandle>().is_err());
/// # Ok::<(), session_layer::InvalidSessionHandle>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionHandle(String);

impl SessionHandle {
    /// The handle of the session with this id, for a backend that keeps its records
    /// under the id and has to name them in a listing.
    pub fn of_id(id: &str) -> SessionHandle {
        SessionHandle(id_digest(id))
    }

    /// The handle of `id`, from the digest it keeps.
    pub(crate) fn of_session_id(id: &SessionId) -> SessionHandle {
        SessionHandle(id.digest().to_owned())
    }

    /// The handle as text: what [`Display`](fmt::Display) writes and
    /// [`FromStr`] reads.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionHandle {
    /// Shows a prefix only, as the logs show of a digest: enough to tell sessions apart.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({}…)", &self.0[..8])
    }
}

impl FromStr for SessionHandle {
    type Err = InvalidSessionHandle;

    /// Accepts exactly what [`Display`](fmt::Display) writes: 64 lowercase hexadecimal
    /// characters.
    fn from_str(text: &str) -> Result<SessionHandle, InvalidSessionHandle> {
        let well_formed = text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if well_formed {
            Ok(SessionHandle(text.to_owned()))
        } else {
            Err(InvalidSessionHandle)
        }
    }
}

/// Text that is not a [`SessionHandle`], such as a tampered form field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidSessionHandle;

impl fmt::Display for InvalidSessionHandle {
    /// Says what a handle looks like, never what was given: it came from a client.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a session handle: expected 64 lowercase hexadecimal characters")
    }
}

impl std::error::Error for InvalidSessionHandle {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_parses_back_and_hides_the_id() {
        let handle = SessionHandle::of_id("some-session-id");
        assert_eq!(
            handle.to_string().parse::<SessionHandle>(),
            Ok(handle.clone())
        );
        assert_eq!(handle.as_str(), id_digest("some-session-id"));
        assert!(!format!("{handle:?}").contains(handle.as_str()));
    }

    #[test]
    fn anything_else_is_refused() {
        let valid = SessionHandle::of_id("x").to_string();
        let refused = [
            String::new(),
            valid[..63].to_owned(),
            format!("{valid}0"),
            valid.to_uppercase(),
            format!("{}g", &valid[..63]),
            format!("{}é", &valid[..62]),
        ];
        for text in refused {
            assert_eq!(text.parse::<SessionHandle>(), Err(InvalidSessionHandle));
        }
    }
}
