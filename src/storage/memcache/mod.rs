//! Sessions in Memcached, over a small text-protocol client of our own.
//!
//! The client ([`protocol`]: one connection; [`pool`]: the hash ring and the connections
//! per server) is kept here rather than taken from a crate: it adds no dependency beyond
//! tokio's `net` and `io-util`, every reply is bounded (no hostile server can make it
//! allocate more than the record size limit per value), and timeouts, reconnects and the
//! ring are ours to get right. The README's "Why our own client" compares the crates.

mod pool;
mod protocol;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use self::pool::Pool;
use self::protocol::{Item, Reply, Request, Verb, mismatch};
use super::{
    DEFAULT_MAX_RECORD_SIZE, Error, Expected, Record, ServerStorage, SessionBackend, Versioned,
    unix_now_ms,
};

/// The key prefix used unless [`MemcacheStorage::key_prefix`] sets another.
const DEFAULT_PREFIX: &str = "session:";

/// Memcached's limit on key length, in bytes.
const MAX_KEY_LEN: usize = 250;

/// Length of the hex SHA-256 that follows the prefix in every key.
const HASH_HEX_LEN: usize = 64;

/// Memcached reads an expiration above 30 days as an absolute Unix time.
const RELATIVE_EXPIRY_LIMIT_SECS: u64 = 30 * 24 * 3600;

/// Sessions in Memcached (1.6 or later): for several app servers sharing sessions, when
/// losing a session now and then (eviction, a server restart) is acceptable.
///
/// Each session is one item under the key `prefix + hex SHA-256 of the id` (the id itself
/// never reaches the server), holding the JSON of its [`Record`], with the session's TTL as
/// the item's expiration. The item's CAS unique is the record's version: a read is one
/// `gets`, a save one `add` (new id: a collision can never overwrite another session) or
/// one `cas` on the version read (so that concurrent requests merge instead of overwriting
/// each other), and a conditional delete the meta command `md <key> C<cas>`.
///
/// Records are bounded by [`max_record_size`](ServerStorage::max_record_size) (1 MiB
/// unless set) both ways. A stored value over it is read past without being kept (the
/// reply's header gives its size before its bytes) and loads as [`Error::Corrupt`], which
/// the layer answers with a fresh session. Memcached's own item size limit (`-I`, 1 MiB by
/// default, the key and the item's header included) applies to writes as well: a record
/// just under 1 MiB may still be refused with a server error. For bigger sessions, raise
/// both.
///
/// With several servers ([`connect_pool`](MemcacheStorage::connect_pool)), keys are spread
/// by consistent hashing: adding or removing a server moves only its share of the sessions.
/// Each server gets a small pool of connections ([`MemcacheOptions::pool_size`]); a broken
/// connection is dropped and the next request opens a new one, so requests succeed again
/// by themselves once a server is back.
///
/// ```no_run
/// use std::time::Duration;
/// use session_layer::MemcacheStorage;
///
/// # async fn run() -> Result<(), session_layer::Error> {
/// let storage = MemcacheStorage::connect("127.0.0.1:11211")
///     .await?
///     .key_prefix("myapp:session:")?
///     .ttl(Duration::from_secs(3600));
/// # let _ = storage;
/// # Ok(())
/// # }
/// ```
pub type MemcacheStorage = ServerStorage<MemcacheBackend>;

/// How [`MemcacheStorage::connect_with`] and
/// [`connect_pool_with`](MemcacheStorage::connect_pool_with) talk to the servers, given
/// before connecting so that the connection opened to check each server already obeys them.
///
/// ```
/// use std::time::Duration;
/// use session_layer::storage::MemcacheOptions;
///
/// let options = MemcacheOptions::new()
///     .connect_timeout(Duration::from_millis(500))
///     .response_timeout(Duration::from_millis(250))
///     .pool_size(16);
/// assert_eq!(options.get_pool_size(), 16);
/// ```
#[derive(Clone, Debug)]
pub struct MemcacheOptions {
    connect_timeout: Duration,
    response_timeout: Duration,
    pool_size: usize,
}

impl Default for MemcacheOptions {
    fn default() -> Self {
        MemcacheOptions {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            pool_size: 4,
        }
    }
}

