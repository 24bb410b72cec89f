//! [`Conn`]: one text-protocol connection to memcached, which sends a [`Request`] and reads
//! its whole [`Reply`], never holding more of a value than the limit its `gets` names.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::fault::Fault;
use super::reply::{self, Item, Reply};
use super::request::Request;

/// The longest reply line accepted (a `VALUE` line holds a key of at most 250 bytes).
const MAX_LINE_LEN: usize = 1024;

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
        let stream = self.io.get_mut();
        stream
            .write_all(&request.encode())
            .await
            .map_err(Fault::Io)?;
        stream.flush().await.map_err(Fault::Io)?;
        match request {
            Request::Gets { key, limit } => self.read_item(key, *limit).await,
            Request::Store { verb, .. } => reply::stored(*verb, self.read_line().await?),
            Request::Delete { cas, .. } => reply::deleted(*cas, self.read_line().await?),
            Request::Version => reply::version(self.read_line().await?),
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
            return Err(Fault::closed());
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
            return Err(reply::unexpected(line));
        };
        let (len, cas) = reply::parse_value_header(header, key)?;
        let item = match usize::try_from(len) {
            Ok(len) if len <= limit => Reply::Item(Some(Item {
                data: self.read_block(len).await?,
                cas,
            })),
            _ => {
                self.skip_block(len).await?;
                Reply::Oversize(len)
            }
        };
        match self.read_line().await? {
            b"END" => Ok(item),
            other => Err(reply::unexpected(other)),
        }
    }

    /// Reads a data block of `len` bytes, at most the limit the caller accepts to hold, and
    /// its CRLF.
    async fn read_block(&mut self, len: usize) -> Result<Vec<u8>, Fault> {
        let mut data = vec![0; len + 2];
        self.io.read_exact(&mut data).await.map_err(Fault::Io)?;
        if !data.ends_with(b"\r\n") {
            return Err(Fault::Protocol("value not terminated by CRLF".to_owned()));
        }
        data.truncate(len);
        Ok(data)
    }

    /// Reads past a data block of `len` bytes and its CRLF without keeping it: through the
    /// reader's own buffer, a buffer's worth at a time, so that a value over the limit costs
    /// no memory and the connection stays in step with the server, ready for the next
    /// command without a reconnection.
    async fn skip_block(&mut self, len: u64) -> Result<(), Fault> {
        let mut block = (&mut self.io).take(len);
        let skipped = tokio::io::copy_buf(&mut block, &mut tokio::io::sink())
            .await
            .map_err(Fault::Io)?;
        if skipped < len {
            return Err(Fault::closed());
        }
        let mut end = [0; 2];
        self.io.read_exact(&mut end).await.map_err(Fault::Io)?;
        if end != *b"\r\n" {
            return Err(Fault::Protocol("value not terminated by CRLF".to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::request::Verb;
    use super::*;

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
            assert!(got.is_err(), "{:?}: {got:?}", reply::printable(broken));
        }
    }
}
