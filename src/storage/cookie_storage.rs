//! Sessions that live entirely in the cookie.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Expiry, Record, SessionStorage, json_error_summary};
use crate::observe::{self, Load};
use crate::session::{Pending, SaveSnapshot, SessionId, StoredSession};
use crate::{Error, Session, SessionData};

/// The whole session in the cookie value: no server-side state at all.
///
/// The [`SessionCookie`](crate::SessionCookie) signs the value (the client can read but not
/// change it) or, with `encrypted(true)`, encrypts it (the client can do neither). The limit
/// is the browser's: a cookie over 4096 bytes makes the layer answer 500, so keep the data
/// small. Expiry options are enforced from times sealed inside the value, so an old cookie
/// replayed after its TTL is refused even if the browser kept it.
///
/// Deleting data is impossible here: `regenerate_id(true)` and `destroy` only change what
/// this response's cookie says; a copy of an older cookie stays valid until it expires.
/// Set a [`ttl`](CookieStorage::ttl) to bound that window.
///
/// Nor can concurrent requests be merged: there is no shared record to merge into. Each
/// response carries a whole copy of its own request's session, and the browser keeps the
/// cookie of whichever response it receives last, so of two overlapping requests that change
/// the session, one's changes are lost, and a request that was in flight during a logout can
/// set the old session again. Use a server-side storage where that matters.
///
/// For the same reason it cannot implement [`SessionIndex`](crate::SessionIndex): nothing
/// on the server can list a user's sessions or end one. To sign a user out everywhere,
/// keep a counter in the user's row, copy it into the session at login, and clear the
/// session of any request whose copy differs from the row; incrementing the counter ends
/// every session of that user at once.
///
/// ```
/// use std::time::Duration;
/// use session_layer::CookieStorage;
///
/// let storage = CookieStorage::new().ttl(Duration::from_secs(7 * 86400));
/// # let _ = storage;
/// ```
#[derive(Clone, Debug, Default)]
pub struct CookieStorage {
    expiry: Expiry,
}

/// The cookie value: the record plus the id, so that the id stays stable across requests.
#[derive(Serialize, Deserialize)]
struct CookieRecord {
    #[serde(rename = "i")]
    id: String,
    #[serde(rename = "d")]
    data: SessionData,
    #[serde(rename = "c", default)]
    created_at: u64,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
}

impl CookieStorage {
    /// A cookie storage with no expiry of its own (the cookie's `Max-Age` still applies
    /// in the browser).
    pub fn new() -> Self {
        CookieStorage::default()
    }

    /// Idle timeout sealed into each cookie value: refused once this long has passed
    /// since it was written.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.expiry.ttl = Some(ttl);
        self
    }

    /// Absolute limit since the session was first created.
    pub fn max_lifetime(mut self, limit: Duration) -> Self {
        self.expiry.max_lifetime = Some(limit);
        self
    }

    /// Decodes a cookie value; `None` for anything that is not a live session of ours.
    fn decode(&self, value: &str) -> Option<Session> {
        let decoded: CookieRecord = match serde_json::from_str(value) {
            Ok(decoded) => decoded,
            Err(e) => {
                // Signed by us yet unreadable: written by an incompatible version.
                tracing::warn!(
                    error = %json_error_summary(&e),
                    "discarding an undecodable cookie session"
                );
                observe::load(Self::NAME, Load::Corrupt);
                return None;
            }
        };
        let record = Record {
            data: decoded.data,
            created_at: decoded.created_at,
            expires_at_ms: decoded.expires_at_ms,
            owner: decoded.owner,
            saved_at_ms: None,
        };
        if decoded.id.is_empty() {
            observe::load(Self::NAME, Load::Corrupt);
            return None;
        }
        let session = self
            .expiry
            .load(SessionId::from(decoded.id), record, None)
            .ok();
        if session.is_none() {
            observe::load(Self::NAME, Load::Expired);
        }
        session
    }
}

impl SessionStorage for CookieStorage {
    const NAME: &'static str = "cookie";

    async fn read(&self, value: Option<&str>) -> Result<Session, Error> {
        Ok(value
            .filter(|v| !v.is_empty())
            .and_then(|v| self.decode(v))
            .unwrap_or_else(Session::new))
    }

    async fn save(&self, session: &Session) -> Result<Option<String>, Error> {
        let SaveSnapshot {
            id,
            regeneration,
            pending,
            ..
        } = session.snapshot();
        if regeneration.is_some_and(|regeneration| regeneration.delete_original) {
            tracing::warn!(
                "regenerate_id(true) with CookieStorage: the old session cannot be deleted, \
                 only replaced in this response's cookie"
            );
        }
        let (stored, created_at) = match pending {
            Pending::Nothing => return Ok(None),
            Pending::Destroy => return Ok(Some(String::new())),
            Pending::Write {
                data,
                created_at,
                owner,
            } => (StoredSession { data, owner }, created_at),
            // The data travels in the cookie: a renewal seals it again with the new expiry.
            Pending::Touch { created_at, owner } => {
                let data = session.data();
                (StoredSession { data, owner }, created_at)
            }
        };
        let (record, _ttl) = self.expiry.record(stored, created_at);
        let value = CookieRecord {
            id: id.to_string(),
            data: record.data,
            created_at: record.created_at,
            expires_at_ms: record.expires_at_ms,
            owner: record.owner,
        };
        Ok(Some(serde_json::to_string(&value)?))
    }
}