impl MemcacheOptions {
    /// The defaults: 1 second to connect, 1 second per command, 4 connections per server.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long opening a connection may take, at connect time and on every reconnection;
    /// longer is [`Error::Timeout`]. Default: 1 second.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may wait for a free connection and then for its answer; longer
    /// is [`Error::Timeout`], and the connection is dropped. Default: 1 second.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How many connections each server may have open at once (at least 1): concurrent
    /// requests use different connections, and queue when all are busy. Default: 4.
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections.max(1);
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

    /// The connections per server.
    pub fn get_pool_size(&self) -> usize {
        self.pool_size
    }
}

impl MemcacheStorage {
    /// Connects to one memcached server at `"host:port"` with the default
    /// [`MemcacheOptions`].
    ///
    /// Fails when the address is malformed or the server does not answer a `version`
    /// command within the connect and response timeouts (1 s each).
    ///
    /// ```no_run
    /// use session_layer::MemcacheStorage;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = MemcacheStorage::connect("127.0.0.1:11211").await?;
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(addr: &str) -> Result<Self, Error> {
        Self::connect_pool_with([addr], MemcacheOptions::default()).await
    }

    /// Connects to one memcached server at `"host:port"` with the given options.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use session_layer::MemcacheStorage;
    /// use session_layer::storage::MemcacheOptions;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let options = MemcacheOptions::new().response_timeout(Duration::from_millis(250));
    /// let storage = MemcacheStorage::connect_with("127.0.0.1:11211", options).await?;
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with(addr: &str, options: MemcacheOptions) -> Result<Self, Error> {
        Self::connect_pool_with([addr], options).await
    }

    /// Connects to several memcached servers (`"host:port"` each) with the default
    /// [`MemcacheOptions`], and spreads the sessions over them by consistent hashing (a
    /// hash ring with virtual nodes).
    ///
    /// Every app server must list the same servers under the same names (`10.0.0.5:11211`
    /// and `cache-a:11211` are different names for the ring), or they will look for a
    /// session on different servers. Every server must answer at connect time.
    ///
    /// ```no_run
    /// use session_layer::MemcacheStorage;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage =
    ///     MemcacheStorage::connect_pool(["10.0.0.5:11211", "10.0.0.6:11211"]).await?;
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_pool<I, S>(addrs: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::connect_pool_with(addrs, MemcacheOptions::default()).await
    }

    /// Connects to several memcached servers with the given options; see
    /// [`connect_pool`](MemcacheStorage::connect_pool).
    ///
    /// ```no_run
    /// use session_layer::MemcacheStorage;
    /// use session_layer::storage::MemcacheOptions;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = MemcacheStorage::connect_pool_with(
    ///     ["10.0.0.5:11211", "10.0.0.6:11211"],
    ///     MemcacheOptions::new().pool_size(16),
    /// )
    /// .await?;
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_pool_with<I, S>(addrs: I, options: MemcacheOptions) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let pool = Pool::new(validate_addrs(addrs)?, options);
        pool.check().await?;
        Ok(ServerStorage::with_backend(MemcacheBackend {
            prefix: DEFAULT_PREFIX.to_owned(),
            pool: Arc::new(pool),
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
        }))
    }

    /// Sets the prefix of every key (default `"session:"`), e.g. to share servers between
    /// apps. It must be printable ASCII without spaces, and short enough that prefix plus
    /// the 64-character hash fit memcached's 250-byte keys (so at most 186 bytes).
    ///
    /// ```no_run
    /// use session_layer::MemcacheStorage;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = MemcacheStorage::connect("127.0.0.1:11211")
    ///     .await?
    ///     .key_prefix("shop:sess:")?;
    /// assert!(MemcacheStorage::connect("127.0.0.1:11211")
    ///     .await?
    ///     .key_prefix("has space")
    ///     .is_err());
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub fn key_prefix(mut self, prefix: &str) -> Result<Self, Error> {
        validate_prefix(prefix)?;
        self.backend_mut().prefix = prefix.to_owned();
        Ok(self)
    }

    /// The memcached key a session id is stored under: the prefix followed by the hex
    /// SHA-256 of the id.
    ///
    /// ```no_run
    /// use session_layer::MemcacheStorage;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = MemcacheStorage::connect("127.0.0.1:11211").await?;
    /// let key = storage.key_for("some-session-id");
    /// assert!(key.starts_with("session:") && key.len() == 8 + 64);
    /// # Ok(())
    /// # }
    /// ```
    pub fn key_for(&self, id: &str) -> String {
        self.backend().key(id)
    }

    /// The server (as named at connect time) that holds the session with this id.
    ///
    /// ```no_run
    /// use session_layer::MemcacheStorage;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = MemcacheStorage::connect_pool(["10.0.0.5:11211", "10.0.0.6:11211"]).await?;
    /// println!("session abc lives on {}", storage.server_for("abc"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn server_for(&self, id: &str) -> &str {
        let backend = self.backend();
        backend.pool.server_for(&backend.key(id))
    }
}

