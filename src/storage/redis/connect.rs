//! Connecting a [`RedisStorage`]: to one server, to a Cluster through any of its nodes, or
//! to the master that Sentinel names.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::Sentinel;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo};

use super::RedisStorage;
use super::backend::RedisBackend;
use super::cluster::Cluster;
use super::connection::{Conn, Connect, Link, Mode, within};
use crate::Error;
use crate::storage::network::Timeouts;
use crate::storage::{NetworkOptions, ServerStorage};

/// The timeouts unless [`NetworkOptions`] set others: 5 seconds to connect, 2 per operation.
const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    response: Duration::from_secs(2),
};

/// Reconnection backoff: the first retry after this long, doubling up to
/// [`RECONNECT_MAX_DELAY`], so that a server that comes back is in use again within about
/// half a second.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(250);
const RECONNECT_RETRIES: usize = 3;

impl RedisStorage {
    /// Connects to the Redis server at `url` with the default timeouts: 5 seconds to
    /// connect, 2 per operation.
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
        Self::connect_with(url, NetworkOptions::default()).await
    }

    /// Connects to the Redis server at `url` with the given timeouts.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use session_layer::RedisStorage;
    /// use session_layer::storage::NetworkOptions;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let options = NetworkOptions::new().response_timeout(Duration::from_millis(500));
    /// let storage = RedisStorage::connect_with("redis://127.0.0.1:6379", options).await?;
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with(url: &str, options: NetworkOptions) -> Result<Self, Error> {
        let timeouts = options.resolve(DEFAULT_TIMEOUTS);
        let client =
            Client::open(url).map_err(|e| Error::Config(format!("invalid Redis URL: {e}")))?;
        let probe_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.response));
        let connecting = async {
            // One plain attempt first, so that a server that is down or refuses us is
            // reported as such right away, not after the manager's reconnection backoff.
            let mut probe = client
                .get_multiplexed_async_connection_with_config(&probe_config)
                .await?;
            redis::cmd("PING").query_async::<()>(&mut probe).await?;
            Ok(())
        };
        within(timeouts.connect, connecting)
            .await
            .map_err(|error| naming_server(error, client.get_connection_info().addr()))?;
        let connect = manager_connect(move || std::future::ready(Ok(client.clone())), timeouts);
        Self::with_link(Mode::Single, connect, timeouts).await
    }

    /// Connects to a Redis Cluster through any of its nodes, with the default timeouts
    /// (see [`connect`](RedisStorage::connect)).
    ///
    /// Keys are spread over the cluster by their hash slot as usual: every command and
    /// script touches a single key, so the prefix needs no hash tag (one, like
    /// `"{sessions}:"`, would put every session on one node).
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
        Self::connect_cluster_with(urls, NetworkOptions::default()).await
    }

    /// Connects to a Redis Cluster with the given timeouts.
    pub async fn connect_cluster_with(
        urls: &[&str],
        options: NetworkOptions,
    ) -> Result<Self, Error> {
        if urls.is_empty() {
            return Err(Error::Config(
                "a Redis Cluster needs at least one node URL".into(),
            ));
        }
        let seeds = urls
            .iter()
            .map(|url| url.into_connection_info())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Config(format!("invalid Redis Cluster URL: {e}")))?;
        let timeouts = options.resolve(DEFAULT_TIMEOUTS);
        let connect: Connect = Arc::new(move || {
            let seeds = seeds.clone();
            Box::pin(async move {
                let cluster = Cluster::connect(seeds, timeouts).await?;
                Ok(Conn::Cluster(Arc::new(cluster)))
            })
        });
        Self::with_link(Mode::Cluster, connect, timeouts).await
    }

    /// Connects to the master that the Sentinels at `sentinels` know as `master`, with the
    /// default timeouts (see [`connect`](RedisStorage::connect)), and follows it when Sentinel
    /// promotes a replica.
    ///
    /// ```no_run
    /// use session_layer::RedisStorage;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = RedisStorage::connect_sentinel(
    ///     &["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"],
    ///     "sessions",
    /// )
    /// .await?;
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_sentinel(sentinels: &[&str], master: &str) -> Result<Self, Error> {
        Self::connect_sentinel_with(sentinels, master, NetworkOptions::default()).await
    }

    /// Connects through Sentinel with the given timeouts.
    pub async fn connect_sentinel_with(
        sentinels: &[&str],
        master: &str,
        options: NetworkOptions,
    ) -> Result<Self, Error> {
        let timeouts = options.resolve(DEFAULT_TIMEOUTS);
        if sentinels.is_empty() || master.is_empty() {
            return Err(Error::Config(
                "Sentinel needs at least one Sentinel URL and the master's name".into(),
            ));
        }
        let sentinel = Sentinel::build(sentinels.to_vec())
            .map_err(|e| Error::Config(format!("invalid Sentinel URL: {e}")))?;
        let sentinel = Arc::new(tokio::sync::Mutex::new(sentinel));
        let master = Arc::<str>::from(master);
        let connect = manager_connect(
            move || {
                let (sentinel, master) = (sentinel.clone(), master.clone());
                async move { sentinel.lock().await.async_master_for(&master, None).await }
            },
            timeouts,
        );
        Self::with_link(Mode::Sentinel, connect, timeouts).await
    }

    async fn with_link(mode: Mode, connect: Connect, timeouts: Timeouts) -> Result<Self, Error> {
        let conn = within(timeouts.connect, connect()).await?;
        let link = Link::new(mode, conn, connect);
        Ok(ServerStorage::with_backend(RedisBackend::new(
            link,
            timeouts.response,
        )))
    }
}

/// Connects a `ConnectionManager` to the server that `client` names, each time it is called.
fn manager_connect<F>(client: impl Fn() -> F + Send + Sync + 'static, timeouts: Timeouts) -> Connect
where
    F: Future<Output = redis::RedisResult<Client>> + Send + 'static,
{
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeouts.connect))
        .set_response_timeout(Some(timeouts.response))
        .set_min_delay(RECONNECT_MIN_DELAY)
        .set_max_delay(RECONNECT_MAX_DELAY)
        .set_number_of_retries(RECONNECT_RETRIES);
    let client = Arc::new(client);
    Arc::new(move || {
        let (client, config) = (client.clone(), config.clone());
        Box::pin(async move {
            let client = client().await?;
            Ok(Conn::Single(
                ConnectionManager::new_with_config(client, config).await?,
            ))
        })
    })
}

/// A failed connect, saying which server it tried: its address, never the URL, which may
/// hold a password.
fn naming_server(error: Error, server: &impl std::fmt::Display) -> Error {
    match error {
        Error::Backend(cause) => {
            Error::backend(format!("cannot connect to Redis at {server}: {cause}"))
        }
        other => other,
    }
}
