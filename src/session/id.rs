//! Session ids: random, and unguessable; and their digest, which names a session without
//! revealing its id.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

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
    let hex = hex_digest(id);
    std::str::from_utf8(&hex).unwrap_or_default().to_owned()
}

/// The hex SHA-256 of `id`, as ASCII bytes.
fn hex_digest(id: &str) -> [u8; 64] {
    use sha2::{Digest, Sha256};
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 64];
    // A table lookup per nibble: `write!` with `{:02x}` runs the formatter once per byte.
    for (pair, byte) in hex.chunks_exact_mut(2).zip(Sha256::digest(id.as_bytes())) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    hex
}

/// A session id as the lifecycle hands it to a [`SessionBackend`](crate::storage::SessionBackend):
/// the id, and its [`digest`](SessionId::digest), computed when first asked for and then kept,
/// clones included, so that a request which loads and saves a session digests its id once.
///
/// It reads as the id (`Deref<Target = str>`); clones share one allocation.
///
/// ```
/// use session_layer::storage::{SessionId, id_digest};
///
/// let id = SessionId::from("some-session-id");
/// assert_eq!(&*id, "some-session-id");
/// assert_eq!(id.digest(), id_digest("some-session-id"));
/// ```
#[derive(Clone)]
pub struct SessionId(Arc<IdAndDigest>);

struct IdAndDigest {
    id: String,
    digest: OnceLock<[u8; 64]>,
}

impl SessionId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0.id
    }

    /// The id's [`id_digest`]: what a store should name the session by, never the id.
    pub fn digest(&self) -> &str {
        let hex = self.0.digest.get_or_init(|| hex_digest(&self.0.id));
        // Hex digits are ASCII, so this is never the default.
        std::str::from_utf8(hex).unwrap_or_default()
    }

    /// Whether the digest was computed, for tests of where it is.
    #[cfg(test)]
    pub(crate) fn has_digest(&self) -> bool {
        self.0.digest.get().is_some()
    }
}

impl From<String> for SessionId {
    fn from(id: String) -> SessionId {
        SessionId(Arc::new(IdAndDigest {
            id,
            digest: OnceLock::new(),
        }))
    }
}

impl From<&str> for SessionId {
    fn from(id: &str) -> SessionId {
        SessionId::from(id.to_owned())
    }
}

impl Deref for SessionId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for SessionId {
    fn eq(&self, other: &SessionId) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SessionId {}

impl fmt::Debug for SessionId {
    /// Never the id: ids are credentials and logs are not secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_lowercase_hex_sha256() {
        assert_eq!(
            id_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_clone_keeps_the_digest_computed_before_it() {
        let id = SessionId::from("abc");
        assert!(!id.clone().has_digest());
        assert_eq!(id.digest(), id_digest("abc"));
        assert!(id.clone().has_digest());
        assert_eq!(format!("{id:?}"), "SessionId([redacted])");
    }
}
