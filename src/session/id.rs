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
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    // A table lookup per nibble: `write!` with `{:02x}` runs the formatter once per byte.
    for byte in Sha256::digest(id.as_bytes()) {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
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
}
