//! The Tower middleware: [`SessionLayer`], [`SessionService`] and their [`ResponseFuture`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, HeaderName, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::cookie::Received;
use crate::{Error, Session, SessionCookie, SessionStorage};

/// Loads the session before the inner service runs and saves it after.
///
/// Per request: find and verify the session cookie, [`read`](SessionStorage::read) the
/// session, put it into the request extensions, call the inner service, then
/// [`save`](SessionStorage::save) the session and **append** a `Set-Cookie` header (other
/// `Set-Cookie` headers are left alone), with `Cache-Control: no-store` unless the inner
/// service set a `Cache-Control` of its own. Nothing is saved and no cookie is sent when the
/// session did not change, or when the inner service answered with a 5xx status.
///
/// A storage error or an oversize cookie turns the response into a bare
/// `500 Internal Server Error`; the details are logged with `tracing`, never sent. A gRPC
/// call (`content-type: application/grpc...`) gets the gRPC form instead: HTTP 200 with
/// `grpc-status: 13` (INTERNAL) and no message, and a call its handler failed (a non-zero
/// `grpc-status` in the response headers, as tonic sends an error) saves nothing, as a 5xx. A record
/// that no longer decodes ([`Error::Corrupt`]) is logged as well, but the request goes on
/// with a fresh session, and the response replaces or clears the cookie.
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
pub struct SessionLayer<St> {
    shared: Arc<Shared<St>>,
    rolling: bool,
}

struct Shared<St> {
    cookie: SessionCookie,
    storage: St,
    /// `; Path=/; HttpOnly; …`: the same in every `Set-Cookie`, so rendered once.
    attributes: String,
    /// The `Set-Cookie` that clears the cookie, also the same every time.
    removal: HeaderValue,
}

impl<St> Shared<St> {
    /// The `Set-Cookie` header carrying an already sealed value.
    fn set_cookie(&self, sealed: &str) -> Result<HeaderValue, Error> {
        header_value(self.cookie.set_cookie_with(sealed, &self.attributes)?)
    }
}

/// A `Set-Cookie` value as a header (the cookie's configuration is validated, so this
/// fails only for attributes the validation let through).
fn header_value(set_cookie: String) -> Result<HeaderValue, Error> {
    HeaderValue::try_from(set_cookie)
        .map_err(|_| Error::Config("the Set-Cookie value is not a valid header".into()))
}

impl<St> Clone for SessionLayer<St> {
    fn clone(&self) -> Self {
        SessionLayer {
            shared: Arc::clone(&self.shared),
            rolling: self.rolling,
        }
    }
}

impl<St: std::fmt::Debug> std::fmt::Debug for SessionLayer<St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("cookie", &self.shared.cookie)
            .field("storage", &self.shared.storage)
            .field("rolling", &self.rolling)
            .finish()
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
        let removal = header_value(cookie.serialize_removal())?;
        Ok(SessionLayer {
            shared: Arc::new(Shared {
                attributes: cookie.attributes(),
                removal,
                cookie,
                storage,
            }),
            rolling: false,
        })
    }

    /// Re-send the cookie and rewrite the stored session on every request that carries
    /// one, so its expiry counts from the last request (an idle timeout) rather than from
    /// the last change. Off by default: it costs a storage write per request.
    pub fn rolling(mut self, rolling: bool) -> Self {
        self.rolling = rolling;
        self
    }

    /// The storage, shared by every clone of the layer.
    pub fn storage(&self) -> &St {
        &self.shared.storage
    }

    /// The session cookie.
    pub fn cookie(&self) -> &SessionCookie {
        &self.shared.cookie
    }
}

impl<S, St> Layer<S> for SessionLayer<St> {
    type Service = SessionService<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            shared: Arc::clone(&self.shared),
            rolling: self.rolling,
        }
    }
}

/// The service [`SessionLayer`] wraps around an inner service.
pub struct SessionService<S, St> {
    inner: S,
    shared: Arc<Shared<St>>,
    rolling: bool,
}

