//! A user's sessions, through the storage's `SessionIndex` behind a trait object: one
//! router type serves the storages that can list a user's sessions and those that cannot.

use std::future::Future;
use std::pin::Pin;

use session_layer::{Error, Session, SessionHandle, SessionIndex, SessionInfo};

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// `SessionIndex` made object-safe: its methods return `impl Future`, which a `dyn` cannot.
pub trait Sessions: Send + Sync {
    /// `SessionIndex::sessions_of`.
    fn list<'a>(&'a self, owner: &'a str) -> Boxed<'a, Vec<SessionInfo>>;
    /// `SessionIndex::end_session`: `false` for another owner's session or one that is gone.
    fn end<'a>(&'a self, owner: &'a str, handle: &'a SessionHandle) -> Boxed<'a, bool>;
    /// `SessionIndex::end_sessions_of`, sparing `this`.
    fn end_others<'a>(&'a self, owner: &'a str, this: &'a Session) -> Boxed<'a, u64>;
}

impl<S: SessionIndex> Sessions for S {
    fn list<'a>(&'a self, owner: &'a str) -> Boxed<'a, Vec<SessionInfo>> {
        Box::pin(self.sessions_of(owner))
    }

    fn end<'a>(&'a self, owner: &'a str, handle: &'a SessionHandle) -> Boxed<'a, bool> {
        Box::pin(self.end_session(owner, handle))
    }

    fn end_others<'a>(&'a self, owner: &'a str, this: &'a Session) -> Boxed<'a, u64> {
        Box::pin(self.end_sessions_of(owner, Some(this)))
    }
}
