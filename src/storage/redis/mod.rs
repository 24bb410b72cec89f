//! Sessions in Redis: a single server, a Redis Cluster, or a master watched by Sentinel.
//!
//! One hash per session under `prefix + hex SHA-256 of the id`, so that nothing in the
//! Redis is a usable session id; one Lua script per read (which sends a record only within
//! the size limit) and per write (a compare-and-set on the record's version).

mod cluster;
mod connection;
mod options;
mod scripts;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::Sentinel;
use redis::{
    AsyncConnectionConfig, Client, FromRedisValue, IntoConnectionInfo, Pipeline, ToRedisArgs, Value,
};
use tokio::sync::OnceCell;

use self::cluster::Cluster;
use self::connection::{Conn, Connect, Link, Mode, redis_error, single};
pub use self::options::RedisOptions;
use self::scripts::{DELETE, LOAD, Lua, MOVE, STORE, expectation};
use super::{
    DEFAULT_MAX_RECORD_SIZE, Error, Expected, Moved, Record, ServerStorage, SessionBackend,
    Versioned, id_digest, store_moved_in_steps,
};

/// Sessions in Redis: for several app servers behind a load balancer that share their
/// sessions.
///
/// Each session is one hash key, `key_prefix` (default `"session:"`) followed by the hex
/// SHA-256 of the session id ([`id_digest`], see [`key_for`](RedisStorage::key_for)), so
/// that a `SCAN`, a dump or a log line holds no usable session id. It has two fields: `v`,
/// a random version that every write draws anew, and `d`, the [`Record`] as compact JSON.
/// Every write sets the key's expiry from [`ttl`](ServerStorage::ttl) (and
/// [`max_lifetime`](ServerStorage::max_lifetime)), so Redis drops abandoned sessions by
/// itself; without either the keys never expire. A `Duration::MAX` of either means
/// "practically forever": the expiry is capped at a century, which Redis accepts.
///
/// A read is one Lua script (`EVALSHA`) that answers the record only if `d` is within
/// [`max_record_size`](ServerStorage::max_record_size), and only its size otherwise, so
/// that a huge record planted in the Redis is refused without being transferred; a save is
/// one Lua script that writes only if `v` still holds the version its request loaded (a
/// compare-and-set), so that concurrent saves of one session are merged rather than lost
/// (see [`ServerStorage`]). A new session is written only where no key exists, so a
/// colliding id can never overwrite another user's session.
///
/// A key that is not such a hash (a string, a list, a hash without `v` or `d`, a `v` that
/// is no number, a `d` that is not a record or is over the size limit) reads as
/// [`Error::Corrupt`], whose message names the key, never the id: the layer logs it and
/// starts a fresh session under a new id. Conditional writes and deletes treat such a key
/// as "not what was expected" rather than failing, and a destroy deletes it. Sessions that
/// older versions of this crate stored under the raw id are simply not found.
///
/// One connection is shared by all requests (commands are pipelined on it); when it
/// breaks, it is re-established in the background, and requests fail with an error (never
/// hang) until the server is back. Every operation is bounded by the
/// [response timeout](RedisOptions::response_timeout). A Cluster or Sentinel connection
/// follows failovers and resharding by itself, and is rebuilt when it stops answering
/// (docs/deployment.md gives the measured behaviour). Every write can be sent again
/// without effect once it has taken effect, so a rebuilt connection repeats what the old
/// one left unanswered.
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
/// With a Redis Cluster, use [`connect_cluster`](RedisStorage::connect_cluster), with
/// Sentinel [`connect_sentinel`](RedisStorage::connect_sentinel); timeouts are set with
/// [`connect_with`](RedisStorage::connect_with) and [`RedisOptions`], and
/// [`wait_for_replicas`](RedisStorage::wait_for_replicas) makes saves survive a failover.
pub type RedisStorage = ServerStorage<RedisBackend>;

/// The default key prefix.
const DEFAULT_PREFIX: &str = "session:";

/// The longest expiry written: `PEXPIRE` refuses a count of milliseconds past `i64`
/// ("value is not an integer or out of range") or one that overflows when added to the
/// clock ("invalid expire time"), so a `Duration::MAX` TTL or lifetime is capped here, and
/// no session needs to outlive a century.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Reconnection backoff: the first retry after this long, doubling up to
/// [`RECONNECT_MAX_DELAY`], so that a server that comes back is in use again within about
/// half a second.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(250);
const RECONNECT_RETRIES: usize = 3;

