//! Session ids: random, and unguessable; and their digest, which names a session without
//! revealing its id.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A new session id: 18 random bytes (144 bits), exactly 24 URL-safe base64 characters.
pub(crate) fn generate_id() -> String {
    let mut bytes = [0u8; 18];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The hex SHA-256 of a session id: 64 characters safe in any key, path or column, from
/// which the id cannot be recovered. Store records under it rather than under the id, so
/// that a dump of the store or a log line holds no usable session id.
///
/// ```
/// let key = session_layer::storage::id_digest("some-session-id");
/// assert_eq!(key.len(), 64);
/// assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
/// ```
pub fn id_digest(id: &str) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(id.as_bytes()) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}
