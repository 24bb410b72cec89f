//! The Lua scripts behind [`RedisBackend`](super::RedisBackend): one per operation, each on
//! a single key except [`MOVE`] (single servers only).
//!
//! Every script is safe against a refusal halfway: while a Redis Cluster migrates a slot, a
//! command on a key that a script has made absent is refused, and what the script did before
//! stays done. So no script deletes a session before its last write: a store overwrites the
//! hash's fields in place and deletes only a key of another type, and a delete comes last.
//!
//! Writes are idempotent: a store names the version it writes, and a retry of a store that
//! already took effect (its first answer lost to a failover or a rebuilt connection) finds
//! that version and answers "stored" without writing again.

use std::sync::LazyLock;

use super::super::Expected;

/// A Lua script sent by its SHA-1 (`EVALSHA`), and in full (`EVAL`) on a node that does not
/// have it cached (a restarted server, a promoted replica, a slot's new owner).
pub(super) struct Lua {
    pub source: &'static str,
    pub hash: String,
}

impl Lua {
    fn new(source: &'static str) -> Lua {
        Lua {
            source,
            hash: redis::Script::new(source).get_hash().to_owned(),
        }
    }
}

/// Reads a session in one round trip, refusing a record too big to send: KEYS[1] is its
/// key, ARGV[1] the largest field `d` to send, in bytes. Answers nil when there is no key,
/// -1 when it is not a hash, -2 when its field `v` is too long to be a version, the size
/// of `d` when that is over ARGV[1] (`HSTRLEN`: the record itself never leaves the server),
/// else `{v, d}` (either false when missing).
pub(super) static LOAD: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r#"local size = redis.pcall('HSTRLEN', KEYS[1], 'd')
if type(size) ~= 'number' then return -1 end
if size > tonumber(ARGV[1]) then return size end
if redis.call('HSTRLEN', KEYS[1], 'v') > 20 then return -2 end
local stored = redis.call('HMGET', KEYS[1], 'v', 'd')
if not stored[1] and not stored[2] and redis.call('EXISTS', KEYS[1]) == 0 then
  return nil
end
return stored
"#,
    )
});

/// The check the scripts that write or delete start with, so that they agree with [`LOAD`]
/// on what is stored: `KEYS[1]` is a session's key, `ARGV[1]` what it must hold, `ARGV[2]`
/// the version a write puts there (so that a retried write that already took effect answers
/// 1). A key of another type is neither absent nor at any version, so a conditional write
/// answers "not met" rather than failing with `WRONGTYPE`.
macro_rules! expectation_check {
    () => {
        r#"-- ARGV[1]: 'absent' (no key at all), 'any', or the version in field v.
-- On a key that is not a hash, pcall gives an error (a table), never a version.
local stored = redis.pcall('HGET', KEYS[1], 'v')
if ARGV[2] ~= '' and stored == ARGV[2] then return 1 end
if ARGV[1] == 'absent' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
elseif ARGV[1] ~= 'any' then
  if stored ~= ARGV[1] then return 0 end
end
"#
    };
}

/// Writes a record if the key holds what is expected; ARGV[2] is the new version, ARGV[3]
/// the record, ARGV[4] its TTL in milliseconds (0: none). The fields are overwritten in
/// place; only a key of another type is deleted first.
pub(super) static STORE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(concat!(
        expectation_check!(),
        r#"if type(stored) == 'table' and stored.err then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
if ARGV[4] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('PERSIST', KEYS[1])
end
return 1
"#
    ))
});

/// Deletes the key if it holds what is expected (ARGV[2] is empty: a delete writes no
/// version).
pub(super) static DELETE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(concat!(
        expectation_check!(),
        r#"redis.call('DEL', KEYS[1])
return 1
"#
    ))
});

/// Moves a session to a new key (`regenerate_id` on a single server, where a script may
/// touch two keys): KEYS[1] the old key, KEYS[2] the new one; ARGV[1] the version the old
/// key must hold, ARGV[2] `1` to delete it, ARGV[3..5] the new version, the record and its
/// TTL as [`STORE`]'s ARGV[2..4]. Answers 1 moved (or moved already by this very call), 0
/// the new key is taken (by anything), -1 the old key changed (or is not a hash).
pub(super) static MOVE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r#"if redis.pcall('HGET', KEYS[2], 'v') == ARGV[3] then return 1 end
if redis.pcall('HGET', KEYS[1], 'v') ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'v', ARGV[3], 'd', ARGV[4])
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) end
return 1
"#,
    )
});

/// `ARGV[1]` of the scripts that write or delete.
pub(super) fn expectation(expected: Expected) -> String {
    match expected {
        Expected::Absent => "absent".to_owned(),
        Expected::Any => "any".to_owned(),
        Expected::Version(version) => version.to_string(),
    }
}
