//! The Lua scripts behind [`RedisBackend`](super::RedisBackend): one per operation, each on
//! a single key except [`MOVE`] and those given an owner's set beside a session's key
//! (single servers only). Every key a script touches is one of its `KEYS`, as Redis asks
//! (and Redis-compatible servers such as Dragonfly enforce).
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
/// else `{v, d, e}` (each false when missing), `e` being the expiry a [`RENEW`] moved
/// beside the record.
pub(super) static LOAD: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        r#"local size = redis.pcall('HSTRLEN', KEYS[1], 'd')
if type(size) ~= 'number' then return -1 end
if size > tonumber(ARGV[1]) then return size end
if redis.call('HSTRLEN', KEYS[1], 'v') > 20 then return -2 end
local stored = redis.call('HMGET', KEYS[1], 'v', 'd', 'e')
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

/// Lua functions of the scripts that keep an owner's set: a sorted set of the owner's
/// session handles, each scored by when its session expires (server time, in milliseconds;
/// `NO_EXPIRY` for none), that expires with its newest session.
macro_rules! index_functions {
    () => {
        r#"local NO_EXPIRY = 9007199254740992
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Drops the entries of sessions expired by now; the set then expires with its newest.
local function tidy(set)
  redis.call('ZREMRANGEBYSCORE', set, '-inf', '(' .. now_ms())
  local top = redis.call('ZRANGE', set, -1, -1, 'WITHSCORES')
  if #top == 0 then return end
  local newest = tonumber(top[2])
  if newest >= NO_EXPIRY then
    redis.call('PERSIST', set)
  else
    redis.call('PEXPIREAT', set, string.format('%d', newest))
  end
end
-- The entry first: the set then holds a live member, which no trim removes. With
-- `existing`, only an entry already there is rescored.
local function index_add(set, handle, ttl_ms, margin_ms, existing)
  local score = NO_EXPIRY
  if ttl_ms ~= '0' then score = now_ms() + tonumber(ttl_ms) + tonumber(margin_ms) end
  if existing then
    redis.call('ZADD', set, 'XX', string.format('%d', score), handle)
  else
    redis.call('ZADD', set, string.format('%d', score), handle)
  end
  tidy(set)
end
-- The removal last: it may empty the set, and then nothing may touch it (see the module).
local function index_remove(set, handle)
  pcall(tidy, set)
  redis.call('ZREM', set, handle)
end
"#
    };
}

/// Writes a record if the key holds what is expected; ARGV[2] is the new version, ARGV[3]
/// the record, ARGV[4] its TTL in milliseconds (0: none). The fields are overwritten in
/// place; only a key of another type is deleted first.
///
/// An owned record also gets ARGV[5], its owner's digest, kept in field `o`, and ARGV[6],
/// its handle; with KEYS[2], its owner's set (single servers only), the script indexes it
/// too. On a Cluster, ARGV[7] says whether its entry was written first (`1`); if not
/// (`0`), the record is written only over one of the same owner, whose entry is there, and
/// the answer is -4 otherwise. An unowned record gets exactly the four arguments, and loses
/// a stored `o`. Answers 1, 0 (not met), -4, or the digest of the owner the record had
/// before when that differs, so that the caller removes its entry from that owner's set.
///
/// On a single server, a write that the caller expects to replace a record of another
/// owner gets that owner's digest as ARGV[8] (ARGV[5] empty for an unowned record, ARGV[7]
/// empty) and its set as the last of `KEYS`: when the record it replaces is that owner's,
/// the entry there goes in the same script, and the answer is 1.
pub(super) static STORE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(concat!(
        expectation_check!(),
        index_functions!(),
        r#"local owner = ARGV[5] or ''
local previous = redis.pcall('HGET', KEYS[1], 'o')
if type(previous) ~= 'string' then previous = '' end
if ARGV[7] == '0' and previous ~= owner then return -4 end
if type(stored) == 'table' and stored.err then redis.call('DEL', KEYS[1]) end
if owner ~= '' then
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3], 'o', owner)
else
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
  if previous ~= '' then redis.call('HDEL', KEYS[1], 'o') end