impl<S: Clone, St> Clone for SessionService<S, St> {
    fn clone(&self) -> Self {
        SessionService {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            rolling: self.rolling,
        }
    }
}

impl<S: std::fmt::Debug, St> std::fmt::Debug for SessionService<S, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .field("rolling", &self.rolling)
            .finish_non_exhaustive()
    }
}

/// What the response needs to save the session.
struct Finish<St> {
    shared: Arc<Shared<St>>,
    session: Session,
    incoming: Option<Received>,
    rolling: bool,
    /// The cookie named a corrupt record: clear it unless the session is saved anew.
    unreadable: bool,
    /// A gRPC call: errors are answered the gRPC way.
    grpc: bool,
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: SessionStorage,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, St, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // HTTP/2 may split cookies over several headers: `receive` looks in each.
        let incoming = self
            .shared
            .cookie
            .receive(request.headers().get_all(COOKIE));

        let grpc = is_grpc(&request);
        let Some(incoming) = incoming else {
            // No session to load: a fresh one needs no storage call, so the inner service
            // is called at once, and storage work is set up only if the session is saved.
            let session = Session::new();
            request.extensions_mut().insert(session.clone());
            return ResponseFuture {
                state: State::Calling {
                    future: self.inner.call(request),
                    finish: Some(Finish {
                        shared: Arc::clone(&self.shared),
                        session,
                        incoming: None,
                        rolling: self.rolling,
                        unreadable: false,
                        grpc,
                    }),
                    work: None,
                },
            };
        };

        let carry = Carry {
            shared: Arc::clone(&self.shared),
            resend: incoming.resend,
            rolling: self.rolling,
            grpc,
        };
        let mut work = storage_work(&self.shared, Some(incoming.value));
        // Start the read now: a storage in memory or on local disk is done at once, and the
        // request goes on to the service polled ready without waiting in the future's
        // state. A read that is not done (network storage) has sent its query and is polled
        // again with the real waker. Only inside a runtime: a storage may spawn or set a
        // timer, which panics outside one, and a future made there is run on one later.
        let mut start = Context::from_waker(Waker::noop());
        let read = match tokio::runtime::Handle::try_current() {
            Ok(_) => work.as_mut().poll_read(&mut start),
            Err(_) => Poll::Pending,
        };
        let state = match read {
            Poll::Ready((read, value)) => {
                after_read(read, value, work, request, &mut self.inner, carry)
            }
            Poll::Pending => {
                // Call the service that was polled ready once the session is read, and
                // keep a fresh clone for next time.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                State::Reading {
                    pending: Some(Pending {
                        work,
                        request,
                        inner,
                        carry,
                    }),
                }
            }
        };
        ResponseFuture { state }
    }
}

impl<St: SessionStorage> Finish<St> {
    /// Whether saving (or clearing the cookie) could do anything: checked before any
    /// storage call or allocation.
    fn needs_save<B>(&self, response: &Response<B>) -> bool {
        let changed = self.unreadable || {
            if self.rolling && self.session.is_loaded() && !self.session.is_destroyed() {
                // Cannot fail: the session is not destroyed.
                let _ = self.session.touch();
            }
            self.session.is_dirty()
        };
        // The response is looked at only then: most requests change nothing.
        changed && !response.status().is_server_error() && !is_grpc_error(response)
    }

