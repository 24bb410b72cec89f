//! The cookie that carries the session: signing, encryption, attributes.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use cookie::Cookie;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Error;

type HmacSha256 = Hmac<Sha256>;

/// Browsers drop cookies longer than this (name, value and attributes together).
pub const MAX_COOKIE_SIZE: usize = 4096;

/// Bytes of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;
/// The shortest secret `validate` accepts: 256 bits, the strength of the keys derived from it.
const MIN_SECRET_LEN: usize = 32;
/// Bytes of an XChaCha20-Poly1305 nonce: 192 random bits, so nonces never repeat in practice.
const NONCE_LEN: usize = 24;
/// Bytes of a Poly1305 tag.
const AEAD_TAG_LEN: usize = 16;
/// The latest instant a cookie date can name, 9999-12-31 23:59:59 UTC, in seconds since the
/// Unix epoch: RFC 6265 dates have four-digit years.
const LATEST_COOKIE_SECS: u64 = 253_402_300_799;
/// What the encryption key of each secret is derived with (HMAC-SHA256 of this, keyed by the
/// secret), so that the signing and the encryption keys differ.
const AEAD_KEY_LABEL: &[u8] = b"session-layer xchacha20-poly1305 key";

/// The `SameSite` attribute: when a browser sends the cookie with cross-site requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// Only with same-site requests.
    Strict,
    /// With same-site requests and top-level cross-site navigations (the default).
    Lax,
    /// With every request; browsers require `Secure` for it, so it always gets `Secure`.
    None,
}

/// The keys derived from the secrets, newest first.
struct Keys {
    macs: Vec<HmacSha256>,
    ciphers: Vec<XChaCha20Poly1305>,
}

/// The cookie that carries the session value (an id, or with
/// [`CookieStorage`](crate::CookieStorage) the data itself).
///
/// Values are signed with HMAC-SHA256, or with [`encrypted(true)`](SessionCookie::encrypted)
/// sealed with XChaCha20-Poly1305. Either way the cookie's name is bound into the seal, so a value
/// cannot be moved to another cookie, and each secret given to
/// [`secrets`](SessionCookie::secrets) is tried in turn when verifying, so secrets can be
/// rotated without logging everybody out.
///
/// A request whose `Cookie` header carries this cookie's name more than once, with values
/// that verify but differ, is treated as carrying no session (see
/// [`parse`](SessionCookie::parse)): a sibling subdomain, or a script on one, can plant a
/// validly sealed cookie of the attacker's own session beside the victim's ("cookie
/// tossing"), and nothing in the header tells which is which. In production, name the cookie
/// `__Host-…` (e.g. `__Host-session`): browsers accept such a cookie only host-only,
/// `Secure` and with `Path=/`, so no other host can set one, and the ambiguity cannot arise.
///
/// ```
/// use std::time::Duration;
/// use session_layer::{SameSite, SessionCookie};
///
/// let cookie = SessionCookie::new("__session")
///     // The first signs; every one verifies. Each at least 32 bytes, from your configuration.
///     .secrets([
///         "newest secret: 32 or more random bytes",
///         "older secret: also 32 bytes or more",
///     ])
///     .same_site(SameSite::Strict)
///     .max_age(Duration::from_secs(3600));
///
/// let set_cookie = cookie.serialize("session-id")?;
/// assert!(set_cookie.starts_with("__session="));
///
/// // What the browser sends back verifies...
/// let value = set_cookie.split(';').next().unwrap();
/// assert_eq!(cookie.parse(Some(value)).as_deref(), Some("session-id"));
/// // ...and anything else does not.
/// assert_eq!(cookie.parse(Some("__session=forged")), None);
/// # Ok::<(), session_layer::Error>(())
/// ```
#[derive(Clone)]
pub struct SessionCookie {
    name: String,
    path: String,
    domain: Option<String>,
    max_age: Option<Duration>,
    expires: Option<SystemTime>,
    http_only: bool,
    secure: bool,
    same_site: SameSite,
    partitioned: bool,
    encrypted: bool,
    secret_count: usize,
    /// The first secret shorter than `MIN_SECRET_LEN`, as (position from 1, length), for
    /// `validate`'s message: the length only, never the secret.
    short_secret: Option<(usize, usize)>,
    keys: Arc<Keys>,
}

