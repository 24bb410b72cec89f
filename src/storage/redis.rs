//! Sessions in Redis, a single server or a Redis Cluster.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, Pipeline, RedisError, Value};

use super::{Error, Record, ServerStorage, SessionBackend, WriteMode};

/// Sessions in Redis: for several app servers behind a load balancer that share their
/// sessions.
///
/// Each session is one string key, `key_prefix + id` (the prefix defaults to
/// `"session:"`), holding the [`Record`] as compact JSON. Every write sets the key's expiry
/// from [`ttl`](ServerStorage::ttl) (and [`max_lifetime`](ServerStorage::max_lifetime)), so
/// Redis drops abandoned sessions by itself; without either the keys never expire.
/// A new session is written with `SET ... NX`, so a colliding id can never overwrite
/// another user's session.
///
/// One connection is shared by all requests (commands are pipelined on it); when it
/// breaks, it is re-established in the background, and requests fail with an error (never
/// hang) until the server is back. Every command is bounded by the
/// [response timeout](RedisOptions::response_timeout).
///
/// ```no_run
/// use std::time::Duration;
/// use session_layer::RedisStorage;
///
/// # async fn run() -> Result<(), session_layer::Error> {
/// let storage = RedisStorage::connect("redis://127.0.0.1:6379")
///     .await?
///     .key_prefix("myapp:session:")
///     .ttl(Duration::from_secs(24 * 3600));
/// # let _ = storage;
/// # Ok(())
/// # }
/// ```
///
/// With a Redis Cluster, use [`connect_cluster`](RedisStorage::connect_cluster); timeouts
/// are set with [`connect_with`](RedisStorage::connect_with) and [`RedisOptions`].
pub type RedisStorage = ServerStorage<RedisBackend>;

/// The default key prefix.
const DEFAULT_PREFIX: &str = "session:";

/// Redis refuses expiry times that overflow; no session needs to outlive a century.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Reconnection backoff: the first retry after this long, doubling up to
/// [`RECONNECT_MAX_DELAY`], so that a server that comes back is in use again within about
/// half a second.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(250);
const RECONNECT_RETRIES: usize = 3;

/// Connection settings for [`RedisStorage::connect_with`] and
/// [`RedisStorage::connect_cluster_with`].
///
/// ```
/// use std::time::Duration;
/// use session_layer::storage::RedisOptions;
///
/// let options = RedisOptions::new()
///     .connect_timeout(Duration::from_secs(2))
///     .response_timeout(Duration::from_millis(500));
/// assert_eq!(options.get_response_timeout(), Duration::from_millis(500));
/// ```
#[derive(Clone, Debug)]
pub struct RedisOptions {
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(2),
        }
    }
}

impl RedisOptions {
    /// The defaults: a 5 second connect timeout and a 2 second response timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long connecting may take, at start-up and on each reconnection attempt.
    /// Default: 5 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one storage operation (one round trip) may take before it fails with
    /// [`Error::Timeout`]. This also bounds how long a request waits for a reconnection
    /// while the server is down. Default: 2 seconds.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The connect timeout.
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The response timeout.
    pub fn get_response_timeout(&self) -> Duration {
        self.response_timeout
    }
}

