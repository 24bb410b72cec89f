//! The Tower middleware: [`SessionLayer`], [`SessionService`] and their [`ResponseFuture`].

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{Error, Session, SessionCookie, SessionStorage};

/// Loads the session before the inner service runs and saves it after.
///
/// Per request: find and verify the session cookie, [`read`](SessionStorage::read) the
/// session, put it into the request extensions, call the inner service, then
/// [`save`](SessionStorage::save) the session and **append** a `Set-Cookie` header (other
/// `Set-Cookie` headers are left alone). Nothing is saved and no cookie is sent when the
/// session did not change, or when the inner service answered with a 5xx status.
///
/// A storage error or an oversize cookie turns the response into a bare
/// `500 Internal Server Error`; the details are logged with `tracing`, never sent. A record
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
/// let cookie = SessionCookie::new("__session").secrets(["a long random secret"]);
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

/// The cookie a request arrived with.
struct Incoming {
    /// The verified value.
    value: String,
    /// The sealed value, when it can be sent back as it is (sealed by the newest secret):
    /// saves an HMAC or an encryption when the value did not change.
    resend: Option<String>,
}

/// What the response needs to save the session.
struct Finish<St> {
    shared: Arc<Shared<St>>,
    session: Session,
    incoming: Option<Incoming>,
    rolling: bool,
    /// The cookie named a corrupt record: clear it unless the session is saved anew.
    unreadable: bool,
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
    type Future = ResponseFuture<S::Future, St>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let cookie = &self.shared.cookie;
        // HTTP/2 may split cookies over several headers: look in each. Other cookies in
        // the same header may hold non-ASCII bytes (UTF-8 or not); they must not hide ours,
        // so read the header leniently (a replaced byte can only spoil a cookie not ours,
        // or one that then fails verification).
        let incoming = request.headers().get_all(COOKIE).iter().find_map(|header| {
            let header = match header.to_str() {
                Ok(ascii) => Cow::Borrowed(ascii),
                Err(_) => String::from_utf8_lossy(header.as_bytes()),
            };
            cookie.unseal(&header).map(|found| Incoming {
                resend: found.by_newest_secret.then(|| found.sealed.to_owned()),
                value: found.value,
            })
        });

        let Some(incoming) = incoming else {
            // No session to load: a fresh one needs no storage call, so the inner future
            // is polled in place, and a box is made only if the session must be saved.
            let session = Session::new();
            request.extensions_mut().insert(session.clone());
            return ResponseFuture {
                state: State::Direct {
                    future: self.inner.call(request),
                    finish: Some(Finish {
                        shared: Arc::clone(&self.shared),
                        session,
                        incoming: None,
                        rolling: self.rolling,
                        unreadable: false,
                    }),
                },
            };
        };

        // The storage future cannot be named, so read, call and save share one box.
        // Call the service that was polled ready, and keep a fresh clone for next time.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        let rolling = self.rolling;
        ResponseFuture {
            state: State::Boxed {
                future: Box::pin(async move {
                    let (session, unreadable) =
                        match shared.storage.read(Some(&incoming.value)).await {
                            Ok(session) => (session, false),
                            // A record that can never load again must not lock its user
                            // out with a 500 on every request: start afresh, say why.
                            Err(error @ Error::Corrupt { .. }) => {
                                tracing::error!(%error, "starting a fresh session");
                                (Session::new(), true)
                            }
                            Err(error) => {
                                tracing::error!(%error, "session storage read failed");
                                return Ok(internal_error());
                            }
                        };
                    request.extensions_mut().insert(session.clone());
                    let response = inner.call(request).await?;
                    let finish = Finish {
                        shared,
                        session,
                        incoming: Some(incoming),
                        rolling,
                        unreadable,
                    };
                    Ok(finish.run(response).await)
                }),
            },
        }
    }
}

impl<St: SessionStorage> Finish<St> {
    /// Whether saving (or clearing the cookie) could do anything: checked before any
    /// storage call or allocation.
    fn needs_save<B>(&self, response: &Response<B>) -> bool {
        if response.status().is_server_error() {
            return false;
        }
        if self.unreadable {
            return true;
        }
        if self.rolling && self.session.is_loaded() && !self.session.is_destroyed() {
            // Cannot fail: the session is not destroyed.
            let _ = self.session.touch();
        }
        self.session.is_dirty()
    }

    /// Saves the session and appends its `Set-Cookie` to the response.
    async fn run<B: Default>(self, mut response: Response<B>) -> Response<B> {
        if !self.needs_save(&response) {
            return response;
        }
        let shared = &self.shared;
        let header = match shared.storage.save(&self.session).await {
            Ok(None) if self.unreadable => Ok(shared.removal.clone()),
            Ok(None) => return response,
            Ok(Some(value)) if value.is_empty() => Ok(shared.removal.clone()),
            Ok(Some(value)) => match self.incoming {
                Some(Incoming {
                    value: sent,
                    resend: Some(sealed),
                }) if sent == value => shared.set_cookie(&sealed),
                _ => shared.set_cookie(&shared.cookie.seal(&value)),
            },
            Err(error) => Err(error),
        };
        match header {
            Ok(header) => {
                response.headers_mut().append(SET_COOKIE, header);
                response
            }
            Err(error) => {
                tracing::error!(%error, "session could not be saved");
                internal_error()
            }
        }
    }
}

/// A bare 500: no detail of what failed reaches the client.
fn internal_error<B: Default>() -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// The response future of [`SessionService`].
    pub struct ResponseFuture<F: Future, St> {
        #[pin]
        state: State<F, St>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F: Future, St> {
        // No session was loaded: the inner future runs in place.
        Direct {
            #[pin]
            future: F,
            finish: Option<Finish<St>>,
        },
        // Storage work (and, for a loaded session, the inner call) in one box.
        Boxed {
            future: BoxFuture<F::Output>,
        },
    }
}

impl<F, St, B, E> Future for ResponseFuture<F, St>
where
    F: Future<Output = Result<Response<B>, E>>,
    St: SessionStorage,
    B: Default + Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Direct { future, finish } => {
                    let response = ready!(future.poll(cx))?;
                    let finish = finish.take().expect("polled after completion");
                    if !finish.needs_save(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    let future: BoxFuture<F::Output> =
                        Box::pin(async move { Ok(finish.run(response).await) });
                    this.state.set(State::Boxed { future });
                }
                StateProj::Boxed { future } => return future.as_mut().poll(cx),
            }
        }
    }
}