/// What the values of this cookie in a request say.
enum Lookup {
    /// No value under our name verifies.
    Absent,
    /// One value verifies, or several that decode to the same value.
    Found(Received),
    /// Values that verify but differ: a planted cookie beside the real one.
    Ambiguous,
}

/// A session value found in a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Received {
    /// The verified, decoded value.
    pub value: String,
    /// The value as sent, when the newest secret sealed it: sending it back as it is saves
    /// sealing it again.
    pub resend: Option<String>,
}

impl SessionCookie {
    /// A cookie named `name` with the defaults: `Path=/`, `SameSite=Lax`, `HttpOnly`,
    /// `Secure`, no `Domain`, no expiry (a browser-session cookie) and no secrets.
    pub fn new(name: impl Into<String>) -> Self {
        SessionCookie {
            name: name.into(),
            path: "/".to_owned(),
            domain: None,
            max_age: None,
            expires: None,
            http_only: true,
            secure: true,
            same_site: SameSite::Lax,
            partitioned: false,
            encrypted: false,
            secret_count: 0,
            short_secret: None,
            keys: Arc::new(Keys {
                macs: Vec::new(),
                ciphers: Vec::new(),
            }),
        }
    }

    /// The secrets, newest first: values are sealed with the first and verified with each
    /// in turn. To rotate, put a new secret in front and drop the oldest once every cookie
    /// sealed with it has expired. Each must be at least 32 bytes long (e.g. 32 random bytes,
    /// or `openssl rand -hex 32`): [`validate`](SessionCookie::validate) refuses shorter ones.
    pub fn secrets<I>(mut self, secrets: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut macs = Vec::new();
        let mut ciphers = Vec::new();
        let mut short_secret = None;
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.len() < MIN_SECRET_LEN && short_secret.is_none() {
                short_secret = Some((macs.len() + 1, secret.len()));
            }
            // HMAC takes keys of any length; a short one is refused by `validate`.
            let mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
            // A separate key for encryption, derived so that one secret serves both.
            let mut derive = mac.clone();
            derive.update(AEAD_KEY_LABEL);
            let key = derive.finalize().into_bytes();
            ciphers.push(XChaCha20Poly1305::new(&key));
            macs.push(mac);
        }
        self.secret_count = macs.len();
        self.short_secret = short_secret;
        self.keys = Arc::new(Keys { macs, ciphers });
        self
    }

    /// Seal values with XChaCha20-Poly1305 (confidential and tamper-proof) instead of signing
    /// them with HMAC-SHA256 (tamper-proof, readable by the client).
    ///
    /// Each value gets a random 192-bit nonce, so a key can seal any number of cookies, where
    /// AES-GCM's random 96-bit nonces allow about 2^32; AES-GCM-SIV would only soften a nonce
    /// collision, and per-message keys would add a derivation per seal and per secret tried,
    /// which XChaCha20 already does inside, from the nonce. The key is derived from each
    /// secret with HMAC-SHA256, apart from the signing key.
    pub fn encrypted(mut self, encrypted: bool) -> Self {
        self.encrypted = encrypted;
        self
    }

    /// The `Secure` attribute (default on). Forced on for `__Host-` and `__Secure-` names,
    /// `SameSite=None` and `Partitioned`, which browsers reject without it.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The `HttpOnly` attribute (default on): scripts in the page cannot read the cookie.
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// The `SameSite` attribute (default [`SameSite::Lax`]).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// The `Path` attribute (default `/`). Forced to `/` for `__Host-` names.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The `Domain` attribute (default none: the cookie goes to the exact host only).
    /// Ignored for `__Host-` names.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The `Max-Age` attribute: how long the browser keeps the cookie after each response
    /// that sets it (default none: until the browser closes).
    ///
    /// Anything longer than 253,402,300,799 seconds (from 1970 to the end of year 9999, the
    /// latest date a cookie can carry) is sent as that, so `Duration::MAX` works and nothing
    /// overflows; browsers cap the lifetime at 400 days anyway.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The `Expires` attribute: an absolute time the browser drops the cookie. Browsers
    /// prefer `Max-Age` when both are set.
    ///
    /// Cookie dates run from 1970 to the end of year 9999 here: a later time is sent as
    /// 9999-12-31 23:59:59 GMT (a cookie cannot carry a later date), an earlier one as
    /// 1970-01-01 00:00:00 GMT (still in the past, so the browser drops the cookie as it
    /// would for the time given). No time makes rendering panic.
    pub fn expires(mut self, expires: SystemTime) -> Self {
        self.expires = Some(expires);
        self
    }

    /// The `Partitioned` attribute (CHIPS, default off): the cookie is kept per top-level
    /// site when used in an embedded context. Implies `Secure`.
    pub fn partitioned(mut self, partitioned: bool) -> Self {
        self.partitioned = partitioned;
        self
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether values are signed or encrypted: true once it has a secret.
    pub fn is_signed(&self) -> bool {
        self.secret_count > 0
    }

    /// Whether values are encrypted rather than only signed.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Checks the configuration a [`SessionLayer`](crate::SessionLayer) needs: a valid
    /// cookie name, at least one secret, every secret (old ones too) at least 32 bytes long,
    /// and attribute values without `;` or control characters.
    ///
    /// [`parse`](SessionCookie::parse) and [`serialize`](SessionCookie::serialize) do not
    /// check: only the layer's constructors call this.
    pub fn validate(&self) -> Result<(), Error> {
        let token = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
        if self.name.is_empty() || !self.name.chars().all(token) {
            return Err(Error::Config(format!(
                "cookie name {:?} is not a valid token",
                self.name
            )));
        }
        if !self.is_signed() {
            return Err(Error::Config(
                "the session cookie must be signed: give it at least one secret".to_owned(),
            ));
        }
        if let Some((position, length)) = self.short_secret {
            let count = self.secret_count;
            return Err(Error::Config(if length == 0 {
                format!(
                    "the session cookie must be signed: an empty secret is no secret \
                     (every session secret must be at least {MIN_SECRET_LEN} bytes long: \
                     secret {position} of {count} is empty)"
                )
            } else {
                format!(
                    "every session secret must be at least {MIN_SECRET_LEN} bytes long: \
                     secret {position} of {count} has {length}"
                )
            }));
        }
        let attribute_ok = |v: &str| !v.chars().any(|c| c == ';' || c.is_control());
        if !attribute_ok(&self.path) || self.domain.as_deref().is_some_and(|d| !attribute_ok(d)) {
            return Err(Error::Config(
                "cookie Path and Domain must not contain ';' or control characters".to_owned(),
            ));
        }
        Ok(())
    }

    /// Finds this cookie in a `Cookie` header value and returns its verified, decoded
    /// value.
    ///
    /// `None` when the cookie is absent, unsigned but should be signed, tampered with,
    /// sealed with an unknown secret, or malformed. Never panics, and allocates nothing for
    /// values longer than a browser would store.
    ///
    /// When the header holds the name more than once, values that do not verify are
    /// ignored, and the verified ones must all decode to the same value: if two differ,
    /// the result is `None` (the layer then starts a fresh session). Browsers send every
    /// cookie whose domain and path match, so a sibling subdomain can plant a sealed cookie
    /// of the attacker's own session under the same name, first or last in the header; no
    /// rule (first, last, newest secret) can tell it from the victim's, and taking either
    /// could make the victim act in the attacker's session. A `__Host-` name (see
    /// [`SessionCookie`]) keeps other hosts from setting the cookie at all.
    pub fn parse(&self, cookie_header: Option<&str>) -> Option<String> {
        match self.lookup(values_named(cookie_header?.as_bytes(), &self.name)) {
            Lookup::Found(found) => Some(found.value),
            Lookup::Absent | Lookup::Ambiguous => None,
        }
    }

    /// This cookie's verified value across every `Cookie` header of a request (HTTP/2 may
    /// send one header per cookie), with the rules of [`parse`](SessionCookie::parse)
    /// applied to all of them together, so that a planted cookie cannot hide in a header
    /// of its own. A pair that is not UTF-8 is skipped: it can only be another cookie's.
    pub(crate) fn receive<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a http::HeaderValue>,
    ) -> Option<Received> {
        let values = headers
            .into_iter()
            .flat_map(|header| values_named(header.as_bytes(), &self.name));
        self.received(values)
    }

    /// This cookie's verified value when each header holds a sealed value alone (the
    /// layer's header transport), with the same rules as [`receive`](Self::receive).
    pub(crate) fn receive_sealed<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a http::HeaderValue>,
    ) -> Option<Received> {
        let values = headers
            .into_iter()
            .filter_map(|header| header.to_str().ok())
            .map(str::trim);
        self.received(values)
    }

    fn received<'h>(&self, values: impl Iterator<Item = &'h str>) -> Option<Received> {
        match self.lookup(values) {
            Lookup::Found(found) => Some(found),
            Lookup::Absent => None,
            Lookup::Ambiguous => planted(&self.name),
        }
    }

    /// Opens every value of this cookie in `values` (from one header or several), and
    /// verified values must agree. Allocates only the decoded value of each value that
    /// verifies.
    fn lookup<'h>(&self, values: impl Iterator<Item = &'h str>) -> Lookup {
        // The first value that verifies, as sent and decoded.
        let mut found: Option<(&str, String)> = None;
        // A value as sent that the newest secret sealed.
        let mut resend = None;
        for raw in values {
            let sealed = unquote(raw);
            // The same text again (a cookie set for two paths) opens to the same value.
            if found.as_ref().is_some_and(|(text, _)| *text == sealed) {
                continue;
            }
            let Some((value, by_newest_secret)) = self.open(sealed) else {
                continue;
            };
            match &found {
                None => found = Some((sealed, value)),
                Some((_, first)) if *first == value => {}
                Some(_) => return Lookup::Ambiguous,
            }
            if by_newest_secret {
                resend.get_or_insert(sealed);
            }
        }
        found.map_or(Lookup::Absent, |(_, value)| {
            let resend = resend.map(str::to_owned);
            Lookup::Found(Received { value, resend })
        })
    }

    /// Verifies and decodes one sealed value; says whether the newest secret sealed it.
    fn open(&self, sealed: &str) -> Option<(String, bool)> {
        if sealed.len() > MAX_COOKIE_SIZE {
            return None;
        }
        if !self.is_signed() {
            return decode_text(sealed).map(|value| (value, true));
        }
        if self.encrypted {
            // nonce || ciphertext || tag, opened in place: no buffer besides the decoded one.
            let mut bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
            if bytes.len() < NONCE_LEN + AEAD_TAG_LEN {
                return None;
            }
            let tag_at = bytes.len() - AEAD_TAG_LEN;
            let nonce = XNonce::try_from(&bytes[..NONCE_LEN]).ok()?;
            let tag = Tag::try_from(&bytes[tag_at..]).ok()?;
            // A wrong key leaves the buffer as it was (the tag is checked before
            // decrypting), so each secret can be tried on the same bytes.
            let key = self.keys.ciphers.iter().position(|cipher| {
                let ciphertext = &mut bytes[NONCE_LEN..tag_at];
                cipher
                    .decrypt_inout_detached(&nonce, self.name.as_bytes(), ciphertext.into(), &tag)
                    .is_ok()
            })?;
            bytes.truncate(tag_at);
            bytes.drain(..NONCE_LEN);
            String::from_utf8(bytes).ok().map(|value| (value, key == 0))
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
            let mut nonce_bytes = [0u8; NONCE_LEN];
            rand::fill(&mut nonce_bytes);
            let nonce = XNonce::from(nonce_bytes);
            // nonce || ciphertext || tag, encrypted in place in one buffer.
            let mut bytes = Vec::with_capacity(NONCE_LEN + value.len() + AEAD_TAG_LEN);
            bytes.extend_from_slice(&nonce_bytes);
            bytes.extend_from_slice(value.as_bytes());
            let tag = cipher
                .encrypt_inout_detached(
                    &nonce,
                    self.name.as_bytes(),
                    (&mut bytes[NONCE_LEN..]).into(),
                )
                .expect("XChaCha20-Poly1305 encrypts any message under 256 GiB");
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

    /// A whole `Set-Cookie` header value carrying `value`, sealed with the newest secret.
    ///
    /// `Err(Error::CookieTooLarge { length })` when the result is over 4096 bytes, which
    /// browsers would silently drop.
    pub fn serialize(&self, value: &str) -> Result<String, Error> {
        self.set_cookie(&self.seal(value))
    }

    /// The `Set-Cookie` header value for an already sealed value.
    fn set_cookie(&self, sealed: &str) -> Result<String, Error> {
        self.set_cookie_with(sealed, &self.attributes())
    }

    /// What follows `name=value` in every `Set-Cookie` this cookie sends (`; Path=/; …`).
    /// It is the same for every response (`Max-Age` is relative, `Expires` fixed), so the
    /// layer renders it once.
    pub(crate) fn attributes(&self) -> String {
        let mut rendered = self.render("", self.max_age, self.expires);
        rendered.drain(..self.name.len() + 1);
        rendered
    }

    /// The `Set-Cookie` header value for an already sealed value and the
    /// [`attributes`](SessionCookie::attributes) rendered beforehand.
    pub(crate) fn set_cookie_with(&self, sealed: &str, attributes: &str) -> Result<String, Error> {
        let length = self.name.len() + 1 + sealed.len() + attributes.len();
        if length > MAX_COOKIE_SIZE {
            return Err(Error::CookieTooLarge { length });
        }
        let mut header = String::with_capacity(length);
        header.push_str(&self.name);
        header.push('=');
        header.push_str(sealed);
        header.push_str(attributes);
        Ok(header)
    }

    /// A `Set-Cookie` header value that deletes the cookie in the browser: an empty value,
    /// `Max-Age=0`, an `Expires` in the past, and the same `Path` and `Domain`.
    pub fn serialize_removal(&self) -> String {
        self.render("", Some(Duration::ZERO), Some(SystemTime::UNIX_EPOCH))
    }

    fn render(
        &self,
        value: &str,
        max_age: Option<Duration>,
        expires: Option<SystemTime>,
    ) -> String {
        let host_only = has_prefix(&self.name, "__Host-");
        let secure = self.secure
            || host_only
            || has_prefix(&self.name, "__Secure-")
            || self.partitioned
            || self.same_site == SameSite::None;
        let mut builder = Cookie::build((self.name.as_str(), value))
            .path(if host_only { "/" } else { self.path.as_str() })
            .http_only(self.http_only)
            .secure(secure)
            .same_site(match self.same_site {
                SameSite::Strict => cookie::SameSite::Strict,
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::None => cookie::SameSite::None,
            });
        if self.partitioned {
            builder = builder.partitioned(true);
        }
        if let Some(domain) = self.domain.as_deref().filter(|_| !host_only) {
            builder = builder.domain(domain);
        }
        if let Some(max_age) = max_age {
            let seconds = clamped_seconds(max_age.as_secs());
            builder = builder.max_age(cookie::time::Duration::seconds(seconds));
        }
        if let Some(expires) = expires {
            // Not `OffsetDateTime::from`, which panics past year 9999.
            let seconds = expires
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| clamped_seconds(since.as_secs()));
            let date = cookie::time::OffsetDateTime::from_unix_timestamp(seconds)
                .unwrap_or(cookie::time::OffsetDateTime::UNIX_EPOCH);
            builder = builder.expires(date);
        }
        builder.to_string()
    }
}

