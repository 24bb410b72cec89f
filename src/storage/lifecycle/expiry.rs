//! [`Expiry`]: the idle timeout and the absolute lifetime every storage enforces.

use std::time::Duration;

use crate::Session;
use crate::session::clock::{saturating_millis, unix_now_ms};
use crate::session::{SessionId, StoredSession};
use crate::storage::{Record, Renewal};

/// Expiry settings shared by every storage: an idle TTL refreshed on each write and an
/// absolute lifetime counted from the session's creation.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Expiry {
    pub ttl: Option<Duration>,
    pub max_lifetime: Option<Duration>,
}

impl Expiry {
    /// The record a save writes, and how long it should live.
    pub fn record(&self, stored: StoredSession, created_at: u64) -> (Record, Option<Duration>) {
        let now_ms = unix_now_ms();
        // A creation time in the future (see `live_since`) is written back as now.
        let created_at = created_at.min(now_ms / 1000);
        let ttl = self.ttl_from(created_at, now_ms);
        // Only an owned session is listed, so only it needs its last save time.
        let saved_at_ms = stored.owner.is_some().then_some(now_ms);
        let record = Record {
            data: stored.data,
            created_at,
            expires_at_ms: ttl.map(|ttl| now_ms.saturating_add(saturating_millis(ttl))),
            owner: stored.owner,
            saved_at_ms,
        };
        (record, ttl)
    }

    /// What a renewal of a session created at `created_at` (and owned by `owner`) moves its
    /// stored record to: the expiry a save made now would write.
    pub fn renewal<'a>(&self, created_at: u64, owner: Option<&'a str>) -> Renewal<'a> {
        let now_ms = unix_now_ms();
        let ttl = self.ttl_from(created_at.min(now_ms / 1000), now_ms);
        Renewal {
            expires_at_ms: ttl.map(|ttl| now_ms.saturating_add(saturating_millis(ttl))),
            ttl,
            now_ms,
            owner,
        }
    }

    /// How long a record written at `now_ms` lives: the idle TTL, cut to what is left of
    /// the absolute lifetime.
    fn ttl_from(&self, created_at: u64, now_ms: u64) -> Option<Duration> {
        let remaining_lifetime = self.max_lifetime.map(|limit| {
            let ends_ms = created_at
                .saturating_add(limit.as_secs())
                .saturating_mul(1000);
            Duration::from_millis(ends_ms.saturating_sub(now_ms))
        });
        match (self.ttl, remaining_lifetime) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The creation time of a record that is still live, or `None` once it has expired.
    /// One clock read serves both checks, and none is made when neither applies. A creation
    /// time in the future (only a corrupt or tampered record has one) counts as now, so that
    /// no time past `SystemTime`'s range is ever built and the absolute lifetime still ends:
    /// here when the lifetime is checked, else in `Session::created_at` and `record`.
    pub(super) fn live_since(&self, record: &Record) -> Option<u64> {
        let mut created_at = record.created_at;
        if record.expires_at_ms.is_some() || self.max_lifetime.is_some() {
            let now_ms = unix_now_ms();
            if !record.is_live(now_ms, self.max_lifetime) {
                return None;
            }
            created_at = created_at.min(now_ms / 1000);
        }
        Some(created_at)
    }

    /// The session a loaded record holds, or the id back once the record has expired.
    pub fn load(
        &self,
        id: SessionId,
        record: Record,
        version: Option<u64>,
    ) -> Result<Session, SessionId> {
        let Some(created_at) = self.live_since(&record) else {
            return Err(id);
        };
        Ok(Session::loaded(
            id,
            record.data,
            Some(created_at),
            version,
            record.owner,
        ))
    }
}
