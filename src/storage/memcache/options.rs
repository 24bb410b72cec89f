//! [`MemcacheOptions`]: the timeouts and the pool size of the connections to memcached.

use std::time::Duration;

#[cfg(doc)]
use super::MemcacheStorage;
#[cfg(doc)]
use crate::Error;

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
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Duration,
    pub(super) pool_size: usize,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_at_least_one_connection() {
        assert_eq!(MemcacheOptions::new().pool_size(0).get_pool_size(), 1);
        let defaults = MemcacheOptions::default();
        assert_eq!(defaults.get_connect_timeout(), Duration::from_secs(1));
        assert_eq!(defaults.get_response_timeout(), Duration::from_secs(1));
        assert_eq!(defaults.get_pool_size(), 4);
    }
}
