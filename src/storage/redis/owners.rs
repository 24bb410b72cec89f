//! The owner index of [`RedisBackend`]: per owner a sorted set of its sessions' handles,
//! scored by their expiry, kept by the scripts that write and delete sessions, so that
//! [`RedisStorage`](super::RedisStorage) implements [`SessionIndex`](crate::SessionIndex).

use std::time::Duration;

use redis::{FromRedisValue, Value};

use super::backend::{MAX_TTL, RedisBackend};
use super::calls::{WriteArgs, Written, add_script_call, script_call};
use super::scripts::{DELETE_ALL_OWNED, DELETE_OWNED, INDEX, LIST, LOAD, STORE, UNINDEX};
use crate::storage::{OwnerIndexBackend, Record, Versioned, delete_all_owned_in_rounds, id_digest};
use crate::{Error, SessionHandle};

/// How many listings [`RedisBackend::delete_all_owned`] makes on a single server: each
/// catches the sessions that came or moved meanwhile, and new logins cannot keep it busy.
const MAX_DELETE_ROUNDS: usize = 8;

/// How far a Cluster's index entry may outlive its session beyond the time the record's
/// write may take: the two are on different nodes, whose clocks may differ by this much.
const CLUSTER_CLOCK_SKEW: Duration = Duration::from_secs(1);

/// What a script that writes or deletes a session answered.
pub(super) enum Answer {
    /// 1 done, 0 not met, -1 (a move) the old key changed, -4 (a Cluster save) the
    /// stored owner is another, so the entry must be written first.
    Code(i64),
    /// Done, and the record was this owner's (its digest) before: its entry must go.
    Owner(String),
}

impl Answer {
    pub fn of(value: &Value) -> Result<Answer, Error> {
        match value {
            Value::Int(code) => Ok(Answer::Code(*code)),
            Value::BulkString(digest) => match std::str::from_utf8(digest) {
                Ok(digest) => Ok(Answer::Owner(digest.to_owned())),
                Err(_) => Err(Error::backend("an owner digest that is not text")),
            },
            _ => Err(Error::backend("an unexpected answer to a write script")),
        }
    }

    pub fn code(&self) -> i64 {
        match self {
            Answer::Code(code) => *code,
            Answer::Owner(_) => 1,
        }
    }
}

/// The handle of the session under `key`: the digest after the prefix.
pub(super) fn handle_of<'k>(key: &'k str, prefix: &str) -> &'k str {
    &key[prefix.len()..]
}

impl RedisBackend {
    /// The key of the set of the owner whose digest is `owner`: the owner is hashed, so
    /// that keys stay short, hold no e-mail address or user name, and no `{`/`}` in it
    /// can act as a Cluster hash tag.
    pub(super) fn owner_key(&self, owner: &str) -> String {
        format!("{}owner:{owner}", self.prefix())
    }

    /// The session key named by a handle.
    fn handle_key(&self, handle: &str) -> String {
        format!("{}{handle}", self.prefix())
    }

    /// Whether writes may be refused halfway and run their steps on different nodes.
    fn split_steps(&self) -> bool {
        self.is_cluster()
    }

    /// Whether a write took effect, after it removed the entry of the owner the record had
    /// before (which the write answered).
    pub(super) async fn after_write(
        &self,
        written: Written<Value>,
        key: &str,
    ) -> Result<bool, Error> {
        let answer = Answer::of(&written.answer)?;
        let wrote = answer.code() == 1;
        self.replicated(written, wrote)?;
        if let Answer::Owner(previous) = answer {
            self.unindex_after(&previous, key).await;
        }
        Ok(wrote)
    }

    /// An owned save on a Cluster, where the session's key and its owner's set are in
    /// different slots. A new session (`Expected::Absent`) gets its entry first, then its
    /// record. A saved one is written only over a record of the same owner, whose entry is
    /// there, and then that entry is rescored to the new expiry: a save that finds the
    /// session ended writes no entry. One whose owner changes gets its entry first, then its
    /// record; the entry of the former owner goes after.
    pub(super) async fn store_owned_in_steps(
        &self,
        key: &str,
        owner: &str,
        args: &(String, WriteArgs),
    ) -> Result<bool, Error> {
        let handle = handle_of(key, self.prefix());
        let ttl_ms = args.1.ttl_ms;
        let mut indexed = args.0 == "absent";
        loop {
            if indexed {
                self.index(owner, handle, ttl_ms, false).await?;
            }
            let flag = if indexed { "1" } else { "0" };
            let args = (args, owner, handle, flag);
            let call = |in_full| script_call(&STORE, in_full, &[key], &args);
            let written: Written<Value> = self.write(key, call, true).await?;
            match Answer::of(&written.answer)? {
                Answer::Code(-4) if !indexed => indexed = true,
                Answer::Code(1) if !indexed => {
                    self.replicated(written, true)?;
                    // The record was the owner's, so its entry is there: it now expires
                    // after the record again. A failure leaves it expiring before: the
                    // session's next save rescores it.
                    if let Err(error) = self.index(owner, handle, ttl_ms, true).await {
                        tracing::warn!(%error, "session storage: a Redis owner index entry was not rescored");
                    }
                    return Ok(true);
                }
                _ => return self.after_write(written, key).await,
            }
        }
    }

