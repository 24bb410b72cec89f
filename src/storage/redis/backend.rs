//! [`RedisBackend`]: a session's load, store and delete as Lua scripts on its key.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::Value;

#[cfg(doc)]
use super::RedisStorage;
use super::calls::{WriteArgs, Written, script_call};
use super::connection::{Link, Mode};
use super::owners::{Answer, handle_of};
use super::replicas::Replicas;
use super::scripts::{DELETE, LOAD, MOVE, RENEW, STORE, expectation};
use crate::Error;
use crate::storage::{
    DEFAULT_MAX_RECORD_SIZE, Expected, Moved, Record, Renewal, SessionBackend, SessionId,
    Versioned, id_digest, store_moved_in_steps,
};

/// The default key prefix.
const DEFAULT_PREFIX: &str = "session:";

/// The longest expiry written: `PEXPIRE` refuses a count of milliseconds past `i64`
/// ("value is not an integer or out of range") or one that overflows when added to the
/// clock ("invalid expire time"), so a `Duration::MAX` TTL or lifetime is capped here, and
/// no session needs to outlive a century.
pub(super) const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The [`SessionBackend`] behind [`RedisStorage`]: one Redis connection (a single server,
/// a cluster or a Sentinel-watched master), a key prefix and the largest record a read
/// accepts. Clones share the connection.
#[derive(Clone)]
pub struct RedisBackend {
    pub(super) link: Arc<Link>,
    pub(super) replicas: Option<Arc<Replicas>>,
    prefix: Arc<str>,
    pub(super) response_timeout: Duration,
    max_record_size: usize,
    /// Whether the server's eviction policy was looked at (see `owners.rs`).
    eviction_checked: Arc<AtomicBool>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No URL here: it may hold a password.
        f.debug_struct("RedisBackend")
            .field("mode", &self.link.mode())
            .field("prefix", &self.prefix)
            .field("response_timeout", &self.response_timeout)
            .field("max_record_size", &self.max_record_size)
            .field(
                "wait_for_replicas",
                &self.replicas.as_ref().map(|r| r.count()),
            )
            .finish()
    }
}

impl RedisBackend {
    pub(super) fn new(link: Link, response_timeout: Duration) -> Self {
        RedisBackend {
            link: Arc::new(link),
            replicas: None,
            prefix: Arc::from(DEFAULT_PREFIX),
            response_timeout,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
            eviction_checked: Arc::default(),
        }
    }

    pub(super) fn set_prefix(&mut self, prefix: &str) {
        self.prefix = Arc::from(prefix);
    }

    /// [`RedisStorage::wait_for_replicas`].
    pub(super) fn wait_for(&mut self, replicas: usize, timeout: Duration) {
        self.replicas = (replicas > 0).then(|| Arc::new(Replicas::new(replicas, timeout)));
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of the session `id`: the prefix followed by the hex SHA-256 of the id
    /// ([`RedisStorage::key_for`]).
    pub fn key(&self, id: &str) -> String {
        self.key_of_digest(&id_digest(id))
    }

    /// [`key`](Self::key), from the digest `id` keeps.
    fn key_of(&self, id: &SessionId) -> String {
        self.key_of_digest(id.digest())
    }

    fn key_of_digest(&self, digest: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 64);
        key.push_str(&self.prefix);
        key.push_str(digest);
        key
    }

    /// What the read script answered for `key`.
    pub(super) fn loaded(&self, key: &str, answer: Value) -> Result<Option<Versioned>, Error> {
        match answer {
            Value::Nil => Ok(None),
            Value::Int(-1) => Err(corrupt(key, "the key is not a hash")),
            Value::Int(-2) => Err(corrupt(key, "field v is not a version")),
            Value::Int(size) => {
                let size = u64::try_from(size).unwrap_or(u64::MAX);
                Record::check_stored_size(&named(key), size, self.max_record_size)?;
                Err(Error::backend(
                    "the read script refused a record within the limit",
                ))
            }
            Value::Array(fields) => match <[Value; 3]>::try_from(fields) {
                Ok([Value::BulkString(version), Value::BulkString(data), renewed]) => {
                    let version = std::str::from_utf8(&version)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| corrupt(key, "field v is not a version"))?;
                    let mut record = Record::decode(&named(key), &data)?;
                    // Written by a renewal; absent from records of earlier versions.
                    if let Value::BulkString(renewed) = renewed {
                        let renewed = std::str::from_utf8(&renewed).ok();
                        let renewed = renewed.and_then(|e| e.parse().ok());
                        record.extend_to(
                            renewed.ok_or_else(|| corrupt(key, "field e is not a time"))?,
                        );
                    }
                    Ok(Some(Versioned { record, version }))
                }
                _ => Err(corrupt(key, "the hash lacks field v or d")),
            },
            _ => Err(Error::backend("an unexpected answer to the read script")),
        }
    }

    /// Whether this backend talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.link.mode() == Mode::Cluster
    }

    /// Whether this is the first call, for a check made once per backend and its clones.
    pub(super) fn first_time_checking_eviction(&self) -> bool {
        !self.eviction_checked.swap(true, Ordering::Relaxed)
    }

    /// The largest record a read accepts.
    pub(super) fn max_record_size(&self) -> usize {
        self.max_record_size
    }
}

