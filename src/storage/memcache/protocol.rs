//! Memcached's text protocol on one connection: the few requests sessions need, and replies
//! parsed within bounds, so that no server (broken or hostile) can make the client panic,
//! allocate more for a value than the limit its `gets` names, or put a session id or control
//! bytes into an error message.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::Error;

/// The longest value a memcached item can hold: memcached refuses an item size limit (`-I`)
/// over 1 GiB. A reply announcing more is no memcached's: a protocol error, not read past.
const MAX_ITEM_LEN: u64 = 1 << 30;

/// The longest reply line accepted (a `VALUE` line holds a key of at most 250 bytes).
const MAX_LINE_LEN: usize = 1024;

/// One command. Keys are the backend's (a checked prefix plus a hex digest), so they never
/// hold spaces or line breaks. No `Debug`: the data block is session data.
pub(super) enum Request<'a> {
    /// `gets`: the value with its CAS unique, if it is at most `limit` bytes.
    Gets { key: &'a str, limit: usize },
    /// `add`, `set` or `cas`, with the data block.
    Store {
        verb: Verb,
        key: &'a str,
        data: &'a [u8],
        exptime: u32,
    },
    /// `delete`, or with a CAS unique the meta command `md <key> C<cas>` (memcached 1.6+),
    /// which deletes only while the item is unchanged.
    Delete { key: &'a str, cas: Option<u64> },
    /// `version`: checks that a memcached answers.
    Version,
}

/// Which storage command writes the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verb {
    /// Only if nothing is stored.
    Add,
    /// Whatever is stored.
    Set,
    /// Only while the item's CAS unique is this one.
    Cas(u64),
}

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

/// What went wrong on a connection, before it becomes an [`Error`].
#[derive(Debug)]
pub(super) enum Fault {
    Io(io::Error),
    Timeout,
    /// The server sent something that is not a valid answer.
    Protocol(String),
    /// The server answered `ERROR`, `CLIENT_ERROR ...` or `SERVER_ERROR ...`.
    Server(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Io(e) => write!(f, "{e}"),
            Fault::Timeout => f.write_str("timed out"),
            Fault::Protocol(m) => write!(f, "invalid response: {m}"),
            Fault::Server(m) => write!(f, "server error: {m}"),
        }
    }
}

impl Fault {
    pub(super) fn into_error(self, addr: &str) -> Error {
        match self {
            Fault::Timeout => Error::Timeout,
            other => Error::backend(format!("memcached {addr}: {other}")),
        }
    }
}

/// One text-protocol connection: a TCP stream, or under `cfg(fuzzing)` and in tests any
/// in-memory one.
pub(super) struct Conn<S = TcpStream> {
    io: BufReader<S>,
    line: Vec<u8>,
    /// Set from writing a command until its reply is read completely.
    in_flight: bool,
}

