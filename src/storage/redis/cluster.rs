//! A Redis Cluster client for single-key requests: the slot map, one connection per master,
//! and the redirections and refusals of a cluster that fails over or reshards.
//!
//! redis-rs's own cluster connection runs every node's traffic through one task that stops
//! all of it while it refreshes the slot map, and can stop answering for good after a
//! failover (docs/redis-cluster-bug.md). Here each master has a connection of its own, so a
//! dead master fails only the requests for its own slots, and the map is refreshed beside
//! the requests, never in their way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, Pipeline, RedisError,
    RedisResult, Value,
};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::super::Error;
use super::super::network::Timeouts;
use super::refusal::Refusal;
use super::slots::{SlotMap, slot_of};

/// One master's connection, made by the first request that needs it.
type Node = Arc<OnceCell<MultiplexedConnection>>;

/// The pause before a request refused by a cluster in transition (a master down and not yet
/// replaced, `TRYAGAIN`, `CLUSTERDOWN`) is sent again, and the least time between two
/// refreshes of the slot map.
const PAUSE: Duration = Duration::from_millis(25);

pub(super) struct Cluster {
    /// The node URLs given, for their credentials and for the first slot map.
    seeds: Vec<ConnectionInfo>,
    config: AsyncConnectionConfig,
    /// How long one node may take to answer `CLUSTER SLOTS`.
    response_timeout: Duration,
    slots: RwLock<Arc<SlotMap>>,
    nodes: Mutex<HashMap<Arc<str>, Node>>,
    /// When the slot map was last refreshed; held while refreshing.
    refreshed: tokio::sync::Mutex<Option<Instant>>,
}