impl RedisStorage {
    /// Connects to the Redis server at `url` with the default [`RedisOptions`].
    ///
    /// `url` is a Redis URL: `redis://[[user]:password@]host[:port][/db]`, `rediss://` for
    /// TLS (when the `redis` crate is built with a TLS feature) or `redis+unix:///path`.
    /// Fails when the URL is invalid (with [`Error::Config`]) or the server cannot be
    /// reached within the connect timeout.
    ///
    /// ```no_run
    /// use session_layer::RedisStorage;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = RedisStorage::connect("redis://127.0.0.1:6379").await?;
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, RedisOptions::default()).await
    }

    /// Connects to the Redis server at `url` with the given timeouts.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use session_layer::RedisStorage;
    /// use session_layer::storage::RedisOptions;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let options = RedisOptions::new().response_timeout(Duration::from_millis(500));
    /// let storage = RedisStorage::connect_with("redis://127.0.0.1:6379", options).await?;
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with(url: &str, options: RedisOptions) -> Result<Self, Error> {
        let client =
            Client::open(url).map_err(|e| Error::Config(format!("invalid Redis URL: {e}")))?;

        let probe_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout));
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY)
            .set_number_of_retries(RECONNECT_RETRIES);
        let connecting = async {
            // One plain attempt first, so that a server that is down or refuses us is
            // reported as such right away, not after the manager's reconnection backoff.
            let mut probe = client
                .get_multiplexed_async_connection_with_config(&probe_config)
                .await?;
            redis::cmd("PING").query_async::<()>(&mut probe).await?;
            drop(probe);
            ConnectionManager::new_with_config(client.clone(), config).await
        };
        // Both steps together within one connect timeout.
        let manager = within(options.connect_timeout, connecting).await?;
        Ok(ServerStorage::with_backend(RedisBackend::new(
            Connection::Single(manager),
            options,
        )))
    }

    /// Connects to a Redis Cluster through any of its nodes, with the default
    /// [`RedisOptions`].
    ///
    /// Keys are spread over the cluster by their hash slot as usual. Regenerating an id
    /// with `regenerate_id(true)` deletes the old key and writes the new one concurrently
    /// (they are usually in different slots, so it cannot be one `MULTI`); put a hash tag
    /// in the prefix (`"{session}:"`) only if you want every session on one node.
    ///
    /// ```no_run
    /// use session_layer::RedisStorage;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = RedisStorage::connect_cluster(&[
    ///     "redis://10.0.0.1:6379",
    ///     "redis://10.0.0.2:6379",
    ///     "redis://10.0.0.3:6379",
    /// ])
    /// .await?;
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_cluster(urls: &[&str]) -> Result<Self, Error> {
        Self::connect_cluster_with(urls, RedisOptions::default()).await
    }

    /// Connects to a Redis Cluster with the given timeouts.
    pub async fn connect_cluster_with(urls: &[&str], options: RedisOptions) -> Result<Self, Error> {
        if urls.is_empty() {
            return Err(Error::Config(
                "a Redis Cluster needs at least one node URL".into(),
            ));
        }
        let client = ClusterClient::builder(urls.iter().copied())
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.response_timeout)
            .build()
            .map_err(|e| Error::Config(format!("invalid Redis Cluster URL: {e}")))?;
        let conn = within(options.connect_timeout, client.get_async_connection()).await?;
        Ok(ServerStorage::with_backend(RedisBackend::new(
            Connection::Cluster(conn),
            options,
        )))
    }

    /// Puts every key under `prefix` (default `"session:"`): the key of a session is
    /// `prefix + id`. Give each application its own prefix when they share a Redis.
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        self.backend_mut().prefix = Arc::from(prefix);
        self
    }
}

/// The [`SessionBackend`] behind [`RedisStorage`]: one Redis connection (a single server
/// or a cluster) and a key prefix. Clones share the connection.
#[derive(Clone)]
pub struct RedisBackend {
    conn: Connection,
    prefix: Arc<str>,
    response_timeout: Duration,
}

/// Either kind of connection; both reconnect by themselves and are cheap to clone.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No URL here: it may hold a password.
        let kind = match self.conn {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisBackend")
            .field("mode", &kind)
            .field("prefix", &self.prefix)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

impl RedisBackend {
    fn new(conn: Connection, options: RedisOptions) -> Self {
        RedisBackend {
            conn,
            prefix: Arc::from(DEFAULT_PREFIX),
            response_timeout: options.response_timeout,
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of the session `id`: the prefix followed by the id.
    pub fn key(&self, id: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + id.len());
        key.push_str(&self.prefix);
        key.push_str(id);
        key
    }

    /// Whether this backend talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Connection::Cluster(_))
    }

    /// Names a key in errors and logs without the whole session id (a bearer credential).
    fn redacted(&self, id: &str) -> String {
        let shown: String = id.chars().take(6).collect();
        format!("{}{shown}… (redis)", self.prefix)
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Error> {
        match &self.conn {
            Connection::Single(manager) => {
                let mut conn = manager.clone();
                within(self.response_timeout, cmd.query_async(&mut conn)).await
            }
            Connection::Cluster(cluster) => {
                let mut conn = cluster.clone();
                within(self.response_timeout, cmd.query_async(&mut conn)).await
            }
        }
    }

    fn set_command(
        &self,
        id: &str,
        record: &Record,
        ttl: Option<Duration>,
        mode: WriteMode,
    ) -> Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(id)).arg(record.encode());
        if let Some(ttl) = ttl {
            // PX 0 is an error; a record due now lives one millisecond.
            let ms = ttl.min(MAX_TTL).as_millis().max(1) as u64;
            cmd.arg("PX").arg(ms);
        }
        if mode == WriteMode::Create {
            cmd.arg("NX");
        }
        cmd
    }
}

