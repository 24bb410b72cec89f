//! The outcomes the span fields and metric labels name: a fixed set of static strings, so
//! that no value a client sends can become a label.

/// How a request's session was loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Load {
    /// A stored session, read.
    Loaded,
    /// No session value came with the request (or none that verified): a fresh session.
    New,
    /// The value named a session past its TTL or lifetime: a fresh session.
    Expired,
    /// The value named no stored session: a fresh session.
    UnknownId,
    /// The record could not be decoded (or is over the size limit): a fresh session.
    Corrupt,
    /// The store failed: the request was answered 500.
    Error,
}

impl Load {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Load::Loaded => "loaded",
            Load::New => "new",
            Load::Expired => "expired",
            Load::UnknownId => "unknown_id",
            Load::Corrupt => "corrupt",
            Load::Error => "error",
        }
    }
}

/// How a request's session was saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Save {
    /// Written (or, for the cookie storage, sent).
    Saved,
    /// Nothing to write.
    Unchanged,
    /// Destroyed: deleted, and the cookie cleared.
    Destroyed,
    /// Another request destroyed or moved the session first: nothing written, cookie cleared.
    Gone,
    /// The store failed (or the record was too large): the request was answered 500.
    Error,
}

impl Save {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Save::Saved => "saved",
            Save::Unchanged => "unchanged",
            Save::Destroyed => "destroyed",
            Save::Gone => "gone",
            Save::Error => "error",
        }
    }
}

/// Why a session value a request carried was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Shaped like a sealed value, but no configured secret verifies it: altered, forged,
    /// or sealed with a secret no longer configured (the two cannot be told apart).
    Tampered,
    /// Not shaped like a value any secret seals (bad encoding, cut short).
    Malformed,
    /// Two different values that both verify: one was planted by a sibling subdomain.
    PlantedDuplicate,
    /// Longer than any cookie a browser stores.
    Oversize,
}

impl Refusal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::Tampered => "tampered",
            Refusal::Malformed => "malformed",
            Refusal::PlantedDuplicate => "planted_duplicate",
            Refusal::Oversize => "oversize",
        }
    }
}
