//! `SessionCookie::parse` on arbitrary `Cookie` header text, for a signed and an encrypted
//! cookie with two secrets (rotation), and the properties parse must keep:
//!
//! * it never panics and never returns a value longer than a browser would store;
//! * it agrees with a model that parses each `;`-separated pair alone: no pair verifies
//!   gives `None`, verified pairs that all decode to one value give it, verified pairs that
//!   differ give `None` (a planted cookie: cookie tossing);
//! * whatever `serialize` produces parses back to the same value, wherever it sits among
//!   other cookies (unless another cookie of the same name verifies to another value);
//! * a value sealed with the older secret still opens after rotation, one sealed with the
//!   newer secret does not open with the older alone;
//! * a value never opens under another cookie name, nor in the other mode (signed vs
//!   encrypted).
//!
//! Input: bytes split at NUL into `prefix`, `value`, `suffix`; the whole input (read
//! leniently as UTF-8, as the layer reads headers) is also parsed as one header.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use session_layer::{MAX_COOKIE_SIZE, SessionCookie};

const NAME: &str = "__session";
const NEW_SECRET: &str = "fuzz-secret-new-0123456789abcdef0123456789";
const OLD_SECRET: &str = "fuzz-secret-old-0123456789abcdef0123456789";

struct Cookies {
    /// Signed, both secrets (new first).
    signed: SessionCookie,
    /// Encrypted, both secrets.
    encrypted: SessionCookie,
    /// The older secret only, both modes: what ran before the rotation.
    signed_old: SessionCookie,
    encrypted_old: SessionCookie,
    /// Same secrets, another name.
    signed_other: SessionCookie,
    encrypted_other: SessionCookie,
}

static COOKIES: LazyLock<Cookies> = LazyLock::new(|| {
    let both = |name: &str| SessionCookie::new(name).secrets([NEW_SECRET, OLD_SECRET]);
    let old = || SessionCookie::new(NAME).secrets([OLD_SECRET]);
    Cookies {
        signed: both(NAME),
        encrypted: both(NAME).encrypted(true),
        signed_old: old(),
        encrypted_old: old().encrypted(true),
        signed_other: both("other"),
        encrypted_other: both("other").encrypted(true),
    }
});

/// The `name=value` pair a browser sends back for a `Set-Cookie` header value.
fn pair(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .expect("split yields at least one piece")
}

/// The values of the pairs of `header` that verify, each pair parsed alone.
fn verified_pairs(cookie: &SessionCookie, header: &str) -> Vec<String> {
    header
        .split(';')
        .filter_map(|pair| cookie.parse(Some(pair)))
        .collect()
}

/// What `parse` must give: the one value the verified pairs agree on, else `None`.
fn model(cookie: &SessionCookie, header: &str) -> Option<String> {
    let verified = verified_pairs(cookie, header);
    let first = verified.first()?;
    verified.iter().all(|v| v == first).then(|| first.clone())
}

fn check_parse(cookie: &SessionCookie, header: &str) -> Option<String> {
    let value = cookie.parse(Some(header));
    assert_eq!(value, model(cookie, header), "header {header:?}");
    if let Some(v) = &value {
        // The sealed value is at most 4096 bytes and decoding only shrinks it.
        assert!(
            v.len() <= MAX_COOKIE_SIZE,
            "parse returned {} bytes",
            v.len()
        );
    }
    value
}

fn round_trip(
    cookie: &SessionCookie,
    old: &SessionCookie,
    other_mode: &SessionCookie,
    other_name: &SessionCookie,
    prefix: &str,
    value: &str,
    suffix: &str,
) {
    let set_cookie = match cookie.serialize(value) {
        Ok(set_cookie) => set_cookie,
        Err(session_layer::Error::CookieTooLarge { length }) => {
            assert!(length > MAX_COOKIE_SIZE, "refused a {length}-byte cookie");
            return;
        }
        Err(e) => panic!("serialize failed: {e}"),
    };
    assert!(set_cookie.len() <= MAX_COOKIE_SIZE);
    let sent = pair(&set_cookie);

    // Alone, and among other cookies: found unless a same-name cookie around it verifies
    // to another value, which makes the header ambiguous.
    assert_eq!(cookie.parse(Some(sent)).as_deref(), Some(value));
    let header = format!("{prefix}; {sent};{suffix}");
    let planted = verified_pairs(cookie, prefix)
        .into_iter()
        .chain(verified_pairs(cookie, suffix))
        .any(|other| other != value);
    let expected = (!planted).then(|| value.to_owned());
    assert_eq!(check_parse(cookie, &header), expected, "header {header:?}");
    // The same value sent twice is no ambiguity.
    let twice = format!("{sent}; {header}");
    assert_eq!(check_parse(cookie, &twice), expected, "header {twice:?}");

    // Sealed with the newest secret: the old secret alone cannot open it.
    assert_eq!(old.parse(Some(sent)), None, "old secret opened a new value");
    // Neither mode opens the other's values; the name is bound into the seal.
    assert_eq!(
        other_mode.parse(Some(sent)),
        None,
        "opened in the other mode"
    );
    let renamed = format!("{}{}", other_name.name(), &sent[NAME.len()..]);
    assert_eq!(
        other_name.parse(Some(&renamed)),
        None,
        "opened under another name"
    );

    // Rotation: what the old secret sealed still opens with both.
    let old_set_cookie = old.serialize(value).expect("same length as the new seal");
    assert_eq!(
        cookie.parse(Some(pair(&old_set_cookie))).as_deref(),
        Some(value)
    );
}

fuzz_target!(|data: &[u8]| {
    let c = &*COOKIES;
    let header = String::from_utf8_lossy(data);
    for cookie in [&c.signed, &c.encrypted, &c.signed_old, &c.encrypted_old] {
        check_parse(cookie, &header);
    }
    assert_eq!(c.signed.parse(None), None);

    let mut parts = data.splitn(3, |&b| b == 0);
    let prefix = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let value = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let suffix = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let (signed, encrypted) = (&c.signed, &c.encrypted);
    round_trip(
        signed,
        &c.signed_old,
        encrypted,
        &c.signed_other,
        &prefix,
        &value,
        &suffix,
    );
    round_trip(
        encrypted,
        &c.encrypted_old,
        signed,
        &c.encrypted_other,
        &prefix,
        &value,
        &suffix,
    );
});