    /// Writes the entry of a session in its owner's set (a Cluster), scored past the
    /// record's expiry by the time the record's write may take and a clock skew; with
    /// `existing`, only rescores an entry that is there.
    async fn index(
        &self,
        owner: &str,
        handle: &str,
        ttl_ms: u64,
        existing: bool,
    ) -> Result<(), Error> {
        let set = self.owner_key(owner);
        let margin = self
            .write_timeout()
            .saturating_add(CLUSTER_CLOCK_SKEW)
            .min(MAX_TTL)
            .as_millis() as u64;
        let existing = if existing { "1" } else { "0" };
        let args = (handle, ttl_ms, margin, existing);
        let call = |in_full| script_call(&INDEX, in_full, &[&set], &args);
        let written: Written<Value> = self.write(&set, call, true).await?;
        self.replicated(written, true)?;
        Ok(())
    }

    /// Rescores the entry of the session under `key` in its owner's set (the owner's
    /// digest) to the expiry a renewal just moved it to. A failure leaves the entry expiring
    /// before the record, which the session's next save rescores, so it is logged rather
    /// than failing a renewal that took effect.
    pub(super) async fn rescore_after(&self, owner: &str, key: &str, ttl_ms: u64) {
        let handle = handle_of(key, self.prefix());
        if let Err(error) = self.index(owner, handle, ttl_ms, true).await {
            tracing::warn!(%error, "session storage: a Redis owner index entry was not rescored");
        }
    }

    /// Removes the entry of the session under `key` from the set of the owner it no longer
    /// has (its digest), after its record changed. A failure leaves a stale entry, which
    /// listings skip, so it is logged rather than failing a save that took effect.
    pub(super) async fn unindex_after(&self, owner: &str, key: &str) {
        let handle = handle_of(key, self.prefix());
        if let Err(error) = self.unindex(owner, &[handle]).await {
            tracing::warn!(%error, "session storage: a stale Redis owner index entry is left");
        }
    }

