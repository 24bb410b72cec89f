//! [`Ring`]: consistent hashing of keys onto servers, so that adding or removing a server
//! moves only its share of the sessions.

use sha2::{Digest, Sha256};

/// Points per server on the ring: enough for an even spread over a few servers.
const VIRTUAL_NODES: usize = 160;

/// A hash ring over servers named by their index in the list it was built from.
pub(super) struct Ring {
    /// `(point, server index)`, sorted by point; a key belongs to the first point at or
    /// after its own.
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// The ring over `addrs`, each placed by its name: every app server that lists the same
    /// names finds each key on the same server.
    pub(super) fn new<'a>(addrs: impl ExactSizeIterator<Item = &'a str>) -> Ring {
        let mut points = Vec::with_capacity(addrs.len() * VIRTUAL_NODES);
        for (index, addr) in addrs.enumerate() {
            for node in 0..VIRTUAL_NODES {
                points.push((point_of(format!("{addr}#{node}").as_bytes()), index));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The index of the server that holds `key`.
    pub(super) fn server_of(&self, key: &str) -> usize {
        let point = point_of(key.as_bytes());
        let at = self.points.partition_point(|&(p, _)| p < point);
        // Past the last point the ring wraps around to the first.
        let (_, index) = self
            .points
            .get(at)
            .or(self.points.first())
            .copied()
            .unwrap_or((0, 0));
        index
    }
}

/// A position on the ring: the first 8 bytes of the SHA-256.
fn point_of(bytes: &[u8]) -> u64 {
    let digest = Sha256::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ring_is_stable_and_uses_every_server() {
        let addrs: Vec<String> = (0..3).map(|i| format!("10.0.0.{i}:11211")).collect();
        let a = Ring::new(addrs.iter().map(String::as_str));
        let b = Ring::new(addrs.iter().map(String::as_str));
        let mut used = HashSet::new();
        for i in 0..300 {
            let key = format!("k{i}");
            assert_eq!(a.server_of(&key), b.server_of(&key));
            used.insert(a.server_of(&key));
        }
        assert_eq!(used.len(), 3);
    }
}
