//! [`MemcacheStorage`]: connecting to the servers, and the options only Memcached has.

use std::collections::HashSet;
use std::time::Duration;

use super::backend::MemcacheBackend;
use super::keys::validate_prefix;
use super::pool::Pool;
use crate::Error;
#[cfg(doc)]
use crate::storage::Record;
use crate::storage::network::Timeouts;
use crate::storage::{NetworkOptions, ServerStorage};

/// The timeouts unless [`NetworkOptions`] set others: 1 second to connect, 1 per command.
const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(1),
    response: Duration::from_secs(1),
};

/// The connections per server unless [`MemcacheStorage::pool_size`] sets another number.
const DEFAULT_POOL_SIZE: usize = 4;

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
/// Each server gets a small pool of connections ([`pool_size`](MemcacheStorage::pool_size));
/// a broken connection is dropped and the next request opens a new one, so requests succeed
/// again by themselves once a server is back.
///
/// It does not implement [`SessionIndex`](crate::SessionIndex): Memcached has no secondary
/// index and evicts any item without notice, so an index of an owner's sessions kept as an
/// item could vanish while the sessions live on, and they would escape
/// [`end_sessions_of`](crate::SessionIndex::end_sessions_of) unnoticed. Keep sessions that
/// must be listed or ended by user in Redis or SQL (the storage guide says more).
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

impl MemcacheStorage {
    /// Connects to one memcached server at `"host:port"` with the default timeouts: 1 second
    /// to connect, 1 per command.
    ///
    /// Fails when the address is malformed or the server does not answer a `version`
    /// command within the connect and response timeouts.
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
        Self::connect_pool_with([addr], NetworkOptions::default()).await
    }

    /// Connects to one memcached server at `"host:port"` with the given timeouts.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use session_layer::MemcacheStorage;
    /// use session_layer::storage::NetworkOptions;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let options = NetworkOptions::new().response_timeout(Duration::from_millis(250));
    /// let storage = MemcacheStorage::connect_with("127.0.0.1:11211", options).await?;
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with(addr: &str, options: NetworkOptions) -> Result<Self, Error> {
        Self::connect_pool_with([addr], options).await
    }

    /// Connects to several memcached servers (`"host:port"` each) with the default timeouts
    /// (see [`connect`](MemcacheStorage::connect)), and spreads the sessions over them by
    /// consistent hashing (a hash ring with virtual nodes).
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
        Self::connect_pool_with(addrs, NetworkOptions::default()).await
    }

    /// Connects to several memcached servers with the given timeouts; see
    /// [`connect_pool`](MemcacheStorage::connect_pool).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use session_layer::MemcacheStorage;
    /// use session_layer::storage::NetworkOptions;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = MemcacheStorage::connect_pool_with(
    ///     ["10.0.0.5:11211", "10.0.0.6:11211"],
    ///     NetworkOptions::new().connect_timeout(Duration::from_millis(500)),
    /// )
    /// .await?
    /// .pool_size(16);
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_pool_with<I, S>(addrs: I, options: NetworkOptions) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let timeouts = options.resolve(DEFAULT_TIMEOUTS);
        let pool = Pool::new(validate_addrs(addrs)?, timeouts, DEFAULT_POOL_SIZE);
        pool.check().await?;
        Ok(ServerStorage::with_backend(MemcacheBackend::new(pool)))
    }

    /// How many connections each server may have open at once (at least 1; default 4):
    /// concurrent requests use different connections, and queue when all are busy. The
    /// connection that checked each server at connect time is kept.
    ///
    /// ```no_run
    /// use session_layer::MemcacheStorage;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = MemcacheStorage::connect("127.0.0.1:11211").await?.pool_size(16);
    /// assert_eq!(storage.backend().pool_size(), 16);
    /// # Ok(())
    /// # }
    /// ```
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.backend_mut().set_pool_size(connections);
        self
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
        self.backend_mut().set_prefix(prefix);
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
        self.backend().server_for(id)
    }
}

/// The server addresses, each of the form `host:port` and listed once.
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
