//! The reply parser driven over an in-memory server, for the fuzz targets in `fuzz/` only
//! (through [`crate::fuzzing`]): built with `--cfg fuzzing`, as `cargo fuzz` does.

use super::MemcacheBackend;
use super::connection::Conn;
use super::fault::Fault;
use super::keys::{DEFAULT_PREFIX, key};
use super::reply::Reply;
use super::request::{Request, Verb};
use crate::fuzzing::MemcacheOutcome;

/// The record every storage command of a fuzz run writes.
const DATA: &[u8] = br#"{"d":{"values":{"n":1},"flash":{}},"c":1}"#;

impl MemcacheBackend {
    /// The largest value a reply may carry: larger ones are read past (and reported as no
    /// value). Small, so that fuzz inputs reach both sides of it.
    pub(crate) const FUZZ_MAX_VALUE: usize = 1024;

    /// The key every command names: a real one (default prefix, hex SHA-256 of `"fuzz"`).
    pub(crate) fn fuzz_key() -> String {
        key(DEFAULT_PREFIX, "fuzz")
    }

    /// Sends one command per byte of `commands` (`gets`, `add`, `set`, `cas`, `delete`,
    /// `md`, `version` by the byte modulo 7) over one connection whose server sends exactly
    /// `server` and then closes. Stops after the first fault, as the pool drops a
    /// connection then.
    pub(crate) async fn fuzz_converse(commands: &[u8], server: &[u8]) -> Vec<MemcacheOutcome> {
        let key = Self::fuzz_key();
        let mut conn = Conn::over(tokio::io::join(server, tokio::io::sink()));
        let mut outcomes = Vec::new();
        for &command in commands {
            let outcome = outcome(conn.execute(&request(command, &key)).await);
            let faulted = matches!(outcome, MemcacheOutcome::Fault(_));
            outcomes.push(outcome);
            if faulted {
                break;
            }
        }
        outcomes
    }
}

/// The command that `command` picks, by its value modulo 7.
fn request(command: u8, key: &str) -> Request<'_> {
    let store = |verb| Request::Store {
        verb,
        key,
        data: DATA,
        exptime: 60,
    };
    match command % 7 {
        0 => Request::Gets {
            key,
            limit: MemcacheBackend::FUZZ_MAX_VALUE,
        },
        1 => store(Verb::Add),
        2 => store(Verb::Set),
        3 => store(Verb::Cas(7)),
        4 => Request::Delete { key, cas: None },
        5 => Request::Delete { key, cas: Some(7) },
        _ => Request::Version,
    }
}

/// What the fuzz target checks of one command's result.
fn outcome(result: Result<Reply, Fault>) -> MemcacheOutcome {
    match result {
        Ok(Reply::Item(item)) => MemcacheOutcome::Value(item.map(|item| (item.data, item.cas))),
        // Not kept, so not a value: the connection goes on, as after a miss.
        Ok(Reply::Oversize(_)) => MemcacheOutcome::Value(None),
        Ok(Reply::Stored(stored)) => MemcacheOutcome::Stored(stored),
        Ok(Reply::Deleted(deleted)) => MemcacheOutcome::Deleted(deleted),
        Ok(Reply::Version(version)) => MemcacheOutcome::Version(version),
        Err(fault) => MemcacheOutcome::Fault(fault.to_string()),
    }
}
