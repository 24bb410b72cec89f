//! The session model: the [`Session`] handle that handlers read and write, its state and
//! change log, the merge rules that replay a request's changes on what is stored, and
//! typed keys.
//!
//! Storages build on this module; it knows nothing of them. A storage takes a
//! [`SaveSnapshot`] of a session to save it, and its [`ChangeSet`] when another request
//! saved first and the changes must be replayed.

mod change_log;
mod change_set;
pub(crate) mod clock;
mod data;
mod handle;
mod id;
mod key;
mod owner;
mod session_handle;
mod snapshot;
mod state;

pub(crate) use self::change_set::{ChangeSet, Merged, StoredSession};
pub use self::data::SessionData;
pub use self::handle::Session;
pub(crate) use self::id::generate_id;
pub use self::id::{SessionId, id_digest};
pub use self::key::Key;
pub use self::session_handle::{InvalidSessionHandle, SessionHandle};
pub(crate) use self::snapshot::{Origin, Pending, Regeneration, SaveSnapshot};