impl Conn {
    pub(super) async fn open(addr: &str, timeout: Duration) -> Result<Conn, Fault> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Fault::Timeout)?
            .map_err(Fault::Io)?;
        stream.set_nodelay(true).map_err(Fault::Io)?;
        Ok(Conn::over(stream))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub(super) fn over(stream: S) -> Conn<S> {
        Conn {
            io: BufReader::new(stream),
            line: Vec::with_capacity(128),
            in_flight: false,
        }
    }

    /// Whether a command was sent and its reply not read to the end (its caller gave up):
    /// such a connection must never answer another command.
    pub(super) fn is_in_flight(&self) -> bool {
        self.in_flight
    }

    /// Sends `request` and reads its whole reply.
    pub(super) async fn execute(&mut self, request: &Request<'_>) -> Result<Reply, Fault> {
        self.in_flight = true;
        let reply = self.exchange(request).await?;
        self.in_flight = false;
        Ok(reply)
    }

    async fn exchange(&mut self, request: &Request<'_>) -> Result<Reply, Fault> {
        let out = encode(request);
        let stream = self.io.get_mut();
        stream.write_all(&out).await.map_err(Fault::Io)?;
        stream.flush().await.map_err(Fault::Io)?;

        match request {
            Request::Gets { key, limit } => self.read_item(key, *limit).await,
            Request::Store { verb, .. } => {
                let line = self.read_line().await?;
                let stored = match (verb, line) {
                    (_, b"STORED") => true,
                    (Verb::Add | Verb::Set, b"NOT_STORED") => false,
                    (Verb::Cas(_), b"EXISTS" | b"NOT_FOUND") => false,
                    (_, other) => return Err(unexpected(other)),
                };
                Ok(Reply::Stored(stored))
            }
            Request::Delete { cas, .. } => {
                let line = self.read_line().await?;
                let deleted = match (cas, line) {
                    (None, b"DELETED") | (Some(_), b"HD") => true,
                    (None, b"NOT_FOUND") | (Some(_), b"NF" | b"EX") => false,
                    (_, other) => return Err(unexpected(other)),
                };
                Ok(Reply::Deleted(deleted))
            }
            Request::Version => {
                let line = self.read_line().await?;
                match line.strip_prefix(b"VERSION ") {
                    Some(version) => Ok(Reply::Version(printable(version))),
                    None => Err(unexpected(line)),
                }
            }
        }
    }

    /// Reads one line of at most [`MAX_LINE_LEN`] bytes and returns it without its CRLF.
    async fn read_line(&mut self) -> Result<&[u8], Fault> {
        self.line.clear();
        let read = (&mut self.io)
            .take(MAX_LINE_LEN as u64)
            .read_until(b'\n', &mut self.line)
            .await
            .map_err(Fault::Io)?;
        if read == 0 {
            return Err(closed());
        }
        match self.line.strip_suffix(b"\r\n") {
            Some(line) => Ok(line),
            None if self.line.len() >= MAX_LINE_LEN => Err(Fault::Protocol(format!(
                "response line longer than {MAX_LINE_LEN} bytes"
            ))),
            None => Err(Fault::Protocol(
                "response line not terminated by CRLF".to_owned(),
            )),
        }
    }

    /// Reads the answer to `gets key`: `END`, or one `VALUE` block then `END`. A value over
    /// `limit` bytes is read past without being kept ([`Reply::Oversize`]).
    async fn read_item(&mut self, key: &str, limit: usize) -> Result<Reply, Fault> {
        let line = self.read_line().await?;
        if line == b"END" {
            return Ok(Reply::Item(None));
        }
        let Some(header) = line.strip_prefix(b"VALUE ") else {
            return Err(unexpected(line));
        };
        let (len, cas) = parse_value_header(header, key)?;
        let item = match usize::try_from(len) {
            Ok(len) if len <= limit => {
                // At most `limit` (+ CRLF): what the caller accepts to hold.
                let mut data = vec![0; len + 2];
                self.io.read_exact(&mut data).await.map_err(Fault::Io)?;
                if !data.ends_with(b"\r\n") {
                    return Err(Fault::Protocol("value not terminated by CRLF".to_owned()));
                }
                data.truncate(len);
                Reply::Item(Some(Item { data, cas }))
            }
            _ => {
                self.skip_block(len).await?;
                Reply::Oversize(len)
            }
        };
        match self.read_line().await? {
            b"END" => Ok(item),
            other => Err(unexpected(other)),
        }
    }

    /// Reads past a data block of `len` bytes and its CRLF without keeping it: through the
    /// reader's own buffer, a buffer's worth at a time, so that a value over the limit costs
    /// no memory and the connection stays in step with the server. (Dropping the connection
    /// instead would save reading the bytes but cost a reconnection; an oversize value is
    /// rare, and memcached's are at most 1 MiB unless `-I` says more.)
    async fn skip_block(&mut self, len: u64) -> Result<(), Fault> {
        let mut block = (&mut self.io).take(len);
        let skipped = tokio::io::copy_buf(&mut block, &mut tokio::io::sink())
            .await
            .map_err(Fault::Io)?;
        if skipped < len {
            return Err(closed());
        }
        let mut end = [0; 2];
        self.io.read_exact(&mut end).await.map_err(Fault::Io)?;
        if end != *b"\r\n" {
            return Err(Fault::Protocol("value not terminated by CRLF".to_owned()));
        }
        Ok(())
    }
}

/// The fault for a connection the server closed mid-reply.
fn closed() -> Fault {
    Fault::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed by the server",
    ))
}

