//! Sessions in Memcached, over a small text-protocol client of our own.
//!
//! Only four commands are needed (`get`, `add`, `set`, `delete`, plus `version` to check a
//! server at connect time), so the client is kept here rather than taken from a crate: it
//! adds no dependency beyond tokio's `net` and `io-util`, every response is bounded (no
//! hostile server can make it allocate more than [`MAX_VALUE_LEN`] per value), and
//! timeouts, reconnects and the hash ring are ours to get right. See `docs-memcache.md`
//! ("Why this client") for the comparison with the crates on crates.io.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, MutexGuard};

use super::{Error, Record, ServerStorage, SessionBackend, WriteMode, unix_now_ms};

/// The key prefix used unless [`MemcacheStorage::key_prefix`] sets another.
const DEFAULT_PREFIX: &str = "session:";

/// Memcached's limit on key length, in bytes.
const MAX_KEY_LEN: usize = 250;

/// Length of the hex SHA-256 that follows the prefix in every key.
const HASH_HEX_LEN: usize = 64;

/// The largest value sent or accepted: memcached's default item size limit (`-I 1m`).
/// A response announcing more is a protocol error and nothing is allocated for it.
const MAX_VALUE_LEN: usize = 1024 * 1024;

/// The longest response line accepted (a `VALUE` line holds a key of at most 250 bytes).
const MAX_LINE_LEN: usize = 1024;

/// Memcached reads an expiration above 30 days as an absolute Unix time.
const RELATIVE_EXPIRY_LIMIT_SECS: u64 = 30 * 24 * 3600;

/// Points per server on the hash ring: enough for an even spread over a few servers.
const VIRTUAL_NODES: usize = 160;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_POOL_SIZE: usize = 4;

/// Sessions in Memcached: for several app servers sharing sessions, when losing a session
/// now and then (eviction, a server restart) is acceptable.
///
/// Each session is one item under the key `prefix + hex SHA-256 of the id` (the id itself
/// never reaches the server), holding the JSON of its [`Record`], with the session's TTL as
/// the item's expiration. New ids are written with `add`, so an id collision can never
/// overwrite another session; later writes use `set`.
///
/// With several servers ([`connect_pool`](MemcacheStorage::connect_pool)), keys are spread
/// by consistent hashing: adding or removing a server moves only its share of the sessions.
/// Each server gets a small pool of connections ([`pool_size`](MemcacheStorage::pool_size));
/// a broken connection is dropped and the next request opens a new one, so requests succeed
/// again by themselves once a server is back.
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
    /// Connects to one memcached server at `"host:port"`.
    ///
    /// Fails when the address is malformed or the server does not answer a `version`
    /// command within the default connect and response timeouts (1 s each).
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
        Self::connect_pool([addr]).await
    }

    /// Connects to several memcached servers (`"host:port"` each) and spreads the sessions
    /// over them by consistent hashing (a hash ring with virtual nodes).
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
        let addrs = validate_addrs(addrs)?;
        let options = Options::default();
        let pool = Pool::new(addrs, DEFAULT_POOL_SIZE);
        for server in &pool.servers {
            server.check(&options).await?;
        }
        Ok(ServerStorage::with_backend(MemcacheBackend {
            prefix: DEFAULT_PREFIX.to_owned(),
            options,
            pool: Arc::new(pool),
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

    /// How long opening a connection may take (default 1 s); longer is
    /// [`Error::Timeout`]. Applies to the connections opened from now on.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use session_layer::MemcacheStorage;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = MemcacheStorage::connect("127.0.0.1:11211")
    ///     .await?
    ///     .connect_timeout(Duration::from_millis(500));
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.backend_mut().options.connect_timeout = timeout;
        self
    }

    /// How long one command may wait for a free connection and then for its answer
    /// (default 1 s); longer is [`Error::Timeout`], and the connection is dropped.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use session_layer::MemcacheStorage;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = MemcacheStorage::connect("127.0.0.1:11211")
    ///     .await?
    ///     .response_timeout(Duration::from_millis(250));
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.backend_mut().options.response_timeout = timeout;
        self
    }

    /// How many connections each server may have open at once (default 4, at least 1).
    /// Concurrent requests use different connections; when all are busy they queue.
    /// Replaces the pool: connections are opened again as requests need them.
    ///
    /// ```no_run
    /// use session_layer::MemcacheStorage;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = MemcacheStorage::connect("127.0.0.1:11211").await?.pool_size(16);
    /// # let _ = storage;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pool_size(mut self, connections: usize) -> Self {
        let backend = self.backend_mut();
        let addrs = backend
            .pool
            .servers
            .iter()
            .map(|s| s.addr.clone())
            .collect();
        backend.pool = Arc::new(Pool::new(addrs, connections));
        self
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
        &backend.pool.server_for(&backend.key(id)).addr
    }
}

