//! [`SessionLayer`]: the session middleware's configuration, shared by every clone.

use std::sync::Arc;

use http::header::HeaderName;
use tower_layer::Layer;

use super::SessionService;
use super::transport::Transport;
use crate::{Error, SessionCookie, SessionStorage};

/// Loads the session before the inner service runs and saves it after.
///
/// Per request: find and verify the session cookie, [`read`](SessionStorage::read) the
/// session, put it into the request extensions, call the inner service, then
/// [`save`](SessionStorage::save) the session and **append** a `Set-Cookie` header (other
/// `Set-Cookie` headers are left alone), with `Cache-Control: no-store` unless the inner
/// service set a `Cache-Control` of its own. Nothing is saved and no cookie is sent when the
/// session did not change, or when the inner service answered with a 5xx status. A request
/// without a valid session cookie gets a fresh session without any storage call.
///
/// A storage error or an oversize cookie turns the response into a bare
/// `500 Internal Server Error`; the details are logged with `tracing`, never sent. A gRPC
/// call (`content-type: application/grpc...`) gets the gRPC form instead: HTTP 200 with
/// `grpc-status: 13` (INTERNAL) and no message, and a call its handler failed (a non-zero
/// `grpc-status` in the response headers, as tonic sends an error) saves nothing, as a 5xx.
/// A record that no longer decodes ([`Error::Corrupt`]) is logged as well, but the request
/// goes on with a fresh session, and the response replaces or clears the cookie.
///
/// ```
/// # #[cfg(feature = "axum")] { // the extractor needs the default `axum` feature
/// use axum::{Router, routing::get};
/// use session_layer::{MemoryStorage, Session, SessionCookie, SessionLayer};
///
/// async fn count(session: Session) -> String {
///     let n = session.get::<u64>("n").unwrap_or(0) + 1;
///     session.set("n", n).unwrap();
///     format!("visit {n}")
/// }
///
/// let cookie = SessionCookie::new("__session").secrets(["a long random secret, 32 bytes or more"]);
/// let app: Router = Router::new()
///     .route("/", get(count))
///     .layer(SessionLayer::new(cookie, MemoryStorage::new()));
/// # }
/// ```
#[derive(Debug)]
pub struct SessionLayer<St> {
    pub(super) storage: Arc<St>,
    pub(super) transport: Arc<Transport>,
    pub(super) rolling: bool,
}

impl<St> Clone for SessionLayer<St> {
    fn clone(&self) -> Self {
        SessionLayer {
            storage: Arc::clone(&self.storage),
            transport: Arc::clone(&self.transport),
            rolling: self.rolling,
        }
    }
}

impl<St: SessionStorage> SessionLayer<St> {
    /// A layer that carries sessions of `storage` in `cookie`.
    ///
    /// # Panics
    ///
    /// When the cookie is not valid for sessions (see [`SessionCookie::validate`]): above
    /// all, when it has no secret, with a message saying it `must be signed`. Use
    /// [`try_new`](SessionLayer::try_new) to get the error instead.
    pub fn new(cookie: SessionCookie, storage: St) -> Self {
        match SessionLayer::try_new(cookie, storage) {
            Ok(layer) => layer,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`new`](SessionLayer::new), with an error instead of a panic.
    pub fn try_new(cookie: SessionCookie, storage: St) -> Result<Self, Error> {
        cookie.validate()?;
        Ok(SessionLayer {
            storage: Arc::new(storage),
            transport: Arc::new(Transport::cookie(cookie)?),
            rolling: false,
        })
    }
}

impl<St> SessionLayer<St> {
    /// Re-send the cookie and renew the stored session on every request that carries one,
    /// so its expiry counts from the last request (an idle timeout) rather than from the
    /// last change. A request that changed nothing only moves the stored expiry
    /// ([`SessionBackend::renew`](crate::storage::SessionBackend::renew)), without writing
    /// the record again. Off by default: it costs a storage write per request.
    pub fn rolling(mut self, rolling: bool) -> Self {
        self.rolling = rolling;
        self
    }

    /// Carry the session value in the header `name` instead of a cookie, for API and
    /// native gRPC clients, which keep no cookie jar.
    ///
    /// The value is sealed exactly as the cookie's (signed, or encrypted with
    /// [`SessionCookie::encrypted`], under the same secrets and name); the cookie's other
    /// attributes are not used. The client sends back the last value the response header
    /// gave it; an empty value in a response means the session ended.
    ///
    /// ```
    /// use http::HeaderName;
    /// use session_layer::{MemoryStorage, SessionCookie, SessionLayer};
    ///
    /// let cookie = SessionCookie::new("session").secrets(["a long random secret, 32 bytes or more"]);
    /// let layer = SessionLayer::new(cookie, MemoryStorage::new())
    ///     .header(HeaderName::from_static("x-session"));
    /// ```
    pub fn header(mut self, name: HeaderName) -> Self {
        Arc::make_mut(&mut self.transport).use_header(name);
        self
    }

    /// The storage, shared by every clone of the layer.
    pub fn storage(&self) -> &St {
        &self.storage
    }

    /// The session cookie.
    pub fn cookie(&self) -> &SessionCookie {
        &self.transport.cookie
    }
}

impl<S, St> Layer<S> for SessionLayer<St> {
    type Service = SessionService<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, self.clone())
    }
}
