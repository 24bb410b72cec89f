//! The gRPC conventions the layer follows for calls whose `content-type` is
//! `application/grpc...`: a call's status travels in a `grpc-status` header, and an error is
//! an HTTP 200, since a gRPC client reads a bare 500 as `Unknown`.

use http::header::{CONTENT_TYPE, HeaderName};
use http::{HeaderValue, Request, Response};

/// The header that carries a gRPC call's status.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// Whether the request is a gRPC call (`application/grpc`, `application/grpc+proto`, ...).
pub(super) fn is_call<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// Whether the response is a failed call: its handler answered with an error status.
pub(super) fn is_error<B>(response: &Response<B>) -> bool {
    response
        .headers()
        .get(GRPC_STATUS)
        .is_some_and(|status| status.as_bytes() != b"0")
}

/// Status INTERNAL without a message (a "trailers-only" response).
pub(super) fn internal_error<B: Default>() -> Response<B> {
    let mut response = Response::new(B::default());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(GRPC_STATUS, HeaderValue::from_static("13"));
    response
}
