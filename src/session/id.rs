//! Session ids: random, and unguessable.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A new session id: 18 random bytes (144 bits), exactly 24 URL-safe base64 characters.
pub(crate) fn generate_id() -> String {
    let mut bytes = [0u8; 18];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
