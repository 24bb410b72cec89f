//! [`SecretKeys`]: the keys derived from the cookie's secrets, newest first.

use chacha20poly1305::XChaCha20Poly1305;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use xaes_256_gcm::Xaes256Gcm;
use xaes_256_gcm::aead::KeyInit;

pub(super) type HmacSha256 = Hmac<Sha256>;

/// The shortest secret `validate` accepts: 256 bits, the strength of the keys derived from it.
pub(super) const MIN_SECRET_LEN: usize = 32;

/// What the encryption key of each secret is derived with (HMAC-SHA256 of this, keyed by the
/// secret), so that the signing and the encryption keys differ.
const AEAD_KEY_LABEL: &[u8] = b"session-layer xaes-256-gcm key";

/// The label of the XChaCha20-Poly1305 keys of 0.1, whose values still open.
const LEGACY_AEAD_KEY_LABEL: &[u8] = b"session-layer xchacha20-poly1305 key";

/// The signing and encryption keys of each secret, newest first.
#[derive(Default)]
pub(super) struct SecretKeys {
    pub(super) macs: Vec<HmacSha256>,
    pub(super) ciphers: Vec<Xaes256Gcm>,
    /// XChaCha20-Poly1305, for opening only: values sealed before the switch to XAES-256-GCM
    /// keep opening, so that an upgrade logs no one out.
    pub(super) legacy_ciphers: Vec<XChaCha20Poly1305>,
    /// The first secret shorter than `MIN_SECRET_LEN`, as (position from 1, length), for
    /// `validate`'s message: the length only, never the secret.
    pub(super) short_secret: Option<(usize, usize)>,
}

impl SecretKeys {
    /// Derives the keys of every secret.
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
            // Separate keys for encryption, derived so that one secret serves all.
            let derive = |label: &[u8]| {
                let mut derive = mac.clone();
                derive.update(label);
                derive.finalize().into_bytes()
            };
            keys.ciphers.push(Xaes256Gcm::new(&derive(AEAD_KEY_LABEL)));
            keys.legacy_ciphers
                .push(XChaCha20Poly1305::new(&derive(LEGACY_AEAD_KEY_LABEL)));
            keys.macs.push(mac);
        }
        keys
    }

    /// How many secrets there are.
    pub(super) fn len(&self) -> usize {
        self.macs.len()
    }
}