/// Connections reserved for saves that wait for replicas: `WAIT` holds up every later
/// command on its connection, so these saves never share one with reads, and several let
/// them wait side by side.
const WAITING_CONNECTIONS: usize = 4;

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
        let connecting = async {
            // One plain attempt first, so that a server that is down or refuses us is
            // reported as such right away, not after the manager's reconnection backoff.
            let mut probe = client
                .get_multiplexed_async_connection_with_config(&probe_config)
                .await?;
            redis::cmd("PING").query_async::<()>(&mut probe).await?;
            Ok(())
        };
        within(options.connect_timeout, connecting)
            .await
            .map_err(|error| naming_server(error, client.get_connection_info().addr()))?;
        let connect = manager_connect(move || std::future::ready(Ok(client.clone())), &options);
        Self::with_link(Mode::Single, connect, options).await
    }

    /// Connects to a Redis Cluster through any of its nodes, with the default
    /// [`RedisOptions`].
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
        Self::connect_cluster_with(urls, RedisOptions::default()).await
    }

    /// Connects to a Redis Cluster with the given timeouts.
    pub async fn connect_cluster_with(urls: &[&str], options: RedisOptions) -> Result<Self, Error> {
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
        let (connect_timeout, response_timeout) =
            (options.connect_timeout, options.response_timeout);
        let connect: Connect = Arc::new(move || {
            let seeds = seeds.clone();
            Box::pin(async move {
                let cluster = Cluster::connect(seeds, connect_timeout, response_timeout).await?;
                Ok(Conn::Cluster(Arc::new(cluster)))
            })
        });
        Self::with_link(Mode::Cluster, connect, options).await
    }

    /// Connects to the master that the Sentinels at `sentinels` know as `master`, with the
    /// default [`RedisOptions`], and follows it when Sentinel promotes a replica.
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
        Self::connect_sentinel_with(sentinels, master, RedisOptions::default()).await
    }

    /// Connects through Sentinel with the given timeouts.
    pub async fn connect_sentinel_with(
        sentinels: &[&str],
        master: &str,
        options: RedisOptions,
    ) -> Result<Self, Error> {
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
            &options,
        );
        Self::with_link(Mode::Sentinel, connect, options).await
    }

    async fn with_link(mode: Mode, connect: Connect, options: RedisOptions) -> Result<Self, Error> {
        let conn = within(options.connect_timeout, connect()).await?;
        let link = Link::new(mode, conn, connect);
        Ok(ServerStorage::with_backend(RedisBackend {
            link: Arc::new(link),
            replicas: None,
            prefix: Arc::from(DEFAULT_PREFIX),
            response_timeout: options.response_timeout,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
        }))
    }

    /// Puts every key under `prefix` (default `"session:"`): the key of a session is
    /// `prefix` followed by the hex SHA-256 of its id. Give each application its own prefix
    /// when they share a Redis.
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        self.backend_mut().prefix = Arc::from(prefix);
        self
    }

    /// Makes a save (a write, a regenerate or a destroy) succeed only once `replicas`
    /// replicas of the key's master hold it, so that a failover cannot lose it: `WAIT` is
    /// sent with the write, in the same round trip, on connections of their own (a waiting
    /// command holds up its connection). When fewer replicas acknowledge within `timeout`,
    /// the save fails, although the master holds it (see docs/deployment.md). `0` turns
    /// the wait off.
    pub fn wait_for_replicas(mut self, replicas: usize, timeout: Duration) -> Self {
        self.backend_mut().replicas = (replicas > 0).then(|| {
            Arc::new(Replicas {
                count: replicas,
                timeout: timeout.max(Duration::from_millis(1)),
                links: OnceCell::new(),
                next: AtomicUsize::new(0),
            })
        });
        self
    }

    /// The Redis key that holds the session `id`: the prefix followed by the hex SHA-256 of
    /// the id ([`id_digest`]), never the id itself.
    ///
    /// ```no_run
    /// use session_layer::RedisStorage;
    /// use session_layer::storage::id_digest;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = RedisStorage::connect("redis://127.0.0.1:6379").await?;
    /// let key = storage.key_for("some-session-id");
    /// assert_eq!(key, format!("session:{}", id_digest("some-session-id")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn key_for(&self, id: &str) -> String {
        self.backend().key(id)
    }
}

/// Connects a `ConnectionManager` to the server that `client` names, each time it is called.
fn manager_connect<F>(
    client: impl Fn() -> F + Send + Sync + 'static,
    options: &RedisOptions,
) -> Connect
where
    F: Future<Output = redis::RedisResult<Client>> + Send + 'static,
{
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(options.response_timeout))
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

