//! [`SessionService`]: the middleware around one inner service.

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::SessionLayer;
use super::future::{ResponseFuture, State, Waiting};
use super::request_context::RequestContext;
use super::storage_calls::storage_calls;
use crate::observe::{self, Load};
use crate::{Session, SessionStorage};

/// The service [`SessionLayer`] wraps around an inner service.
#[derive(Debug)]
pub struct SessionService<S, St> {
    inner: S,
    layer: SessionLayer<St>,
}

impl<S, St> SessionService<S, St> {
    pub(super) fn new(inner: S, layer: SessionLayer<St>) -> Self {
        SessionService { inner, layer }
    }

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
        let span = observe::request_span(St::NAME);
        let incoming = observe::in_span(&span, || {
            let incoming = layer.transport.receive(request.headers());
            if incoming.is_none() {
                observe::load(St::NAME, Load::New);
            }
            incoming
        });
        let Some(incoming) = incoming else {
            // No session to load: the fresh one needs no storage call.
            let context = RequestContext::new(layer, Session::new(), None, None, &request);
            return ResponseFuture {
                state: State::call(context, &mut self.inner, request),
                span,
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
                waiting: Some(Waiting {
                    request,
                    inner: ready,
                    layer,
                    incoming,
                }),
            },
            span,
        }
    }
}
