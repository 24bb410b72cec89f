//! [`RedisBackend`]: a session's load, store and delete as Lua scripts on its key.

use std::sync::Arc;
use std::time::Duration;

use redis::{FromRedisValue, Pipeline, RedisWrite, ToRedisArgs, Value};

#[cfg(doc)]
use super::RedisStorage;
use super::connection::{Link, Mode, single};
use super::replicas::Replicas;
use super::scripts::{DELETE, LOAD, Lua, MOVE, STORE, expectation};
use crate::Error;
use crate::storage::{
    DEFAULT_MAX_RECORD_SIZE, Expected, Moved, Record, SessionBackend, Versioned, id_digest,
    store_moved_in_steps,
};

/// The default key prefix.
const DEFAULT_PREFIX: &str = "session:";

/// The longest expiry written: `PEXPIRE` refuses a count of milliseconds past `i64`
/// ("value is not an integer or out of range") or one that overflows when added to the
/// clock ("invalid expire time"), so a `Duration::MAX` TTL or lifetime is capped here, and
/// no session needs to outlive a century.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The [`SessionBackend`] behind [`RedisStorage`]: one Redis connection (a single server,
/// a cluster or a Sentinel-watched master), a key prefix and the largest record a read
/// accepts. Clones share the connection.
#[derive(Clone)]
pub struct RedisBackend {
    link: Arc<Link>,
    replicas: Option<Arc<Replicas>>,
    prefix: Arc<str>,
    response_timeout: Duration,
    max_record_size: usize,
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

/// What a write answered, and how many replicas hold it when it waited for them.
struct Written<T> {
    answer: T,
    replicas: Option<usize>,
}

impl RedisBackend {
    pub(super) fn new(link: Link, response_timeout: Duration) -> Self {
        RedisBackend {
            link: Arc::new(link),
            replicas: None,
            prefix: Arc::from(DEFAULT_PREFIX),
            response_timeout,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
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
        let mut key = String::with_capacity(self.prefix.len() + 64);
        key.push_str(&self.prefix);
        key.push_str(&id_digest(id));
        key
    }

    /// Whether this backend talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.link.mode() == Mode::Cluster
    }

    /// Runs `script` on `keys`: by its hash, and in full where the node lacks it.
    async fn eval<T: FromRedisValue>(
        &self,
        script: &Lua,
        keys: &[&str],
        args: impl ToRedisArgs,
    ) -> Result<T, Error> {
        let call = |in_full| script_call(script, in_full, keys, &args);
        single(
            self.link
                .send(keys[0], call, true, self.response_timeout)
                .await?,
        )
    }

    /// A write on `key`: sends what `call` builds (see [`Link::send`]), and with
    /// [`RedisStorage::wait_for_replicas`] waits for the replicas in the same round trip, on
    /// a connection of the waiting ones. A `repeatable` write has no effect when sent again
    /// after it took effect.
    async fn write<T: FromRedisValue>(
        &self,
        key: &str,
        call: impl Fn(bool) -> Pipeline,
        repeatable: bool,
    ) -> Result<Written<T>, Error> {
        let Some(replicas) = &self.replicas else {
            let replies = self.link.send(key, call, repeatable, self.response_timeout);
            return Ok(Written {
                answer: single(replies.await?)?,
                replicas: None,
            });
        };
        let link = replicas.link(&self.link, self.response_timeout).await?;
        let call_and_wait = |in_full| {
            let mut commands = call(in_full);
            replicas.append_wait(&mut commands);
            commands
        };
        let timeout = replicas.write_timeout(self.response_timeout);
        let mut replies = link.send(key, call_and_wait, repeatable, timeout).await?;
        let acknowledged: usize = single(replies.split_off(1))?;
        Ok(Written {
            answer: single(replies)?,
            replicas: Some(acknowledged),
        })
    }