    /// Appends the `Set-Cookie` that the storage's save result calls for, or turns the
    /// response into a bare 500 when saving failed.
    fn finish<B: Default>(
        self,
        saved: Result<Option<String>, Error>,
        mut response: Response<B>,
    ) -> Response<B> {
        let shared = &self.shared;
        let header = match saved {
            Ok(None) if self.unreadable => Ok(shared.removal.clone()),
            Ok(None) => return response,
            Ok(Some(value)) if value.is_empty() => Ok(shared.removal.clone()),
            Ok(Some(value)) => match self.incoming {
                Some(Received {
                    value: sent,
                    resend: Some(sealed),
                }) if sent == value => shared.set_cookie(&sealed),
                _ => shared.set_cookie(&shared.cookie.seal(&value)),
            },
            Err(error) => Err(error),
        };
        match header {
            Ok(header) => {
                let headers = response.headers_mut();
                headers.append(SET_COOKIE, header);
                // A shared cache must never hand one user's session cookie to another.
                if !headers.contains_key(CACHE_CONTROL) {
                    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
                response
            }
            Err(error) => {
                tracing::error!(%error, "session could not be saved");
                internal_error(self.grpc)
            }
        }
    }
}

/// A bare 500, or for a gRPC call status INTERNAL: no detail of what failed reaches the
/// client.
fn internal_error<B: Default>(grpc: bool) -> Response<B> {
    let mut response = Response::new(B::default());
    if grpc {
        // gRPC errors travel as HTTP 200 with a status header (a "trailers-only" response):
        // a gRPC client reads a bare 500 as `Unknown`.
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(GRPC_STATUS, HeaderValue::from_static("13"));
    } else {
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    response
}

/// The header that carries a gRPC call's status.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// Whether the request is a gRPC call (`application/grpc`, `application/grpc+proto`, ...).
fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// Whether the response is a failed gRPC call: its status travels in the headers when the
/// handler answered with an error, and then nothing the call did to the session is saved,
/// as after a 5xx.
fn is_grpc_error<B>(response: &Response<B>) -> bool {
    response
        .headers()
        .get(GRPC_STATUS)
        .is_some_and(|status| status.as_bytes() != b"0")
}

/// The storage work of one request, boxed because a storage's futures cannot be named:
/// the read, then (once the inner service has answered) the save. Both phases share the
/// one allocation, and the inner service's future stays outside it, polled in place.
trait StorageWork: Send {
    /// Polls the read; gives back the cookie value it was reading.
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(ReadResult, String)>;
    /// Starts saving `session` (after the read, or instead of one).
    fn start_save(self: Pin<&mut Self>, session: Session);
    /// Polls the save started by `start_save`.
    fn poll_save(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SaveResult>;
}

type ReadResult = Result<Session, Error>;
type SaveResult = Result<Option<String>, Error>;
type BoxWork = Pin<Box<dyn StorageWork>>;

pin_project! {
    /// The [`StorageWork`] of one storage: `R` reads, `F` makes the save future `W`.
    #[project = WorkProj]
    enum Work<R, F, W> {
        Read { #[pin] read: R, save: Option<F> },
        Idle { save: Option<F> },
        Save { #[pin] save: W },
    }
}

impl<R, F, W> StorageWork for Work<R, F, W>
where
    R: Future<Output = (ReadResult, String)> + Send,
    F: FnOnce(Session) -> W + Send,
    W: Future<Output = SaveResult> + Send,
{
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(ReadResult, String)> {
        let WorkProj::Read { read, save } = self.as_mut().project() else {
            unreachable!("the read is polled first and once to completion");
        };
        let output = ready!(read.poll(cx));
        let save = save.take();
        self.set(Work::Idle { save });
        Poll::Ready(output)
    }

    fn start_save(mut self: Pin<&mut Self>, session: Session) {
        let WorkProj::Idle { save } = self.as_mut().project() else {
            unreachable!("a save starts after the read, once");
        };
        let make_save = save.take().expect("an idle work has its save");
        self.set(Work::Save {
            save: make_save(session),
        });
    }

    fn poll_save(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SaveResult> {
        match self.project() {
            WorkProj::Save { save } => save.poll(cx),
            _ => unreachable!("polled only after start_save"),
        }
    }
}

/// The storage work for a request: a read of the cookie `value` first, unless `None` (no
/// cookie: the work only saves).
fn storage_work<St: SessionStorage>(shared: &Arc<Shared<St>>, value: Option<String>) -> BoxWork {
    let saver = Arc::clone(shared);
    let save = move |session: Session| async move { saver.storage.save(&session).await };
    match value {
        Some(value) => {
            let reader = Arc::clone(shared);
            Box::pin(Work::Read {
                read: async move {
                    let read = reader.storage.read(Some(&value)).await;
                    (read, value)
                },
                save: Some(save),
            })
        }
        None => Box::pin(Work::<std::future::Pending<_>, _, _>::Idle { save: Some(save) }),
    }
}

/// Puts the session read into the request and calls the inner service; a read that failed
/// answers at once with a bare 500.
fn after_read<S, St, ReqBody, B>(
    read: ReadResult,
    value: String,
    work: BoxWork,
    mut request: Request<ReqBody>,
    inner: &mut S,
    carry: Carry<St>,
) -> State<S, St, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<B>>,
    B: Default,
{
    let Carry {
        shared,
        resend,
        rolling,
        grpc,
    } = carry;
    let (session, unreadable) = match read {
        Ok(session) => (session, false),
        // A record that can never load again must not lock its user out with a 500 on
        // every request: start afresh, say why.
        Err(error @ Error::Corrupt { .. }) => {
            tracing::error!(%error, "starting a fresh session");
            (Session::new(), true)
        }
        Err(error) => {
            tracing::error!(%error, "session storage read failed");
            return State::Answered {
                response: Some(internal_error(grpc)),
            };
        }
    };
    request.extensions_mut().insert(session.clone());
    State::Calling {
        future: inner.call(request),
        finish: Some(Finish {
            shared,
            session,
            incoming: Some(Received { value, resend }),
            rolling,
            unreadable,
            grpc,
        }),
        work: Some(work),
    }
}

/// What a request waiting for its session read keeps for after it.
struct Pending<S, St, ReqBody> {
    /// The storage work, reading.
    work: BoxWork,
    request: Request<ReqBody>,
    /// The inner service, already polled ready.
    inner: S,
    carry: Carry<St>,
}

/// What the save after the inner service needs from before the read.
struct Carry<St> {
    shared: Arc<Shared<St>>,
    resend: Option<String>,
    rolling: bool,
    grpc: bool,
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
        // The storage reads the session; then the inner service is called.
        Reading {
            pending: Option<Pending<S, St, ReqBody>>,
        },
        // The inner service runs, in place. `work` is the storage work, if a read made one.
        Calling {
            #[pin]
            future: S::Future,
            finish: Option<Finish<St>>,
            work: Option<BoxWork>,
        },
        // Answered without calling the inner service (the read failed).
        Answered {
            response: Option<S::Response>,
        },
        // The storage saves the session; the response waits for its `Set-Cookie`.
        Saving {
            work: BoxWork,
            finish: Option<Finish<St>>,
            response: Option<S::Response>,
        },
    }
}

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
            match this.state.as_mut().project() {
                StateProj::Reading { pending } => {
                    let reading = pending.as_mut().expect("polled after completion");
                    let (read, value) = ready!(reading.work.as_mut().poll_read(cx));
                    let Pending {
                        work,
                        request,
                        mut inner,
                        carry,
                    } = pending.take().expect("polled after completion");
                    this.state
                        .set(after_read(read, value, work, request, &mut inner, carry));
                }
                StateProj::Answered { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
                StateProj::Calling {
                    future,
                    finish,
                    work,
                } => {
                    let response = ready!(future.poll(cx))?;
                    let finish = finish.take().expect("polled after completion");
                    if !finish.needs_save(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    let mut work = work
                        .take()
                        .unwrap_or_else(|| storage_work(&finish.shared, None));
                    work.as_mut().start_save(finish.session.clone());
                    this.state.set(State::Saving {
                        work,
                        finish: Some(finish),
                        response: Some(response),
                    });
                }
                StateProj::Saving {
                    work,
                    finish,
                    response,
                } => {
                    let saved = ready!(work.as_mut().poll_save(cx));
                    let finish = finish.take().expect("polled after completion");
                    let response = response.take().expect("polled after completion");
                    return Poll::Ready(Ok(finish.finish(saved, response)));
                }
            }
        }
    }
}