/// `seconds`, at most `LATEST_COOKIE_SECS` (the end of year 9999 as a Unix time), as `i64`.
fn clamped_seconds(seconds: u64) -> i64 {
    i64::try_from(seconds.min(LATEST_COOKIE_SECS)).unwrap_or(0)
}

/// Cookie name prefixes are matched without regard to case, as browsers do.
fn has_prefix(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// The raw values of the cookies named `name` in a `Cookie` header, in order.
///
/// Reads the header exactly as the `cookie` crate's `Cookie::split_parse` does (pairs split
/// at `;`, name and value split at the first `=` and trimmed, pairs without `=` or with an
/// empty name skipped; a unit test checks that the two agree on random headers), without
/// building a `Cookie` for every pair (about 1,000 instructions a request, by callgrind).
/// The header is taken as bytes: a pair that is not UTF-8 (another cookie's) is skipped
/// rather than hiding ours, which, being verified, can only be ASCII anyway.
pub(crate) fn values_named<'h>(header: &'h [u8], name: &str) -> impl Iterator<Item = &'h str> {
    header.split(|&byte| byte == b';').filter_map(move |pair| {
        let (pair_name, value) = std::str::from_utf8(pair).ok()?.split_once('=')?;
        let pair_name = pair_name.trim();
        (!pair_name.is_empty() && pair_name == name).then(|| value.trim())
    })
}

