//! tonic integration: session errors as gRPC statuses, and the session of a `tonic::Request`.
//!
//! The [`SessionLayer`](crate::SessionLayer) goes in front of a tonic server like any Tower
//! layer (`Server::builder().layer(SessionLayer::new(..))`); the session cookie travels as
//! `cookie` and `set-cookie` metadata. See `docs/grpc.md` for what a client sees when
//! something fails.

use ::tonic::{Request, Status};

use crate::{Error, Session};

/// The only message a client gets for a session failure: the details are in the log.
const INTERNAL_MESSAGE: &str = "internal error";

/// Every session error is the server's problem: status `INTERNAL` with a generic message.
///
/// The error itself is logged with `tracing` and never sent, since it can name a storage
/// server, a key or a file. This lets tonic handlers use `?` on session calls.
///
/// ```
/// use session_layer::Error;
/// use tonic::{Code, Status};
///
/// let status = Status::from(Error::backend("connection to db.internal:5432 refused"));
/// assert_eq!(status.code(), Code::Internal);
/// assert_eq!(status.message(), "internal error");
/// ```
impl From<Error> for Status {
    fn from(error: Error) -> Self {
        tracing::error!(error = %error, "session error");
        Status::internal(INTERNAL_MESSAGE)
    }
}

/// Takes the session that the [`SessionLayer`](crate::SessionLayer) loaded from a tonic
/// request.
///
/// ```
/// use session_layer::TonicRequestExt;
/// use tonic::{Code, Request, Response, Status};
///
/// /// A unary RPC that counts the calls of its session.
/// async fn increment(request: Request<u64>) -> Result<Response<u64>, Status> {
///     // Take the session before `into_inner`, which drops the extensions.
///     let session = request.session()?;
///     let by = request.into_inner();
///     let count = session.update("count", move |count: Option<u64>| count.unwrap_or(0) + by)?;
///     Ok(Response::new(count))
/// }
///
/// // Without the layer in front of the service there is no session: status INTERNAL.
/// let status = Request::new(1u64).session().unwrap_err();
/// assert_eq!(status.code(), Code::Internal);
/// ```
pub trait TonicRequestExt {
    /// The request's session, a handle sharing its state with the layer, which saves it
    /// after the call. Without a `SessionLayer` in front of the service this is status
    /// `INTERNAL` with a generic message, and the cause is logged.
    fn session(&self) -> Result<Session, Status>;
}

impl<T> TonicRequestExt for Request<T> {
    fn session(&self) -> Result<Session, Status> {
        self.extensions()
            .get::<Session>()
            .cloned()
            .ok_or_else(|| Error::MissingLayer.into())
    }
}
