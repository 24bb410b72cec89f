//! [`RequestContext`]: what one request's session needs from the read to the save, and the
//! response the save's result calls for.

use std::task::{Context, Poll};

use http::header::CACHE_CONTROL;
use http::{HeaderValue, Request, Response, StatusCode};

use super::SessionLayer;
use super::grpc_status;
use super::storage_calls::{SaveResult, StorageCalls, storage_calls};
use crate::cookie::Received;
use crate::observe::{self, Load, Save};
use crate::{Error, Session, SessionStorage};

/// What a request's session needs from the read to the save.
pub(super) struct RequestContext<St> {
    layer: SessionLayer<St>,
    pub(super) session: Session,
    /// The storage calls, once the request needs one.
    storage: Option<StorageCalls>,
    /// The session value the request brought.
    incoming: Option<Received>,
    /// The request's cookie named a record that can never load: clear the cookie unless
    /// the session is saved anew.
    pub(super) unreadable: bool,
    /// A gRPC call: errors are answered the gRPC way.
    grpc: bool,
}

impl<St: SessionStorage> RequestContext<St> {
    /// The context of `request`, whose session was just made or read.
    pub(super) fn new<ReqBody>(
        layer: SessionLayer<St>,
        session: Session,
        storage: Option<StorageCalls>,
        incoming: Option<Received>,
        request: &Request<ReqBody>,
    ) -> Self {
        RequestContext {
            layer,
            session,
            storage,
            incoming,
            unreadable: false,
            grpc: grpc_status::is_call(request),
        }
    }

    /// Whether the session must be saved (or its cookie cleared) after `response`; a
    /// rolling session is marked for renewal, so that the save moves its expiry.
    pub(super) fn save_needed<B>(&self, response: &Response<B>) -> bool {
        let changed = self.unreadable || self.session.is_dirty() || self.rolls();
        if !changed || response.status().is_server_error() || grpc_status::is_error(response) {
            return false;
        }
        if self.rolls() {
            // Cannot fail: `rolls` checked that the session is not destroyed.
            let _ = self.session.touch();
        }
        true
    }

    /// Whether the request renews a loaded session's expiry, with [`SessionLayer::rolling`].
    fn rolls(&self) -> bool {
        self.layer.rolling && self.session.is_loaded() && !self.session.is_destroyed()
    }

    /// Saves the session.
    pub(super) fn poll_save(&mut self, cx: &mut Context<'_>) -> Poll<SaveResult> {
        let storage = self
            .storage
            .get_or_insert_with(|| storage_calls(&self.layer.storage, None));
        storage.as_mut().poll_save(cx, &self.session)
    }

    /// Appends the header that the save's result calls for, or turns the response into a
    /// bare 500 when saving failed.
    pub(super) fn finish<B: Default>(
        self,
        saved: SaveResult,
        mut response: Response<B>,
    ) -> Response<B> {
        let outcome = match &saved {
            Ok(None) => Save::Unchanged,
            Ok(Some(value)) if !value.is_empty() => Save::Saved,
            Ok(Some(_)) if self.session.is_destroyed() => Save::Destroyed,
            Ok(Some(_)) => Save::Gone,
            Err(_) => Save::Error,
        };
        observe::save(St::NAME, outcome);
        let value = match saved {
            Ok(None) if self.unreadable => String::new(),
            Ok(None) => return response,
            Ok(Some(value)) => {
                observe::id_prefix(|| self.session.session_id());
                value
            }
            Err(error) => return failed(&error, "session could not be saved", self.grpc),
        };
        // The value the request brought, unchanged, need not be sealed again.
        let resend = match &self.incoming {
            Some(incoming) if incoming.value == value => incoming.resend.as_deref(),
            _ => None,
        };
        match self.layer.transport.outgoing(&value, resend) {
            Ok((name, header)) => {
                let headers = response.headers_mut();
                headers.append(name, header);
                // A shared cache must never hand one user's session to another.
                if !headers.contains_key(CACHE_CONTROL) {
                    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
                response
            }
            Err(error) => failed(&error, "session could not be sent", self.grpc),
        }
    }
}

/// The session a read gave, and whether the cookie named a record that can never load
/// again, which must not lock its user out with a 500 on every request: it starts afresh.
pub(super) fn loaded<St: SessionStorage>(
    read: Result<Session, Error>,
) -> Result<(Session, bool), Error> {
    match read {
        Ok(session) => Ok((session, false)),
        Err(error @ Error::Corrupt { .. }) => {
            observe::load(St::NAME, Load::Corrupt);
            observe::error(&error);
            tracing::error!(%error, error.type = error.kind(), "starting a fresh session");
            Ok((Session::new(), true))
        }
        Err(error) => Err(error),
    }
}

/// Logs `error` and answers a bare 500, or for a gRPC call status INTERNAL: no detail of
/// what failed reaches the client.
pub(super) fn failed<B: Default>(error: &Error, what: &str, grpc: bool) -> Response<B> {
    observe::error(error);
    tracing::error!(%error, error.type = error.kind(), "{what}");
    if grpc {
        return grpc_status::internal_error();
    }
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