/// How errors and logs name a key: the key itself, which holds a digest of the id, not the
/// id (a bearer credential), so that an operator can look the record up.
fn named(key: &str) -> String {
    format!("{key} (redis)")
}

fn corrupt(key: &str, reason: &str) -> Error {
    Error::corrupt(named(key), reason)
}

impl RedisBackend {
    /// Stores `record` under `id`, over a record of `stored_owner` as far as the caller
    /// knows: on a single server, the script then also gets that owner's set, and removes
    /// the entry there when the record it replaces is indeed that owner's, so that a save
    /// that changes or clears the owner takes one round trip rather than two.
    async fn store_over(
        &self,
        id: &SessionId,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
        stored_owner: Option<&str>,
    ) -> Result<bool, Error> {
        let args = (expectation(expected), WriteArgs::new(record, ttl));
        let key = self.key_of(id);
        let owner = record.owner.as_deref().map(id_digest);
        if self.is_cluster() {
            // The sets are in other slots than the key: the hint cannot be used.
            if let Some(owner) = &owner {
                return self.store_owned_in_steps(&key, owner, &args).await;
            }
            let call = |in_full| script_call(&STORE, in_full, &[&key], &args);
            let written: Written<Value> = self.write(&key, call, true).await?;
            return self.after_write(written, &key).await;
        }
        // An index entry to remove only when the record may leave its owner.
        let former = stored_owner
            .filter(|former| record.owner.as_deref() != Some(*former))
            .map(id_digest);
        let handle = handle_of(&key, &self.prefix);
        let mut keys = vec![key.as_str()];
        let set = owner.as_deref().map(|owner| self.owner_key(owner));
        keys.extend(set.as_deref());
        let former_set = former.as_deref().map(|former| self.owner_key(former));
        keys.extend(former_set.as_deref());
        let written: Written<Value> = match (&owner, &former) {
            (None, None) => {
                let call = |in_full| script_call(&STORE, in_full, &keys, &args);
                self.write(&key, call, true).await?
            }
            (Some(owner), None) => {
                let args = (&args, owner, handle);
                let call = |in_full| script_call(&STORE, in_full, &keys, &args);
                self.write(&key, call, true).await?
            }
            (owner, Some(former)) => {
                let owner = owner.as_deref().unwrap_or("");
                let args = (&args, owner, handle, "", former);
                let call = |in_full| script_call(&STORE, in_full, &keys, &args);
                self.write(&key, call, true).await?
            }
        };
        self.after_write(written, &key).await
    }

    /// Deletes the record under `id` if what is stored there is what `expected` says; on a
    /// single server, the entry of `stored_owner`, the owner the caller expects the record
    /// to have, goes in the same script when the record is indeed that owner's.
    async fn delete_over(
        &self,
        id: &SessionId,
        expected: Expected,
        stored_owner: Option<&str>,
    ) -> Result<bool, Error> {
        let key = self.key_of(id);
        // A delete writes no version (`ARGV[2]` empty), so an answer lost to a failover
        // cannot be told from "not met": only a delete of whatever is there is sent again.
        let repeatable = expected == Expected::Any;
        let args = (expectation(expected), "");
        let written: Written<Value> = match stored_owner.filter(|_| !self.is_cluster()) {
            None => {
                let call = |in_full| script_call(&DELETE, in_full, &[&key], &args);
                self.write(&key, call, repeatable).await?
            }
            Some(owner) => {
                let owner = id_digest(owner);
                let set = self.owner_key(&owner);
                let args = (&args, &owner, handle_of(&key, &self.prefix));
                let call = |in_full| script_call(&DELETE, in_full, &[&key, &set], &args);
                self.write(&key, call, repeatable).await?
            }
        };
        self.after_write(written, &key).await
    }
}