/// RFC 6265 allows a value in double quotes.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

fn decode_text(encoded: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    String::from_utf8(bytes).ok()
}

impl fmt::Debug for SessionCookie {
    /// Everything but the secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCookie")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("domain", &self.domain)
            .field("max_age", &self.max_age)
            .field("expires", &self.expires)
            .field("http_only", &self.http_only)
            .field("secure", &self.secure)
            .field("same_site", &self.same_site)
            .field("partitioned", &self.partitioned)
            .field("encrypted", &self.encrypted)
            .field("secrets", &format_args!("[{} redacted]", self.secret_count))
            .finish()
    }
}

/// Two different verified values of the session cookie: nothing tells the user's from one a
/// sibling subdomain planted, so neither is used, and operators hear of it (without either
/// value, as both are credentials).
fn planted<T>(name: &str) -> Option<T> {
    tracing::warn!(
        cookie = name,
        "two different valid session cookies in one request (a cookie planted by another \
         subdomain?): using neither; a __Host- cookie name prevents this"
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a unit-test secret of 32 bytes or more";

    /// The layer's `name=value` + pre-rendered attributes must be byte for byte what the
    /// cookie crate renders for the whole cookie.
    #[test]
    fn prerendered_attributes_match_a_full_render() {
        let base = || SessionCookie::new("__session").secrets([SECRET]);
        let configurations = [
            base(),
            base().secure(false).http_only(false),
            base()
                .same_site(SameSite::Strict)
                .path("/app")
                .domain("example.com"),
            base().same_site(SameSite::None).partitioned(true),
            base().max_age(Duration::from_secs(3600)),
            base().expires(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000)),
            // Past what a cookie date can carry, both ways: clamped, never a panic.
            base()
                .max_age(Duration::MAX)
                .expires(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4)),
            base().expires(SystemTime::UNIX_EPOCH - Duration::from_secs(1 << 40)),
            SessionCookie::new("__Host-id")
                .secrets([SECRET])
                .domain("ignored.example")
                .path("/x"),
        ];
        for cookie in configurations {
            let attributes = cookie.attributes();
            for sealed in ["", "abc.DEF-_", &"v".repeat(100)] {
                let full = cookie.render(sealed, cookie.max_age, cookie.expires);
                let fast = cookie.set_cookie_with(sealed, &attributes).unwrap();
                assert_eq!(fast, full, "{cookie:?}");
            }
        }
    }

    /// The header scanner finds exactly the values the `cookie` crate's parser finds, on
    /// headers built from the characters that matter to either (separators, quotes,
    /// whitespace of both kinds, non-ASCII) around the names looked for.
    #[test]
    fn header_scanner_agrees_with_the_cookie_crate() {
        const PIECES: &[&str] = &[
            "id", "sid", "ID", "=", ";", " ", "\t", "\u{a0}", "\u{2003}", "\"", "a", "b.c", "-_",
            "é", "\u{fffd}", "==", "; ", "id=", " id = v ", "",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            // xorshift64*: reproducible, no dependency.
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let mut matched = 0;
        for _ in 0..20_000 {
            let pieces = next() % 12;
            let header: String = (0..pieces)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            for name in ["id", "sid", "é"] {
                let ours: Vec<&str> = values_named(header.as_bytes(), name).collect();
                let crate_values: Vec<&str> = Cookie::split_parse(header.as_str())
                    .filter_map(Result::ok)
                    .filter(|c| c.name() == name)
                    .map(|c| c.value_raw().expect("parsed from a string"))
                    .collect();
                assert_eq!(ours, crate_values, "header {header:?}, name {name:?}");
                matched += ours.len();
            }
        }
        // The generator must actually produce matching pairs, or the test proves nothing.
        assert!(matched > 1_000, "only {matched} values found");
    }

    /// HTTP/2 may send each cookie in a header of its own: a planted cookie alone in its
    /// header is as ambiguous as one beside ours.
    #[test]
    fn receive_applies_the_duplicate_rule_across_headers() {
        use http::HeaderValue;
        let cookie = SessionCookie::new("sid").secrets([SECRET]);
        let sealed = |value: &str| cookie.seal(value);
        let header = |text: String| HeaderValue::try_from(text).unwrap();
        let (victim, planted) = (sealed("victim"), sealed("attacker"));

        let headers = [
            header(format!("sid={planted}")),
            header(format!("sid={victim}")),
        ];
        assert_eq!(cookie.receive(&headers), None);
        let headers = [header("a=1".into()), header(format!("sid={victim}"))];
        let expected = Received {
            value: "victim".into(),
            resend: Some(victim.clone()),
        };
        assert_eq!(cookie.receive(&headers), Some(expected));
        // Ambiguous inside one header, even when another header holds the same value.
        let headers = [
            header(format!("sid={victim}")),
            header(format!("sid={victim}; sid={planted}")),
        ];
        assert_eq!(cookie.receive(&headers), None);
        // A header that is not UTF-8 does not hide ours.
        let mut bytes = b"junk=\xff\xfe; sid=".to_vec();
        bytes.extend_from_slice(victim.as_bytes());
        let headers = [HeaderValue::from_bytes(&bytes).unwrap()];
        assert_eq!(cookie.receive(&headers).unwrap().value, "victim");
        assert_eq!(cookie.receive(&[]), None);

        // Equal values under an old and the newest secret agree, and the newest is resent.
        let old = SessionCookie::new("sid").secrets(["an older secret, 32 bytes or more"]);
        let rotated =
            SessionCookie::new("sid").secrets([SECRET, "an older secret, 32 bytes or more"]);
        let (by_old, by_new) = (old.seal("same"), rotated.seal("same"));
        let headers = [
            header(format!("sid={by_old}")),
            header(format!("sid={by_new}")),
        ];
        let expected = Received {
            value: "same".into(),
            resend: Some(by_new),
        };
        assert_eq!(rotated.receive(&headers), Some(expected));
        let headers = [header(format!("sid={by_old}"))];
        assert_eq!(rotated.receive(&headers).unwrap().resend, None);
    }

    /// The header transport: each header is a sealed value alone, with the same rules.
    #[test]
    fn receive_sealed_reads_whole_header_values() {
        use http::HeaderValue;
        let cookie = SessionCookie::new("sid").secrets([SECRET]);
        let header = |text: &str| HeaderValue::try_from(text).unwrap();
        let (victim, planted) = (cookie.seal("victim"), cookie.seal("attacker"));
        let got = cookie.receive_sealed(&[header(&format!(" {victim} "))]);
        assert_eq!(got.unwrap().value, "victim");
        assert_eq!(
            cookie.receive_sealed(&[header(&victim), header(&planted)]),
            None
        );
        assert_eq!(cookie.receive_sealed(&[header("tampered")]), None);
        // A cookie pair is not a sealed value.
        assert_eq!(
            cookie.receive_sealed(&[header(&format!("sid={victim}"))]),
            None
        );
    }

    #[test]
    fn prerendered_set_cookie_is_refused_over_the_size_limit() {
        let cookie = SessionCookie::new("id").secrets([SECRET]);
        let attributes = cookie.attributes();
        let fits = MAX_COOKIE_SIZE - "id=".len() - attributes.len();
        assert!(
            cookie
                .set_cookie_with(&"a".repeat(fits), &attributes)
                .is_ok()
        );
        match cookie.set_cookie_with(&"a".repeat(fits + 1), &attributes) {
            Err(Error::CookieTooLarge { length }) => assert_eq!(length, MAX_COOKIE_SIZE + 1),
            other => panic!("expected CookieTooLarge, got {other:?}"),
        }
    }
}
