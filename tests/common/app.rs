//! One small axum app over any storage, for each backend's layer-level flow test.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header};
use session_layer::{Session, SessionCookie, SessionLayer, SessionStorage};
use tower::ServiceExt;

async fn count(session: Session) -> String {
    let n = session.get::<u64>("n").unwrap_or(0) + 1;
    session.set("n", n).unwrap();
    n.to_string()
}

async fn login(session: Session) -> &'static str {
    session.regenerate_id(true).unwrap();
    session.set("user", "mj").unwrap();
    "welcome"
}

async fn logout(session: Session) -> &'static str {
    session.destroy();
    "bye"
}

/// `/` counts visits, `/login` regenerates the id (deleting the old), `/logout` destroys;
/// the cookie is `__session`.
pub fn app<St: SessionStorage>(storage: St) -> Router {
    let cookie = SessionCookie::new("__session").secrets(["a test secret of at least 32 bytes"]);
    Router::new()
        .route("/", get(count))
        .route("/login", get(login))
        .route("/logout", get(logout))
        .layer(SessionLayer::new(cookie, storage))
}

/// Sends one GET; returns the status, the `name=value` pair of the cookie set (if any) and
/// the body.
pub async fn send(
    app: &Router,
    cookie: Option<&str>,
    path: &str,
) -> (StatusCode, Option<String>, String) {
    let mut builder = Request::get(path);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let pair = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, pair, String::from_utf8(body.to_vec()).unwrap())
}
