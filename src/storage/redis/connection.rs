//! The connection behind [`RedisBackend`](super::RedisBackend), and how it recovers.
//!
//! A single server is one redis-rs `ConnectionManager`, which reconnects to its address by
//! itself. A Cluster or a Sentinel-watched master also needs the connection to be replaced:
//! redis-rs's cluster connection can stop answering for good after a failover or a
//! resharding (docs/redis-cluster-bug.md), and a `ConnectionManager` keeps reconnecting to a
//! master that Sentinel has replaced. So those links are rebuilt, from the cluster's nodes or
//! from Sentinel, when a request has waited a stall period with no answer, or when the
//! server answers that it is not (or no longer) the master.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, FromRedisValue, Pipeline, RedisError, RedisResult, ServerErrorKind, Value};
use tokio::time::Instant;

use super::super::Error;

/// A connection of either kind; both are cheap to clone and share one socket (per node).
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn query(&self, commands: &Pipeline) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Single(conn) => commands.query_async(&mut conn.clone()).await,
            Conn::Cluster(conn) => commands.query_async(&mut conn.clone()).await,
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

/// The connection in use, numbered so that the requests that find it stuck together
/// rebuild it once.
struct Current {
    conn: Conn,
    generation: u64,
}

/// One connection shared by every request, rebuilt when it stops working (see the module
/// docs); a `Single` link is never rebuilt, its `ConnectionManager` reconnects.
pub(super) struct Link {
    mode: Mode,
    current: RwLock<Arc<Current>>,
    connect: Connect,
    rebuilding: tokio::sync::Mutex<()>,
    /// How long a request may wait with no answer before the connection is rebuilt.
    stall: Duration,
    epoch: Instant,
    /// When the last rebuild began, in milliseconds since `epoch`.
    last_rebuild: AtomicU64,
}

/// What became of one attempt.
enum Attempt {
    Answered(RedisResult<Vec<Value>>),
    Stuck,
}

/// The pause before a request is sent again to a master Sentinel was asked for anew, and the
/// least time between two rebuilds.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

const NO_SCRIPT: ErrorKind = ErrorKind::Server(ServerErrorKind::NoScript);

impl Link {
    pub fn new(mode: Mode, conn: Conn, connect: Connect, stall: Duration) -> Link {
        Link {
            mode,
            current: RwLock::new(Arc::new(Current {
                conn,
                generation: 0,
            })),
            connect,
            rebuilding: tokio::sync::Mutex::new(()),
            stall,
            epoch: Instant::now(),
            last_rebuild: AtomicU64::new(0),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A new link of the same kind, on a connection of its own.
    pub async fn sibling(&self, timeout: Duration) -> Result<Link, Error> {
        let conn = match tokio::time::timeout(timeout, (self.connect)()).await {
            Ok(conn) => conn.map_err(redis_error)?,
            Err(_elapsed) => return Err(Error::Timeout),
        };
        Ok(Link::new(self.mode, conn, self.connect.clone(), self.stall))
    }

    fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Sends the commands that `build(false)` makes, or `build(true)` (a script sent in
    /// full) once a node answers `NOSCRIPT`, and answers their replies, within `timeout` in
    /// all. A `repeatable` request, one that has no effect when sent again after it took
    /// effect, is sent again on a rebuilt connection when the first did not answer.
    pub async fn send(
        &self,
        build: impl Fn(bool) -> Pipeline,
        repeatable: bool,
        timeout: Duration,
    ) -> Result<Vec<Value>, Error> {
        let deadline = Instant::now() + timeout;
        let mut in_full = false;
        loop {
            let current = self.current();
            let error = match self.attempt(&current, &build(in_full), deadline).await? {
                Attempt::Answered(Ok(replies)) => return Ok(replies),
                Attempt::Answered(Err(e)) if !in_full && e.kind() == NO_SCRIPT => {
                    in_full = true;
                    continue;
                }
                Attempt::Answered(Err(e)) if self.must_find_master(&e, repeatable) => e,
                Attempt::Answered(Err(e)) => return Err(redis_error(e)),
                Attempt::Stuck => {
                    self.rebuild(current.generation, deadline).await;
                    if repeatable {
                        continue;
                    }
                    return Err(Error::Timeout);
                }
            };
            self.rebuild(current.generation, deadline).await;
            let pause = Instant::now() + RETRY_PAUSE;
            if pause >= deadline {
                return Err(redis_error(error));
            }
            tokio::time::sleep_until(pause).await;
        }
    }

    /// One attempt on `current`: its answer, or on a link that can be rebuilt, `Stuck` once
    /// it has waited a stall period.
    async fn attempt(
        &self,
        current: &Current,
        commands: &Pipeline,
        deadline: Instant,
    ) -> Result<Attempt, Error> {
        let attempt = current.conn.query(commands);
        tokio::pin!(attempt);
        if self.mode != Mode::Single {
            let check = (Instant::now() + self.stall).min(deadline);
            match tokio::time::timeout_at(check, &mut attempt).await {
                Ok(answer) => return Ok(Attempt::Answered(answer)),
                Err(_) if Instant::now() < deadline => return Ok(Attempt::Stuck),
                Err(_) => return Err(Error::Timeout),
            }
        }
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(answer) => Ok(Attempt::Answered(answer)),
            Err(_elapsed) => Err(Error::Timeout),
        }
    }

    /// Whether `error` says that the Sentinel-given master is gone or was demoted, so that
    /// Sentinel must be asked again and the request sent again: always when the request
    /// cannot have taken effect, else only when it is repeatable. A cluster connection
    /// follows its masters itself.
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
