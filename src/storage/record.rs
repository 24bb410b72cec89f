//! [`Record`]: one stored session, and how backends encode it and name it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, SessionData};

/// One stored session: its data plus the times the lifecycle checks, and its owner.
///
/// The owner's fields are left out of the encoding when there is no owner, so that an
/// unowned session costs no byte for them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Values and the flash for the next request.
    #[serde(rename = "d")]
    pub data: SessionData,
    /// When the session was first created, in seconds since the Unix epoch.
    #[serde(rename = "c", default)]
    pub created_at: u64,
    /// When the record stops being valid, in milliseconds since the Unix epoch.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// The application's user the session belongs to ([`Session::set_owner`](crate::Session::set_owner)).
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// When the record was last written, in milliseconds since the Unix epoch: kept only
    /// for owned sessions, whose listing shows it.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub saved_at_ms: Option<u64>,
}

impl Record {
    /// The record as compact JSON bytes, the format every built-in backend stores.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing maps of JSON values to a Vec cannot fail.
        serde_json::to_vec(self).expect("a session record always serializes")
    }

    /// The length of [`encode`](Record::encode)'s bytes, counted without building them.
    pub fn encoded_len(&self) -> usize {
        let mut counter = ByteCounter(0);
        // Serializing maps of JSON values into a writer that never fails cannot fail.
        serde_json::to_writer(&mut counter, self).expect("a session record always serializes");
        counter.0
    }

    /// Decodes bytes written by [`encode`](Record::encode). `name` says which record it is in
    /// the error (a key or a path), never its content.
    pub fn decode(name: &str, bytes: &[u8]) -> Result<Record, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::corrupt(name, json_error_summary(&e)))
    }

    /// The owner of the record encoded in `bytes`, read without decoding its data; `None`
    /// for an unowned record or bytes that are not a record.
    pub(crate) fn owner_in(bytes: &[u8]) -> Option<String> {
        #[derive(Deserialize)]
        struct OwnerOnly {
            #[serde(rename = "o")]
            owner: Option<String>,
        }
        serde_json::from_slice::<OwnerOnly>(bytes).ok()?.owner
    }

    /// Refuses a stored record of `size` bytes over `limit`
    /// ([`SessionBackend::limit_record_size`](super::SessionBackend::limit_record_size)) as
    /// corrupt, so that the layer starts a fresh session instead of loading it.
    ///
    /// ```
    /// use session_layer::{Error, storage::Record};
    ///
    /// assert!(Record::check_stored_size("row 7", 1024, 1024).is_ok());
    /// let refused = Record::check_stored_size("row 7", 1025, 1024);
    /// assert!(matches!(refused, Err(Error::Corrupt { .. })));
    /// ```
    pub fn check_stored_size(name: &str, size: u64, limit: usize) -> Result<(), Error> {
        if size > limit as u64 {
            return Err(Error::corrupt(
                name,
                format!("{size} bytes, over the {limit}-byte record size limit"),
            ));
        }
        Ok(())
    }

    /// Takes a later expiry kept beside the encoded record (where a backend's
    /// [`renew`](super::SessionBackend::renew) moved it without rewriting the record): the
    /// expiry moves to `expires_at_ms` if that is later, and an owned record's last-active
    /// time moves by as much, since a renewal sets both from the same clock reading with
    /// the same TTL. A record without expiry, or an earlier time, is left as it is.
    ///
    /// ```
    /// use session_layer::storage::Record;
    ///
    /// let mut record = Record { expires_at_ms: Some(5_000), saved_at_ms: Some(1_000),
    ///     owner: Some("ann".into()), ..Record::default() };
    /// record.extend_to(9_000);
    /// assert_eq!((record.expires_at_ms, record.saved_at_ms), (Some(9_000), Some(5_000)));
    /// record.extend_to(7_000);
    /// assert_eq!(record.expires_at_ms, Some(9_000));
    /// ```
    pub fn extend_to(&mut self, expires_at_ms: u64) {
        let Some(at) = self.expires_at_ms.filter(|at| *at < expires_at_ms) else {
            return;
        };
        self.expires_at_ms = Some(expires_at_ms);
        if let Some(saved) = &mut self.saved_at_ms {
            *saved = saved.saturating_add(expires_at_ms - at);
        }
    }

    /// Moves the expiry to `expires_at_ms` if that is later, and an owned record's
    /// last-active time to `now_ms`, as a rewriting renewal does; returns whether anything
    /// moved.
    pub(crate) fn renew(&mut self, expires_at_ms: Option<u64>, now_ms: u64) -> bool {
        let Some(new) = expires_at_ms.filter(|new| self.expires_at_ms.is_some_and(|at| at < *new))
        else {
            return false;
        };
        self.expires_at_ms = Some(new);
        if self.owner.is_some() {
            self.saved_at_ms = Some(now_ms);
        }
        true
    }

    /// Whether the record is still valid at `now_ms` given an absolute lifetime limit.
    pub fn is_live(&self, now_ms: u64, max_lifetime: Option<Duration>) -> bool {
        let unexpired = self.expires_at_ms.is_none_or(|at| at > now_ms);
        let young = max_lifetime
            .is_none_or(|limit| self.created_at.saturating_add(limit.as_secs()) > now_ms / 1000);
        unexpired && young
    }
}

/// An `io::Write` that only counts what is written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What is wrong with undecodable JSON and where, without quoting any of it: serde_json's
/// own messages quote the offending string or number, which here is session data, and the
/// message goes to the log.
pub(crate) fn json_error_summary(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Io => "unreadable",
        Category::Syntax => "not valid JSON",
        Category::Data => "JSON that is not a session record",
        Category::Eof => "truncated JSON",
    };
    format!("{what} (line {}, column {})", error.line(), error.column())
}
