//! [`Pool`]: the memcached servers, each with a few connections opened on first use and
//! dropped after any error, so that a server that comes back is used again without anyone
//! reconnecting by hand.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, MutexGuard};

use super::connection::Conn;
use super::fault::Fault;
use super::reply::{Reply, mismatch};
use super::request::Request;
use super::ring::Ring;
use crate::Error;
use crate::storage::network::Timeouts;

/// The servers, the ring that maps keys onto them, and the timeouts of their connections.
pub(super) struct Pool {
    servers: Vec<Server>,
    ring: Ring,
    timeouts: Timeouts,
}

impl Pool {
    /// A pool over `addrs` (checked, distinct) with `connections` slots per server (at least
    /// 1); nothing is connected yet.
    pub(super) fn new(addrs: Vec<String>, timeouts: Timeouts, connections: usize) -> Pool {
        let ring = Ring::new(addrs.iter().map(String::as_str));
        let servers = addrs
            .into_iter()
            .map(|addr| Server::new(addr, connections))
            .collect();
        Pool {
            servers,
            ring,
            timeouts,
        }
    }

    /// The same servers with `connections` slots each (at least 1), none connected yet.
    pub(super) fn with_slots(&self, connections: usize) -> Pool {
        Pool::new(
            self.addrs().map(str::to_owned).collect(),
            self.timeouts,
            connections,
        )
    }

    /// Gives each server `connections` slots (at least 1), keeping the open connections
    /// that fit.
    pub(super) fn resize(&mut self, connections: usize) {
        for server in &mut self.servers {
            server.resize(connections);
        }
    }

    /// The servers' names, in the order given.
    pub(super) fn addrs(&self) -> impl ExactSizeIterator<Item = &str> {
        self.servers.iter().map(|s| s.addr.as_str())
    }

    pub(super) fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// How many connections each server may have open at once.
    pub(super) fn slots_per_server(&self) -> usize {
        self.servers[0].slots.len()
    }

    /// The name of the server that holds `key`.
    pub(super) fn server_for(&self, key: &str) -> &str {
        &self.server(key).addr
    }

    fn server(&self, key: &str) -> &Server {
        if self.servers.len() == 1 {
            return &self.servers[0];
        }
        &self.servers[self.ring.server_of(key)]
    }

    /// Opens the first connection to every server and checks that a memcached answers on
    /// it, so that a wrong address fails at start-up rather than on the first request.
    pub(super) async fn check(&self) -> Result<(), Error> {
        for server in &self.servers {
            let mut slot = server.acquire().await;
            match server
                .execute(&mut slot, &Request::Version, self.timeouts)
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
            let mut slot = tokio::time::timeout(self.timeouts.response, server.acquire())
                .await
                .map_err(|_| Fault::Timeout)?;
            server.execute(&mut slot, &request, self.timeouts).await
        }
        .await;
        result.map_err(|fault| {
            tracing::debug!(server = %server.addr, error = %fault, "memcached request failed");
            fault.into_error(&server.addr)
        })
    }
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
            slots: (0..connections.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    fn resize(&mut self, connections: usize) {
        let slots = std::mem::take(&mut self.slots).into_vec();
        let mut open = slots.into_iter().filter_map(Mutex::into_inner);
        self.slots = (0..connections.max(1))
            .map(|_| Mutex::new(open.next()))
            .collect();
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
        timeouts: Timeouts,
    ) -> Result<Reply, Fault> {
        let mut retried = false;
        loop {
            if slot.as_ref().is_some_and(Conn::is_in_flight) {
                *slot = None;
            }
            let reused = slot.is_some();
            let conn = match slot {
                Some(conn) => conn,
                None => slot.insert(Conn::open(&self.addr, timeouts.connect).await?),
            };
            let outcome = tokio::time::timeout(timeouts.response, conn.execute(request))
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
    use std::time::Duration;

    use super::*;

    fn pool(connections: usize) -> Pool {
        let timeouts = Timeouts {
            connect: Duration::from_secs(1),
            response: Duration::from_secs(1),
        };
        Pool::new(vec!["10.0.0.1:11211".to_owned()], timeouts, connections)
    }

    #[test]
    fn every_server_keeps_at_least_one_connection() {
        assert_eq!(pool(0).slots_per_server(), 1);
        let mut resized = pool(4);
        resized.resize(0);
        assert_eq!(resized.slots_per_server(), 1);
        assert_eq!(pool(4).with_slots(16).slots_per_server(), 16);
    }
}
