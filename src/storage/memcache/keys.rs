//! How sessions are named in memcached: a prefix, checked against the protocol's rules, and
//! the hex SHA-256 of the id, so that the id itself never reaches the server.

use crate::Error;
use crate::storage::id_digest;

/// The key prefix used unless [`MemcacheStorage::key_prefix`](super::MemcacheStorage::key_prefix)
/// sets another.
pub(super) const DEFAULT_PREFIX: &str = "session:";

/// Memcached's limit on key length, in bytes.
const MAX_KEY_LEN: usize = 250;

/// Length of the hex SHA-256 that follows the prefix in every key.
const HASH_HEX_LEN: usize = 64;

/// The key of the session `id` under `prefix`.
pub(super) fn key(prefix: &str, id: &str) -> String {
    key_of_digest(prefix, &id_digest(id))
}

/// The key of the session whose id has this [`id_digest`], under `prefix`.
pub(super) fn key_of_digest(prefix: &str, digest: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + HASH_HEX_LEN);
    key.push_str(prefix);
    key.push_str(digest);
    key
}

/// Refuses a prefix that would make keys memcached's text protocol cannot carry: spaces and
/// control characters end a key, and a key holds at most 250 bytes.
pub(super) fn validate_prefix(prefix: &str) -> Result<(), Error> {
    if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Config(
            "a memcached key prefix must be printable ASCII without spaces or control characters"
                .to_owned(),
        ));
    }
    let key_len = prefix.len() + HASH_HEX_LEN;
    if key_len > MAX_KEY_LEN {
        return Err(Error::Config(format!(
            "a memcached key prefix of {} bytes makes {key_len}-byte keys (prefix + 64 hex \
             characters), over memcached's {MAX_KEY_LEN}-byte key limit; use at most {} bytes",
            prefix.len(),
            MAX_KEY_LEN - HASH_HEX_LEN
        )));
    }
    Ok(())
}
