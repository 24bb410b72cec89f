//! [`SessionCookie`]: the session cookie's name, attributes and secrets.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::secrets::{MIN_SECRET_LEN, SecretKeys};
use crate::Error;

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

/// The cookie that carries the session value (an id, or with
/// [`CookieStorage`](crate::CookieStorage) the data itself).
///
/// Values are signed with HMAC-SHA256, or with [`encrypted(true)`](SessionCookie::encrypted)
/// sealed with XAES-256-GCM. Either way the cookie's name is bound into the seal, so a value
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
    pub(super) name: String,
    pub(super) path: String,
    pub(super) domain: Option<String>,
    pub(super) max_age: Option<Duration>,
    pub(super) expires: Option<SystemTime>,
    pub(super) http_only: bool,
    pub(super) secure: bool,
    pub(super) same_site: SameSite,
    pub(super) partitioned: bool,
    pub(super) encrypted: bool,
    pub(super) keys: Arc<SecretKeys>,
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
            keys: Arc::default(),
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
        self.keys = Arc::new(SecretKeys::derive(secrets));
        self
    }

    /// Seal values with XAES-256-GCM (confidential and tamper-proof) instead of signing them
    /// with HMAC-SHA256 (tamper-proof, readable by the client).
    ///
    /// Each value gets a random 192-bit nonce, so a key can seal any number of cookies, where
    /// AES-GCM's random 96-bit nonces allow about 2^32: XAES-256-GCM derives an AES-256-GCM
    /// key from each nonce with two AES blocks, on the CPU's AES instructions. The key is
    /// derived from each secret with HMAC-SHA256, apart from the signing key. Values
    /// encrypted by 0.1 (XChaCha20-Poly1305) still open, and are sealed again with
    /// XAES-256-GCM when their session is next saved.
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
        self.keys.len() > 0
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
        if let Some((position, length)) = self.keys.short_secret {
            let count = self.keys.len();
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
            .field("secrets", &format_args!("[{} redacted]", self.keys.len()))
            .finish()
    }
}