/// The bytes of one command, data block included.
fn encode(request: &Request<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    match request {
        Request::Gets { key, .. } => out.extend_from_slice(format!("gets {key}\r\n").as_bytes()),
        Request::Store {
            verb,
            key,
            data,
            exptime,
        } => {
            out.reserve(data.len() + 2);
            let len = data.len();
            let header = match verb {
                Verb::Add => format!("add {key} 0 {exptime} {len}\r\n"),
                Verb::Set => format!("set {key} 0 {exptime} {len}\r\n"),
                Verb::Cas(cas) => format!("cas {key} 0 {exptime} {len} {cas}\r\n"),
            };
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        Request::Delete { key, cas: None } => {
            out.extend_from_slice(format!("delete {key}\r\n").as_bytes())
        }
        Request::Delete {
            key,
            cas: Some(cas),
        } => out.extend_from_slice(format!("md {key} C{cas}\r\n").as_bytes()),
        Request::Version => out.extend_from_slice(b"version\r\n"),
    }
    out
}

/// Checks `<key> <flags> <bytes> <cas unique>` (a `gets` header) and returns `<bytes>`,
/// at most [`MAX_ITEM_LEN`], and the CAS unique.
fn parse_value_header(header: &[u8], key: &str) -> Result<(u64, u64), Fault> {
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
fn unexpected(line: &[u8]) -> Fault {
    let is_error =
        line == b"ERROR" || line.starts_with(b"CLIENT_ERROR") || line.starts_with(b"SERVER_ERROR");
    if is_error {
        Fault::Server(printable(line))
    } else {
        Fault::Protocol(format!("unexpected line {:?}", printable(line)))
    }
}

/// At most 120 bytes of server text, non-printable bytes replaced, safe to log.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(120)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// The reply parser driven over an in-memory server, for the fuzz targets in `fuzz/` only
/// (through [`crate::fuzzing`]): built with `--cfg fuzzing`, as `cargo fuzz` does.
#[cfg(fuzzing)]
impl super::MemcacheBackend {
    /// The largest value a reply may carry: larger ones are read past (and reported as no
    /// value). Small, so that fuzz inputs reach both sides of it.
    pub(crate) const FUZZ_MAX_VALUE: usize = 1024;

    /// The key every command names: a real one (default prefix, hex SHA-256 of `"fuzz"`).
    pub(crate) fn fuzz_key() -> String {
        format!(
            "{}{}",
            super::DEFAULT_PREFIX,
            crate::storage::id_digest("fuzz")
        )
    }

    /// Sends one command per byte of `commands` (`gets`, `add`, `set`, `cas`, `delete`,
    /// `md`, `version` by the byte modulo 7) over one connection whose server sends exactly
    /// `server` and then closes. Stops after the first fault, as the pool drops a
    /// connection then.
    pub(crate) async fn fuzz_converse(
        commands: &[u8],
        server: &[u8],
    ) -> Vec<crate::fuzzing::MemcacheOutcome> {
        use crate::fuzzing::MemcacheOutcome as Outcome;
        let key = Self::fuzz_key();
        let data = br#"{"d":{"values":{"n":1},"flash":{}},"c":1}"#;
        let mut conn = Conn::over(tokio::io::join(server, tokio::io::sink()));
        let mut outcomes = Vec::new();
        for command in commands {
            let store = |verb| Request::Store {
                verb,
                key: &key,
                data,
                exptime: 60,
            };
            let request = match command % 7 {
                0 => Request::Gets {
                    key: &key,
                    limit: Self::FUZZ_MAX_VALUE,
                },
                1 => store(Verb::Add),
                2 => store(Verb::Set),
                3 => store(Verb::Cas(7)),
                4 => Request::Delete {
                    key: &key,
                    cas: None,
                },
                5 => Request::Delete {
                    key: &key,
                    cas: Some(7),
                },
                _ => Request::Version,
            };
            match conn.execute(&request).await {
                Ok(Reply::Item(item)) => {
                    outcomes.push(Outcome::Value(item.map(|item| (item.data, item.cas))))
                }
                // Not kept, so not a value: the connection goes on, as after a miss.
                Ok(Reply::Oversize(_)) => outcomes.push(Outcome::Value(None)),
                Ok(Reply::Stored(stored)) => outcomes.push(Outcome::Stored(stored)),
                Ok(Reply::Deleted(deleted)) => outcomes.push(Outcome::Deleted(deleted)),
                Ok(Reply::Version(version)) => outcomes.push(Outcome::Version(version)),
                Err(fault) => {
                    outcomes.push(Outcome::Fault(fault.to_string()));
                    break;
                }
            }
        }
        outcomes
    }
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

    /// Found by the `memcache_reply` fuzz target: the error for an oversize length quoted
    /// the server's digits in full (up to a whole 1 KiB line) into the log.
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

    #[test]
    fn conditional_commands_are_encoded_as_memcached_expects() {
        let store = |verb| {
            encode(&Request::Store {
                verb,
                key: "k",
                data: b"ab",
                exptime: 60,
            })
        };
        assert_eq!(store(Verb::Add), b"add k 0 60 2\r\nab\r\n");
        assert_eq!(store(Verb::Set), b"set k 0 60 2\r\nab\r\n");
        assert_eq!(store(Verb::Cas(42)), b"cas k 0 60 2 42\r\nab\r\n");
        let delete = |cas| encode(&Request::Delete { key: "k", cas });
        assert_eq!(delete(None), b"delete k\r\n");
        assert_eq!(delete(Some(42)), b"md k C42\r\n");
        let gets = Request::Gets { key: "k", limit: 1 };
        assert_eq!(encode(&gets), b"gets k\r\n");
    }

    /// The reply `server` gives to `request`, over an in-memory connection.
    async fn answer(request: Request<'_>, server: &[u8]) -> Result<Reply, Fault> {
        let mut conn = Conn::over(tokio::io::join(server, tokio::io::sink()));
        conn.execute(&request).await
    }

    #[tokio::test]
    async fn each_command_accepts_only_its_own_answers() {
        let cas = |verb| Request::Store {
            verb,
            key: "k",
            data: b"ab",
            exptime: 0,
        };
        for (reply, stored) in [(&b"STORED\r\n"[..], true), (b"EXISTS\r\n", false)] {
            let got = answer(cas(Verb::Cas(1)), reply).await.unwrap();
            assert!(matches!(got, Reply::Stored(s) if s == stored), "{got:?}");
        }
        let got = answer(cas(Verb::Cas(1)), b"NOT_FOUND\r\n").await.unwrap();
        assert!(matches!(got, Reply::Stored(false)), "{got:?}");
        assert!(answer(cas(Verb::Cas(1)), b"NOT_STORED\r\n").await.is_err());
        assert!(answer(cas(Verb::Add), b"EXISTS\r\n").await.is_err());

        let md = || Request::Delete {
            key: "k",
            cas: Some(1),
        };
        for (reply, deleted) in [
            (&b"HD\r\n"[..], true),
            (b"NF\r\n", false),
            (b"EX\r\n", false),
        ] {
            let got = answer(md(), reply).await.unwrap();
            assert!(matches!(got, Reply::Deleted(d) if d == deleted), "{got:?}");
        }
        assert!(answer(md(), b"DELETED\r\n").await.is_err());
        let delete = || Request::Delete {
            key: "k",
            cas: None,
        };
        assert!(answer(delete(), b"HD\r\n").await.is_err());
        let got = answer(md(), b"CLIENT_ERROR bad command line format\r\n").await;
        assert!(matches!(got, Err(Fault::Server(_))), "{got:?}");

        let gets = || Request::Gets { key: "k", limit: 2 };
        let got = answer(gets(), b"VALUE k 0 2 9\r\nab\r\nEND\r\n").await;
        match got {
            Ok(Reply::Item(Some(item))) => assert_eq!((&item.data[..], item.cas), (&b"ab"[..], 9)),
            other => panic!("{other:?}"),
        }
    }

    /// A value over the limit is read past, not kept, and the next reply on the connection
    /// is read in step; a value cut short or not ended by CRLF is a fault.
    #[tokio::test]
    async fn values_over_the_limit_are_read_past_in_step() {
        let gets = || Request::Gets { key: "k", limit: 2 };
        let mut server = b"VALUE k 0 3 9\r\nabc\r\nEND\r\n".to_vec();
        // 64 MiB announced and sent: read past through the buffer, never held.
        let big = 64 << 20;
        server.extend_from_slice(format!("VALUE k 0 {big} 10\r\n").as_bytes());
        server.resize(server.len() + big, b'x');
        server.extend_from_slice(b"\r\nEND\r\nVALUE k 0 2 11\r\nab\r\nEND\r\n");
        let mut conn = Conn::over(tokio::io::join(&server[..], tokio::io::sink()));
        let got = conn.execute(&gets()).await;
        assert!(matches!(got, Ok(Reply::Oversize(3))), "{got:?}");
        let got = conn.execute(&gets()).await;
        assert!(
            matches!(got, Ok(Reply::Oversize(len)) if len == big as u64),
            "{got:?}"
        );
        match conn.execute(&gets()).await {
            Ok(Reply::Item(Some(item))) => assert_eq!((&item.data[..], item.cas), (&b"ab"[..], 11)),
            other => panic!("{other:?}"),
        }
        for broken in [
            &b"VALUE k 0 3 9\r\nabcXXEND\r\n"[..],
            b"VALUE k 0 3 9\r\nabc\r\nVALUE\r\n",
            b"VALUE k 0 30 9\r\nabc",
            b"VALUE k 0 1073741824 9\r\n",
        ] {
            let got = answer(gets(), broken).await;
            assert!(got.is_err(), "{:?}: {got:?}", printable(broken));
        }
    }
}