/// What `SET` answered: `OK`, or nil when `NX` found the key taken.
fn was_set(reply: &Value) -> bool {
    !matches!(reply, Value::Nil)
}

/// Runs a Redis operation within `limit`, mapping its errors.
async fn within<T>(
    limit: Duration,
    operation: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) if e.is_timeout() => Err(Error::Timeout),
        Ok(Err(e)) => Err(Error::backend(e)),
        Err(_elapsed) => Err(Error::Timeout),
    }
}

impl SessionBackend for RedisBackend {
    async fn load(&self, id: &str) -> Result<Option<Record>, Error> {
        let bytes: Option<Vec<u8>> = self.query(redis::cmd("GET").arg(self.key(id))).await?;
        bytes
            .map(|bytes| Record::decode(&self.redacted(id), &bytes))
            .transpose()
    }

    async fn store(
        &self,
        id: &str,
        record: &Record,
        ttl: Option<Duration>,
        mode: WriteMode,
    ) -> Result<bool, Error> {
        let reply: Value = self.query(&self.set_command(id, record, ttl, mode)).await?;
        Ok(was_set(&reply))
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        self.query::<()>(redis::cmd("DEL").arg(self.key(id))).await
    }

    async fn delete_many(&self, ids: &[&str]) -> Result<(), Error> {
        match &self.conn {
            // One DEL for all the keys: one round trip.
            Connection::Single(_) => {
                let keys: Vec<String> = ids.iter().map(|id| self.key(id)).collect();
                self.query::<()>(redis::cmd("DEL").arg(keys)).await
            }
            // Keys in different slots cannot share a command: send the DELs at once.
            Connection::Cluster(_) => match ids {
                [first, second] => {
                    let (a, b) = tokio::join!(self.delete(first), self.delete(second));
                    a.and(b)
                }
                _ => {
                    for id in ids {
                        self.delete(id).await?;
                    }
                    Ok(())
                }
            },
        }
    }

    async fn delete_and_store(
        &self,
        old_id: &str,
        id: &str,
        record: &Record,
        ttl: Option<Duration>,
        mode: WriteMode,
    ) -> Result<bool, Error> {
        let set = self.set_command(id, record, ttl, mode);
        match &self.conn {
            Connection::Single(manager) => {
                // MULTI; DEL; SET; EXEC in one round trip: no request sees both or neither.
                let mut pipe = Pipeline::new();
                pipe.atomic()
                    .add_command(redis::cmd("DEL").arg(self.key(old_id)).clone())
                    .ignore()
                    .add_command(set);
                let mut conn = manager.clone();
                let (reply,): (Value,) =
                    within(self.response_timeout, pipe.query_async(&mut conn)).await?;
                Ok(was_set(&reply))
            }
            Connection::Cluster(_) if old_id == id => {
                // Same key: the order matters (never happens with fresh ids).
                self.delete(old_id).await?;
                self.store(id, record, ttl, mode).await
            }
            Connection::Cluster(_) => {
                // The keys are in different slots in general, which a cluster cannot put in
                // one MULTI or pipeline: send both at once, still one round trip of latency.
                let store = async {
                    let reply: Value = self.query(&set).await?;
                    Ok(was_set(&reply))
                };
                let (deleted, stored) = tokio::join!(self.delete(old_id), store);
                deleted?;
                stored
            }
        }
    }
}
