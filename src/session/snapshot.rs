//! [`SaveSnapshot`]: everything a storage needs from a session to save it.

use super::SessionData;
use super::id::SessionId;

/// How a session came to be; decides how a storage may write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A new random id drawn here: nobody else can hold it.
    Generated,
    /// An id given by the caller (or kept by `use_unknown_ids`), with nothing stored yet.
    Given,
    /// Loaded from a storage, at the stored version when the storage has versions.
    Loaded { version: Option<u64> },
}

impl Origin {
    /// Whether the session was loaded from a storage.
    pub(crate) fn is_loaded(self) -> bool {
        matches!(self, Origin::Loaded { .. })
    }
}

/// A `regenerate_id` since the session was created or loaded.
#[derive(Debug)]
pub(crate) struct Regeneration {
    /// The id the session was created or loaded with: where its stored record is.
    pub original_id: SessionId,
    /// `regenerate_id(true)` was called: the original id goes on save.
    pub delete_original: bool,
}

/// What a save has to do.
#[derive(Debug)]
pub(crate) enum Pending {
    /// Nothing changed.
    Nothing,
    /// Write this data and owner, for a session created at `created_at` (seconds since
    /// the epoch).
    Write {
        data: SessionData,
        created_at: u64,
        owner: Option<String>,
    },
    /// Only the expiry is to be renewed (`rolling`, or [`Session::touch`](crate::Session::touch)
    /// alone) on a session loaded from the store: its stored record is left as it is.
    Touch {
        created_at: u64,
        owner: Option<String>,
    },
    /// The session was destroyed: delete it.
    Destroy,
}

/// Everything a save needs from a session, taken under one lock.
#[derive(Debug)]
pub(crate) struct SaveSnapshot {
    /// The current id: where the session is written.
    pub id: SessionId,
    pub origin: Origin,
    pub regeneration: Option<Regeneration>,
    pub pending: Pending,
    /// The owner of the record the session was loaded from (`None` for one not loaded):
    /// a storage whose index is keyed by owner updates that owner's entry as it writes.
    pub stored_owner: Option<String>,
}
