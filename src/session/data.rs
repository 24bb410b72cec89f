//! [`SessionData`]: what a storage keeps for one session.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a storage keeps for one session: its values and the flash for the next request.
///
/// ```
/// use session_layer::{Session, SessionData};
///
/// let mut data = SessionData::default();
/// data.values.insert("user".into(), "mj".into());
/// data.flash.insert("notice".into(), "Saved!".into());
///
/// let session = Session::from_data("some-id", data);
/// assert_eq!(session.get::<String>("user").as_deref(), Some("mj"));
/// assert_eq!(session.get::<String>("notice").as_deref(), Some("Saved!"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionData {
    /// Values that persist until they are unset or the session ends.
    #[serde(default)]
    pub values: Map<String, Value>,
    /// Values readable during one request only: the one after they were flashed.
    #[serde(default)]
    pub flash: Map<String, Value>,
}
