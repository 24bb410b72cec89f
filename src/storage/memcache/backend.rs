//! [`MemcacheBackend`]: a session's load, store and delete as memcached commands on its key.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(doc)]
use super::MemcacheStorage;
use super::expiration::exptime;
use super::keys;
use super::pool::Pool;
use super::reply::{Item, Reply, mismatch};
use super::request::{Request, Verb};
use crate::Error;
use crate::storage::{
    DEFAULT_MAX_RECORD_SIZE, Expected, Record, SessionBackend, SessionId, Versioned, unix_now_ms,
};

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
            .field("timeouts", &self.pool.timeouts())
            .field("pool_size", &self.pool_size())
            .field("max_record_size", &self.max_record_size)
            .finish_non_exhaustive()
    }
}

impl MemcacheBackend {
    pub(super) fn new(pool: Pool) -> MemcacheBackend {
        MemcacheBackend {
            prefix: keys::DEFAULT_PREFIX.to_owned(),
            pool: Arc::new(pool),
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
        }
    }

    pub(super) fn set_prefix(&mut self, prefix: &str) {
        self.prefix = prefix.to_owned();
    }

    /// [`MemcacheStorage::pool_size`]: resizes the pool in place while no clone shares it,
    /// keeping its open connections; a shared one is left to the clones, and this backend
    /// gets a pool of its own.
    pub(super) fn set_pool_size(&mut self, connections: usize) {
        match Arc::get_mut(&mut self.pool) {
            Some(pool) => pool.resize(connections),
            None => self.pool = Arc::new(self.pool.with_slots(connections)),
        }
    }

    /// How many connections each server may have open at once
    /// ([`MemcacheStorage::pool_size`]).
    pub fn pool_size(&self) -> usize {
        self.pool.slots_per_server()
    }

    pub(super) fn key(&self, id: &str) -> String {
        keys::key(&self.prefix, id)
    }

    /// [`key`](Self::key), from the digest `id` keeps.
    fn key_of(&self, id: &SessionId) -> String {
        keys::key_of_digest(&self.prefix, id.digest())
    }

    /// The server (as named at connect time) that holds the session with this id.
    pub(super) fn server_for(&self, id: &str) -> &str {
        self.pool.server_for(&self.key(id))
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
    const NAME: &'static str = "memcached";

    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
        let key = self.key_of(id);
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
        id: &SessionId,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        let key = self.key_of(id);
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

    async fn delete(&self, id: &SessionId, expected: Expected) -> Result<bool, Error> {
        let key = self.key_of(id);
        let cas = match expected {
            // Nothing to delete: only whether that is so.
            Expected::Absent => return Ok(matches!(self.gets(&key).await?, Reply::Item(None))),
            Expected::Version(cas) => Some(cas),
            Expected::Any => None,
        };
        let request = Request::Delete { key: &key, cas };
        match self.pool.run(&key, request).await? {
            // A plain `delete` of a missing item has still left nothing behind.
            Reply::Deleted(deleted) => Ok(deleted || cas.is_none()),
            other => Err(mismatch(&other)),
        }
    }

    fn limit_record_size(&mut self, bytes: usize) {
        self.max_record_size = bytes;
    }
}
