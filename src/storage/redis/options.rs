//! [`RedisOptions`]: the network timeouts of a Redis connection.

use std::time::Duration;

/// Connection settings for [`RedisStorage::connect_with`](super::RedisStorage::connect_with),
/// [`connect_cluster_with`](super::RedisStorage::connect_cluster_with) and
/// [`connect_sentinel_with`](super::RedisStorage::connect_sentinel_with).
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
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Duration,
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

    /// How long one storage operation may take before it fails with
    /// [`Error::Timeout`](crate::Error::Timeout), retries and redirections included.
    /// Default: 2 seconds.
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