    /// Fails a write that fewer replicas than asked acknowledged.
    fn replicated<T>(&self, written: Written<T>, wrote: bool) -> Result<T, Error> {
        if let (Some(acknowledged), Some(wanted)) = (written.replicas, &self.replicas)
            && wrote
        {
            wanted.check(acknowledged)?;
        }
        Ok(written.answer)
    }
}

/// `EVALSHA` of `script` on `keys` with `args`, or `EVAL` with the script `in_full`.
fn script_call(script: &Lua, in_full: bool, keys: &[&str], args: &impl ToRedisArgs) -> Pipeline {
    let mut commands = redis::pipe();
    let call = if in_full {
        commands.cmd("EVAL").arg(script.source)
    } else {
        commands.cmd("EVALSHA").arg(&script.hash)
    };
    call.arg(keys.len()).arg(keys).arg(args);
    commands
}

/// What the scripts that write take after the expectation: the new version, the record and
/// its TTL in milliseconds (0: none), three arguments in this order.
struct WriteArgs {
    version: u64,
    record: Vec<u8>,
    ttl_ms: u64,
}

impl WriteArgs {
    fn new(record: &Record, ttl: Option<Duration>) -> WriteArgs {
        WriteArgs {
            // Random, so that a version never repeats, even after a delete and a re-create.
            version: rand::random::<u64>(),
            record: record.encode(),
            // PEXPIRE 0 would delete the key; a record due now lives one millisecond.
            ttl_ms: ttl.map_or(0, |ttl| ttl.min(MAX_TTL).as_millis().max(1) as u64),
        }
    }
}

impl ToRedisArgs for WriteArgs {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        self.version.write_redis_args(out);
        self.record.write_redis_args(out);
        self.ttl_ms.write_redis_args(out);
    }

    fn num_of_args(&self) -> usize {
        3
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

impl SessionBackend for RedisBackend {
    const NAME: &'static str = "redis";

    async fn load(&self, id: &str) -> Result<Option<Versioned>, Error> {
        let key = self.key(id);
        let answer: Value = self.eval(&LOAD, &[&key], self.max_record_size).await?;
        match answer {
            Value::Nil => Ok(None),
            Value::Int(-1) => Err(corrupt(&key, "the key is not a hash")),
            Value::Int(-2) => Err(corrupt(&key, "field v is not a version")),
            Value::Int(size) => {
                let size = u64::try_from(size).unwrap_or(u64::MAX);
                Record::check_stored_size(&named(&key), size, self.max_record_size)?;
                Err(Error::backend(
                    "the read script refused a record within the limit",
                ))
            }
            Value::Array(fields) => match <[Value; 2]>::try_from(fields) {
                Ok([Value::BulkString(version), Value::BulkString(data)]) => {
                    let version = std::str::from_utf8(&version)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| corrupt(&key, "field v is not a version"))?;
                    let record = Record::decode(&named(&key), &data)?;
                    Ok(Some(Versioned { record, version }))
                }
                _ => Err(corrupt(&key, "the hash lacks field v or d")),
            },
            _ => Err(Error::backend("an unexpected answer to the read script")),
        }
    }

    async fn store(
        &self,
        id: &str,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        let args = (expectation(expected), WriteArgs::new(record, ttl));
        let key = self.key(id);
        let written = self
            .write(
                &key,
                |in_full| script_call(&STORE, in_full, &[&key], &args),
                true,
            )
            .await?;
        let stored = written.answer;
        self.replicated(written, stored)
    }

    async fn delete(&self, id: &str, expected: Expected) -> Result<bool, Error> {
        let key = self.key(id);
        let written = if expected == Expected::Any {
            let delete = |_| {
                let mut commands = redis::pipe();
                commands.cmd("DEL").arg(&key);
                commands
            };
            let written = self.write::<()>(&key, delete, true).await?;
            Written {
                answer: true,
                replicas: written.replicas,
            }
        } else {
            // A delete writes no version (`ARGV[2]` empty), so an answer lost to a failover
            // cannot be told from "not met": it is not sent again.
            let args = (expectation(expected), "");
            self.write(
                &key,
                |in_full| script_call(&DELETE, in_full, &[&key], &args),
                false,
            )
            .await?
        };
        let deleted = written.answer;
        self.replicated(written, deleted)
    }

    async fn store_moved(
        &self,
        from: &str,
        expected: u64,
        delete_from: bool,
        to: &str,
        record: &Record,
        ttl: Option<Duration>,
    ) -> Result<Moved, Error> {
        if self.is_cluster() {
            // The two keys are in different slots in general: one script cannot hold both.
            return store_moved_in_steps(self, from, expected, delete_from, to, record, ttl).await;
        }
        let delete_from = if delete_from { "1" } else { "0" };
        let args = (expected, delete_from, WriteArgs::new(record, ttl));
        let keys = [self.key(from), self.key(to)];
        let keys = [keys[0].as_str(), keys[1].as_str()];
        let written = self
            .write(
                keys[0],
                |in_full| script_call(&MOVE, in_full, &keys, &args),
                true,
            )
            .await?;
        let moved: i64 = written.answer;
        self.replicated(written, moved == 1)?;
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
