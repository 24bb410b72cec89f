//! The layer's defences, one per hazard: weak secrets, shared caches, oversize records,
//! planted cookies and extreme settings.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use axum::routing::get;
use common::logs::Captured;
use http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use http::{Request, Response, StatusCode};
use session_layer::{Error, MemoryStorage, Session, SessionCookie, SessionLayer};
use tower::ServiceExt;

const SECRET: &str = "a hardening-test secret, 32 bytes+";

fn cookie() -> SessionCookie {
    SessionCookie::new("sid").secrets([SECRET])
}

async fn whoami(session: Session) -> String {
    session.get::<String>("user").unwrap_or_default()
}

async fn login(session: Session, body: String) -> &'static str {
    session.set("user", body).unwrap();
    "welcome"
}

async fn logout(session: Session) -> &'static str {
    session.destroy();
    "bye"
}

async fn cached_login(session: Session) -> impl IntoResponse {
    session.set("user", "mj").unwrap();
    ([(CACHE_CONTROL, "private, max-age=60")], "welcome")
}

fn app(layer: SessionLayer<MemoryStorage>) -> Router {
    Router::new()
        .route("/", get(whoami).post(login))
        .route("/logout", get(logout))
        .route("/cached-login", get(cached_login))
        .layer(layer)
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> Response<Body> {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let request = request.body(Body::from(body.to_owned())).unwrap();
    app.clone().oneshot(request).await.unwrap()
}

/// The `name=value` pair of the response's session cookie.
fn cookie_pair(response: &Response<Body>) -> String {
    let set_cookie = response.headers().get(SET_COOKIE).expect("a Set-Cookie");
    set_cookie
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn body_text(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Logs `user` in and returns the session cookie pair.
async fn logged_in(app: &Router, user: &str) -> String {
    let response = send(app, "POST", "/", None, user).await;
    assert_eq!(response.status(), StatusCode::OK);
    cookie_pair(&response)
}

// --- secrets ------------------------------------------------------------------------------

fn refusal(cookie: SessionCookie) -> String {
    match SessionLayer::try_new(cookie, MemoryStorage::new()) {
        Err(error @ Error::Config(_)) => error.to_string(),
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(_) => panic!("the layer accepted a weak secret"),
    }
}

#[test]
fn a_secret_under_32_bytes_is_refused() {
    let short = "k".repeat(31);
    let message = refusal(SessionCookie::new("sid").secrets([short.as_str()]));
    assert!(message.contains("32 bytes"), "{message}");
    assert!(
        !message.contains(&short),
        "the error must not print the secret: {message}"
    );
    assert!(
        SessionLayer::try_new(
            SessionCookie::new("sid").secrets(["k".repeat(32)]),
            MemoryStorage::new()
        )
        .is_ok()
    );
}

#[test]
fn a_short_older_secret_in_the_rotation_is_refused_too() {
    let message = refusal(SessionCookie::new("sid").secrets([SECRET, "kiwi"]));
    assert!(message.contains("32 bytes"), "{message}");
}

#[test]
#[should_panic(expected = "32 bytes")]
fn new_panics_on_a_short_secret() {
    let _ = SessionLayer::new(
        SessionCookie::new("sid").secrets(["kiwi"]),
        MemoryStorage::new(),
    );
}

// --- shared caches ------------------------------------------------------------------------

#[tokio::test]
async fn a_response_that_sets_or_clears_the_cookie_is_not_for_caches() {
    let app = app(SessionLayer::new(cookie(), MemoryStorage::new()));
    let response = send(&app, "POST", "/", None, "mj").await;
    assert_eq!(response.headers().get(CACHE_CONTROL).unwrap(), "no-store");
    let session = cookie_pair(&response);

    let response = send(&app, "GET", "/logout", Some(&session), "").await;
    assert!(
        response.headers().get(SET_COOKIE).is_some(),
        "the cookie is cleared"
    );
    assert_eq!(response.headers().get(CACHE_CONTROL).unwrap(), "no-store");
}

#[tokio::test]
async fn a_response_without_a_session_cookie_keeps_its_caching() {
    let app = app(SessionLayer::new(cookie(), MemoryStorage::new()));
    let response = send(&app, "GET", "/", None, "").await;
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert!(response.headers().get(CACHE_CONTROL).is_none());
}

#[tokio::test]
async fn the_handlers_own_cache_control_is_left_as_it_is() {
    let app = app(SessionLayer::new(cookie(), MemoryStorage::new()));
    let response = send(&app, "GET", "/cached-login", None, "").await;
    assert!(response.headers().get(SET_COOKIE).is_some());
    let values: Vec<_> = response.headers().get_all(CACHE_CONTROL).iter().collect();
    assert_eq!(values, ["private, max-age=60"]);
}

// --- record size --------------------------------------------------------------------------

#[tokio::test]
async fn a_record_over_the_size_limit_is_a_bare_500() {
    let storage = MemoryStorage::new().max_record_size(1024);
    let app = app(SessionLayer::new(cookie(), storage.clone()));
    let response = send(&app, "POST", "/", None, &"x".repeat(2000)).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert_eq!(body_text(response).await, "");
    assert_eq!(storage.len(), 0, "nothing was stored");

    let response = send(&app, "POST", "/", None, &"x".repeat(900)).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "a record within the limit saves"
    );
}

// --- planted cookies ----------------------------------------------------------------------

#[tokio::test]
async fn a_planted_cookie_never_puts_the_victim_in_the_attackers_session() {
    let app = app(SessionLayer::new(cookie(), MemoryStorage::new()));
    let victim = logged_in(&app, "victim").await;
    let attacker = logged_in(&app, "attacker").await;
    for header in [
        format!("{attacker}; {victim}"),
        format!("{victim}; {attacker}"),
    ] {
        let response = send(&app, "GET", "/", Some(&header), "").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            body_text(response).await,
            "",
            "neither session is used for {header}"
        );
    }
    // HTTP/2 may send each cookie in a header of its own: a planted one cannot hide there.
    for (first, second) in [(&attacker, &victim), (&victim, &attacker)] {
        let request = Request::get("/")
            .header(COOKIE, first.as_str())
            .header(COOKIE, second.as_str())
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(
            body_text(response).await,
            "",
            "neither session, over two headers"
        );
    }
    let response = send(&app, "GET", "/", Some(&format!("{victim}; {victim}")), "").await;
    assert_eq!(
        body_text(response).await,
        "victim",
        "a duplicate of one value is no conflict"
    );
}

#[tokio::test]
async fn a_planted_cookie_is_logged_without_either_value() {
    let app = app(SessionLayer::new(cookie(), MemoryStorage::new()));
    let victim = logged_in(&app, "victim").await;
    let attacker = logged_in(&app, "attacker").await;
    let (logs, _guard) = Captured::start();
    send(&app, "GET", "/", Some(&format!("{attacker}; {victim}")), "").await;
    let text = logs.text();
    assert!(
        text.contains("two different valid session cookies"),
        "{text:?}"
    );
    for pair in [&victim, &attacker] {
        let value = pair.split_once('=').unwrap().1;
        assert!(!text.contains(value), "a cookie value in the log: {text}");
    }
}

// --- extreme settings ---------------------------------------------------------------------

#[tokio::test]
async fn far_future_cookie_settings_do_not_panic() {
    let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
    let settings = [
        cookie().expires(far),
        cookie().expires(UNIX_EPOCH + Duration::from_secs(300_000_000_000)),
        cookie().expires(UNIX_EPOCH - Duration::from_secs(300_000_000_000)),
        cookie().max_age(Duration::MAX),
    ];
    for cookie in settings {
        // Either refused with an error or working: never a panic.
        let Ok(layer) = SessionLayer::try_new(cookie, MemoryStorage::new()) else {
            continue;
        };
        let app = app(layer);
        let response = send(&app, "POST", "/", None, "mj").await;
        assert_eq!(response.status(), StatusCode::OK);
        let session = cookie_pair(&response);
        let response = send(&app, "GET", "/", Some(&session), "").await;
        assert_eq!(body_text(response).await, "mj");
    }
}

#[tokio::test]
async fn a_duration_max_ttl_means_forever() {
    let storage = MemoryStorage::new()
        .ttl(Duration::MAX)
        .max_lifetime(Duration::MAX);
    let app = app(SessionLayer::new(cookie(), storage));
    let session = logged_in(&app, "mj").await;
    let response = send(&app, "GET", "/", Some(&session), "").await;
    assert_eq!(
        body_text(response).await,
        "mj",
        "the session did not expire at once"
    );
}
