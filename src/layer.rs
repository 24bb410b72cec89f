//! The Tower middleware: [`SessionLayer`], [`SessionService`] and their [`ResponseFuture`].

mod calls;
mod grpc;
mod transport;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::{CACHE_CONTROL, HeaderName};
use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use self::calls::{SaveResult, StorageCalls, storage_calls};
use self::transport::Transport;
use crate::cookie::Received;
use crate::{Error, Session, SessionCookie, SessionStorage};

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
    storage: Arc<St>,
    transport: Arc<Transport>,
    rolling: bool,
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
    /// Re-send the cookie and rewrite the stored session on every request that carries
    /// one, so its expiry counts from the last request (an idle timeout) rather than from
    /// the last change. Off by default: it costs a storage write per request.
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
        SessionService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around an inner service.
#[derive(Debug)]
pub struct SessionService<S, St> {
    inner: S,
    layer: SessionLayer<St>,
}

impl<S, St> SessionService<S, St> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, without the session layer.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, St> Clone for SessionService<S, St> {
    fn clone(&self) -> Self {
        SessionService {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: SessionStorage,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, St, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let layer = self.layer.clone();
        let Some(incoming) = layer.transport.receive(request.headers()) else {
            // No session to load: the fresh one needs no storage call.
            let context = RequestContext::new(layer, Session::new(), None, None, &request);
            return ResponseFuture {
                state: context.call(&mut self.inner, request),
            };
        };
        let storage = storage_calls(&layer.storage, Some(incoming.value.clone()));
        // The service polled ready answers once the session is read; a clone waits for the
        // next request.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            state: State::Reading {
                storage: Some(storage),
                waiting: Some((request, ready, layer, incoming)),
            },
        }
    }
}

/// What a request's session needs from the read to the save.
struct RequestContext<St> {
    layer: SessionLayer<St>,
    session: Session,
    /// The storage calls, once the request needs one.
    storage: Option<StorageCalls>,
    /// The session value the request brought.
    incoming: Option<Received>,
    /// The request's cookie named a record that can never load: clear the cookie unless
    /// the session is saved anew.
    unreadable: bool,
    /// A gRPC call: errors are answered the gRPC way.
    grpc: bool,
}

impl<St: SessionStorage> RequestContext<St> {
    /// The context of `request`, whose session was just made or read.
    fn new<ReqBody>(
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
            grpc: grpc::is_call(request),
        }
    }

    /// Puts the session into the request and calls the inner service with it.
    fn call<S, ReqBody>(self, inner: &mut S, mut request: Request<ReqBody>) -> State<S, St, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        request.extensions_mut().insert(self.session.clone());
        State::Calling {
            future: inner.call(request),
            context: Some(self),
        }
    }

    /// Whether the session must be saved (or its cookie cleared) after `response`.
    fn must_save<B>(&self, response: &Response<B>) -> bool {
        let changed = self.unreadable || self.session.is_dirty() || self.rolls();
        changed && !response.status().is_server_error() && !grpc::is_error(response)
    }

    /// Whether the request renews a loaded session's expiry, with [`SessionLayer::rolling`].
    fn rolls(&self) -> bool {
        self.layer.rolling && self.session.is_loaded() && !self.session.is_destroyed()
    }

    /// Saves the session.
    fn poll_save(&mut self, cx: &mut Context<'_>) -> Poll<SaveResult> {
        let storage = self
            .storage
            .get_or_insert_with(|| storage_calls(&self.layer.storage, None));
        storage.as_mut().poll_save(cx, &self.session)
    }

    /// Appends the header that the save's result calls for, or turns the response into a
    /// bare 500 when saving failed.
    fn finish<B: Default>(self, saved: SaveResult, mut response: Response<B>) -> Response<B> {
        let value = match saved {
            Ok(None) if self.unreadable => String::new(),
            Ok(None) => return response,
            Ok(Some(value)) => value,
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
fn loaded(read: Result<Session, Error>) -> Result<(Session, bool), Error> {
    match read {
        Ok(session) => Ok((session, false)),
        Err(error @ Error::Corrupt { .. }) => {
            tracing::error!(%error, "starting a fresh session");
            Ok((Session::new(), true))
        }
        Err(error) => Err(error),
    }
}

/// Logs `error` and answers a bare 500, or for a gRPC call status INTERNAL: no detail of
/// what failed reaches the client.
fn failed<B: Default>(error: &Error, what: &str, grpc: bool) -> Response<B> {
    tracing::error!(%error, "{what}");
    if grpc {
        return grpc::internal_error();
    }
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

pin_project! {
    /// The response future of [`SessionService`].
    pub struct ResponseFuture<S: Service<Request<ReqBody>>, St, ReqBody> {
        #[pin]
        state: State<S, St, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S: Service<Request<ReqBody>>, St, ReqBody> {
        // The storage reads the session; the request and the ready service wait.
        Reading {
            storage: Option<StorageCalls>,
            waiting: Option<(Request<ReqBody>, S, SessionLayer<St>, Received)>,
        },
        // The inner service answers.
        Calling {
            #[pin]
            future: S::Future,
            context: Option<RequestContext<St>>,
        },
        // The storage saves the session; the response waits for its header.
        Saving {
            context: Option<RequestContext<St>>,
            response: Option<S::Response>,
        },
    }
}

const POLLED_AFTER_READY: &str = "ResponseFuture polled after it was ready";

impl<S, St, ReqBody, B> Future for ResponseFuture<S, St, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<B>>,
    St: SessionStorage,
    B: Default,
{
    type Output = Result<Response<B>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Reading { storage, waiting } => {
                    let calls = storage.as_mut().expect(POLLED_AFTER_READY);
                    let read = ready!(calls.as_mut().poll_read(cx));
                    let (request, mut inner, layer, incoming) =
                        waiting.take().expect(POLLED_AFTER_READY);
                    let (session, unreadable) = match loaded(read) {
                        Ok(loaded) => loaded,
                        Err(error) => {
                            let grpc = grpc::is_call(&request);
                            return Poll::Ready(Ok(failed(
                                &error,
                                "session storage read failed",
                                grpc,
                            )));
                        }
                    };
                    let storage = storage.take();
                    let mut context =
                        RequestContext::new(layer, session, storage, Some(incoming), &request);
                    context.unreadable = unreadable;
                    context.call(&mut inner, request)
                }
                StateProj::Calling { future, context } => {
                    let response = ready!(future.poll(cx))?;
                    let context = context.take().expect(POLLED_AFTER_READY);
                    if !context.must_save(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    if context.rolls() {
                        // Cannot fail: `rolls` checked that the session is not destroyed.
                        let _ = context.session.touch();
                    }
                    State::Saving {
                        context: Some(context),
                        response: Some(response),
                    }
                }
                StateProj::Saving { context, response } => {
                    let saving = context.as_mut().expect(POLLED_AFTER_READY);
                    let saved = ready!(saving.poll_save(cx));
                    let context = context.take().expect(POLLED_AFTER_READY);
                    let response = response.take().expect(POLLED_AFTER_READY);
                    return Poll::Ready(Ok(context.finish(saved, response)));
                }
            };
            this.state.set(next);
        }
    }
}
