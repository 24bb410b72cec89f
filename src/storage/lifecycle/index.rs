//! [`SessionIndex`] for every [`ServerStorage`] whose backend can find an owner's records.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ServerStorage;
use crate::storage::{OwnerIndexBackend, Record, SessionIndex, SessionInfo};
use crate::{Error, Session, SessionHandle};

impl<B: OwnerIndexBackend> SessionIndex for ServerStorage<B> {
    async fn sessions_of(&self, owner: &str) -> Result<Vec<SessionInfo>, Error> {
        let records = self.backend.records_of(owner).await?;
        let mut listed: Vec<SessionInfo> = records
            .into_iter()
            .filter_map(|(handle, record)| self.info(handle, record))
            .collect();
        // Most recently saved first; the handle breaks ties so that the order is stable.
        listed.sort_by(|a, b| {
            let by_handle = || a.handle.as_str().cmp(b.handle.as_str());
            b.saved.cmp(&a.saved).then_with(by_handle)
        });
        Ok(listed)
    }

    async fn end_session(&self, owner: &str, handle: &SessionHandle) -> Result<bool, Error> {
        self.backend.delete_owned(owner, handle).await
    }

    async fn end_sessions_of(&self, owner: &str, except: Option<&Session>) -> Result<u64, Error> {
        // A session given a new id in this request is still stored under its original one
        // until it saves: both are spared.
        let except: Vec<SessionHandle> = match except {
            Some(session) => vec![session.handle(), session.original_handle()],
            None => Vec::new(),
        };
        self.backend.delete_all_owned(owner, &except).await
    }
}

impl<B: OwnerIndexBackend> ServerStorage<B> {
    /// What a listing shows of `record`, or `None` once it has expired.
    fn info(&self, handle: SessionHandle, record: Record) -> Option<SessionInfo> {
        let created_at = self.expiry.live_since(&record)?;
        let created = past_at_ms(created_at.saturating_mul(1000));
        Some(SessionInfo {
            handle,
            created,
            // An expiry too far to be a `SystemTime` is as good as none.
            expires: record.expires_at_ms.and_then(time_at_ms),
            // A record written without a save time (by something else) shows its creation.
            saved: record.saved_at_ms.map_or(created, past_at_ms),
            data: record.data,
        })
    }
}

/// The time `ms` milliseconds after the epoch, `None` past what `SystemTime` can hold.
fn time_at_ms(ms: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// A time that must be past, at most now: only a corrupt or tampered record has one in
/// the future, and it counts as now as a creation time does in `Session::created_at`.
fn past_at_ms(ms: u64) -> SystemTime {
    let now = SystemTime::now();
    time_at_ms(ms).filter(|at| *at <= now).unwrap_or(now)
}