/// The [`SessionBackend`] behind [`MemcacheStorage`]: a hash ring of memcached servers with
/// a small connection pool each. Clones share the connections.
#[derive(Clone)]
pub struct MemcacheBackend {
    prefix: String,
    options: Options,
    pool: Arc<Pool>,
}

impl fmt::Debug for MemcacheBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let servers: Vec<&str> = self.pool.servers.iter().map(|s| s.addr.as_str()).collect();
        f.debug_struct("MemcacheBackend")
            .field("servers", &servers)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.options.connect_timeout)
            .field("response_timeout", &self.options.response_timeout)
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
}

impl SessionBackend for MemcacheBackend {
    async fn load(&self, id: &str) -> Result<Option<Record>, Error> {
        let key = self.key(id);
        match self
            .pool
            .run(&key, Request::Get(&key), &self.options)
            .await?
        {
            Reply::Value(Some(bytes)) => Record::decode(&key, &bytes).map(Some),
            Reply::Value(None) => Ok(None),
            other => Err(mismatch(&other)),
        }
    }

    async fn store(
        &self,
        id: &str,
        record: &Record,
        ttl: Option<Duration>,
        mode: WriteMode,
    ) -> Result<bool, Error> {
        let key = self.key(id);
        let data = record.encode();
        if data.len() > MAX_VALUE_LEN {
            return Err(Error::backend(format!(
                "session record is {} bytes, over memcached's {MAX_VALUE_LEN}-byte item limit",
                data.len()
            )));
        }
        let verb = match mode {
            WriteMode::Create => "add",
            WriteMode::Overwrite => "set",
        };
        let request = Request::Store {
            verb,
            key: &key,
            data: &data,
            exptime: exptime(ttl, unix_now_ms() / 1000),
        };
        match self.pool.run(&key, request, &self.options).await? {
            Reply::Stored(true) => Ok(true),
            Reply::Stored(false) if mode == WriteMode::Create => Ok(false),
            Reply::Stored(false) => Err(Error::backend("memcached did not store the session")),
            other => Err(mismatch(&other)),
        }
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        let key = self.key(id);
        match self
            .pool
            .run(&key, Request::Delete(&key), &self.options)
            .await?
        {
            Reply::Deleted => Ok(()),
            other => Err(mismatch(&other)),
        }
    }
}

fn mismatch(reply: &Reply) -> Error {
    Error::backend(format!("memcached client: unexpected reply {reply:?}"))
}

/// The expiration sent with a write. `0` means "never" to memcached, so a TTL is rounded up
/// to whole seconds and never down to 0; over 30 days it must be an absolute Unix time.
fn exptime(ttl: Option<Duration>, now_secs: u64) -> u32 {
    let Some(ttl) = ttl else { return 0 };
    let secs = (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1);
    let value = if secs <= RELATIVE_EXPIRY_LIMIT_SECS {
        secs
    } else {
        // Memcached parses the expiration as a signed 32-bit number.
        now_secs.saturating_add(secs).min(i32::MAX as u64)
    };
    value as u32
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

#[derive(Clone, Copy, Debug)]
struct Options {
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        }
    }
}

/// The servers and the ring that maps keys onto them.
struct Pool {
    servers: Vec<Server>,
    /// `(point, server index)`, sorted by point.
    ring: Vec<(u64, usize)>,
}

impl Pool {
    fn new(addrs: Vec<String>, connections: usize) -> Pool {
        let mut ring = Vec::with_capacity(addrs.len() * VIRTUAL_NODES);
        for (index, addr) in addrs.iter().enumerate() {
            for node in 0..VIRTUAL_NODES {
                ring.push((ring_point(format!("{addr}#{node}").as_bytes()), index));
            }
        }
        ring.sort_unstable();
        let servers = addrs
            .into_iter()
            .map(|addr| Server::new(addr, connections.max(1)))
            .collect();
        Pool { servers, ring }
    }

