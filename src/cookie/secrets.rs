//! [`SecretKeys`]: the keys derived from the cookie's secrets, newest first.

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub(super) type HmacSha256 = Hmac<Sha256>;

/// The shortest secret `validate` accepts: 256 bits, the strength of the keys derived from it.
pub(super) const MIN_SECRET_LEN: usize = 32;

/// What the encryption key of each secret is derived with (HMAC-SHA256 of this, keyed by the
/// secret), so that the signing and the encryption keys differ.
const AEAD_KEY_LABEL: &[u8] = b"session-layer xchacha20-poly1305 key";

/// The signing and encryption keys of each secret, newest first.
#[derive(Default)]
pub(super) struct SecretKeys {
    pub(super) macs: Vec<HmacSha256>,
    pub(super) ciphers: Vec<XChaCha20Poly1305>,
    /// The first secret shorter than `MIN_SECRET_LEN`, as (position from 1, length), for
    /// `validate`'s message: the length only, never the secret.
    pub(super) short_secret: Option<(usize, usize)>,
}

impl SecretKeys {
    /// Derives both keys of every secret.
    pub(super) fn derive<I>(secrets: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut keys = SecretKeys::default();
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.len() < MIN_SECRET_LEN && keys.short_secret.is_none() {
                keys.short_secret = Some((keys.macs.len() + 1, secret.len()));
            }
            // HMAC takes keys of any length; a short one is refused by `validate`.
            let mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
            // A separate key for encryption, derived so that one secret serves both.
            let mut derive = mac.clone();
            derive.update(AEAD_KEY_LABEL);
            let key = derive.finalize().into_bytes();
            keys.ciphers.push(XChaCha20Poly1305::new(&key));
            keys.macs.push(mac);
        }
        keys
    }

    /// How many secrets there are.
    pub(super) fn len(&self) -> usize {
        self.macs.len()
    }
}
