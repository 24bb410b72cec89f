//! Sessions in Redis, a single server or a Redis Cluster.
//!
//! One hash per session under `prefix + hex SHA-256 of the id`, so that nothing in the
//! Redis is a usable session id; one Lua script per read (which sends a record only within
//! the size limit) and per write (a compare-and-set on the record's version).

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, FromRedisValue, RedisError, RedisResult, Script,
    ToRedisArgs, Value,
};

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
        let manager = within(options.connect_timeout, connecting)
            .await
            .map_err(|error| naming_server(error, client.get_connection_info().addr()))?;
        Ok(ServerStorage::with_backend(RedisBackend::new(
            Connection::Single(manager),
            options,
        )))
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
    /// `prefix` followed by the hex SHA-256 of its id. Give each application its own prefix
    /// when they share a Redis.
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        self.backend_mut().prefix = Arc::from(prefix);
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

/// The [`SessionBackend`] behind [`RedisStorage`]: one Redis connection (a single server
/// or a cluster), a key prefix and the largest record a read accepts. Clones share the
/// connection.
#[derive(Clone)]
pub struct RedisBackend {
    conn: Connection,
    prefix: Arc<str>,
    response_timeout: Duration,
    max_record_size: usize,
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
            .field("max_record_size", &self.max_record_size)
            .finish()
    }
}

/// Reads a session in one round trip, refusing a record too big to send: KEYS[1] is its
/// key, ARGV[1] the largest field `d` to send, in bytes. Answers nil when there is no key,
/// -1 when it is not a hash, -2 when its field `v` is too long to be a version, the size
/// of `d` when that is over ARGV[1] (`HSTRLEN`: the record itself never leaves the server),
/// else `{v, d}` (either false when missing).
static LOAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"local size = redis.pcall('HSTRLEN', KEYS[1], 'd')
if type(size) ~= 'number' then return -1 end
if size > tonumber(ARGV[1]) then return size end
if redis.call('HSTRLEN', KEYS[1], 'v') > 20 then return -2 end
local stored = redis.call('HMGET', KEYS[1], 'v', 'd')
if not stored[1] and not stored[2] and redis.call('EXISTS', KEYS[1]) == 0 then
  return nil
end
return stored
"#,
    )
});

/// The check the scripts that write or delete start with, so that they agree with
/// [`LOAD`] on what is stored: `KEYS[1]` is a session's key, `ARGV[1]` what it must hold.
/// A key of another type is neither absent nor at any version, so a conditional write
/// answers "not met" rather than failing with `WRONGTYPE` (the lifecycle then loads it,
/// finds it corrupt, and the layer starts a fresh session under a new id).
macro_rules! expectation_check {
    () => {
        r#"-- ARGV[1]: 'absent' (no key at all), 'any', or the version in field v.
if ARGV[1] == 'absent' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
elseif ARGV[1] ~= 'any' then
  -- On a key that is not a hash, pcall gives an error (a table), never a version.
  if redis.pcall('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
end
"#
    };
}

/// Writes a record if the key holds what is expected; ARGV[2] is the new version, ARGV[3]
/// the record, ARGV[4] its TTL in milliseconds (0: none). The `DEL` first replaces a key
/// of any type and clears its expiry, so no `PERSIST` is needed.
static STORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        expectation_check!(),
        r#"redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
if ARGV[4] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1
"#
    ))
});

/// Deletes the key if it holds what is expected.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        expectation_check!(),
        r#"redis.call('DEL', KEYS[1])
return 1
"#
    ))
});

/// Moves a session to a new key (`regenerate_id` on a single server, where a script may
/// touch two keys): KEYS[1] the old key, KEYS[2] the new one; ARGV[1] the version the old
/// key must hold, ARGV[2] `1` to delete it, ARGV[3..5] the new version, the record and its
/// TTL as [`STORE`]'s ARGV[2..4]. Answers 1 moved, 0 the new key is taken (by anything),
/// -1 the old key changed (or is not a hash).
static MOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"if redis.pcall('HGET', KEYS[1], 'v') ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'v', ARGV[3], 'd', ARGV[4])
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) end
return 1
"#,
    )
});

/// `ARGV[1]` of the scripts.
fn expectation(expected: Expected) -> String {
    match expected {
        Expected::Absent => "absent".to_owned(),
        Expected::Any => "any".to_owned(),
        Expected::Version(version) => version.to_string(),
    }
}

impl RedisBackend {
    fn new(conn: Connection, options: RedisOptions) -> Self {
        RedisBackend {
            conn,
            prefix: Arc::from(DEFAULT_PREFIX),
            response_timeout: options.response_timeout,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
        }
    }

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
        matches!(self.conn, Connection::Cluster(_))
    }

    /// Sends `cmd` and waits for its answer within the response timeout. The inner result
    /// is what Redis answered, so that callers can act on particular server errors.
    async fn send<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<RedisResult<T>, Error> {
        let answer = match &self.conn {
            Connection::Single(manager) => {
                let mut conn = manager.clone();
                tokio::time::timeout(self.response_timeout, cmd.query_async(&mut conn)).await
            }
            Connection::Cluster(cluster) => {
                let mut conn = cluster.clone();
                tokio::time::timeout(self.response_timeout, cmd.query_async(&mut conn)).await
            }
        };
        answer.map_err(|_elapsed| Error::Timeout)
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Error> {
        self.send(cmd).await?.map_err(redis_error)
    }

    /// Runs `script` on `keys` (`EVALSHA`; loaded first if the server does not have it
    /// cached, after a restart or a `SCRIPT FLUSH`).
    async fn eval<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: impl ToRedisArgs,
    ) -> Result<T, Error> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        invocation.arg(args);
        match &self.conn {
            Connection::Single(manager) => {
                let mut conn = manager.clone();
                within(self.response_timeout, invocation.invoke_async(&mut conn)).await
            }
            Connection::Cluster(cluster) => {
                let mut conn = cluster.clone();
                within(self.response_timeout, invocation.invoke_async(&mut conn)).await
            }
        }
    }
}

/// Maps an error of the Redis client.
fn redis_error(e: RedisError) -> Error {
    if e.is_timeout() {
        Error::Timeout
    } else {
        Error::backend(e)
    }
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
    operation: impl Future<Output = RedisResult<T>>,
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
        self.eval(&STORE, &[&self.key(id)], args).await
    }

    async fn delete(&self, id: &str, expected: Expected) -> Result<bool, Error> {
        let key = self.key(id);
        if expected == Expected::Any {
            self.query::<()>(redis::cmd("DEL").arg(key)).await?;
            return Ok(true);
        }
        self.eval(&DELETE, &[&key], expectation(expected)).await
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
        let moved: i64 = self.eval(&MOVE, &[&keys[0], &keys[1]], args).await?;
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