/// The [`SessionBackend`] behind [`RedisStorage`]: one Redis connection (a single server,
/// a cluster or a Sentinel-watched master), a key prefix and the largest record a read
/// accepts. Clones share the connection.
#[derive(Clone)]
pub struct RedisBackend {
    link: Arc<Link>,
    replicas: Option<Arc<Replicas>>,
    prefix: Arc<str>,
    response_timeout: Duration,
    max_record_size: usize,
}

/// [`RedisStorage::wait_for_replicas`]: how many, how long, and the connections the waiting
/// saves use, opened on the first such save.
struct Replicas {
    count: usize,
    timeout: Duration,
    links: OnceCell<Vec<Link>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No URL here: it may hold a password.
        f.debug_struct("RedisBackend")
            .field("mode", &self.link.mode())
            .field("prefix", &self.prefix)
            .field("response_timeout", &self.response_timeout)
            .field("max_record_size", &self.max_record_size)
            .field(
                "wait_for_replicas",
                &self.replicas.as_ref().map(|r| r.count),
            )
            .finish()
    }
}

/// What a write answered, and how many replicas hold it when it waited for them.
struct Written<T> {
    answer: T,
    replicas: Option<usize>,
}

impl RedisBackend {
    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of the session `id`: the prefix followed by the hex SHA-256 of the id
    /// ([`RedisStorage::key_for`]).
    pub fn key(&self, id: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 64);
        key.push_str(&self.prefix);
        key.push_str(&id_digest(id));
        key
    }

    /// Whether this backend talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.link.mode() == Mode::Cluster
    }

    /// Runs `script` on `keys`: by its hash, and in full where the node lacks it.
    async fn eval<T: FromRedisValue>(
        &self,
        script: &Lua,
        keys: &[&str],
        args: impl ToRedisArgs,
    ) -> Result<T, Error> {
        let call = |in_full| script_call(script, in_full, keys, &args);
        single(
            self.link
                .send(keys[0], call, true, self.response_timeout)
                .await?,
        )
    }

    /// A write on `key`: sends what `call` builds (see [`Link::send`]), and with
    /// [`RedisStorage::wait_for_replicas`] waits for the replicas in the same round trip, on
    /// a connection of the waiting ones. A `repeatable` write has no effect when sent again
    /// after it took effect.
    async fn write<T: FromRedisValue>(
        &self,
        key: &str,
        call: impl Fn(bool) -> Pipeline,
        repeatable: bool,
    ) -> Result<Written<T>, Error> {
        let Some(replicas) = &self.replicas else {
            let replies = self.link.send(key, call, repeatable, self.response_timeout);
            return Ok(Written {
                answer: single(replies.await?)?,
                replicas: None,
            });
        };
        let links = replicas
            .links
            .get_or_try_init(|| async {
                let mut links = Vec::with_capacity(WAITING_CONNECTIONS);
                for _ in 0..WAITING_CONNECTIONS {
                    links.push(self.link.sibling(self.response_timeout).await?);
                }
                Ok::<_, Error>(links)
            })
            .await?;
        let link = &links[replicas.next.fetch_add(1, Ordering::Relaxed) % links.len()];
        let wait_ms = replicas.timeout.as_millis().min(u64::MAX as u128) as u64;
        let call_and_wait = |in_full| {
            let mut commands = call(in_full);
            commands.cmd("WAIT").arg(replicas.count).arg(wait_ms);
            commands
        };
        let timeout = self.response_timeout + replicas.timeout;
        let mut replies = link.send(key, call_and_wait, repeatable, timeout).await?;
        let acknowledged: usize = single(replies.split_off(1))?;
        Ok(Written {
            answer: single(replies)?,
            replicas: Some(acknowledged),
        })
    }

    /// Fails a write that fewer replicas than asked acknowledged.
    fn replicated<T>(&self, written: Written<T>, wrote: bool) -> Result<T, Error> {
        match (written.replicas, &self.replicas) {
            (Some(acknowledged), Some(wanted)) if wrote && acknowledged < wanted.count => {
                Err(Error::backend(format!(
                    "the save reached {acknowledged} of {} replicas within {:?}",
                    wanted.count, wanted.timeout
                )))
            }
            _ => Ok(written.answer),
        }
    }
}

/// `EVALSHA` of `script` on `keys` with `args`, or `EVAL` with the script `in_full`.
fn script_call(script: &Lua, in_full: bool, keys: &[&str], args: &impl ToRedisArgs) -> Pipeline {
    let mut commands = redis::pipe();
    let call = if in_full {
        commands.cmd("EVAL").arg(script.source)
    } else {
        commands.cmd("EVALSHA").arg(&script.hash)
    };
    call.arg(keys.len()).arg(keys).arg(args);
    commands
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

/// Runs a Redis operation within `limit`, mapping its errors.
async fn within<T>(
    limit: Duration,
    operation: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, operation).await {
        Ok(answer) => answer.map_err(redis_error),
        Err(_elapsed) => Err(Error::Timeout),
    }
}

