//! Renewal through `SessionLayer::rolling(true)`.

use axum::Router;
use axum::extract::Extension;
use axum::routing::get;
use session_layer::storage::SessionBackend;
use session_layer::{MemoryStorage, Session, SessionCookie, SessionLayer, SessionStorage};

use crate::common::app::send;

/// Reads only; answers the id, so that the test can look at the record.
async fn read(session: Session) -> String {
    session.id()
}

async fn write(session: Session) -> String {
    session.set("n", 7).unwrap();
    session.id()
}

/// Reads only, while another request destroys the session meanwhile.
async fn destroyed_meanwhile(
    Extension(storage): Extension<MemoryStorage>,
    session: Session,
) -> String {
    let other = storage.read(Some(&session.id())).await.unwrap();
    other.destroy();
    storage.save(&other).await.unwrap();
    session.id()
}

fn app(storage: MemoryStorage) -> Router {
    let cookie = SessionCookie::new("__session").secrets(["a test secret of at least 32 bytes"]);
    Router::new()
        .route("/", get(read))
        .route("/write", get(write))
        .route("/race", get(destroyed_meanwhile))
        .layer(SessionLayer::new(cookie, storage.clone()).rolling(true))
        .layer(Extension(storage))
}

/// A rolling read-only request re-sends the cookie and renews the record in place (same
/// version, later expiry); when another request destroyed the session meanwhile, it clears
/// the cookie and stores nothing.
#[tokio::test]
async fn a_rolling_read_renews_in_place_and_clears_a_gone_session() {
    let storage = MemoryStorage::new().ttl(std::time::Duration::from_secs(60));
    let app = app(storage.clone());
    let (_, cookie, id) = send(&app, None, "/write").await;
    let cookie = cookie.expect("a session cookie");
    let before = storage
        .backend()
        .load(&id.as_str().into())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (_, resent, same) = send(&app, Some(&cookie), "/").await;
    assert_eq!(same, id);
    assert_eq!(
        resent.as_deref(),
        Some(cookie.as_str()),
        "the cookie is re-sent"
    );
    let after = storage
        .backend()
        .load(&id.as_str().into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.version, before.version, "renewed without a write");
    assert!(after.record.expires_at_ms > before.record.expires_at_ms);
    let (_, cleared, _) = send(&app, Some(&cookie), "/race").await;
    assert_eq!(
        cleared.as_deref(),
        Some("__session="),
        "the cookie is cleared"
    );
    assert!(storage.is_empty(), "nothing brought back");
}
