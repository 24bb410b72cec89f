//! [`NetworkOptions`]: the timeouts of the storages that talk to a server over the network.

use std::time::Duration;

/// The network timeouts of `RedisStorage` and `MemcacheStorage`, given to their
/// `connect_*_with` functions so that the connection that checks the server at start-up
/// already obeys them.
///
/// Each setting is a builder method and a public field of the same name: the method sets
/// it, the field reads it. A field left `None` takes the storage's default, which differs
/// between the storages (their `connect` docs give it): Redis allows 5 seconds to connect
/// and 2 per operation, Memcached 1 and 1.
///
/// ```
/// use std::time::Duration;
/// use session_layer::storage::NetworkOptions;
///
/// let options = NetworkOptions::new()
///     .connect_timeout(Duration::from_secs(2))
///     .response_timeout(Duration::from_millis(500));
/// assert_eq!(options.response_timeout, Some(Duration::from_millis(500)));
/// assert_eq!(NetworkOptions::new().connect_timeout, None); // the storage's default
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetworkOptions {
    /// How long opening a connection may take, at start-up and on every reconnection;
    /// longer is [`Error::Timeout`](crate::Error::Timeout). `None`: the storage's default.
    pub connect_timeout: Option<Duration>,
    /// How long one storage operation may take, waiting for a connection, retries and
    /// redirections included; longer is [`Error::Timeout`](crate::Error::Timeout). `None`:
    /// the storage's default.
    pub response_timeout: Option<Duration>,
}

impl NetworkOptions {
    /// Every setting at the storage's default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`connect_timeout`](NetworkOptions#structfield.connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Sets [`response_timeout`](NetworkOptions#structfield.response_timeout).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = Some(timeout);
        self
    }

    /// The timeouts to use: those set here, the storage's `defaults` for the others.
    pub(crate) fn resolve(self, defaults: Timeouts) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout.unwrap_or(defaults.connect),
            response: self.response_timeout.unwrap_or(defaults.response),
        }
    }
}

/// The timeouts a storage works with, once [`NetworkOptions`] are resolved against its
/// defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_timeouts_take_the_storage_defaults() {
        let defaults = Timeouts {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(2),
        };
        assert_eq!(NetworkOptions::new().resolve(defaults), defaults);
        let options = NetworkOptions::new().response_timeout(Duration::from_millis(300));
        let resolved = options.resolve(defaults);
        assert_eq!(resolved.connect, Duration::from_secs(5));
        assert_eq!(resolved.response, Duration::from_millis(300));
    }
}