impl SessionBackend for RedisBackend {
    const NAME: &'static str = "redis";

    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
        let key = self.key_of(id);
        let answer: Value = self.eval(&LOAD, &[&key], self.max_record_size).await?;
        self.loaded(&key, answer)
    }

    async fn store(
        &self,
        id: &SessionId,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        self.store_over(id, record, ttl, expected, None).await
    }

    async fn delete(&self, id: &SessionId, expected: Expected) -> Result<bool, Error> {
        self.delete_over(id, expected, None).await
    }

    async fn store_replacing(
        &self,
        id: &SessionId,
        record: Record,
        ttl: Option<Duration>,
        expected: Expected,
        stored_owner: Option<&str>,
    ) -> Result<bool, Error> {
        self.store_over(id, &record, ttl, expected, stored_owner)
            .await
    }

    async fn delete_replacing(
        &self,
        id: &SessionId,
        expected: Expected,
        stored_owner: Option<&str>,
    ) -> Result<bool, Error> {
        self.delete_over(id, expected, stored_owner).await
    }

    /// One script that sets field `e` and the key's expiry, leaving `d` and `v` as they
    /// are; on a Cluster, an owned session's entry is rescored after it, as after a save.
    async fn renew(&self, id: &SessionId, renewal: Renewal<'_>) -> Result<bool, Error> {
        let key = self.key_of(id);
        let ttl_ms = renewal
            .ttl
            .map_or(0, |ttl| ttl.min(MAX_TTL).as_millis().max(1) as u64);
        let expires_at = renewal.expires_at_ms.unwrap_or(0);
        let owner = renewal.owner.filter(|_| !self.is_cluster()).map(id_digest);
        let written: Written<Value> = match &owner {
            None => {
                let args = (expires_at, ttl_ms);
                let call = |in_full| script_call(&RENEW, in_full, &[&key], &args);
                self.write(&key, call, true).await?
            }
            Some(owner) => {
                let set = self.owner_key(owner);
                let args = (expires_at, ttl_ms, owner, handle_of(&key, &self.prefix));
                let call = |in_full| script_call(&RENEW, in_full, &[&key, &set], &args);
                self.write(&key, call, true).await?
            }
        };
        let answer = Answer::of(&written.answer)?;
        let renewed = answer.code() == 1;
        self.replicated(written, renewed)?;
        if let Answer::Owner(owner) = &answer {
            self.rescore_after(owner, &key, ttl_ms).await;
        }
        Ok(renewed)
    }

    async fn store_moved(
        &self,
        from: &SessionId,
        expected: u64,
        delete_from: bool,
        to: &SessionId,
        record: &Record,
        ttl: Option<Duration>,
    ) -> Result<Moved, Error> {
        if self.is_cluster() {
            // The two keys are in different slots in general: one script cannot hold both.
            return store_moved_in_steps(self, from, expected, delete_from, to, record, ttl).await;
        }
        let delete_from = if delete_from { "1" } else { "0" };
        let args = (expected, delete_from, WriteArgs::new(record, ttl));
        let keys = [self.key_of(from), self.key_of(to)];
        let written: Written<Value> = match &record.owner {
            None => {
                let keys = [keys[0].as_str(), keys[1].as_str()];
                let call = |in_full| script_call(&MOVE, in_full, &keys, &args);
                self.write(keys[0], call, true).await?
            }
            Some(owner) => {
                let owner = id_digest(owner);
                let set = self.owner_key(&owner);
                let handles = (
                    handle_of(&keys[0], &self.prefix),
                    handle_of(&keys[1], &self.prefix),
                );
                let args = (&args, &owner, handles.0, handles.1);
                let keys = [keys[0].as_str(), keys[1].as_str(), set.as_str()];
                let call = |in_full| script_call(&MOVE, in_full, &keys, &args);
                self.write(keys[0], call, true).await?
            }
        };
        let answer = Answer::of(&written.answer)?;
        let moved = answer.code();
        self.replicated(written, moved == 1)?;
        if let Answer::Owner(previous) = answer {
            self.unindex_after(&previous, &keys[0]).await;
        }
        Ok(match moved {
            1 => Moved::Stored,
            0 => Moved::IdTaken,
            _ => Moved::SourceChanged,
        })
    }

    /// The read script gets the limit, so that an oversize record never leaves the server.
    fn limit_record_size(&mut self, bytes: usize) {
        self.max_record_size = bytes;
    }
}
