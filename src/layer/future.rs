//! [`ResponseFuture`]: one request's way through the middleware: the session's read, the
//! inner service, the session's save.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::SessionLayer;
use super::grpc_status;
use super::request_context::{RequestContext, failed, loaded};
use super::storage_calls::StorageCalls;
use crate::cookie::Received;
use crate::observe::{self, Load, Save};
use crate::{Error, Session, SessionStorage};

pin_project! {
    /// The response future of [`SessionService`](super::SessionService).
    pub struct ResponseFuture<S: Service<Request<ReqBody>>, St, ReqBody> {
        #[pin]
        pub(super) state: State<S, St, ReqBody>,
        // The request's `session` span, entered around the storage calls only, so that
        // the inner service's own events are not taken for the session's.
        pub(super) span: tracing::Span,
    }
}

pin_project! {
    #[project = StateProj]
    pub(super) enum State<S: Service<Request<ReqBody>>, St, ReqBody> {
        // The storage reads the session; the request waits.
        Reading {
            storage: Option<StorageCalls>,
            waiting: Option<Waiting<S, St, ReqBody>>,
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

impl<S, St, ReqBody> State<S, St, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Puts the session into the request and calls the inner service with it.
    pub(super) fn call(
        context: RequestContext<St>,
        inner: &mut S,
        mut request: Request<ReqBody>,
    ) -> Self {
        request.extensions_mut().insert(context.session.clone());
        State::Calling {
            future: inner.call(request),
            context: Some(context),
        }
    }
}

/// A request held while the storage reads its session.
pub(super) struct Waiting<S, St, ReqBody> {
    pub(super) request: Request<ReqBody>,
    /// The inner service, polled ready, that takes the request.
    pub(super) inner: S,
    pub(super) layer: SessionLayer<St>,
    /// The session value the request brought.
    pub(super) incoming: Received,
}

impl<S, St, ReqBody, B> Waiting<S, St, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<B>>,
    St: SessionStorage,
    B: Default,
{
    /// Calls the inner service with the session the storage read, or gives the response
    /// that answers a failed read.
    fn call(
        self,
        read: Result<Session, Error>,
        storage: Option<StorageCalls>,
    ) -> Result<State<S, St, ReqBody>, Response<B>> {
        let Waiting {
            request,
            mut inner,
            layer,
            incoming,
        } = self;
        let (session, unreadable) = loaded::<St>(read).map_err(|error| {
            observe::load(St::NAME, Load::Error);
            let grpc = grpc_status::is_call(&request);
            failed(&error, "session storage read failed", grpc)
        })?;
        if session.is_loaded() {
            observe::load(St::NAME, Load::Loaded);
            observe::id_prefix(|| session.session_id());
        }
        let mut context = RequestContext::new(layer, session, storage, Some(incoming), &request);
        context.unreadable = unreadable;
        Ok(State::call(context, &mut inner, request))
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
                    let _entered = observe::enter(this.span);
                    let calls = storage.as_mut().expect(POLLED_AFTER_READY);
                    let read = ready!(calls.as_mut().poll_read(cx));
                    let waiting = waiting.take().expect(POLLED_AFTER_READY);
                    match waiting.call(read, storage.take()) {
                        Ok(calling) => calling,
                        Err(failed) => return Poll::Ready(Ok(failed)),
                    }
                }
                StateProj::Calling { future, context } => {
                    let response = ready!(future.poll(cx))?;
                    let context = context.take().expect(POLLED_AFTER_READY);
                    if !context.save_needed(&response) {
                        observe::in_span(this.span, || observe::save(St::NAME, Save::Unchanged));
                        return Poll::Ready(Ok(response));
                    }
                    let (context, response) = (Some(context), Some(response));
                    State::Saving { context, response }
                }
                StateProj::Saving { context, response } => {
                    let _entered = observe::enter(this.span);
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
