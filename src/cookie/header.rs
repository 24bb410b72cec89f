//! Finding the session cookie in a request's `Cookie` headers, and the rule against a
//! planted second cookie.

use super::SessionCookie;
use crate::observe::{self, Refusal};

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
                observe::refused(self.refusal(sealed));
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
}

/// The raw values of the cookies named `name` in a `Cookie` header, in order.
///
/// Reads the header exactly as the `cookie` crate's `Cookie::split_parse` does (pairs split
/// at `;`, name and value split at the first `=` and trimmed, pairs without `=` or with an
/// empty name skipped; a unit test checks that the two agree on random headers), without
/// building a `Cookie` for every pair of every request.
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

/// Two different verified values of the session cookie: nothing tells the user's from one a
/// sibling subdomain planted, so neither is used, and operators hear of it (without either
/// value, as both are credentials).
fn planted<T>(name: &str) -> Option<T> {
    observe::refused(Refusal::PlantedDuplicate);
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
    use cookie::Cookie;

    const SECRET: &str = "a unit-test secret of 32 bytes or more";

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
}