/// The [`SessionBackend`] behind [`MemcacheStorage`]: a hash ring of memcached servers with
/// a small connection pool each. Clones share the connections.
#[derive(Clone)]
pub struct MemcacheBackend {
    prefix: String,
    pool: Arc<Pool>,
    /// The largest value `load` reads ([`SessionBackend::limit_record_size`]).
    max_record_size: usize,
}

impl fmt::Debug for MemcacheBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let servers: Vec<&str> = self.pool.addrs().collect();
        f.debug_struct("MemcacheBackend")
            .field("servers", &servers)
            .field("prefix", &self.prefix)
            .field("options", self.pool.options())
            .field("max_record_size", &self.max_record_size)
            .finish_non_exhaustive()
    }
}

impl MemcacheBackend {
    fn key(&self, id: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + HASH_HEX_LEN);
        key.push_str(&self.prefix);
        key.push_str(&super::id_digest(id));
        key
    }

    /// What `key` holds (one `gets`): [`Reply::Item`], or [`Reply::Oversize`] for a value
    /// over the record size limit, which is read past and not kept.
    async fn gets(&self, key: &str) -> Result<Reply, Error> {
        let request = Request::Gets {
            key,
            limit: self.max_record_size,
        };
        match self.pool.run(key, request).await? {
            reply @ (Reply::Item(_) | Reply::Oversize(_)) => Ok(reply),
            other => Err(mismatch(&other)),
        }
    }
}

impl SessionBackend for MemcacheBackend {
    async fn load(&self, id: &str) -> Result<Option<Versioned>, Error> {
        let key = self.key(id);
        let Item { data, cas } = match self.gets(&key).await? {
            Reply::Item(Some(item)) => item,
            Reply::Item(None) => return Ok(None),
            Reply::Oversize(size) => {
                Record::check_stored_size(&key, size, self.max_record_size)?;
                return Err(mismatch(&Reply::Oversize(size)));
            }
            other => return Err(mismatch(&other)),
        };
        if cas == 0 {
            // Every `cas` would then fail, and every save conflict until it gives up.
            return Err(Error::backend(format!(
                "memcached {} returned no CAS unique: it runs with -C (CAS disabled), which \
                 session saves need",
                self.pool.server_for(&key)
            )));
        }
        let record = Record::decode(&key, &data)?;
        Ok(Some(Versioned {
            record,
            version: cas,
        }))
    }

    async fn store(
        &self,
        id: &str,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        let key = self.key(id);
        // The lifecycle saves nothing over the record size limit; memcached refuses what is
        // over its own item size limit (`SERVER_ERROR object too large for cache`).
        let data = record.encode();
        let verb = match expected {
            Expected::Absent => Verb::Add,
            Expected::Version(cas) => Verb::Cas(cas),
            Expected::Any => Verb::Set,
        };
        let request = Request::Store {
            verb,
            key: &key,
            data: &data,
            exptime: exptime(ttl, unix_now_ms() / 1000),
        };
        match self.pool.run(&key, request).await? {
            Reply::Stored(true) => Ok(true),
            Reply::Stored(false) if verb != Verb::Set => Ok(false),
            Reply::Stored(false) => Err(Error::backend("memcached did not store the session")),
            other => Err(mismatch(&other)),
        }
    }

    async fn delete(&self, id: &str, expected: Expected) -> Result<bool, Error> {
        let key = self.key(id);
        let cas = match expected {
            // Nothing to delete: only whether that is so.
            Expected::Absent => return Ok(matches!(self.gets(&key).await?, Reply::Item(None))),
            Expected::Version(cas) => Some(cas),
            Expected::Any => None,
        };
        match self
            .pool
            .run(&key, Request::Delete { key: &key, cas })
            .await?
        {
            // A plain `delete` of a missing item has still left nothing behind.
            Reply::Deleted(deleted) => Ok(deleted || cas.is_none()),
            other => Err(mismatch(&other)),
        }
    }

    fn limit_record_size(&mut self, bytes: usize) {
        self.max_record_size = bytes;
    }
}