    fn server_for(&self, key: &str) -> &Server {
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

    async fn run(
        &self,
        key: &str,
        request: Request<'_>,
        options: &Options,
    ) -> Result<Reply, Error> {
        let server = self.server_for(key);
        let result = async {
            let mut slot = tokio::time::timeout(options.response_timeout, server.acquire())
                .await
                .map_err(|_| Fault::Timeout)?;
            server.execute(&mut slot, &request, options).await
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

    /// Opens the first connection and checks that a memcached answers on it.
    async fn check(&self, options: &Options) -> Result<(), Error> {
        let mut slot = self.acquire().await;
        match self.execute(&mut slot, &Request::Version, options).await {
            Ok(Reply::Version(_)) => Ok(()),
            Ok(other) => Err(mismatch(&other)),
            Err(fault) => Err(fault.into_error(&self.addr)),
        }
    }

    /// Runs one command on the slot's connection, opening one if needed. Any failure drops
    /// the connection (its state is unknown). A pooled connection that turns out to be
    /// broken (the server restarted since) is replaced and the command tried once more; one
    /// left mid-command by a cancelled request is replaced before use.
    async fn execute(
        &self,
        slot: &mut Option<Conn>,
        request: &Request<'_>,
        options: &Options,
    ) -> Result<Reply, Fault> {
        let mut retried = false;
        loop {
            // A command whose caller gave up (its future was dropped) may have left its
            // reply unread: that connection must never answer another command.
            if slot.as_ref().is_some_and(|conn| conn.in_flight) {
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

/// What went wrong on a connection, before it becomes an [`Error`].
#[derive(Debug)]
enum Fault {
    Io(io::Error),
    Timeout,
    /// The server sent something that is not a valid answer.
    Protocol(String),
    /// The server answered `ERROR`, `CLIENT_ERROR ...` or `SERVER_ERROR ...`.
    Server(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Io(e) => write!(f, "{e}"),
            Fault::Timeout => f.write_str("timed out"),
            Fault::Protocol(m) => write!(f, "invalid response: {m}"),
            Fault::Server(m) => write!(f, "server error: {m}"),
        }
    }
}

impl Fault {
    fn into_error(self, addr: &str) -> Error {
        match self {
            Fault::Timeout => Error::Timeout,
            other => Error::backend(format!("memcached {addr}: {other}")),
        }
    }
}

#[derive(Debug)]
enum Request<'a> {
    Get(&'a str),
    Store {
        verb: &'static str,
        key: &'a str,
        data: &'a [u8],
        exptime: u32,
    },
    Delete(&'a str),
    Version,
}

enum Reply {
    Value(Option<Vec<u8>>),
    Stored(bool),
    Deleted,
    Version(String),
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Never the value itself: it is session data.
            Reply::Value(v) => write!(f, "Value({} bytes)", v.as_ref().map_or(0, Vec::len)),
            Reply::Stored(s) => write!(f, "Stored({s})"),
            Reply::Deleted => f.write_str("Deleted"),
            Reply::Version(v) => write!(f, "Version({v})"),
        }
    }
}

/// One text-protocol connection: a TCP stream, or under `cfg(fuzzing)` any in-memory one.
struct Conn<S = TcpStream> {
    io: BufReader<S>,
    line: Vec<u8>,
    /// Set from writing a command until its reply is read completely.
    in_flight: bool,
}

impl Conn {
    async fn open(addr: &str, timeout: Duration) -> Result<Conn, Fault> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Fault::Timeout)?
            .map_err(Fault::Io)?;
        stream.set_nodelay(true).map_err(Fault::Io)?;
        Ok(Conn::over(stream))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn over(stream: S) -> Conn<S> {
        Conn {
            io: BufReader::new(stream),
            line: Vec::with_capacity(128),
            in_flight: false,
        }
    }

    async fn execute(&mut self, request: &Request<'_>) -> Result<Reply, Fault> {
        self.in_flight = true;
        let reply = self.exchange(request).await?;
        self.in_flight = false;
        Ok(reply)
    }

    async fn exchange(&mut self, request: &Request<'_>) -> Result<Reply, Fault> {
        let mut out = Vec::with_capacity(96);
        match request {
            Request::Get(key) => out.extend_from_slice(format!("get {key}\r\n").as_bytes()),
            Request::Store {
                verb,
                key,
                data,
                exptime,
            } => {
                out.reserve(data.len() + 2);
                let header = format!("{verb} {key} 0 {exptime} {}\r\n", data.len());
                out.extend_from_slice(header.as_bytes());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            Request::Delete(key) => out.extend_from_slice(format!("delete {key}\r\n").as_bytes()),
            Request::Version => out.extend_from_slice(b"version\r\n"),
        }
        let stream = self.io.get_mut();
        stream.write_all(&out).await.map_err(Fault::Io)?;
        stream.flush().await.map_err(Fault::Io)?;

        match request {
            Request::Get(key) => self.read_value(key).await.map(Reply::Value),
            Request::Store { .. } => match self.read_line().await? {
                b"STORED" => Ok(Reply::Stored(true)),
                b"NOT_STORED" => Ok(Reply::Stored(false)),
                other => Err(unexpected(other)),
            },
            Request::Delete(_) => match self.read_line().await? {
                b"DELETED" | b"NOT_FOUND" => Ok(Reply::Deleted),
                other => Err(unexpected(other)),
            },
            Request::Version => {
                let line = self.read_line().await?;
                match line.strip_prefix(b"VERSION ") {
                    Some(version) => Ok(Reply::Version(printable(version))),
                    None => Err(unexpected(line)),
                }
            }
        }
    }

    /// Reads one line of at most [`MAX_LINE_LEN`] bytes and returns it without its CRLF.
    async fn read_line(&mut self) -> Result<&[u8], Fault> {
        self.line.clear();
        let read = (&mut self.io)
            .take(MAX_LINE_LEN as u64)
            .read_until(b'\n', &mut self.line)
            .await
            .map_err(Fault::Io)?;
        if read == 0 {
            return Err(Fault::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            )));
        }
        match self.line.strip_suffix(b"\r\n") {
            Some(line) => Ok(line),
            None if self.line.len() >= MAX_LINE_LEN => Err(Fault::Protocol(format!(
                "response line longer than {MAX_LINE_LEN} bytes"
            ))),
            None => Err(Fault::Protocol(
                "response line not terminated by CRLF".to_owned(),
            )),
        }
    }

    /// Reads the answer to `get key`: `END`, or one `VALUE` block then `END`.
    async fn read_value(&mut self, key: &str) -> Result<Option<Vec<u8>>, Fault> {
        let line = self.read_line().await?;
        if line == b"END" {
            return Ok(None);
        }
        let Some(header) = line.strip_prefix(b"VALUE ") else {
            return Err(unexpected(line));
        };
        let len = parse_value_header(header, key)?;
        let mut data = vec![0; len + 2];
        self.io.read_exact(&mut data).await.map_err(Fault::Io)?;
        if !data.ends_with(b"\r\n") {
            return Err(Fault::Protocol("value not terminated by CRLF".to_owned()));
        }
        data.truncate(len);
        match self.read_line().await? {
            b"END" => Ok(Some(data)),
            other => Err(unexpected(other)),
        }
    }
}

/// Checks `<key> <flags> <bytes> [<cas>]` and returns `<bytes>`, bounded.
fn parse_value_header(header: &[u8], key: &str) -> Result<usize, Fault> {
    let invalid = || Fault::Protocol(format!("malformed VALUE line {:?}", printable(header)));
    let text = std::str::from_utf8(header).map_err(|_| invalid())?;
    let parts: Vec<&str> = text.split(' ').collect();
    let [got_key, flags, len, rest @ ..] = parts.as_slice() else {
        return Err(invalid());
    };
    if rest.len() > 1 || flags.parse::<u32>().is_err() {
        return Err(invalid());
    }
    if *got_key != key {
        return Err(Fault::Protocol(
            "VALUE line for a key that was not asked for".to_owned(),
        ));
    }
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match len.parse::<usize>() {
        Ok(len) if len <= MAX_VALUE_LEN => Ok(len),
        _ => Err(Fault::Protocol(format!(
            "value announced as {} bytes, over the {MAX_VALUE_LEN}-byte limit",
            printable(len.as_bytes())
        ))),
    }
}

/// A response line that is not the expected answer: a server error or garbage.
fn unexpected(line: &[u8]) -> Fault {
    let is_error =
        line == b"ERROR" || line.starts_with(b"CLIENT_ERROR") || line.starts_with(b"SERVER_ERROR");
    if is_error {
        Fault::Server(printable(line))
    } else {
        Fault::Protocol(format!("unexpected line {:?}", printable(line)))
    }
}

/// At most 120 bytes of server text, non-printable bytes replaced, safe to log.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(120)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// The reply parser driven over an in-memory server, for the fuzz targets in `fuzz/` only
/// (through [`crate::fuzzing`]): built with `--cfg fuzzing`, as `cargo fuzz` does.
#[cfg(fuzzing)]
impl MemcacheBackend {
    /// The largest value a reply may carry.
    pub(crate) const FUZZ_MAX_VALUE: usize = MAX_VALUE_LEN;

    /// The key every command names: a real one (default prefix, hex SHA-256 of `"fuzz"`).
    pub(crate) fn fuzz_key() -> String {
        format!("{DEFAULT_PREFIX}{}", super::id_digest("fuzz"))
    }

    /// Sends one command per byte of `commands` (`get`, `add`, `set`, `delete`, `version`
    /// by the byte modulo 5) over one connection whose server sends exactly `server` and
    /// then closes. Stops after the first fault, as the pool drops a connection then.
    pub(crate) async fn fuzz_converse(
        commands: &[u8],
        server: &[u8],
    ) -> Vec<crate::fuzzing::MemcacheOutcome> {
        use crate::fuzzing::MemcacheOutcome as Outcome;
        let key = Self::fuzz_key();
        let data = br#"{"d":{"values":{"n":1},"flash":{}},"c":1}"#;
        let mut conn = Conn::over(tokio::io::join(server, tokio::io::sink()));
        let mut outcomes = Vec::new();
        for command in commands {
            let request = match command % 5 {
                0 => Request::Get(&key),
                1 | 2 => Request::Store {
                    verb: if command % 5 == 1 { "add" } else { "set" },
                    key: &key,
                    data,
                    exptime: 60,
                },
                3 => Request::Delete(&key),
                _ => Request::Version,
            };
            match conn.execute(&request).await {
                Ok(Reply::Value(value)) => outcomes.push(Outcome::Value(value)),
                Ok(Reply::Stored(stored)) => outcomes.push(Outcome::Stored(stored)),
                Ok(Reply::Deleted) => outcomes.push(Outcome::Deleted),
                Ok(Reply::Version(version)) => outcomes.push(Outcome::Version(version)),
                Err(fault) => {
                    outcomes.push(Outcome::Fault(fault.to_string()));
                    break;
                }
            }
        }
        outcomes
    }
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
        assert_eq!(
            exptime(Some(Duration::from_secs(u64::MAX)), now),
            i32::MAX as u32
        );
    }

    #[test]
    fn value_headers_are_bounded() {
        assert_eq!(parse_value_header(b"k 0 5", "k").unwrap(), 5);
        assert_eq!(parse_value_header(b"k 0 5 77", "k").unwrap(), 5);
        assert!(parse_value_header(b"k 0 1048577", "k").is_err());
        assert!(parse_value_header(b"k 0 99999999999999999999999", "k").is_err());
        assert!(parse_value_header(b"k 0 -1", "k").is_err());
        assert!(parse_value_header(b"k 0 +1", "k").is_err());
        assert!(parse_value_header(b"other 0 5", "k").is_err());
        assert!(parse_value_header(b"k x 5", "k").is_err());
        assert!(parse_value_header(b"k 0", "k").is_err());
        assert!(parse_value_header(b"\xff 0 1", "k").is_err());
    }

    /// Found by the `memcache_reply` fuzz target: the error for an oversize length quoted
    /// the server's digits in full (up to a whole 1 KiB line) into the log.
    #[test]
    fn oversize_length_errors_quote_at_most_120_bytes_of_server_text() {
        let header = format!("k 0 1{}", "0".repeat(1000));
        let message = parse_value_header(header.as_bytes(), "k")
            .unwrap_err()
            .to_string();
        assert!(message.contains("over the 1048576-byte limit"), "{message}");
        assert!(message.len() < 200, "a {}-byte message", message.len());
    }

    #[test]
    fn ring_is_stable_and_uses_every_server() {
        let addrs: Vec<String> = (0..3).map(|i| format!("10.0.0.{i}:11211")).collect();
        let a = Pool::new(addrs.clone(), 1);
        let b = Pool::new(addrs, 1);
        let mut used = HashSet::new();
        for i in 0..300 {
            let key = format!("k{i}");
            assert_eq!(a.server_for(&key).addr, b.server_for(&key).addr);
            used.insert(a.server_for(&key).addr.clone());
        }
        assert_eq!(used.len(), 3);
    }
}
