//! The header transport: the sealed session value travels in a named request and response
//! header instead of a cookie, for API and native gRPC clients.

use std::convert::Infallible;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, HeaderName, SET_COOKIE};
use http::{HeaderValue, Request, Response};
use session_layer::{MemoryStorage, Session, SessionCookie, SessionLayer, SessionStorage};
use tower::{Layer, Service, ServiceExt, service_fn};

const HEADER: HeaderName = HeaderName::from_static("x-session");

fn cookie() -> SessionCookie {
    SessionCookie::new("sid").secrets(["a header test secret, 32 bytes long"])
}

fn layer<St: SessionStorage>(cookie: SessionCookie, storage: St) -> SessionLayer<St> {
    SessionLayer::new(cookie, storage).header(HEADER)
}

/// `/count` counts calls in the session, `/logout` destroys it; the body is the count.
fn app<St: SessionStorage>(
    layer: SessionLayer<St>,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    layer.layer(service_fn(|request: Request<String>| async move {
        let session = request.extensions().get::<Session>().cloned().unwrap();
        if request.uri().path() == "/logout" {
            session.destroy();
            return Ok(Response::new(String::new()));
        }
        let calls = session.get::<u64>("calls").unwrap_or(0) + 1;
        session.set("calls", calls).unwrap();
        Ok::<_, Infallible>(Response::new(calls.to_string()))
    }))
}

fn request(path: &str, value: Option<&HeaderValue>) -> Request<String> {
    let mut request = Request::post(path);
    if let Some(value) = value {
        request = request.header(HEADER, value);
    }
    request.body(String::new()).unwrap()
}

async fn send<S>(app: &S, path: &str, value: Option<&HeaderValue>) -> Response<String>
where
    S: Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone,
{
    app.clone().oneshot(request(path, value)).await.unwrap()
}

#[tokio::test]
async fn the_session_travels_in_the_header_and_never_in_a_cookie() {
    let app = app(layer(cookie(), MemoryStorage::new()));
    let first = send(&app, "/count", None).await;
    assert_eq!(first.body(), "1");
    assert!(first.headers().get(SET_COOKIE).is_none());
    assert_eq!(first.headers()[CACHE_CONTROL], "no-store");
    let value = first
        .headers()
        .get(HEADER)
        .expect("the session header")
        .clone();
    assert!(!value.is_empty());

    let second = send(&app, "/count", Some(&value)).await;
    assert_eq!(second.body(), "2");
    // The id did not change, so the value is the same: clients may keep either.
    assert_eq!(second.headers().get(HEADER), Some(&value));
}

#[tokio::test]
async fn a_cookie_is_not_read_when_the_header_carries_the_session() {
    let storage = MemoryStorage::new();
    let by_header = app(layer(cookie(), storage.clone()));
    let value = send(&by_header, "/count", None).await.headers()[HEADER].clone();
    // The same sealed value, offered as a cookie, names no session.
    let mut request = request("/count", None);
    let pair = format!("sid={}", value.to_str().unwrap());
    request.headers_mut().insert(COOKIE, pair.parse().unwrap());
    let response = by_header.clone().oneshot(request).await.unwrap();
    assert_eq!(response.body(), "1");
}

#[tokio::test]
async fn a_destroyed_session_sends_an_empty_header() {
    let app = app(layer(cookie(), MemoryStorage::new()));
    let value = send(&app, "/count", None).await.headers()[HEADER].clone();
    let logout = send(&app, "/logout", Some(&value)).await;
    assert_eq!(
        logout.headers().get(HEADER).map(HeaderValue::as_bytes),
        Some(&b""[..])
    );
    assert!(logout.headers().get(SET_COOKIE).is_none());
    // The old value names nothing any more.
    assert_eq!(send(&app, "/count", Some(&value)).await.body(), "1");
}

#[tokio::test]
async fn tampered_foreign_and_planted_values_give_a_fresh_session() {
    let app = app(layer(cookie(), MemoryStorage::new()));
    let value = send(&app, "/count", None).await.headers()[HEADER].clone();
    assert_eq!(send(&app, "/count", Some(&value)).await.body(), "2");

    let mut tampered = value.as_bytes().to_vec();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    let tampered = HeaderValue::from_bytes(&tampered).unwrap();
    assert_eq!(send(&app, "/count", Some(&tampered)).await.body(), "1");

    let other_secret = SessionCookie::new("sid").secrets(["another secret, also 32 bytes long"]);
    let foreign = HeaderValue::try_from(other_secret.serialize("x").unwrap()).unwrap();
    assert_eq!(send(&app, "/count", Some(&foreign)).await.body(), "1");

    // Two different valid values: neither is used.
    let planted = send(&app, "/count", None).await.headers()[HEADER].clone();
    let mut request = request("/count", Some(&value));
    request.headers_mut().append(HEADER, planted);
    assert_eq!(app.clone().oneshot(request).await.unwrap().body(), "1");
}

#[tokio::test]
async fn an_encrypted_value_is_sealed_as_the_cookie_would_be() {
    let app = app(layer(cookie().encrypted(true), MemoryStorage::new()));
    let value = send(&app, "/count", None).await.headers()[HEADER].clone();
    assert!(
        !value.to_str().unwrap().contains('.'),
        "encrypted, not signed"
    );
    assert_eq!(send(&app, "/count", Some(&value)).await.body(), "2");
}

#[tokio::test]
async fn an_oversize_value_is_a_bare_500() {
    let cookie_storage = session_layer::CookieStorage::new();
    let big =
        layer(cookie(), cookie_storage).layer(service_fn(|request: Request<String>| async move {
            let session = request.extensions().get::<Session>().cloned().unwrap();
            session.set("blob", "x".repeat(5000)).unwrap();
            Ok::<_, Infallible>(Response::new("secret detail".to_owned()))
        }));
    let response = big.oneshot(request("/", None)).await.unwrap();
    assert_eq!(response.status(), 500);
    assert!(response.body().is_empty());
    assert!(response.headers().get(HEADER).is_none());
}

#[tokio::test]
async fn a_grpc_call_keeps_its_session_in_metadata() {
    let app = app(layer(cookie(), MemoryStorage::new()));
    let grpc = |value: Option<&HeaderValue>| {
        let mut request = request("/demo.Counter/Add", value);
        let grpc = HeaderValue::from_static("application/grpc");
        request.headers_mut().insert(CONTENT_TYPE, grpc);
        request
    };
    let first = app.clone().oneshot(grpc(None)).await.unwrap();
    let value = first.headers()[HEADER].clone();
    let second = app.clone().oneshot(grpc(Some(&value))).await.unwrap();
    assert_eq!(second.body(), "2");
}
