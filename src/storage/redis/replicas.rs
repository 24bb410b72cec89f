//! [`Replicas`]: saves that succeed only once enough replicas hold them
//! ([`RedisStorage::wait_for_replicas`](super::RedisStorage::wait_for_replicas)).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::Pipeline;
use tokio::sync::OnceCell;

use super::connection::Link;
use crate::Error;

/// The longest `WAIT`: Redis refuses a timeout that overflows its clock, and a century is
/// "never" enough.
const MAX_WAIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Connections reserved for saves that wait for replicas: `WAIT` holds up every later
/// command on its connection, so these saves never share one with reads, and several let
/// them wait side by side.
const WAITING_CONNECTIONS: usize = 4;

/// How many replicas a save waits for, how long, and the connections the waiting saves use,
/// opened on the first such save.
pub(super) struct Replicas {
    count: usize,
    timeout: Duration,
    links: OnceCell<Vec<Link>>,
    next: AtomicUsize,
}

impl Replicas {
    /// Waiting for `count` replicas (at least 1) for at most `timeout`.
    pub fn new(count: usize, timeout: Duration) -> Replicas {
        Replicas {
            count,
            timeout: timeout.max(Duration::from_millis(1)),
            links: OnceCell::new(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// How long a write that waits may take in all: the response timeout plus the wait.
    pub fn write_timeout(&self, response_timeout: Duration) -> Duration {
        response_timeout.saturating_add(self.timeout)
    }

    /// The next of the waiting connections, all opened beside `main` on first use, each
    /// within `timeout`.
    pub async fn link(&self, main: &Link, timeout: Duration) -> Result<&Link, Error> {
        let links = self
            .links
            .get_or_try_init(|| async {
                let mut links = Vec::with_capacity(WAITING_CONNECTIONS);
                for _ in 0..WAITING_CONNECTIONS {
                    links.push(main.sibling(timeout).await?);
                }
                Ok::<_, Error>(links)
            })
            .await?;
        Ok(&links[self.next.fetch_add(1, Ordering::Relaxed) % links.len()])
    }

    /// Appends the `WAIT` whose answer is how many replicas acknowledged the commands
    /// before it.
    pub fn append_wait(&self, commands: &mut Pipeline) {
        let wait_ms = self.timeout.min(MAX_WAIT).as_millis() as u64;
        commands.cmd("WAIT").arg(self.count).arg(wait_ms);
    }

    /// Fails a write that fewer replicas than asked acknowledged.
    pub fn check(&self, acknowledged: usize) -> Result<(), Error> {
        if acknowledged < self.count {
            return Err(Error::backend(format!(
                "the save reached {acknowledged} of {} replicas within {:?}",
                self.count, self.timeout
            )));
        }
        Ok(())
    }
}
