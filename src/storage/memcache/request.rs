//! [`Request`]: the few memcached text-protocol commands that sessions need, as bytes.

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
        /// The item's expiration as memcached reads it ([`super::expiration::exptime`]).
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

impl Request<'_> {
    /// The bytes of the command, data block included.
    pub(super) fn encode(&self) -> Vec<u8> {
        match self {
            Request::Gets { key, .. } => format!("gets {key}\r\n").into_bytes(),
            Request::Store {
                verb,
                key,
                data,
                exptime,
            } => {
                let len = data.len();
                let header = match verb {
                    Verb::Add => format!("add {key} 0 {exptime} {len}\r\n"),
                    Verb::Set => format!("set {key} 0 {exptime} {len}\r\n"),
                    Verb::Cas(cas) => format!("cas {key} 0 {exptime} {len} {cas}\r\n"),
                };
                let mut out = Vec::with_capacity(header.len() + len + 2);
                out.extend_from_slice(header.as_bytes());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
                out
            }
            Request::Delete { key, cas: None } => format!("delete {key}\r\n").into_bytes(),
            Request::Delete {
                key,
                cas: Some(cas),
            } => format!("md {key} C{cas}\r\n").into_bytes(),
            Request::Version => b"version\r\n".to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_commands_are_encoded_as_memcached_expects() {
        let store = |verb| {
            Request::Store {
                verb,
                key: "k",
                data: b"ab",
                exptime: 60,
            }
            .encode()
        };
        assert_eq!(store(Verb::Add), b"add k 0 60 2\r\nab\r\n");
        assert_eq!(store(Verb::Set), b"set k 0 60 2\r\nab\r\n");
        assert_eq!(store(Verb::Cas(42)), b"cas k 0 60 2 42\r\nab\r\n");
        let delete = |cas| Request::Delete { key: "k", cas }.encode();
        assert_eq!(delete(None), b"delete k\r\n");
        assert_eq!(delete(Some(42)), b"md k C42\r\n");
        let gets = Request::Gets { key: "k", limit: 1 };
        assert_eq!(gets.encode(), b"gets k\r\n");
        assert_eq!(Request::Version.encode(), b"version\r\n");
    }
}
