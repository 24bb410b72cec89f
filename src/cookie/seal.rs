//! Sealing a session value with the newest secret, and opening it with any of them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use xaes_256_gcm::aead::AeadInOut;
use xaes_256_gcm::aead::array::Array;

use super::secrets::HmacSha256;
use super::{MAX_COOKIE_SIZE, SessionCookie};
use crate::observe::Refusal;

/// Bytes of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;
/// The first byte of a value sealed with XAES-256-GCM. Values of 0.1 (XChaCha20-Poly1305)
/// start with their nonce instead, so one in 256 of them starts with this too, and opens as
/// 0.1's once XAES-256-GCM has refused it.
const XAES_FORMAT: u8 = 1;
/// Bytes of a nonce, XAES-256-GCM's as XChaCha20-Poly1305's: 192 random bits, so nonces
/// never repeat in practice.
const NONCE_LEN: usize = 24;
/// Bytes of a GCM or Poly1305 tag.
const AEAD_TAG_LEN: usize = 16;

impl SessionCookie {
    /// Verifies and decodes one sealed value; says whether the newest secret sealed it.
    pub(super) fn open(&self, sealed: &str) -> Option<(String, bool)> {
        if sealed.len() > MAX_COOKIE_SIZE {
            return None;
        }
        if !self.is_signed() {
            return decode_text(sealed).map(|value| (value, true));
        }
        if self.encrypted {
            let mut bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
            if bytes.first() == Some(&XAES_FORMAT)
                && let Some(key) = open_in_place(&self.keys.ciphers, &self.name, &mut bytes, 1)
            {
                return String::from_utf8(bytes).ok().map(|value| (value, key == 0));
            }
            // Not the newest secret's seal, so that the layer seals it again as XAES-256-GCM.
            open_in_place(&self.keys.legacy_ciphers, &self.name, &mut bytes, 0)?;
            String::from_utf8(bytes).ok().map(|value| (value, false))
        } else {
            let (payload, tag) = sealed.rsplit_once('.')?;
            let mut tag_bytes = [0u8; TAG_LEN];
            if URL_SAFE_NO_PAD.decode_slice(tag, &mut tag_bytes).ok()? != TAG_LEN {
                return None;
            }
            let key = self
                .keys
                .macs
                .iter()
                .position(|mac| self.mac(mac, payload).verify_slice(&tag_bytes).is_ok())?;
            decode_text(payload).map(|value| (value, key == 0))
        }
    }
    /// Why [`open`](Self::open) refused `sealed`: recomputed only for a refused value, so
    /// that opening stays as it is.
    pub(super) fn refusal(&self, sealed: &str) -> Refusal {
        if sealed.len() > MAX_COOKIE_SIZE {
            return Refusal::Oversize;
        }
        let well_formed = if !self.is_signed() {
            false
        } else if self.encrypted {
            URL_SAFE_NO_PAD
                .decode(sealed)
                .is_ok_and(|bytes| bytes.len() >= NONCE_LEN + AEAD_TAG_LEN)
        } else {
            sealed.rsplit_once('.').is_some_and(|(payload, tag)| {
                let mut tag_bytes = [0u8; TAG_LEN];
                URL_SAFE_NO_PAD.decode_slice(tag, &mut tag_bytes).ok() == Some(TAG_LEN)
                    && decode_text(payload).is_some()
            })
        };
        if well_formed {
            Refusal::Tampered
        } else {
            Refusal::Malformed
        }
    }
    /// The MAC over `name=payload`, so the signature binds the cookie's name.
    fn mac(&self, key: &HmacSha256, payload: &str) -> HmacSha256 {
        let mut mac = key.clone();
        mac.update(self.name.as_bytes());
        mac.update(b"=");
        mac.update(payload.as_bytes());
        mac
    }
    /// Seals `value` with the newest secret (unsealed when there is none).
    pub(crate) fn seal(&self, value: &str) -> String {
        if self.encrypted
            && let Some(cipher) = self.keys.ciphers.first()
        {
            let mut nonce = xaes_256_gcm::Nonce::default();
            rand::fill(nonce.as_mut_slice());
            // format || nonce || ciphertext || tag, encrypted in place in one buffer.
            let mut bytes = Vec::with_capacity(1 + NONCE_LEN + value.len() + AEAD_TAG_LEN);
            bytes.push(XAES_FORMAT);
            bytes.extend_from_slice(&nonce);
            bytes.extend_from_slice(value.as_bytes());
            let tag = cipher
                .encrypt_inout_detached(
                    &nonce,
                    self.name.as_bytes(),
                    (&mut bytes[1 + NONCE_LEN..]).into(),
                )
                .expect("XAES-256-GCM encrypts any message under 64 GiB");
            bytes.extend_from_slice(&tag);
            return URL_SAFE_NO_PAD.encode(bytes);
        }
        let mut sealed = URL_SAFE_NO_PAD.encode(value);
        if let Some(key) = self.keys.macs.first() {
            let tag = self.mac(key, &sealed).finalize().into_bytes();
            sealed.push('.');
            URL_SAFE_NO_PAD.encode_string(tag, &mut sealed);
        }
        sealed
    }
}

fn decode_text(encoded: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    String::from_utf8(bytes).ok()
}

/// Opens `[skip..]` of `bytes` (nonce || ciphertext || tag) with the first of `ciphers` that
/// verifies it, and leaves the plaintext alone in `bytes`; gives that cipher's position.
fn open_in_place<A>(ciphers: &[A], name: &str, bytes: &mut Vec<u8>, skip: usize) -> Option<usize>
where
    A: AeadInOut,
{
    if bytes.len() < skip + NONCE_LEN + AEAD_TAG_LEN {
        return None;
    }
    let tag_at = bytes.len() - AEAD_TAG_LEN;
    let nonce = Array::try_from(&bytes[skip..skip + NONCE_LEN]).ok()?;
    let tag = Array::try_from(&bytes[tag_at..]).ok()?;
    // A wrong key leaves the buffer as it was (the tag is checked before decrypting), so
    // each secret can be tried on the same bytes.
    let key = ciphers.iter().position(|cipher| {
        let ciphertext = &mut bytes[skip + NONCE_LEN..tag_at];
        cipher
            .decrypt_inout_detached(&nonce, name.as_bytes(), ciphertext.into(), &tag)
            .is_ok()
    })?;
    bytes.truncate(tag_at);
    bytes.drain(..skip + NONCE_LEN);
    Some(key)
}
