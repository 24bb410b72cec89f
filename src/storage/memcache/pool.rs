//! The memcached servers: a consistent-hash ring that maps each key to one server, and a
//! few connections per server, opened on first use and dropped after any error so that a
//! server that comes back is used again without anyone reconnecting by hand.

use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, MutexGuard};

use super::MemcacheOptions;
use super::protocol::{Conn, Fault, Reply, Request, mismatch};
use crate::Error;

/// Points per server on the hash ring: enough for an even spread over a few servers.
const VIRTUAL_NODES: usize = 160;

/// The servers, the ring that maps keys onto them, and the options they were opened with.
pub(super) struct Pool {
    servers: Vec<Server>,
    /// `(point, server index)`, sorted by point.
    ring: Vec<(u64, usize)>,
    options: MemcacheOptions,
}

impl Pool {
    /// A ring over `addrs` (checked, distinct) with `options.pool_size` connection slots per
    /// server; nothing is connected yet.
    pub(super) fn new(addrs: Vec<String>, options: MemcacheOptions) -> Pool {
        let mut ring = Vec::with_capacity(addrs.len() * VIRTUAL_NODES);
        for (index, addr) in addrs.iter().enumerate() {
            for node in 0..VIRTUAL_NODES {
                ring.push((ring_point(format!("{addr}#{node}").as_bytes()), index));
            }
        }
        ring.sort_unstable();
        let servers = addrs
            .into_iter()
            .map(|addr| Server::new(addr, options.pool_size.max(1)))
            .collect();
        Pool {
            servers,
            ring,
            options,
        }
    }

    /// The servers' names, in the order given.
    pub(super) fn addrs(&self) -> impl Iterator<Item = &str> {
        self.servers.iter().map(|s| s.addr.as_str())
    }

    pub(super) fn options(&self) -> &MemcacheOptions {
        &self.options
    }

    /// The name of the server that holds `key`.
    pub(super) fn server_for(&self, key: &str) -> &str {
        &self.server(key).addr
    }

    fn server(&self, key: &str) -> &Server {
        if self.servers.len() == 1 {
            return &self.servers[0];
        }
        let point = ring_point(key.as_bytes());
        let at = self.ring.partition_point(|&(p, _)| p < point);
        // Past the last point the ring wraps around to the first.
        let (_, index) = self
            .ring
            .get(at)
            .or(self.ring.first())
            .copied()
            .unwrap_or((0, 0));
        &self.servers[index]
    }

    /// Opens the first connection to every server and checks that a memcached answers on
    /// it, so that a wrong address fails at start-up rather than on the first request.
    pub(super) async fn check(&self) -> Result<(), Error> {
        for server in &self.servers {
            let mut slot = server.acquire().await;
            match server
                .execute(&mut slot, &Request::Version, &self.options)
                .await
            {
                Ok(Reply::Version(_)) => {}
                Ok(other) => return Err(mismatch(&other)),
                Err(fault) => return Err(fault.into_error(&server.addr)),
            }
        }
        Ok(())
    }

    /// Runs one command on the server that holds `key`, waiting at most the response
    /// timeout for a free connection and again for the reply.
    pub(super) async fn run(&self, key: &str, request: Request<'_>) -> Result<Reply, Error> {
        let server = self.server(key);
        let result = async {
            let mut slot = tokio::time::timeout(self.options.response_timeout, server.acquire())
                .await
                .map_err(|_| Fault::Timeout)?;
            server.execute(&mut slot, &request, &self.options).await
        }
        .await;
        result.map_err(|fault| {
            tracing::debug!(server = %server.addr, error = %fault, "memcached request failed");
            fault.into_error(&server.addr)
        })
    }
}

/// A position on the ring: the first 8 bytes of the SHA-256.
fn ring_point(bytes: &[u8]) -> u64 {
    let digest = Sha256::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// One server: its name and a few connection slots, each opened on first use and dropped
/// after any error.
struct Server {
    addr: String,
    slots: Box<[Mutex<Option<Conn>>]>,
    next: AtomicUsize,
}

impl Server {
    fn new(addr: String, connections: usize) -> Server {
        Server {
            addr,
            slots: (0..connections).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A free slot if there is one, else a turn on one of them (tokio's mutex is fair).
    async fn acquire(&self) -> MutexGuard<'_, Option<Conn>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.slots.len();
        for i in 0..count {
            if let Ok(guard) = self.slots[(start + i) % count].try_lock() {
                return guard;
            }
        }
        self.slots[start % count].lock().await
    }

    /// Runs one command on the slot's connection, opening one if needed. Any failure drops
    /// the connection (its state is unknown). A pooled connection that turns out to be
    /// broken (the server restarted since) is replaced and the command tried once more; one
    /// left mid-command by a cancelled request is replaced before use.
    async fn execute(
        &self,
        slot: &mut Option<Conn>,
        request: &Request<'_>,
        options: &MemcacheOptions,
    ) -> Result<Reply, Fault> {
        let mut retried = false;
        loop {
            if slot.as_ref().is_some_and(Conn::is_in_flight) {
                *slot = None;
            }
            let reused = slot.is_some();
            let conn = match slot {
                Some(conn) => conn,
                None => slot.insert(Conn::open(&self.addr, options.connect_timeout).await?),
            };
            let outcome = tokio::time::timeout(options.response_timeout, conn.execute(request))
                .await
                .unwrap_or(Err(Fault::Timeout));
            match outcome {
                Ok(reply) => return Ok(reply),
                Err(fault) => {
                    *slot = None;
                    if reused && !retried && matches!(fault, Fault::Io(_)) {
                        retried = true;
                        continue;
                    }
                    return Err(fault);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ring_is_stable_and_uses_every_server() {
        let addrs: Vec<String> = (0..3).map(|i| format!("10.0.0.{i}:11211")).collect();
        let options = MemcacheOptions::new().pool_size(1);
        let a = Pool::new(addrs.clone(), options.clone());
        let b = Pool::new(addrs, options);
        let mut used = HashSet::new();
        for i in 0..300 {
            let key = format!("k{i}");
            assert_eq!(a.server_for(&key), b.server_for(&key));
            used.insert(a.server_for(&key).to_owned());
        }
        assert_eq!(used.len(), 3);
    }
}
