//! How [`RedisBackend`] sends its scripts: by hash, and in full where a node lacks one; a
//! write with [`RedisStorage::wait_for_replicas`](super::RedisStorage::wait_for_replicas)
//! waits for the replicas in the same round trip.

use std::time::Duration;

use redis::{FromRedisValue, Pipeline, RedisWrite, ToRedisArgs, Value};

use super::backend::{MAX_TTL, RedisBackend};
use super::connection::single;
use super::scripts::Lua;
use crate::Error;
use crate::storage::Record;

/// What a write answered, and how many replicas hold it when it waited for them.
pub(super) struct Written<T> {
    pub answer: T,
    pub replicas: Option<usize>,
}

impl RedisBackend {
    /// Runs `script` on `keys`: by its hash, and in full where the node lacks it.
    pub(super) async fn eval<T: FromRedisValue>(
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
    pub(super) async fn write<T: FromRedisValue>(
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

    /// Sends what `build` makes (see [`Link::send`]), which only reads or may be sent
    /// again, and answers every reply.
    pub(super) async fn link_send(
        &self,
        key: &str,
        build: impl Fn(bool) -> Pipeline,
    ) -> Result<Vec<Value>, Error> {
        self.link
            .send(key, build, true, self.response_timeout)
            .await
    }

    /// How long a write may take in all, the wait for replicas included.
    pub(super) fn write_timeout(&self) -> Duration {
        match &self.replicas {
            Some(replicas) => replicas.write_timeout(self.response_timeout),
            None => self.response_timeout,
        }
    }

    /// Fails a write that fewer replicas than asked acknowledged.
    pub(super) fn replicated<T>(&self, written: Written<T>, wrote: bool) -> Result<T, Error> {
        if let (Some(acknowledged), Some(wanted)) = (written.replicas, &self.replicas)
            && wrote
        {
            wanted.check(acknowledged)?;
        }
        Ok(written.answer)
    }
}

/// `EVALSHA` of `script` on `keys` with `args`, or `EVAL` with the script `in_full`.
pub(super) fn script_call(
    script: &Lua,
    in_full: bool,
    keys: &[&str],
    args: &impl ToRedisArgs,
) -> Pipeline {
    let mut commands = redis::pipe();
    add_script_call(&mut commands, script, in_full, keys, args);
    commands
}

/// Appends [`script_call`]'s command to `commands`.
pub(super) fn add_script_call(
    commands: &mut Pipeline,
    script: &Lua,
    in_full: bool,
    keys: &[&str],
    args: &impl ToRedisArgs,
) {
    let call = if in_full {
        commands.cmd("EVAL").arg(script.source)
    } else {
        commands.cmd("EVALSHA").arg(&script.hash)
    };
    call.arg(keys.len()).arg(keys).arg(args);
}

/// What the scripts that write take after the expectation: the new version, the record and
/// its TTL in milliseconds (0: none), three arguments in this order.
pub(super) struct WriteArgs {
    pub version: u64,
    record: Vec<u8>,
    pub ttl_ms: u64,
}

impl WriteArgs {
    pub fn new(record: &Record, ttl: Option<Duration>) -> WriteArgs {
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
