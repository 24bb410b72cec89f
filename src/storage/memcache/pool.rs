//! [`Pool`]: the memcached servers, each with a few connections opened on first use and
//! dropped after any error, so that a server that comes back is used again without anyone
//! reconnecting by hand.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, MutexGuard};

use super::connection::Conn;
use super::fault::Fault;
use super::options::MemcacheOptions;
use super::reply::{Reply, mismatch};
use super::request::Request;
use super::ring::Ring;
use crate::Error;

/// The servers, the ring that maps keys onto them, and the options they were opened with.
pub(super) struct Pool {
    servers: Vec<Server>,
    ring: Ring,
    options: MemcacheOptions,
}

impl Pool {
    /// A pool over `addrs` (checked, distinct) with `options.pool_size` connection slots per
    /// server; nothing is connected yet.
    pub(super) fn new(addrs: Vec<String>, options: MemcacheOptions) -> Pool {
        let ring = Ring::new(addrs.iter().map(String::as_str));
        let servers = addrs
            .into_iter()
            .map(|addr| Server::new(addr, options.pool_size))
            .collect();
        Pool {
            servers,
            ring,
            options,
        }
    }

    /// The servers' names, in the order given.
    pub(super) fn addrs(&self) -> impl ExactSizeIterator<Item = &str> {
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
        &self.servers[self.ring.server_of(key)]
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
