//! [`Fault`]: what went wrong on a connection to memcached, before it becomes an [`Error`].

use std::fmt;
use std::io;

use crate::Error;

/// What went wrong on a connection. Any fault leaves the connection in an unknown state,
/// so the pool drops it.
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
    /// The fault for a connection the server closed mid-reply.
    pub(super) fn closed() -> Fault {
        Fault::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed by the server",
        ))
    }

    /// The error a storage operation fails with, naming the server at `addr`.
    pub(super) fn into_error(self, addr: &str) -> Error {
        match self {
            Fault::Timeout => Error::Timeout,
            other => Error::backend(format!("memcached {addr}: {other}")),
        }
    }
}
