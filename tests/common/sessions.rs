//! Sessions as the tests start them: saved through a storage, with the cookie value checked.

use session_layer::{Session, SessionStorage};

/// Saves `session` and returns its cookie value, failing on a cleared or missing one.
pub async fn saved<St: SessionStorage>(storage: &St, session: &Session) -> String {
    let value = storage
        .save(session)
        .await
        .unwrap()
        .expect("a cookie value");
    assert!(!value.is_empty(), "the session was cleared");
    value
}

/// A stored session holding `n`, owned by `owner` if given; its id.
pub async fn stored_session<St: SessionStorage>(
    storage: &St,
    n: u64,
    owner: Option<&str>,
) -> String {
    let session = storage.read(None).await.unwrap();
    session.set("n", n).unwrap();
    if let Some(owner) = owner {
        session.set_owner(owner).unwrap();
    }
    saved(storage, &session).await
}
