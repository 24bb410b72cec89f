//! `SessionCounter`: the `counter.Counter` RPCs, with the count and the user kept in the
//! session that the `SessionLayer` in front of the server loads and saves.

use session_layer::TonicRequestExt;
use tonic::{Request, Response, Status};

use crate::counter::{CountReply, Counter, IncrementRequest, LoginRequest};

/// The most a session may count to: a call that would pass it is refused.
pub const LIMIT: u64 = 10;

/// Counts per logged-in session; every session error becomes status `INTERNAL` through `?`.
pub struct SessionCounter;

impl Counter for SessionCounter {
    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<()>, Status> {
        // Take the session before `into_inner`, which drops the request's extensions.
        let session = request.session()?;
        let user = request.into_inner().user;
        if user.is_empty() {
            return Err(Status::invalid_argument("user is empty"));
        }
        // A new id at login, so that an id planted before it is worth nothing.
        session.regenerate_id(true)?;
        session.set("user", user)?;
        Ok(Response::new(()))
    }

    async fn increment(
        &self,
        request: Request<IncrementRequest>,
    ) -> Result<Response<CountReply>, Status> {
        let session = request.session()?;
        if !session.has("user") {
            return Err(Status::unauthenticated("log in first"));
        }
        let by = request.into_inner().by;
        let count = session.update("count", move |count: Option<u64>| {
            count.unwrap_or(0).saturating_add(by)
        })?;
        // The count is already written, but the layer saves nothing for a failed call.
        if count > LIMIT {
            return Err(Status::permission_denied(format!(
                "the count may not pass {LIMIT}"
            )));
        }
        Ok(Response::new(CountReply { count }))
    }

    async fn logout(&self, request: Request<()>) -> Result<Response<()>, Status> {
        request.session()?.destroy();
        Ok(Response::new(()))
    }
}
