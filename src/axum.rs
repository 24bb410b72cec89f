//! axum integration: [`Session`] as an extractor, [`Error`] as a response.

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::{Error, Session};

/// Takes the session the [`SessionLayer`](crate::SessionLayer) loaded.
///
/// Without the layer on the route this rejects with [`Error::MissingLayer`]: a 500, logged.
/// Take `Option<Session>` to handle that case yourself.
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(Error::MissingLayer)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Session>().cloned())
    }
}

/// Every session error is the server's problem: a bare 500, with the details logged and
/// never sent. This lets handlers use `?` on session calls.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "session error");
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
    }
}
