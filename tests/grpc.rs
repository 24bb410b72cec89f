//! gRPC calls through the layer, as tonic sends and answers them: `content-type:
//! application/grpc`, errors as HTTP 200 with a `grpc-status` header. Plain Tower services
//! stand in for a tonic server, so no protobuf compiler is needed.

mod common;

use std::convert::Infallible;

use common::broken::Broken;
use http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode};
use session_layer::{MemoryStorage, Session, SessionCookie, SessionLayer, SessionStorage};
use tower::{Layer, Service, ServiceExt, service_fn};

fn cookie() -> SessionCookie {
    SessionCookie::new("sid").secrets(["a gRPC test secret, 32 bytes long"])
}

/// A service that counts calls in the session and answers with `grpc_status` in its
/// headers (`None`: a successful call, whose status would come in the trailers).
fn counter<St: SessionStorage>(
    layer: SessionLayer<St>,
    grpc_status: Option<&'static str>,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    layer.layer(service_fn(move |request: Request<String>| async move {
        let session = request.extensions().get::<Session>().cloned().unwrap();
        let calls = session.get::<u64>("calls").unwrap_or(0) + 1;
        session.set("calls", calls).unwrap();
        let mut response = Response::new(calls.to_string());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        if let Some(status) = grpc_status {
            response
                .headers_mut()
                .insert("grpc-status", HeaderValue::from_static(status));
        }
        Ok::<_, Infallible>(response)
    }))
}

fn call(content_type: &str, cookie: Option<&str>) -> Request<String> {
    let mut request = Request::post("/demo.Counter/Add").header(CONTENT_TYPE, content_type);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.body(String::new()).unwrap()
}

fn cookie_pair(response: &Response<String>) -> Option<String> {
    let set_cookie = response.headers().get(SET_COOKIE)?.to_str().unwrap();
    Some(set_cookie.split(';').next().unwrap().to_owned())
}

fn assert_internal_without_details(response: &Response<String>) {
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "gRPC errors travel as HTTP 200"
    );
    assert_eq!(response.headers().get("grpc-status").unwrap(), "13");
    assert!(response.headers().get("grpc-message").is_none());
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert_eq!(response.body(), "", "no detail in the body");
    let headers = format!("{:?}", response.headers());
    assert!(!headers.contains("hunter2"), "{headers}");
}

#[tokio::test]
async fn a_storage_error_on_save_is_status_internal_without_details() {
    let service = counter(SessionLayer::new(cookie(), Broken), None);
    let response = service
        .oneshot(call("application/grpc", None))
        .await
        .unwrap();
    assert_internal_without_details(&response);
}

#[tokio::test]
async fn a_storage_error_on_read_is_status_internal_without_details() {
    let sealed = cookie().serialize("some-id").unwrap();
    let pair = sealed.split(';').next().unwrap().to_owned();
    let service = counter(SessionLayer::new(cookie(), Broken), None);
    let request = call("application/grpc+proto", Some(&pair));
    let response = service.oneshot(request).await.unwrap();
    assert_internal_without_details(&response);
}

#[tokio::test]
async fn a_plain_http_request_still_gets_a_bare_500() {
    let service = counter(SessionLayer::new(cookie(), Broken), None);
    let response = service
        .oneshot(call("application/json", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.headers().get("grpc-status").is_none());
}

#[tokio::test]
async fn the_session_is_kept_across_successful_calls() {
    let service = counter(SessionLayer::new(cookie(), MemoryStorage::new()), None);
    let first = service
        .clone()
        .oneshot(call("application/grpc", None))
        .await
        .unwrap();
    let session = cookie_pair(&first).expect("the first call starts a session");
    let second = service
        .oneshot(call("application/grpc", Some(&session)))
        .await
        .unwrap();
    assert_eq!(second.body(), "2");
}

#[tokio::test]
async fn a_call_its_handler_failed_saves_nothing() {
    let storage = MemoryStorage::new();
    let ok = counter(SessionLayer::new(cookie(), storage.clone()), Some("0"));
    let denied = counter(SessionLayer::new(cookie(), storage.clone()), Some("7"));

    let first = ok
        .clone()
        .oneshot(call("application/grpc", None))
        .await
        .unwrap();
    let session = cookie_pair(&first).expect("grpc-status 0 is a success: saved");

    let response = denied
        .clone()
        .oneshot(call("application/grpc", Some(&session)))
        .await
        .unwrap();
    assert!(cookie_pair(&response).is_none(), "nothing saved, no cookie");
    let fresh = denied
        .oneshot(call("application/grpc", None))
        .await
        .unwrap();
    assert!(
        cookie_pair(&fresh).is_none(),
        "a failed call starts no session either"
    );

    let after = ok
        .oneshot(call("application/grpc", Some(&session)))
        .await
        .unwrap();
    assert_eq!(after.body(), "2", "the failed call's write was not saved");
    assert_eq!(storage.len(), 1);
}
