//! [`Backoff`]: the pauses between the attempts of a save that other requests keep beating.

use std::time::{Duration, Instant};

/// The shortest unit of back-off, for stores that answer faster than a timer can wait.
const MIN_BACKOFF_UNIT: Duration = Duration::from_micros(100);

/// The back-off doubles at most this many times: its window then holds about 1,000
/// attempts, room for that many requests saving one session at once.
const MAX_BACKOFF_DOUBLINGS: u32 = 10;

/// The longest pause between two attempts, however slow the store.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Pauses between the attempts of one save: exponential back-off with full jitter, in units
/// of how long the last attempt took.
///
/// An attempt succeeds only if no other request writes the session between its load and its
/// write, so the requests saving one session get through one attempt-time apart: N of them
/// need their retries spread over N attempt-times. A fixed window cannot fit every store: an
/// attempt takes microseconds in memory but milliseconds over a SQL pool, where waiting for a
/// connection is part of it. Measuring the attempt scales the window to the store, and to
/// the queueing that contention itself causes.
pub(super) struct Backoff {
    attempt: u32,
    started: Instant,
}

impl Backoff {
    pub(super) fn new() -> Self {
        Backoff {
            attempt: 0,
            started: Instant::now(),
        }
    }

    /// Starts timing the next attempt.
    pub(super) fn start(&mut self) {
        self.started = Instant::now();
    }

    /// The attempt just timed failed: waits a random time up to its duration times
    /// 2^(attempts so far), within the bounds above.
    pub(super) async fn wait(&mut self) {
        self.attempt += 1;
        let unit = self.started.elapsed().max(MIN_BACKOFF_UNIT);
        let ceiling = unit
            .saturating_mul(1 << self.attempt.min(MAX_BACKOFF_DOUBLINGS))
            .min(MAX_BACKOFF);
        tokio::time::sleep(ceiling.mul_f64(rand::random::<f64>())).await;
    }
}