impl Cluster {
    /// Reads the slot map from the first seed that answers.
    pub async fn connect(seeds: Vec<ConnectionInfo>, timeouts: Timeouts) -> RedisResult<Cluster> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.response));
        let cluster = Cluster {
            seeds,
            config,
            response_timeout: timeouts.response,
            slots: RwLock::default(),
            nodes: Mutex::default(),
            refreshed: tokio::sync::Mutex::new(None),
        };
        cluster.refresh(true).await?;
        Ok(cluster)
    }

    /// Sends `commands`, which touch only `key`, to the master of its slot, following the
    /// cluster until `deadline`. A request that may have reached a node that then failed is
    /// sent again only when `repeatable`.
    pub async fn send(
        self: &Arc<Self>,
        key: &str,
        commands: &Pipeline,
        repeatable: bool,
        deadline: Instant,
    ) -> Result<RedisResult<Vec<Value>>, Error> {
        let slot = slot_of(key.as_bytes());
        let mut asked_to = None;
        loop {
            let asking = asked_to.is_some();
            let address = asked_to.take().unwrap_or_else(|| self.master_of(slot));
            let answer = self.query(&address, commands, asking);
            let answer = match tokio::time::timeout_at(deadline, answer).await {
                Ok(answer) => answer,
                Err(_elapsed) => return Err(Error::Timeout),
            };
            let error = match answer {
                Ok(replies) => return Ok(Ok(replies)),
                Err(error) => error,
            };
            match Refusal::of(&error) {
                Refusal::Moved(to) => {
                    self.patch(slot, to);
                    self.refresh_soon();
                    continue;
                }
                Refusal::Ask(to) => {
                    asked_to = Some(to);
                    continue;
                }
                Refusal::NotNow => {}
                Refusal::NodeDown { sent } => {
                    self.forget(&address);
                    self.refresh_soon();
                    if sent && !repeatable {
                        return Ok(Err(error));
                    }
                }
                Refusal::Final => return Ok(Err(error)),
            }
            let pause = Instant::now() + PAUSE;
            if pause >= deadline {
                return Ok(Err(error));
            }
            tokio::time::sleep_until(pause).await;
        }
    }

    /// Sends `commands` to the master at `address`, after `ASKING` when the slot is moving
    /// there.
    async fn query(
        &self,
        address: &Arc<str>,
        commands: &Pipeline,
        asking: bool,
    ) -> RedisResult<Vec<Value>> {
        let mut conn = self.node(address).await?;
        if !asking {
            return commands.query_async(&mut conn).await;
        }
        let mut asked = redis::pipe();
        asked.cmd("ASKING");
        for command in commands.cmd_iter() {
            asked.add_command(command.clone());
        }
        let mut replies: Vec<Value> = asked.query_async(&mut conn).await?;
        replies.remove(0);
        Ok(replies)
    }

    fn master_of(&self, slot: u16) -> Arc<str> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner()).clone();
        match slots.master_of(slot) {
            Some(address) => address.clone(),
            // A slot no master serves: ask a seed, whose MOVED names the owner if any.
            None => Arc::from(address_of(self.seeds[0].addr()).as_str()),
        }
    }

    /// Records that `slot` is now served at `address` (a `MOVED`), until the next refresh.
    fn patch(&self, slot: u16, address: Arc<str>) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        *slots = Arc::new(slots.moved(slot, address));
    }

    /// The connection to the master at `address`, connecting on first use.
    async fn node(&self, address: &Arc<str>) -> RedisResult<MultiplexedConnection> {
        let node = self
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(address.clone())
            .or_default()
            .clone();
        let conn = node
            .get_or_try_init(|| async {
                let client = Client::open(self.info_for(address)?)?;
                client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await
            })
            .await;
        if conn.is_err() {
            self.forget(address);
        }
        conn.cloned()
    }

    /// Drops the connection to `address`, so that the next request connects anew.
    fn forget(&self, address: &Arc<str>) {
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(address);
    }

    /// The first seed's settings (credentials, TLS) for the node at `address`.
    fn info_for(&self, address: &str) -> RedisResult<ConnectionInfo> {
        let invalid =
            || RedisError::from((ErrorKind::Client, "a cluster node address without a port"));
        let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let mut addr = self.seeds[0].addr().clone();
        match &mut addr {
            ConnectionAddr::Tcp(h, p)
            | ConnectionAddr::TcpTls {
                host: h, port: p, ..
            } => {
                *h = host;
                *p = port;
            }
            _ => {
                return Err(RedisError::from((
                    ErrorKind::Client,
                    "a cluster needs TCP node URLs",
                )));
            }
        }
        Ok(self.seeds[0].clone().set_addr(addr))
    }

    /// Refreshes the slot map on a task of its own, so that no request waits for it; at
    /// most one refresh at a time, and one per [`PAUSE`].
    fn refresh_soon(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move {
            let Ok(mut last) = this.refreshed.try_lock() else {
                return;
            };
            if last.is_some_and(|at| at.elapsed() < PAUSE) {
                return;
            }
            *last = Some(Instant::now());
            if let Err(e) = this.refresh(false).await {
                tracing::debug!(error = %e, "session storage: Redis Cluster slot refresh failed");
            }
        });
    }

    /// Asks the known masters, then the seeds, for `CLUSTER SLOTS` until one answers.
    /// `required`: fail when none does (at connect time).
    async fn refresh(&self, required: bool) -> RedisResult<()> {
        let mut candidates: Vec<String> = {
            let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
            slots.masters()
        };
        candidates.extend(self.seeds.iter().map(|seed| address_of(seed.addr())));
        let mut last_error = None;
        for address in candidates {
            let address: Arc<str> = Arc::from(address.as_str());
            let answer = async {
                let mut conn = self.node(&address).await?;
                redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<Value>(&mut conn)
                    .await
            };
            match tokio::time::timeout(self.response_timeout, answer).await {
                Ok(Ok(value)) => match SlotMap::parse(value, &address) {
                    Some(map) => {
                        *self.slots.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
                        return Ok(());
                    }
                    None => {
                        last_error = Some(RedisError::from((
                            ErrorKind::Parse,
                            "an unreadable CLUSTER SLOTS answer",
                        )))
                    }
                },
                Ok(Err(e)) => last_error = Some(e),
                Err(_elapsed) => {}
            }
        }
        match (required, last_error) {
            (true, Some(e)) => Err(e),
            (true, None) => Err(RedisError::from((
                ErrorKind::Io,
                "no cluster node answered",
            ))),
            (false, _) => Ok(()),
        }
    }
}

/// `host:port` of a node URL.
fn address_of(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => other.to_string(),
    }
}