/// The new version, the record and its TTL in milliseconds, as the scripts that write take
/// them.
fn write_args(record: &Record, ttl: Option<Duration>) -> (u64, Vec<u8>, u64) {
    // Random, so that a version never repeats, even after a delete and a re-create.
    let version = rand::random::<u64>();
    // PEXPIRE 0 would delete the key; a record due now lives one millisecond.
    let ttl_ms = ttl.map_or(0, |ttl| ttl.min(MAX_TTL).as_millis().max(1) as u64);
    (version, record.encode(), ttl_ms)
}

/// How errors and logs name a key: the key itself, which holds a digest of the id, not the
/// id (a bearer credential), so that an operator can look the record up.
fn named(key: &str) -> String {
    format!("{key} (redis)")
}

fn corrupt(key: &str, reason: &str) -> Error {
    Error::corrupt(named(key), reason)
}

impl SessionBackend for RedisBackend {
    async fn load(&self, id: &str) -> Result<Option<Versioned>, Error> {
        let key = self.key(id);
        let answer: Value = self.eval(&LOAD, &[&key], self.max_record_size).await?;
        match answer {
            Value::Nil => Ok(None),
            Value::Int(-1) => Err(corrupt(&key, "the key is not a hash")),
            Value::Int(-2) => Err(corrupt(&key, "field v is not a version")),
            Value::Int(size) => {
                let size = u64::try_from(size).unwrap_or(u64::MAX);
                Record::check_stored_size(&named(&key), size, self.max_record_size)?;
                Err(Error::backend(
                    "the read script refused a record within the limit",
                ))
            }
            Value::Array(fields) => match <[Value; 2]>::try_from(fields) {
                Ok([Value::BulkString(version), Value::BulkString(data)]) => {
                    let version = std::str::from_utf8(&version)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| corrupt(&key, "field v is not a version"))?;
                    let record = Record::decode(&named(&key), &data)?;
                    Ok(Some(Versioned { record, version }))
                }
                _ => Err(corrupt(&key, "the hash lacks field v or d")),
            },
            _ => Err(Error::backend("an unexpected answer to the read script")),
        }
    }

    async fn store(
        &self,
        id: &str,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        let args = (expectation(expected), write_args(record, ttl));
        let key = self.key(id);
        let written = self
            .write(
                &key,
                |in_full| script_call(&STORE, in_full, &[&key], &args),
                true,
            )
            .await?;
        let stored = written.answer;
        self.replicated(written, stored)
    }

    async fn delete(&self, id: &str, expected: Expected) -> Result<bool, Error> {
        let key = self.key(id);
        let written = if expected == Expected::Any {
            let delete = |_| {
                let mut commands = redis::pipe();
                commands.cmd("DEL").arg(&key);
                commands
            };
            let written = self.write::<()>(&key, delete, true).await?;
            Written {
                answer: true,
                replicas: written.replicas,
            }
        } else {
            // A delete writes no version (`ARGV[2]` empty), so an answer lost to a failover
            // cannot be told from "not met": it is not sent again.
            let args = (expectation(expected), "");
            self.write(
                &key,
                |in_full| script_call(&DELETE, in_full, &[&key], &args),
                false,
            )
            .await?
        };
        let deleted = written.answer;
        self.replicated(written, deleted)
    }

    async fn store_moved(
        &self,
        from: &str,
        expected: u64,
        delete_from: bool,
        to: &str,
        record: &Record,
        ttl: Option<Duration>,
    ) -> Result<Moved, Error> {
        if self.is_cluster() {
            // The two keys are in different slots in general: one script cannot hold both.
            return store_moved_in_steps(self, from, expected, delete_from, to, record, ttl).await;
        }
        let delete_from = if delete_from { "1" } else { "0" };
        let args = (expected, delete_from, write_args(record, ttl));
        let keys = [self.key(from), self.key(to)];
        let keys = [keys[0].as_str(), keys[1].as_str()];
        let written = self
            .write(
                keys[0],
                |in_full| script_call(&MOVE, in_full, &keys, &args),
                true,
            )
            .await?;
        let moved: i64 = written.answer;
        self.replicated(written, moved == 1)?;
        Ok(match moved {
            1 => Moved::Stored,
            0 => Moved::IdTaken,
            _ => Moved::SourceChanged,
        })
    }

    /// The read script gets the limit, so that an oversize record never leaves the server.
    fn limit_record_size(&mut self, bytes: usize) {
        self.max_record_size = bytes;
    }
}