/// The expiration sent with a write. `0` means "never" to memcached, so a TTL is rounded up
/// to whole seconds and never down to 0; over 30 days it must be an absolute Unix time.
///
/// Memcached parses the expiration as a signed 32-bit number: an end past that (past
/// January 2038, a `Duration::MAX` TTL or lifetime) is sent as `0`, no expiry of the item.
/// The session still ends when its record says, which the lifecycle checks on every read.
fn exptime(ttl: Option<Duration>, now_secs: u64) -> u32 {
    let Some(ttl) = ttl else { return 0 };
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0))
        .max(1);
    let value = if secs <= RELATIVE_EXPIRY_LIMIT_SECS {
        secs
    } else {
        now_secs.saturating_add(secs)
    };
    i32::try_from(value).map_or(0, |value| value as u32)
}

fn validate_prefix(prefix: &str) -> Result<(), Error> {
    if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Config(
            "a memcached key prefix must be printable ASCII without spaces or control characters"
                .to_owned(),
        ));
    }
    let key_len = prefix.len() + HASH_HEX_LEN;
    if key_len > MAX_KEY_LEN {
        return Err(Error::Config(format!(
            "a memcached key prefix of {} bytes makes {key_len}-byte keys (prefix + 64 hex \
             characters), over memcached's {MAX_KEY_LEN}-byte key limit; use at most {} bytes",
            prefix.len(),
            MAX_KEY_LEN - HASH_HEX_LEN
        )));
    }
    Ok(())
}

fn validate_addrs<I, S>(addrs: I) -> Result<Vec<String>, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut seen = HashSet::new();
    let mut list = Vec::new();
    for addr in addrs {
        let addr = addr.as_ref().trim();
        let valid = addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            return Err(Error::Config(format!(
                "memcached address {addr:?} is not of the form host:port"
            )));
        }
        if !seen.insert(addr.to_owned()) {
            return Err(Error::Config(format!(
                "memcached server {addr} is listed twice"
            )));
        }
        list.push(addr.to_owned());
    }
    if list.is_empty() {
        return Err(Error::Config(
            "at least one memcached server is needed".to_owned(),
        ));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exptime_rounds_up_and_switches_to_absolute_after_30_days() {
        assert_eq!(exptime(None, 1_000), 0);
        assert_eq!(exptime(Some(Duration::ZERO), 1_000), 1);
        assert_eq!(exptime(Some(Duration::from_millis(1)), 1_000), 1);
        assert_eq!(exptime(Some(Duration::from_millis(1500)), 1_000), 2);
        let thirty_days = Duration::from_secs(RELATIVE_EXPIRY_LIMIT_SECS);
        assert_eq!(exptime(Some(thirty_days), 1_000), 2_592_000);
        let now = 1_800_000_000;
        let more = Duration::from_secs(RELATIVE_EXPIRY_LIMIT_SECS + 1);
        assert_eq!(exptime(Some(more), now), (now + 2_592_001) as u32);
        // Past what a signed 32-bit Unix time holds: no expiry of the item, never a wrapped
        // or clamped time (i32::MAX is in the past from 2038 on, which would expire it).
        assert_eq!(exptime(Some(Duration::from_secs(u64::MAX)), now), 0);
        assert_eq!(exptime(Some(Duration::MAX), now), 0);
        assert_eq!(exptime(Some(Duration::MAX), 0), 0);
        let end_of_i32 = i32::MAX as u64;
        let ttl = |secs| Some(Duration::from_secs(secs));
        assert_eq!(
            exptime(
                ttl(RELATIVE_EXPIRY_LIMIT_SECS + 1),
                end_of_i32 - RELATIVE_EXPIRY_LIMIT_SECS - 1
            ),
            i32::MAX as u32
        );
        assert_eq!(
            exptime(
                ttl(RELATIVE_EXPIRY_LIMIT_SECS + 1),
                end_of_i32 - RELATIVE_EXPIRY_LIMIT_SECS
            ),
            0
        );
        // Relative TTLs do not depend on the clock.
        assert_eq!(exptime(ttl(60), u64::MAX), 60);
    }

    #[test]
    fn options_keep_at_least_one_connection() {
        assert_eq!(MemcacheOptions::new().pool_size(0).get_pool_size(), 1);
        let defaults = MemcacheOptions::default();
        assert_eq!(defaults.get_connect_timeout(), Duration::from_secs(1));
        assert_eq!(defaults.get_response_timeout(), Duration::from_secs(1));
        assert_eq!(defaults.get_pool_size(), 4);
    }
}
