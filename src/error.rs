//! The one error type of the crate.

use std::fmt;

/// Everything that can go wrong while handling a session.
///
/// The layer never shows these to clients: a storage error or an oversize cookie becomes a
/// bare `500 Internal Server Error`, and the details go to the log through `tracing`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `set`, `unset`, `flash` or `regenerate_id` was called on a destroyed session.
    Destroyed,
    /// The `Set-Cookie` value would be longer than browsers accept (4096 bytes).
    CookieTooLarge {
        /// The length in bytes the cookie would have had.
        length: usize,
    },
    /// A session record is bigger than the storage's
    /// [`max_record_size`](crate::storage::ServerStorage::max_record_size): it was not saved.
    RecordTooLarge {
        /// The record's encoded size in bytes.
        size: usize,
        /// The storage's limit in bytes.
        limit: usize,
    },
    /// A value could not be turned into JSON.
    Serialize(serde_json::Error),
    /// A stored session record could not be decoded.
    Corrupt {
        /// Which record (a storage key or file path), never the record's content.
        record: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The storage or the layer was configured with something that cannot work.
    Config(String),
    /// A filesystem operation failed.
    Io(std::io::Error),
    /// A storage server (Redis, Memcached, a database) failed or could not be reached.
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// A storage server did not answer in time.
    Timeout,
    /// The `Session` extractor was used on a route that has no [`SessionLayer`](crate::SessionLayer).
    MissingLayer,
}

impl Error {
    /// The kind of error, for the `error.type` field of the session span: never its text,
    /// which may name a server or a record.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Error::Destroyed => "destroyed",
            Error::CookieTooLarge { .. } => "cookie_too_large",
            Error::RecordTooLarge { .. } => "record_too_large",
            Error::Serialize(_) => "serialize",
            Error::Corrupt { .. } => "corrupt",
            Error::Config(_) => "config",
            Error::Io(_) => "io",
            Error::Backend(_) => "backend",
            Error::Timeout => "timeout",
            Error::MissingLayer => "missing_layer",
        }
    }

    /// Wraps any error of a storage backend.
    pub fn backend(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Backend(error.into())
    }

    pub(crate) fn corrupt(record: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::Corrupt {
            record: record.into(),
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Destroyed => f.write_str("the session has been destroyed"),
            Error::CookieTooLarge { length } => write!(
                f,
                "cookie length will exceed browser maximum (4096 bytes). Length: {length}"
            ),
            Error::RecordTooLarge { size, limit } => write!(
                f,
                "session record of {size} bytes exceeds the storage's limit of {limit} bytes"
            ),
            Error::Serialize(e) => write!(f, "session value cannot be serialized to JSON: {e}"),
            Error::Corrupt { record, reason } => {
                write!(f, "corrupt session record {record}: {reason}")
            }
            Error::Config(message) => write!(f, "invalid session configuration: {message}"),
            Error::Io(e) => write!(f, "session storage I/O error: {e}"),
            Error::Backend(e) => write!(f, "session storage error: {e}"),
            Error::Timeout => f.write_str("session storage did not answer in time"),
            Error::MissingLayer => f.write_str(
                "no session in the request extensions: is SessionLayer installed on this route?",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Serialize(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Backend(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Serialize(e)
    }
}
