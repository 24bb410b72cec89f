//! How the layer carries the sealed session value: in the cookie, or in a named header.

use http::header::{COOKIE, HeaderName, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

use crate::cookie::{MAX_COOKIE_SIZE, Received};
use crate::{Error, SessionCookie};

/// The cookie's sealing and, for the cookie transport, its attributes, rendered once.
#[derive(Clone, Debug)]
pub(super) struct Transport {
    pub(super) cookie: SessionCookie,
    /// The header the sealed value travels in, when not the cookie.
    header: Option<HeaderName>,
    /// `; Path=/; HttpOnly; …`: the same in every `Set-Cookie`.
    attributes: String,
    /// What tells the client to forget the session: a removal `Set-Cookie`, or an empty
    /// header.
    removal: HeaderValue,
}

impl Transport {
    /// The cookie transport, for a validated `cookie`.
    pub(super) fn cookie(cookie: SessionCookie) -> Result<Self, Error> {
        Ok(Transport {
            attributes: cookie.attributes(),
            removal: header_value(cookie.serialize_removal())?,
            cookie,
            header: None,
        })
    }

    /// Switches to the header `name`.
    pub(super) fn use_header(&mut self, name: HeaderName) {
        self.removal = HeaderValue::from_static("");
        self.header = Some(name);
    }

    /// The verified session value the request carries.
    pub(super) fn receive(&self, headers: &HeaderMap) -> Option<Received> {
        match &self.header {
            None => self.cookie.receive(headers.get_all(COOKIE)),
            Some(name) => self.cookie.receive_sealed(headers.get_all(name)),
        }
    }

    /// The response header that sends `value` (or a removal, for `""`) to the client;
    /// `sealed` is `value` as the request sent it, when it can be sent back as it is.
    pub(super) fn outgoing(
        &self,
        value: &str,
        sealed: Option<&str>,
    ) -> Result<(HeaderName, HeaderValue), Error> {
        let name = self.header.clone().unwrap_or(SET_COOKIE);
        if value.is_empty() {
            return Ok((name, self.removal.clone()));
        }
        let sealed = sealed.map_or_else(|| self.cookie.seal(value), str::to_owned);
        let text = match self.header {
            None => self.cookie.set_cookie_with(&sealed, &self.attributes)?,
            // A header has no browser limit, but one a client or proxy would keep.
            Some(_) if sealed.len() > MAX_COOKIE_SIZE => {
                return Err(Error::CookieTooLarge {
                    length: sealed.len(),
                });
            }
            Some(_) => sealed,
        };
        Ok((name, header_value(text)?))
    }
}

/// A header value that the cookie's validated settings produced.
fn header_value(text: String) -> Result<HeaderValue, Error> {
    HeaderValue::try_from(text)
        .map_err(|_| Error::Config("the session header is not a valid header value".into()))
}
