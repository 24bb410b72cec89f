//! Sessions of one owner: [`SessionIndex`], what applications call to list and end a
//! user's sessions, and [`OwnerIndexBackend`], what a backend adds so that its
//! [`ServerStorage`] can.

use std::future::Future;
use std::time::SystemTime;

use super::{Record, SessionBackend, SessionStorage, unix_now_ms};
#[cfg(doc)]
use super::{ServerStorage, Versioned};
use crate::{Error, Session, SessionData, SessionHandle};

/// One live session of an owner, as [`SessionIndex::sessions_of`] lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionInfo {
    /// Names the session to [`SessionIndex::end_session`]; compare it with
    /// [`Session::handle`] to mark the session of the request at hand.
    pub handle: SessionHandle,
    /// When the session was first created (a login that regenerates the id keeps it).
    pub created: SystemTime,
    /// When it expires unless saved again; `None` when the storage sets no expiry.
    pub expires: Option<SystemTime>,
    /// When it was last saved: the last request that changed it (or, with the layer's
    /// `rolling(true)`, the last request).
    pub saved: SystemTime,
    /// Its values, and the flash set for its next request.
    pub data: SessionData,
}

/// Lists and ends the sessions of one owner (see [`Session::set_owner`]): "where you are
/// signed in", "sign out that device", "sign out everywhere else".
///
/// Implemented by the storages that can find sessions by owner (through
/// [`OwnerIndexBackend`]): [`MemoryStorage`], [`FsStorage`](crate::FsStorage), and with
/// their features `RedisStorage`, `PostgresStorage`, `MySqlStorage` and `SqliteStorage`.
/// [`CookieStorage`](crate::CookieStorage) cannot: it keeps no server state.
///
/// Ending is final, as [`Session::destroy`] is: a request that loaded a session before it
/// was ended writes nothing back when it saves, and its response clears the cookie.
///
/// ```
/// use session_layer::{MemoryStorage, SessionIndex, SessionStorage};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let storage = MemoryStorage::new();
/// for _ in 0..2 {
///     // A login: the session names its user.
///     let session = storage.read(None).await?;
///     session.set_owner("user-42")?;
///     storage.save(&session).await?;
/// }
/// let current = storage.read(None).await?;
/// current.set_owner("user-42")?;
/// storage.save(&current).await?;
///
/// let listed = storage.sessions_of("user-42").await?;
/// assert_eq!(listed.len(), 3);
/// assert!(listed.iter().any(|info| info.handle == current.handle()));
/// // "Sign out everywhere else":
/// assert_eq!(storage.end_sessions_of("user-42", Some(&current)).await?, 2);
/// assert_eq!(storage.sessions_of("user-42").await?.len(), 1);
/// # Ok::<(), session_layer::Error>(())
/// # }).unwrap();
/// ```
///
/// [`MemoryStorage`]: crate::MemoryStorage
pub trait SessionIndex: SessionStorage {
    /// The owner's live sessions, most recently saved first.
    fn sessions_of(
        &self,
        owner: &str,
    ) -> impl Future<Output = Result<Vec<SessionInfo>, Error>> + Send;

    /// Ends the session named by `handle` if it is `owner`'s, and says whether it did:
    /// `Ok(false)` for an unknown handle or another owner's session, so that a handle
    /// posted by one user can never end another user's session.
    fn end_session(
        &self,
        owner: &str,
        handle: &SessionHandle,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Ends every session of `owner` but `except` (the session of the request at hand, for
    /// "sign out everywhere else", also after it called
    /// [`regenerate_id`](Session::regenerate_id)), and returns how many it ended.
    fn end_sessions_of(
        &self,
        owner: &str,
        except: Option<&Session>,
    ) -> impl Future<Output = Result<u64, Error>> + Send;
}

/// What a [`SessionBackend`] adds so that its [`ServerStorage`] implements
/// [`SessionIndex`]: find the records of an owner ([`Record::owner`]) and delete them.
///
/// The backend keeps its index in step with every `store` and `delete` it does, and with
/// its own expiry and eviction, so that no entry of a session that is gone stays behind.
pub trait OwnerIndexBackend: SessionBackend {
    /// The records held for `owner`, each with its handle, in any order; expired ones
    /// may be among them (the lifecycle leaves them out).
    fn records_of(
        &self,
        owner: &str,
    ) -> impl Future<Output = Result<Vec<(SessionHandle, Record)>, Error>> + Send;

    /// Deletes the record named by `handle` if its owner is `owner`, checked in the same
    /// step as the delete; returns whether it deleted one.
    fn delete_owned(
        &self,
        owner: &str,
        handle: &SessionHandle,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Deletes every record of `owner` whose handle is not in `except`, and returns how
    /// many of them had not expired. Override it where the store can do it in one step; the default lists
    /// and deletes until a listing finds nothing more to delete, so that a session moved
    /// to a new id ([`Session::regenerate_id`]) meanwhile is caught under its new id.
    fn delete_all_owned(
        &self,
        owner: &str,
        except: &[SessionHandle],
    ) -> impl Future<Output = Result<u64, Error>> + Send {
        delete_all_owned_in_rounds(self, owner, except)
    }
}

/// How many listings [`OwnerIndexBackend::delete_all_owned`] makes by default: a move
/// caught by one is deleted by the next, and new logins of the owner cannot keep it busy.
const MAX_DELETE_ROUNDS: usize = 8;

pub(crate) async fn delete_all_owned_in_rounds<B: OwnerIndexBackend + ?Sized>(
    backend: &B,
    owner: &str,
    except: &[SessionHandle],
) -> Result<u64, Error> {
    let mut ended = 0;
    for _ in 0..MAX_DELETE_ROUNDS {
        let now = unix_now_ms();
        let mut left = Vec::new();
        for (handle, record) in backend.records_of(owner).await? {
            if !except.contains(&handle) {
                left.push((handle, record.is_live(now, None)));
            }
        }
        if left.is_empty() {
            break;
        }
        for (handle, live) in &left {
            // An expired record goes too, but it was no session to end.
            if backend.delete_owned(owner, handle).await? && *live {
                ended += 1;
            }
        }
    }
    Ok(ended)
}