end
if ARGV[4] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('PERSIST', KEYS[1])
end
if owner ~= '' and KEYS[2] then index_add(KEYS[2], ARGV[6], ARGV[4], '0') end
if previous ~= '' and previous ~= owner then
  if previous ~= ARGV[8] then return previous end
  index_remove(KEYS[#KEYS], ARGV[6])
end
return 1
"#
    ))
});

/// Renews a session without rewriting its record: KEYS[1] its key, ARGV[1] its new expiry
/// (milliseconds since the epoch, kept in field `e`, which [`LOAD`] answers beside the
/// record), ARGV[2] the same as a TTL in milliseconds (0: none, nothing to move); each
/// only moves forward. On a single server an owned session also gets ARGV[3], the digest
/// of the owner the caller loaded it with, ARGV[4] its handle, and KEYS[2] that owner's
/// set, whose entry is rescored in the same step when the record is still that owner's.
/// Only a hash with a version is renewed, so a destroyed or ended session stays gone.
/// Answers 0 (gone), 1, or the digest of the record's owner when its entry is still to be
/// rescored (a Cluster, or an owner changed meanwhile).
pub(super) static RENEW: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(concat!(
        index_functions!(),
        r#"-- On a key that is not a hash, pcall gives an error (a table with err).
local fields = redis.pcall('HMGET', KEYS[1], 'v', 'e', 'o')
if fields.err or not fields[1] then return 0 end
if ARGV[2] ~= '0' then
  if tonumber(ARGV[1]) > (tonumber(fields[2] or '0') or 0) then
    redis.call('HSET', KEYS[1], 'e', ARGV[1])
  end
  local left = redis.call('PTTL', KEYS[1])
  if left >= 0 and left < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
local owner = fields[3] or ''
if owner == '' then return 1 end
if KEYS[2] and owner == ARGV[3] then
  index_add(KEYS[2], ARGV[4], ARGV[2], '0', true)
  return 1
end
return owner
"#
    ))
});

/// Deletes the key if it holds what is expected (ARGV[2] is empty: a delete writes no
/// version). Answers 0 (not met), 1, or the digest of the deleted record's owner (field
/// `o`), so that the caller removes its entry from that owner's set. On a single server,
/// a delete that the caller expects to find an owned record gets KEYS[2], the owner's set,
/// ARGV[3], the owner's digest, and ARGV[4], the handle: when the record is that owner's,
/// its entry goes in the same script, and the answer is 1.
pub(super) static DELETE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(concat!(
        expectation_check!(),
        index_functions!(),
        r#"local owner = redis.pcall('HGET', KEYS[1], 'o')
redis.call('DEL', KEYS[1])
if type(owner) == 'string' and owner ~= '' then
  if not KEYS[2] or owner ~= ARGV[3] then return owner end
  index_remove(KEYS[2], ARGV[4])
end
return 1
"#
    ))
});

/// Moves a session to a new key (`regenerate_id` on a single server, where a script may
/// touch several keys): KEYS[1] the old key, KEYS[2] the new one; ARGV[1] the version the
/// old key must hold, ARGV[2] `1` to delete it, ARGV[3..5] the new version, the record and
/// its TTL as [`STORE`]'s ARGV[2..4]. An owned record also gets KEYS[3], its owner's set,
/// ARGV[6] the owner's digest, ARGV[7] and ARGV[8] the old and new handles: the new key is
/// indexed, and the old key's entry goes with the old key. Answers 1 moved (or moved
/// already by this very call), 0 the new key is taken (by anything), -1 the old key changed
/// (or is not a hash), or, moved, the digest of the deleted old key's owner when that is
/// not the new one's, so that the caller removes its entry from that owner's set.
pub(super) static MOVE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(concat!(
        index_functions!(),
        r#"if redis.pcall('HGET', KEYS[2], 'v') == ARGV[3] then return 1 end
if redis.pcall('HGET', KEYS[1], 'v') ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local owner = ARGV[6] or ''
if owner ~= '' then
  redis.call('HSET', KEYS[2], 'v', ARGV[3], 'd', ARGV[4], 'o', owner)
else
  redis.call('HSET', KEYS[2], 'v', ARGV[3], 'd', ARGV[4])
end
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
if KEYS[3] then index_add(KEYS[3], ARGV[8], ARGV[5], '0') end
if ARGV[2] == '1' then
  local previous = redis.call('HGET', KEYS[1], 'o') or ''
  redis.call('DEL', KEYS[1])
  if previous ~= '' then
    if previous == owner then
      index_remove(KEYS[3], ARGV[7])
    else
      return previous
    end
  end
end
return 1
"#,
    ))
});

