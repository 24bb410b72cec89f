//! The connection behind [`RedisBackend`](super::RedisBackend), and how it recovers.
//!
//! A single server is one redis-rs `ConnectionManager`, which reconnects to its address by
//! itself; a Cluster is our [`Cluster`], which follows failovers and resharding. A master
//! watched by Sentinel is a `ConnectionManager` too, but one that would keep reconnecting to
//! a master Sentinel has replaced: it is rebuilt from Sentinel when the server refuses the
//! connection or answers that it is not (or no longer) the master.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{ErrorKind, FromRedisValue, Pipeline, RedisError, RedisResult, ServerErrorKind, Value};
use tokio::time::Instant;

use super::super::Error;
use super::cluster::Cluster;

/// A connection of either kind; both are cheap to clone and share one socket (per node).
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(Arc<Cluster>),
}

impl Conn {
    /// Sends `commands`, which touch only `key`, within `deadline`: the outer error is the
    /// deadline, the inner one what Redis answered.
    async fn query(
        &self,
        key: &str,
        commands: &Pipeline,
        repeatable: bool,
        deadline: Instant,
    ) -> Result<RedisResult<Vec<Value>>, Error> {
        match self {
            Conn::Single(conn) => {
                let mut conn = conn.clone();
                tokio::time::timeout_at(deadline, commands.query_async(&mut conn))
                    .await
                    .map_err(|_elapsed| Error::Timeout)
            }
            Conn::Cluster(cluster) => cluster.send(key, commands, repeatable, deadline).await,
        }
    }
}

/// Makes a new connection: the first, a rebuilt one, or one more of the same kind.
pub(super) type Connect =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = RedisResult<Conn>> + Send>> + Send + Sync>;

/// What kind of deployment a link talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Single,
    Cluster,
    Sentinel,
}

/// The connection in use, numbered so that the requests that find its master gone together
/// rebuild it once.
struct Current {
    conn: Conn,
    generation: u64,
}

/// One connection shared by every request; a Sentinel one is rebuilt when its master is gone
/// (see the module docs).
pub(super) struct Link {
    mode: Mode,
    current: RwLock<Arc<Current>>,
    connect: Connect,
    rebuilding: tokio::sync::Mutex<()>,
    epoch: Instant,
    /// When the last rebuild began, in milliseconds since `epoch`.
    last_rebuild: AtomicU64,
}

/// The pause before a request is sent again to a master Sentinel was asked for anew, and the
/// least time between two rebuilds.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

const NO_SCRIPT: ErrorKind = ErrorKind::Server(ServerErrorKind::NoScript);

impl Link {
    pub fn new(mode: Mode, conn: Conn, connect: Connect) -> Link {
        Link {
            mode,
            current: RwLock::new(Arc::new(Current {
                conn,
                generation: 0,
            })),
            connect,
            rebuilding: tokio::sync::Mutex::new(()),
            epoch: Instant::now(),
            last_rebuild: AtomicU64::new(0),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A new link of the same kind, on a connection of its own.
    pub async fn sibling(&self, timeout: Duration) -> Result<Link, Error> {
        let conn = within(timeout, (self.connect)()).await?;
        Ok(Link::new(self.mode, conn, self.connect.clone()))
    }

    fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Sends the commands that `build(false)` makes, or `build(true)` (a script sent in
    /// full) once a node answers `NOSCRIPT`, and answers their replies, within `timeout` in
    /// all. The commands touch only `key`. A `repeatable` request, one that has no effect
    /// when sent again after it took effect, is sent again when a failing server may have
    /// received it.
    pub async fn send(
        &self,
        key: &str,
        build: impl Fn(bool) -> Pipeline,
        repeatable: bool,
        timeout: Duration,
    ) -> Result<Vec<Value>, Error> {
        let deadline = deadline_after(timeout);
        let mut in_full = false;
        loop {
            let current = self.current();
            let commands = build(in_full);
            let error = match current
                .conn
                .query(key, &commands, repeatable, deadline)
                .await?
            {
                Ok(replies) => return Ok(replies),
                Err(e) if !in_full && e.kind() == NO_SCRIPT => {
                    in_full = true;
                    continue;
                }
                Err(e) if self.must_find_master(&e, repeatable) => e,
                Err(e) => return Err(redis_error(e)),
            };
            self.rebuild(current.generation, deadline).await;
            let pause = Instant::now() + RETRY_PAUSE;
            if pause >= deadline {
                return Err(redis_error(error));
            }
            tokio::time::sleep_until(pause).await;
        }
    }

    /// Whether `error` says that the Sentinel-given master is gone or was demoted, so that
    /// Sentinel must be asked again and the request sent again: always when the request
    /// cannot have taken effect, else only when it is repeatable. A [`Cluster`] follows its
    /// masters itself.
    fn must_find_master(&self, error: &RedisError, repeatable: bool) -> bool {
        let not_sent = error.is_connection_refusal()
            || matches!(
                error.kind(),
                ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
            );
        let maybe_sent = error.is_connection_dropped() || error.is_io_error();
        self.mode == Mode::Sentinel && (not_sent || (maybe_sent && repeatable))
    }

    /// Replaces the connection of `generation`, unless it was replaced already or less than
    /// [`RETRY_PAUSE`] ago; a failed attempt leaves it in place for the next request.
    async fn rebuild(&self, generation: u64, deadline: Instant) {
        let Ok(_only_one) = tokio::time::timeout_at(deadline, self.rebuilding.lock()).await else {
            return;
        };
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_rebuild.load(Ordering::Relaxed);
        if self.current().generation != generation
            || (last > 0 && now < last + RETRY_PAUSE.as_millis() as u64)
        {
            return;
        }
        self.last_rebuild.store(now.max(1), Ordering::Relaxed);
        match tokio::time::timeout_at(deadline, (self.connect)()).await {
            Ok(Ok(conn)) => {
                tracing::warn!(mode = ?self.mode, "session storage: Redis connection rebuilt");
                *self
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(Current {
                    conn,
                    generation: generation + 1,
                });
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "session storage: Redis reconnection failed");
            }
            Err(_elapsed) => {}
        }
    }
}

/// The instant `timeout` from now; a timeout past what the clock can count (`Duration::MAX`)
/// means a century.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Runs a Redis operation within `limit`, mapping its errors.
pub(super) async fn within<T>(
    limit: Duration,
    operation: impl Future<Output = RedisResult<T>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, operation).await {
        Ok(answer) => answer.map_err(redis_error),
        Err(_elapsed) => Err(Error::Timeout),
    }
}

/// Maps an error of the Redis client.
pub(super) fn redis_error(e: RedisError) -> Error {
    if e.is_timeout() {
        Error::Timeout
    } else {
        Error::backend(e)
    }
}

/// The reply of a single-command request.
pub(super) fn single<T: FromRedisValue>(mut replies: Vec<Value>) -> Result<T, Error> {
    let reply = replies
        .pop()
        .ok_or_else(|| Error::backend("Redis sent no reply"))?;
    T::from_redis_value(reply).map_err(Error::backend)
}
