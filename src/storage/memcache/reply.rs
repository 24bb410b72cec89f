//! [`Reply`]: memcached's answers, read within bounds, so that no server (broken or hostile)
//! can make the client panic or put a session id or control bytes into an error message.

use std::fmt;

use super::fault::Fault;
use super::request::Verb;
use crate::Error;

/// The longest value a memcached item can hold: memcached refuses an item size limit (`-I`)
/// over 1 GiB. A reply announcing more is no memcached's: a protocol error, not read past.
const MAX_ITEM_LEN: u64 = 1 << 30;

/// The most server text an error message quotes: it goes to the log.
const MAX_QUOTED_LEN: usize = 120;

/// A reply, parsed for the request it answers.
pub(super) enum Reply {
    /// `gets`: the item, if the key holds one of at most the limit.
    Item(Option<Item>),
    /// `gets`: the key holds a value of this many bytes, over the limit. Its bytes were read
    /// past, a buffer at a time, and not kept; the connection is ready for the next command.
    Oversize(u64),
    /// `add`, `set`, `cas`: whether the data was written (`NOT_STORED`, `EXISTS` and
    /// `NOT_FOUND` are all "no").
    Stored(bool),
    /// `delete`, `md`: whether an item was deleted (`NOT_FOUND`, `NF` and `EX` are "no").
    Deleted(bool),
    /// `version`: the server's version, printable.
    Version(String),
}

/// A value as `gets` returns it.
pub(super) struct Item {
    pub data: Vec<u8>,
    /// Memcached's CAS unique: changes on every write of the key.
    pub cas: u64,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Never the value itself: it is session data.
            Reply::Item(Some(item)) => write!(f, "Item({} bytes)", item.data.len()),
            Reply::Item(None) => f.write_str("Item(none)"),
            Reply::Oversize(len) => write!(f, "Oversize({len} bytes)"),
            Reply::Stored(s) => write!(f, "Stored({s})"),
            Reply::Deleted(d) => write!(f, "Deleted({d})"),
            Reply::Version(v) => write!(f, "Version({v})"),
        }
    }
}

/// The error for a reply of the wrong kind, which only a bug of ours could produce.
pub(super) fn mismatch(reply: &Reply) -> Error {
    Error::backend(format!("memcached client: unexpected reply {reply:?}"))
}

/// The answer to `add`, `set` (`verb`) or `cas`: each has its own words for "not stored".
pub(super) fn stored(verb: Verb, line: &[u8]) -> Result<Reply, Fault> {
    let stored = match (verb, line) {
        (_, b"STORED") => true,
        (Verb::Add | Verb::Set, b"NOT_STORED") => false,
        (Verb::Cas(_), b"EXISTS" | b"NOT_FOUND") => false,
        (_, other) => return Err(unexpected(other)),
    };
    Ok(Reply::Stored(stored))
}

/// The answer to `delete`, or to `md` when it names a `cas`: the meta command answers in
/// two-letter codes.
pub(super) fn deleted(cas: Option<u64>, line: &[u8]) -> Result<Reply, Fault> {
    let deleted = match (cas, line) {
        (None, b"DELETED") | (Some(_), b"HD") => true,
        (None, b"NOT_FOUND") | (Some(_), b"NF" | b"EX") => false,
        (_, other) => return Err(unexpected(other)),
    };
    Ok(Reply::Deleted(deleted))
}

/// The answer to `version`.
pub(super) fn version(line: &[u8]) -> Result<Reply, Fault> {
    match line.strip_prefix(b"VERSION ") {
        Some(version) => Ok(Reply::Version(printable(version))),
        None => Err(unexpected(line)),
    }
}