/// Indexes a session in its owner's set on a Cluster, where the two are in different
/// slots: KEYS[1] the set, ARGV[1] the handle, ARGV[2] the TTL in milliseconds (0: none),
/// ARGV[3] a margin added to the expiry, so that the entry outlives a record written on
/// another node around it; ARGV[4] `1` to only rescore an entry that is there (after its
/// record was saved again), `0` to add it (before its record is written).
pub(super) static INDEX: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(concat!(
        index_functions!(),
        r#"index_add(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1')
return 1
"#
    ))
});

/// Removes entries from an owner's set once their sessions are not the owner's: KEYS[1]
/// the set, ARGV[1] the owner's digest, ARGV[2..] the handles. On a single server KEYS[2..]
/// are the handles' session keys, and an entry goes only if its key's field `o` is not the
/// owner's in the same step, so that no concurrent write can lose its entry; on a Cluster
/// (no session keys given) the entries go as they are.
pub(super) static UNINDEX: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(concat!(
        index_functions!(),
        r#"local gone = {}
for i = 2, #ARGV do
  local key = KEYS[i]
  if not key or redis.pcall('HGET', key, 'o') ~= ARGV[1] then
    gone[#gone + 1] = ARGV[i]
  end
end
pcall(tidy, KEYS[1])
if #gone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end
return #gone
"#
    ))
});

/// Lists an owner's live sessions and drops the expired ones: KEYS[1] the set. Answers the
/// handles of the entries not expired by now.
pub(super) static LIST: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(concat!(
        index_functions!(),
        r#"local live = redis.call('ZRANGEBYSCORE', KEYS[1], now_ms(), '+inf')
pcall(tidy, KEYS[1])
return live
"#
    ))
});

/// Deletes a session if its owner is the one given: KEYS[1] its key, ARGV[1] the owner's
/// digest, ARGV[2] its handle; on a single server also KEYS[2], the owner's set, whose
/// entry goes in the same step (on a Cluster the caller removes it after). Answers 1
/// deleted, 0 not the owner's.
pub(super) static DELETE_OWNED: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(concat!(
        index_functions!(),
        r#"local owned = redis.pcall('HGET', KEYS[1], 'o') == ARGV[1]
if owned then redis.call('DEL', KEYS[1]) end
if KEYS[2] then index_remove(KEYS[2], ARGV[2]) end
if owned then return 1 end
return 0
"#
    ))
});

/// Ends sessions of one owner on a single server: KEYS[1] the owner's set, KEYS[2..] the
/// keys of the sessions to end, ARGV[1] the owner's digest, ARGV[2] how many sessions,
/// then their handles, then the handles to spare. Each session still the owner's is
/// deleted, and its entry goes (as does the entry of one that is no longer the owner's).
/// Answers how many it deleted and how many entries are left but the spared ones, so that
/// the caller knows whether sessions came meanwhile.
pub(super) static DELETE_ALL_OWNED: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(concat!(
        index_functions!(),
        r#"local count = tonumber(ARGV[2])
local ended = 0
for i = 1, count do
  local key = KEYS[i + 1]
  if redis.pcall('HGET', key, 'o') == ARGV[1] then
    redis.call('DEL', key)
    ended = ended + 1
  end
  redis.call('ZREM', KEYS[1], ARGV[i + 2])
end
local spared = {}
for i = count + 3, #ARGV do spared[ARGV[i]] = true end
local others = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  tidy(KEYS[1])
  for _, handle in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if not spared[handle] then others = others + 1 end
  end
end
return {ended, others}
"#
    ))
});

/// `ARGV[1]` of the scripts that write or delete.
pub(super) fn expectation(expected: Expected) -> String {
    match expected {
        Expected::Absent => "absent".to_owned(),
        Expected::Any => "any".to_owned(),
        Expected::Version(version) => version.to_string(),
    }
}
