//! A storage whose every call fails, with a detail that must never reach a client.

use session_layer::{Error, Session, SessionStorage};

/// What every failure says: a secret a response must not carry.
pub const DETAIL: &str = "db password is hunter2";

/// Fails every read and every save with [`DETAIL`].
pub struct Broken;

impl SessionStorage for Broken {
    async fn read(&self, _value: Option<&str>) -> Result<Session, Error> {
        Err(Error::backend(DETAIL))
    }

    async fn save(&self, _session: &Session) -> Result<Option<String>, Error> {
        Err(Error::backend(DETAIL))
    }
}