    /// Removes the entries of `handles` from the set of `owner` (a digest): on a single
    /// server only those whose session is not the owner's, checked in the same step.
    async fn unindex(&self, owner: &str, handles: &[&str]) -> Result<(), Error> {
        let set = self.owner_key(owner);
        let mut keys = vec![set.clone()];
        if !self.split_steps() {
            keys.extend(handles.iter().map(|handle| self.handle_key(handle)));
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let args = (owner, handles);
        let call = |in_full| script_call(&UNINDEX, in_full, &keys, &args);
        self.link_send(&set, call).await?;
        Ok(())
    }

    /// The handles of the live entries of `owner`'s set (its digest).
    async fn listed(&self, owner: &str) -> Result<Vec<String>, Error> {
        let set = self.owner_key(owner);
        if self.first_time_checking_eviction() {
            self.warn_of_eviction(&set).await;
        }
        self.eval(&LIST, &[&set], Vec::<String>::new()).await
    }

    /// Logs a warning when the server (the node of `key`) may evict keys: an evicted set
    /// would let its owner's live sessions escape `end_sessions_of`. Looked at once, on the
    /// first listing, since only the operator can change it; a server that refuses `INFO`
    /// is left alone.
    async fn warn_of_eviction(&self, key: &str) {
        let info = |_| {
            let mut commands = redis::pipe();
            commands.cmd("INFO").arg("memory");
            commands
        };
        let Ok(replies) = self.link_send(key, info).await else {
            return;
        };
        let Some(text) = replies
            .into_iter()
            .next()
            .and_then(|reply| String::from_redis_value(reply).ok())
        else {
            return;
        };
        let policy = text
            .lines()
            .find_map(|line| line.strip_prefix("maxmemory_policy:"))
            .map(str::trim);
        if let Some(policy) = policy.filter(|policy| *policy != "noeviction") {
            tracing::warn!(
                policy,
                "session storage: this Redis may evict keys; an evicted owner set lets its \
                 sessions escape end_sessions_of (set maxmemory-policy noeviction)"
            );
        }
    }

    /// The records under `keys`, each read as [`load`](crate::storage::SessionBackend::load)
    /// reads one: in one pipeline on a single server, side by side on a Cluster.
    async fn load_keys(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<Result<Option<Versioned>, Error>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if !self.split_steps() {
            let limit = self.max_record_size();
            let build = |in_full| {
                let mut commands = redis::pipe();
                for key in &keys {
                    add_script_call(&mut commands, &LOAD, in_full, &[key], &limit);
                }
                commands
            };
            let answers = self.link_send(&keys[0], build).await?;
            return Ok(keys
                .iter()
                .zip(answers)
                .map(|(key, answer)| self.loaded(key, answer))
                .collect());
        }
        let mut reads = tokio::task::JoinSet::new();
        for (at, key) in keys.into_iter().enumerate() {
            let backend = self.clone();
            reads.spawn(async move {
                let answer = backend
                    .eval(&LOAD, &[&key], backend.max_record_size())
                    .await;
                (at, answer.and_then(|answer| backend.loaded(&key, answer)))
            });
        }
        let mut loaded: Vec<Option<Result<Option<Versioned>, Error>>> = Vec::new();
        loaded.resize_with(reads.len(), || None);
        while let Some(read) = reads.join_next().await {
            let (at, read) =
                read.map_err(|e| Error::backend(format!("a read task failed: {e}")))?;
            loaded[at] = Some(read);
        }
        Ok(loaded.into_iter().flatten().collect())
    }
}

/// Every listing verifies each record's owner, so an entry may be stale (its session gone
/// or another owner's) but a live owned session is never missing: every write that makes
/// a session an owner's adds its entry in the same script (single server) or before it (a
/// Cluster), and an entry goes in the same script as its session or after it.
impl OwnerIndexBackend for RedisBackend {
    async fn records_of(&self, owner: &str) -> Result<Vec<(SessionHandle, Record)>, Error> {
        let digest = id_digest(owner);
        let handles = self.listed(&digest).await?;
        let keys = handles
            .iter()
            .map(|handle| self.handle_key(handle))
            .collect();
        let loaded = self.load_keys(keys).await?;
        let mut records = Vec::with_capacity(handles.len());
        let mut stale = Vec::new();
        for (handle, loaded) in handles.iter().zip(loaded) {
            match (handle.parse::<SessionHandle>(), loaded) {
                (Ok(parsed), Ok(Some(Versioned { record, .. })))
                    if record.owner.as_deref() == Some(owner) =>
                {
                    records.push((parsed, record));
                }
                // Unreadable: neither listed nor dropped, as its owner is unknown.
                (Ok(_), Err(Error::Corrupt { .. })) => {}
                (_, Err(error)) => return Err(error),
                _ => stale.push(handle.as_str()),
            }
        }
        // On a Cluster a stale entry cannot be told from one written just before its
        // record, so it is left to expire with the session it named.
        // A failed trim fails no listing: the entries stay stale, and the next one tries again.
        if !stale.is_empty()
            && !self.split_steps()
            && let Err(error) = self.unindex(&digest, &stale).await
        {
            tracing::warn!(%error, "session storage: stale Redis owner index entries are left");
        }
        Ok(records)
    }

    async fn delete_owned(&self, owner: &str, handle: &SessionHandle) -> Result<bool, Error> {
        let digest = id_digest(owner);
        let key = self.handle_key(handle.as_str());
        let set = self.owner_key(&digest);
        let args = (&digest, handle.as_str());
        let keys: Vec<&str> = if self.split_steps() {
            vec![&key]
        } else {
            vec![&key, &set]
        };
        let call = |in_full| script_call(&DELETE_OWNED, in_full, &keys, &args);
        // Not sent again: a second run would find the session gone and answer "not ended".
        let written: Written<i64> = self.write(&key, call, false).await?;
        let deleted = written.answer == 1;
        self.replicated(written, deleted)?;
        if deleted && self.split_steps() {
            self.unindex_after(&digest, &key).await;
        }
        Ok(deleted)
    }

    async fn delete_all_owned(&self, owner: &str, except: &[SessionHandle]) -> Result<u64, Error> {
        if self.split_steps() {
            return delete_all_owned_in_rounds(self, owner, except).await;
        }
        let digest = id_digest(owner);
        let set = self.owner_key(&digest);
        let mut ended = 0;
        for _ in 0..MAX_DELETE_ROUNDS {
            let listed = self.listed(&digest).await?;
            let left: Vec<&str> = listed
                .iter()
                .map(String::as_str)
                .filter(|handle| !except.iter().any(|spared| spared.as_str() == *handle))
                .collect();
            if left.is_empty() {
                break;
            }
            let mut keys = vec![set.clone()];
            keys.extend(left.iter().map(|handle| self.handle_key(handle)));
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let spared: Vec<&str> = except.iter().map(SessionHandle::as_str).collect();
            let args = (&digest, left.len(), &left, &spared);
            let call = |in_full| script_call(&DELETE_ALL_OWNED, in_full, &keys, &args);
            let written: Written<(u64, u64)> = self.write(&set, call, false).await?;
            let (deleted, others) = written.answer;
            self.replicated(written, deleted > 0)?;
            ended += deleted;
            if others == 0 {
                break;
            }
        }
        Ok(ended)
    }
}