/// Checks `<key> <flags> <bytes> <cas unique>` (a `gets` header) and returns `<bytes>`,
/// at most [`MAX_ITEM_LEN`], and the CAS unique.
pub(super) fn parse_value_header(header: &[u8], key: &str) -> Result<(u64, u64), Fault> {
    let invalid = || Fault::Protocol(format!("malformed VALUE line {:?}", printable(header)));
    let text = std::str::from_utf8(header).map_err(|_| invalid())?;
    let parts: Vec<&str> = text.split(' ').collect();
    let [got_key, flags, len, cas] = parts.as_slice() else {
        return Err(invalid());
    };
    if flags.parse::<u32>().is_err() {
        return Err(invalid());
    }
    if *got_key != key {
        return Err(Fault::Protocol(
            "VALUE line for a key that was not asked for".to_owned(),
        ));
    }
    let cas = digits(cas)
        .and_then(|cas| cas.parse::<u64>().ok())
        .ok_or_else(invalid)?;
    let len = digits(len).ok_or_else(invalid)?;
    match len.parse::<u64>() {
        Ok(len) if len <= MAX_ITEM_LEN => Ok((len, cas)),
        _ => Err(Fault::Protocol(format!(
            "value announced as {} bytes, over memcached's 1 GiB maximum",
            printable(len.as_bytes())
        ))),
    }
}

/// `field` if it is a plain decimal number (no sign, no space): `parse` alone takes `+1`.
fn digits(field: &str) -> Option<&str> {
    (!field.is_empty() && field.bytes().all(|b| b.is_ascii_digit())).then_some(field)
}

/// A reply line that is not the expected answer: a server error or garbage.
pub(super) fn unexpected(line: &[u8]) -> Fault {
    let is_error =
        line == b"ERROR" || line.starts_with(b"CLIENT_ERROR") || line.starts_with(b"SERVER_ERROR");
    if is_error {
        Fault::Server(printable(line))
    } else {
        Fault::Protocol(format!("unexpected line {:?}", printable(line)))
    }
}

/// At most [`MAX_QUOTED_LEN`] bytes of server text, non-printable bytes replaced, safe to
/// log.
pub(super) fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(MAX_QUOTED_LEN)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_headers_are_bounded_and_carry_a_cas_unique() {
        assert_eq!(parse_value_header(b"k 0 5 77", "k").unwrap(), (5, 77));
        // Over any record limit, but a memcached may hold it (`-I 1g`): read past later.
        let gib = b"k 0 1073741824 1";
        assert_eq!(parse_value_header(gib, "k").unwrap(), (1 << 30, 1));
        let max = format!("k 0 0 {}", u64::MAX);
        assert_eq!(
            parse_value_header(max.as_bytes(), "k").unwrap(),
            (0, u64::MAX)
        );
        assert!(parse_value_header(b"k 0 5", "k").is_err(), "no CAS unique");
        assert!(parse_value_header(b"k 0 5 77 1", "k").is_err());
        assert!(parse_value_header(b"k 0 5 18446744073709551616", "k").is_err());
        assert!(parse_value_header(b"k 0 5 -1", "k").is_err());
        assert!(parse_value_header(b"k 0 5 +1", "k").is_err());
        assert!(parse_value_header(b"k 0 5 ", "k").is_err());
        assert!(parse_value_header(b"k 0 1073741825 1", "k").is_err());
        assert!(parse_value_header(b"k 0 99999999999999999999999 1", "k").is_err());
        assert!(parse_value_header(b"k 0 -1 1", "k").is_err());
        assert!(parse_value_header(b"k 0 +1 1", "k").is_err());
        assert!(parse_value_header(b"other 0 5 1", "k").is_err());
        assert!(parse_value_header(b"k x 5 1", "k").is_err());
        assert!(parse_value_header(b"k 0", "k").is_err());
        assert!(parse_value_header(b"\xff 0 1 1", "k").is_err());
    }

    /// Error messages go to the log: however long the server's line, they quote at most
    /// [`MAX_QUOTED_LEN`] bytes of it.
    #[test]
    fn oversize_length_errors_quote_at_most_120_bytes_of_server_text() {
        let header = format!("k 0 1{} 1", "0".repeat(1000));
        let message = parse_value_header(header.as_bytes(), "k")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("over memcached's 1 GiB maximum"),
            "{message}"
        );
        assert!(message.len() < 200, "a {}-byte message", message.len());
    }
}
