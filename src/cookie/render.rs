//! Rendering the `Set-Cookie` header values that send and remove the session cookie.

use std::time::{Duration, SystemTime};

use cookie::Cookie;

use super::{MAX_COOKIE_SIZE, SameSite, SessionCookie};
use crate::Error;

/// The latest instant a cookie date can name, 9999-12-31 23:59:59 UTC, in seconds since the
/// Unix epoch: RFC 6265 dates have four-digit years.
const LATEST_COOKIE_SECS: u64 = 253_402_300_799;

impl SessionCookie {
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
