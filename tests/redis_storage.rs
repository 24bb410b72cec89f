//! RedisStorage against a private `redis-server` (or the server at `REDIS_URL`).
#![cfg(feature = "redis")]
mod common;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use common::scenarios::{request, server_storage_scenarios, storage_scenarios};
use common::servers::{ServerProcess, redis_cmd, start_redis, unique_prefix};
use session_layer::storage::{
    Expected, Moved, NetworkOptions, Record, SessionBackend, SessionId, Versioned, id_digest,
};
use session_layer::{Error, RedisStorage, Session, SessionData, SessionStorage};

/// Where the test's Redis is: a private server (stopped when this is dropped) unless
/// `REDIS_URL` names one.
struct Redis {
    url: String,
    _server: Option<ServerProcess>,
}

impl Redis {
    /// A storage on this server whose keys start with `prefix`.
    async fn storage(&self, prefix: &str) -> RedisStorage {
        RedisStorage::connect(&self.url)
            .await
            .expect("connect")
            .key_prefix(prefix)
    }
}

fn redis() -> Redis {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Redis { url, _server: None },
        _ => {
            let server = start_redis();
            Redis {
                url: format!("redis://127.0.0.1:{}", server.port),
                _server: Some(server),
            }
        }
    }
}

/// A storage that keeps its server alive for as long as the test uses it.
struct Held<S> {
    storage: S,
    _redis: Redis,
}

impl<S: SessionStorage> SessionStorage for Held<S> {
    async fn read(&self, value: Option<&str>) -> Result<Session, Error> {
        self.storage.read(value).await
    }
    async fn save(&self, session: &Session) -> Result<Option<String>, Error> {
        self.storage.save(session).await
    }
}

async fn held(configure: impl FnOnce(RedisStorage) -> RedisStorage) -> Held<RedisStorage> {
    let redis = redis();
    let storage = redis.storage(&unique_prefix()).await;
    Held {
        storage: configure(storage),
        _redis: redis,
    }
}

/// A plain connection for looking at the server from the outside.
async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

storage_scenarios! {
    plain: held(|s| s),
    ttl: |ttl: Duration| held(move |s| s.ttl(ttl)),
    max_lifetime: |limit: Duration| held(move |s| s.ttl(Duration::from_secs(60)).max_lifetime(limit)),
}

server_storage_scenarios! {
    plain: held(|s| s),
    unknown_ids: held(|s| s.use_unknown_ids(true)),
}

#[tokio::test]
async fn key_is_prefix_plus_id_digest_and_ttl_is_set() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await.ttl(Duration::from_secs(600));
    let (session, _) = request(&storage, None, |s| s.set("user", "mj").unwrap()).await;
    let id = session.id();
    let key = format!("{prefix}{}", id_digest(&id));
    assert_eq!(storage.key_for(&id), key);
    assert_eq!(storage.backend().key(&id), key);
    assert!(!key.contains(&id), "{key}");

    // A hash of the version and the record.
    let mut conn = raw(&redis.url).await;
    let (version, bytes): (Option<String>, Option<Vec<u8>>) =
        redis_cmd(&mut conn, "HMGET", (&key, "v", "d")).await;
    let version = version.expect("the key prefix + id digest holds field v");
    assert!(version.parse::<u64>().is_ok(), "v is a u64: {version}");
    let record = Record::decode("test", &bytes.expect("field d")).unwrap();
    assert_eq!(record.data.values["user"], "mj");
    let pttl: i64 = redis_cmd(&mut conn, "PTTL", &key).await;
    assert!(
        pttl > 590_000 && pttl <= 600_000,
        "PTTL {pttl} should be about 600 s"
    );

    // Another save refreshes the expiry and draws a new version.
    let _: () = redis_cmd(&mut conn, "PEXPIRE", (&key, 1_000_000_000u64)).await;
    let (_, _) = request(&storage, Some(&session.id()), |s| s.set("n", 1).unwrap()).await;
    let pttl: i64 = redis_cmd(&mut conn, "PTTL", &key).await;
    assert!(
        pttl > 590_000 && pttl <= 600_000,
        "PTTL {pttl} after a second save"
    );
    let second: String = redis_cmd(&mut conn, "HGET", (&key, "v")).await;
    assert_ne!(second, version, "every write draws a new version");
    let _: () = redis_cmd(&mut conn, "DEL", &key).await;
}

#[tokio::test]
async fn a_scan_of_the_server_yields_no_session_id() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await.use_unknown_ids(true);
    let mut ids = Vec::new();
    let (first, c1) = request(&storage, None, |s| {
        s.set("user", "mj").unwrap();
        s.flash("notice", "hello").unwrap();
    })
    .await;
    ids.push(first.id());
    // Regenerated without deleting: both ids are live.
    let (second, _) = request(&storage, c1.as_deref(), |s| s.regenerate_id(false).unwrap()).await;
    ids.push(second.id());
    let (chosen, _) = request(&storage, Some("a-client-chosen-id"), |s| {
        s.set("n", 1).unwrap()
    })
    .await;
    ids.push(chosen.id());

    let mut conn = raw(&redis.url).await;
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) =
            redis_cmd(&mut conn, "SCAN", (cursor, "MATCH", format!("{prefix}*"))).await;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    let mut expected: Vec<String> = ids.iter().map(|id| storage.key_for(id)).collect();
    expected.sort();
    assert_eq!(keys, expected, "one key per live session");
    for key in &keys {
        let fields: Vec<Vec<u8>> = redis_cmd(&mut conn, "HGETALL", key).await;
        let mut stored = key.as_bytes().to_vec();
        fields.into_iter().for_each(|f| stored.extend(f));
        let stored = String::from_utf8_lossy(&stored);
        for id in &ids {
            assert!(
                !stored.contains(id.as_str()),
                "{key} holds the id {id}: {stored}"
            );
        }
    }
    let _: () = redis_cmd(&mut conn, "DEL", keys).await;
}

#[tokio::test]
async fn without_ttl_keys_do_not_expire() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await;
    let (session, _) = request(&storage, None, |s| s.set("a", 1).unwrap()).await;
    let mut conn = raw(&redis.url).await;
    let key = storage.key_for(&session.id());
    let pttl: i64 = redis_cmd(&mut conn, "PTTL", &key).await;
    assert_eq!(
        pttl, -1,
        "no TTL configured: no expiry (PTTL -1), and the key must exist"
    );
    let _: () = redis_cmd(&mut conn, "DEL", &key).await;
}

#[tokio::test]
async fn max_lifetime_sets_the_expiry_too() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis
        .storage(&prefix)
        .await
        .max_lifetime(Duration::from_secs(100));
    let (session, _) = request(&storage, None, |s| s.set("a", 1).unwrap()).await;
    let mut conn = raw(&redis.url).await;
    let key = storage.key_for(&session.id());
    let pttl: i64 = redis_cmd(&mut conn, "PTTL", &key).await;
    assert!(pttl > 0 && pttl <= 100_000, "PTTL {pttl}");
    let _: () = redis_cmd(&mut conn, "DEL", &key).await;
}

#[tokio::test]
async fn default_prefix_is_session_colon() {
    let redis = redis();
    let storage = RedisStorage::connect(&redis.url).await.unwrap();
    assert_eq!(storage.backend().prefix(), "session:");
    let (session, _) = request(&storage, None, |s| s.set("a", 1).unwrap()).await;
    let mut conn = raw(&redis.url).await;
    let key = storage.key_for(&session.id());
    assert_eq!(key, format!("session:{}", id_digest(&session.id())));
    let exists: bool = redis_cmd(&mut conn, "EXISTS", &key).await;
    assert!(exists, "{key} must exist");
    // Clean up through the storage: destroy deletes the key.
    let loaded = storage.read(Some(&session.id())).await.unwrap();
    loaded.destroy();
    assert_eq!(storage.save(&loaded).await.unwrap().as_deref(), Some(""));
    let exists: bool = redis_cmd(&mut conn, "EXISTS", &key).await;
    assert!(!exists, "destroy must delete {key}");
}

#[tokio::test]
async fn prefixes_separate_applications() {
    let redis = redis();
    let a = redis.storage(&unique_prefix()).await;
    let b = redis.storage(&unique_prefix()).await;
    let (session, cookie) = request(&a, None, |s| s.set("app", "a").unwrap()).await;
    let in_b = b.read(cookie.as_deref()).await.unwrap();
    assert_eq!(in_b.get::<String>("app"), None);
    assert_ne!(in_b.id(), session.id(), "an unknown id is replaced");
    let in_a = a.read(cookie.as_deref()).await.unwrap();
    assert_eq!(in_a.get::<String>("app").as_deref(), Some("a"));
}

fn record(user: &str) -> Record {
    let mut data = SessionData::default();
    data.values.insert("user".into(), user.into());
    Record {
        data,
        created_at: 1,
        expires_at_ms: None,
        ..Record::default()
    }
}

/// The stored record's `user` and its version.
async fn stored(storage: &RedisStorage, id: &str) -> Option<(String, u64)> {
    let Versioned { record, version } = storage.backend().load(&id.into()).await.unwrap()?;
    Some((
        record.data.values["user"].as_str().unwrap().to_owned(),
        version,
    ))
}

#[tokio::test]
async fn writes_and_deletes_are_conditional_on_what_is_stored() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await;
    let backend = storage.backend();
    let id = "conditional-id";
    let store = |user: &'static str, expected| async move {
        backend
            .store(&id.into(), &record(user), None, expected)
            .await
            .unwrap()
    };

    // Absent: only where nothing is stored.
    assert!(store("first", Expected::Absent).await);
    assert!(
        !store("second", Expected::Absent).await,
        "Absent must not overwrite"
    );
    let (user, first) = stored(&storage, id).await.unwrap();
    assert_eq!(user, "first");

    // Version: only over the version named.
    assert!(store("third", Expected::Version(first)).await);
    let (user, third) = stored(&storage, id).await.unwrap();
    assert_eq!(user, "third");
    assert_ne!(third, first, "every write draws a new version");
    assert!(!store("stale", Expected::Version(first)).await);
    assert!(
        !backend
            .delete(&id.into(), Expected::Version(first))
            .await
            .unwrap()
    );
    assert!(!backend.delete(&id.into(), Expected::Absent).await.unwrap());
    assert_eq!(stored(&storage, id).await, Some(("third".into(), third)));

    // Any: whatever is there.
    assert!(store("fourth", Expected::Any).await);
    let (_, fourth) = stored(&storage, id).await.unwrap();
    assert!(
        backend
            .delete(&id.into(), Expected::Version(fourth))
            .await
            .unwrap()
    );
    assert_eq!(stored(&storage, id).await, None);
    assert!(
        !store("ghost", Expected::Version(fourth)).await,
        "a deleted record is not written back"
    );
    assert!(
        !backend
            .delete(&id.into(), Expected::Version(fourth))
            .await
            .unwrap()
    );
    assert_eq!(stored(&storage, id).await, None);

    // Re-created: a version never seen before, so a request that loaded the old record
    // cannot overwrite the new one.
    assert!(store("fifth", Expected::Absent).await);
    let (_, fifth) = stored(&storage, id).await.unwrap();
    assert!(![first, third, fourth].contains(&fifth), "{fifth}");
    assert!(!store("late", Expected::Version(fourth)).await);
    assert!(backend.delete(&id.into(), Expected::Any).await.unwrap());
    assert!(
        backend.delete(&id.into(), Expected::Any).await.unwrap(),
        "deleting a missing record is not an error"
    );

    // A key of another type (here a string) is never taken by Absent or Version; Any
    // replaces it.
    let mut conn = raw(&redis.url).await;
    let other = storage.key_for("other");
    let _: () = redis_cmd(&mut conn, "SET", (&other, "not ours")).await;
    let other_store = async |expected| {
        backend
            .store(&"other".into(), &record("sixth"), None, expected)
            .await
            .unwrap()
    };
    assert!(!other_store(Expected::Absent).await);
    assert!(!other_store(Expected::Version(fifth)).await);
    assert!(
        !backend
            .delete(&"other".into(), Expected::Version(fifth))
            .await
            .unwrap()
    );
    let value: String = redis_cmd(&mut conn, "GET", &other).await;
    assert_eq!(value, "not ours");
    assert!(other_store(Expected::Any).await);
    assert_eq!(stored(&storage, "other").await.unwrap().0, "sixth");
    let _: () = redis_cmd(&mut conn, "DEL", &other).await;
}

#[tokio::test]
async fn expiry_is_set_cleared_and_clamped() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await;
    let backend = storage.backend();
    let mut conn = raw(&redis.url).await;
    let id = "expiry-id";
    let key = storage.key_for(id);
    let pttl = async |conn: &mut redis::aio::MultiplexedConnection| -> i64 {
        redis_cmd(conn, "PTTL", &key).await
    };

    let ttl = Some(Duration::from_secs(60));
    assert!(
        backend
            .store(&id.into(), &record("a"), ttl, Expected::Absent)
            .await
            .unwrap()
    );
    let ms = pttl(&mut conn).await;
    assert!(ms > 59_000 && ms <= 60_000, "PTTL {ms}");
    // A write without a TTL leaves no expiry behind.
    let version = backend.load(&id.into()).await.unwrap().unwrap().version;
    assert!(
        backend
            .store(&id.into(), &record("b"), None, Expected::Version(version))
            .await
            .unwrap()
    );
    assert_eq!(pttl(&mut conn).await, -1);
    // Redis refuses expiry times that overflow: the TTL is clamped.
    assert!(
        backend
            .store(&id.into(), &record("c"), Some(Duration::MAX), Expected::Any)
            .await
            .unwrap()
    );
    assert!(pttl(&mut conn).await > 3_000_000_000_000);
    // A record due now lives a millisecond (PEXPIRE 0 would be a delete).
    assert!(
        backend
            .store(
                &id.into(),
                &record("d"),
                Some(Duration::ZERO),
                Expected::Any
            )
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(backend.load(&id.into()).await.unwrap(), None);
}

#[tokio::test]
async fn duration_max_ttl_and_lifetime_mean_practically_forever() {
    let redis = redis();
    let mut conn = raw(&redis.url).await;
    const CENTURY_MS: i64 = 100 * 365 * 24 * 3600 * 1000;
    let forever = CENTURY_MS - 60_000..=CENTURY_MS;
    // What is set, the TTL, the lifetime, and the PTTL that follows.
    type Case = (
        &'static str,
        Option<Duration>,
        Option<Duration>,
        RangeInclusive<i64>,
    );
    let cases: [Case; 5] = [
        ("ttl", Some(Duration::MAX), None, forever.clone()),
        ("max_lifetime", None, Some(Duration::MAX), forever.clone()),
        ("both", Some(Duration::MAX), Some(Duration::MAX), forever),
        (
            "ttl 60 s",
            Some(Duration::from_secs(60)),
            Some(Duration::MAX),
            59_000..=60_000,
        ),
        (
            "lifetime 100 s",
            Some(Duration::MAX),
            Some(Duration::from_secs(100)),
            1..=100_000,
        ),
    ];
    for (what, ttl, lifetime, expected_pttl) in cases {
        let mut storage = redis.storage(&unique_prefix()).await;
        if let Some(ttl) = ttl {
            storage = storage.ttl(ttl);
        }
        if let Some(lifetime) = lifetime {
            storage = storage.max_lifetime(lifetime);
        }
        // Create, change in place, regenerate: every kind of write sets the expiry.
        let (_, c1) = request(&storage, None, |s| s.set("n", 1).unwrap()).await;
        let (_, c2) = request(&storage, c1.as_deref(), |s| s.set("n", 2).unwrap()).await;
        assert_eq!(c2, c1, "{what}");
        let (_, c3) = request(&storage, c2.as_deref(), |s| s.regenerate_id(true).unwrap()).await;
        let id = c3.expect("a live session");
        let pttl: i64 = redis_cmd(&mut conn, "PTTL", storage.key_for(&id)).await;
        assert!(expected_pttl.contains(&pttl), "{what}: PTTL {pttl}");
        let loaded = storage.read(Some(&id)).await.unwrap();
        assert_eq!(loaded.get::<u64>("n"), Some(2), "{what}");
        let _: () = redis_cmd(&mut conn, "DEL", storage.key_for(&id)).await;
    }
}

#[tokio::test]
async fn two_requests_changing_different_keys_both_keep_their_change() {
    let redis = redis();
    let storage = redis.storage(&unique_prefix()).await;
    let (_, cookie) = request(&storage, None, |s| s.set("base", 1).unwrap()).await;
    let cookie = cookie.as_deref();
    // Both load the same version of the session.
    let a = storage.read(cookie).await.unwrap();
    let b = storage.read(cookie).await.unwrap();
    a.set("a", "from a").unwrap();
    b.set("b", "from b").unwrap();
    assert_eq!(storage.save(&a).await.unwrap().as_deref(), cookie);
    // b's write at the version it loaded fails; it reloads, replays its change, retries.
    assert_eq!(storage.save(&b).await.unwrap().as_deref(), cookie);
    let merged = storage.read(cookie).await.unwrap();
    assert_eq!(merged.get::<u64>("base"), Some(1));
    assert_eq!(merged.get::<String>("a").as_deref(), Some("from a"));
    assert_eq!(merged.get::<String>("b").as_deref(), Some("from b"));
}

#[tokio::test]
async fn a_save_of_a_session_deleted_meanwhile_writes_nothing() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await;
    let (session, cookie) = request(&storage, None, |s| s.set("user", "mj").unwrap()).await;
    let cookie = cookie.as_deref();
    let late = storage.read(cookie).await.unwrap();
    let (_, cleared) = request(&storage, cookie, Session::destroy).await;
    assert_eq!(cleared, None, "logout clears the cookie");
    late.set("cart", 3).unwrap();
    assert_eq!(
        storage.save(&late).await.unwrap().as_deref(),
        Some(""),
        "the late request's response clears its cookie"
    );
    let mut conn = raw(&redis.url).await;
    let exists: bool = redis_cmd(&mut conn, "EXISTS", storage.key_for(&session.id())).await;
    assert!(!exists, "a destroyed session is not written back");
}

#[tokio::test]
async fn chosen_id_created_meanwhile_is_merged_into() {
    // use_unknown_ids(true): the id is the client's; if it appears between read and save,
    // the save merges its changes into what was created.
    let redis = redis();
    let storage = redis.storage(&unique_prefix()).await.use_unknown_ids(true);
    let session = storage.read(Some("client-id")).await.unwrap();
    session.set("n", 2).unwrap();
    let created = storage
        .backend()
        .store(
            &"client-id".into(),
            &record("racer"),
            None,
            Expected::Absent,
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        storage.save(&session).await.unwrap().as_deref(),
        Some("client-id")
    );
    let loaded = storage.read(Some("client-id")).await.unwrap();
    assert_eq!(loaded.get::<u64>("n"), Some(2));
    assert_eq!(loaded.get::<String>("user").as_deref(), Some("racer"));
}

#[tokio::test]
async fn regenerate_with_delete_removes_the_old_key() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await.ttl(Duration::from_secs(60));
    let (s1, c1) = request(&storage, None, |s| s.set("user", "anon").unwrap()).await;
    let (s2, c2) = request(&storage, c1.as_deref(), |s| s.regenerate_id(true).unwrap()).await;
    assert_ne!(s1.id(), s2.id());
    assert_eq!(c2.as_deref(), Some(s2.id().as_str()));
    let mut conn = raw(&redis.url).await;
    let old: bool = redis_cmd(&mut conn, "EXISTS", storage.key_for(&s1.id())).await;
    assert!(!old, "the old key must be deleted");
    let new_key = storage.key_for(&s2.id());
    let pttl: i64 = redis_cmd(&mut conn, "PTTL", &new_key).await;
    assert!(
        pttl > 0 && pttl <= 60_000,
        "the new key has the TTL (PTTL {pttl})"
    );
    let (s3, _) = request(&storage, c2.as_deref(), |_| {}).await;
    assert_eq!(s3.get::<String>("user").as_deref(), Some("anon"));
    let _: () = redis_cmd(&mut conn, "DEL", &new_key).await;
}

/// The commands that clients other than `conn` sent since the last call, by name with how
/// often, from the slowlog (which `count_commands` makes list every command). Unlike
/// `INFO commandstats`, it tells a command sent over the network (from a client address)
/// from one that a script ran (from `?:0`), so it counts round trips.
async fn commands_sent(conn: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    type Entry = (i64, i64, i64, Vec<String>, String, String);
    let entries: Vec<Entry> = redis_cmd(conn, "SLOWLOG", ("GET", -1)).await;
    let _: () = redis_cmd(conn, "SLOWLOG", "RESET").await;
    let me: String = redis_cmd(conn, "CLIENT", "INFO").await;
    let me = me.split(' ').find(|f| f.starts_with("addr=")).unwrap()[5..].to_owned();
    let mut sent = BTreeMap::new();
    for (_, _, _, args, addr, _) in entries {
        if addr != me && addr.starts_with("127.0.0.1:") {
            *sent.entry(args[0].to_lowercase()).or_default() += 1;
        }
    }
    sent
}

/// Makes the server's slowlog list every command.
async fn count_commands(conn: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis_cmd(conn, "CONFIG", ("SET", "slowlog-log-slower-than", 0)).await;
    let _: () = redis_cmd(conn, "CONFIG", ("SET", "slowlog-max-len", 1024)).await;
    let _: () = redis_cmd(conn, "SLOWLOG", "RESET").await;
}

fn counts(commands: &[(&str, u64)]) -> BTreeMap<String, u64> {
    commands.iter().map(|&(c, n)| (c.to_owned(), n)).collect()
}

#[tokio::test]
async fn a_read_and_a_save_are_one_command_each() {
    // Counts every command the server gets, so it needs a server of its own.
    let server = start_redis();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let storage = RedisStorage::connect(&url)
        .await
        .unwrap()
        .ttl(Duration::from_secs(600));
    let mut conn = raw(&url).await;
    count_commands(&mut conn).await;

    // The server has not seen the scripts yet: EVALSHA fails, SCRIPT LOAD caches it.
    let (_, c1) = request(&storage, None, |s| s.set("user", "anon").unwrap()).await;
    let first_save = commands_sent(&mut conn).await;
    let unknown = storage.read(Some("no-such-session")).await.unwrap();
    assert_ne!(unknown.id(), "no-such-session");
    let first_read = commands_sent(&mut conn).await;

    let session = storage.read(c1.as_deref()).await.unwrap();
    let read = commands_sent(&mut conn).await;
    session.set("n", 1).unwrap();
    assert_eq!(storage.save(&session).await.unwrap(), c1);
    let save = commands_sent(&mut conn).await;
    let fresh = Session::new();
    fresh.set("n", 1).unwrap();
    storage.save(&fresh).await.unwrap();
    let create = commands_sent(&mut conn).await;
    // The move script's first use loads it too; count a later one.
    let regenerate_deleting = |s: &Session| s.regenerate_id(true).unwrap();
    let (_, c2) = request(&storage, c1.as_deref(), regenerate_deleting).await;
    let (_, c3) = request(&storage, c2.as_deref(), regenerate_deleting).await;
    let _ = commands_sent(&mut conn).await;
    let (_, c4) = request(&storage, c3.as_deref(), regenerate_deleting).await;
    let regenerate = commands_sent(&mut conn).await;
    let (_, c5) = request(&storage, c4.as_deref(), |s| {
        s.regenerate_id(true).unwrap();
        s.destroy();
    })
    .await;
    let destroy = commands_sent(&mut conn).await;
    println!(
        "Redis commands sent per operation: read {read:?}; save of a changed session {save:?}; \
         save of a new session {create:?}; first save after a server start {first_save:?}; \
         first read {first_read:?}; \
         read + save with regenerate_id(true) {regenerate:?}; read + regenerate_id(true) + \
         destroy {destroy:?}"
    );

    // The read script: the record, or only its size when over the limit.
    assert_eq!(read, counts(&[("evalsha", 1)]), "one command per read");
    assert_eq!(save, counts(&[("evalsha", 1)]), "one command per save");
    assert_eq!(create, counts(&[("evalsha", 1)]));
    // EVALSHA answered NOSCRIPT, then EVAL sent the script in full.
    assert_eq!(first_save, counts(&[("evalsha", 1), ("eval", 1)]));
    assert_eq!(first_read, counts(&[("evalsha", 1), ("eval", 1)]));
    // A read, then one script creates the new id and deletes the old one if still as
    // loaded.
    assert_eq!(regenerate, counts(&[("evalsha", 2)]));
    // A read, then a script per id deleted (the delete script's first use loads it): a
    // script rather than `DEL`, which tells whether the record had an owner to unindex.
    assert_eq!(destroy, counts(&[("eval", 1), ("evalsha", 3)]));
    assert_eq!(c5, None, "the cookie is cleared");
    let left: Vec<String> = redis_cmd(&mut conn, "KEYS", "session:*").await;
    assert_eq!(left.len(), 1, "only the fresh session is left: {left:?}");
}

#[tokio::test]
async fn corrupt_records_are_errors_not_panics() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await;
    let mut conn = raw(&redis.url).await;
    let valid = record("mj").encode();
    let mut keys = Vec::new();
    let mut check = async |id: String| {
        match storage.read(Some(&id)).await {
            Err(Error::Corrupt { record, reason }) => {
                assert!(
                    !record.contains(&id) && !reason.contains(&id),
                    "the error must not carry the id: {record}: {reason}"
                );
                assert!(record.contains(&storage.key_for(&id)), "{record}");
            }
            other => panic!("expected Error::Corrupt for {id}, got {other:?}"),
        }
        keys.push(storage.key_for(&id));
    };

    // Strings, as the previous version of this crate wrote them, and garbage.
    let strings: [&[u8]; 5] = [&valid, b"not json", b"\xff\xfe\x00", b"{\"d\":42}", b""];
    for (i, bytes) in strings.iter().enumerate() {
        let id = format!("corrupt-string-session-id-{i}");
        let _: () = redis_cmd(&mut conn, "SET", (storage.key_for(&id), *bytes)).await;
        check(id).await;
    }
    // Hashes missing a field, or with a field that does not decode.
    let hashes: [&[(&str, &[u8])]; 5] = [
        &[("v", b"1")],
        &[("d", &valid)],
        &[("v", b"not a number"), ("d", &valid)],
        &[("v", b"1"), ("d", b"not json")],
        &[("v", b"1"), ("d", b"\xff")],
    ];
    for (i, fields) in hashes.iter().enumerate() {
        let id = format!("corrupt-hash-session-id-{i}");
        let _: () = redis_cmd(&mut conn, "HSET", (storage.key_for(&id), *fields)).await;
        check(id).await;
    }
    // A hash with neither field, and a version too long to be one (never sent).
    let id = "corrupt-hash-session-id-other".to_owned();
    let _: () = redis_cmd(&mut conn, "HSET", (storage.key_for(&id), "x", "1")).await;
    check(id).await;
    let id = "corrupt-hash-session-id-long-v".to_owned();
    let long = "1".repeat(1 << 20);
    let _: () = redis_cmd(
        &mut conn,
        "HSET",
        (storage.key_for(&id), "v", long, "d", &valid),
    )
    .await;
    check(id).await;
    // Other types altogether.
    let id = "corrupt-list-session-id".to_owned();
    let _: () = redis_cmd(&mut conn, "RPUSH", (storage.key_for(&id), "x")).await;
    check(id).await;
    let id = "corrupt-set-session-id".to_owned();
    let _: () = redis_cmd(&mut conn, "SADD", (storage.key_for(&id), "x")).await;
    check(id).await;
    let id = "corrupt-zset-session-id".to_owned();
    let _: () = redis_cmd(&mut conn, "ZADD", (storage.key_for(&id), 1, "x")).await;
    check(id).await;
    let _: () = redis_cmd(&mut conn, "DEL", keys).await;
}

/// Plants a key of each wrong shape at `key`, one after the other: a string, a list, a set,
/// a hash with neither field, a hash with a version that is not one.
async fn plant_each_wrong_shape(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    mut each: impl AsyncFnMut(&str, &mut redis::aio::MultiplexedConnection),
) {
    let valid = record("planted").encode();
    let plants: [(&str, &[&[u8]]); 5] = [
        ("SET", &[b"a string"]),
        ("RPUSH", &[b"x"]),
        ("SADD", &[b"x"]),
        ("HSET", &[b"x", b"1"]),
        ("HSET", &[b"v", b"not a number", b"d", &valid]),
    ];
    for (command, args) in plants {
        let _: () = redis_cmd(conn, "DEL", key).await;
        let _: () = redis_cmd(conn, command, (key, args)).await;
        each(command, conn).await;
    }
    let _: () = redis_cmd(conn, "DEL", key).await;
}

#[tokio::test]
async fn writes_on_a_key_of_the_wrong_shape_are_not_met_and_any_replaces_it() {
    let redis = redis();
    let storage = redis.storage(&unique_prefix()).await;
    let backend = storage.backend();
    let mut conn = raw(&redis.url).await;
    let id = "wrong-shape-id";
    let key = storage.key_for(id);
    let live = "live-session-id";
    assert!(
        backend
            .store(&live.into(), &record("live"), None, Expected::Absent)
            .await
            .unwrap()
    );
    let live_version = backend.load(&live.into()).await.unwrap().unwrap().version;

    plant_each_wrong_shape(&mut conn, &key, async |what, conn| {
        let exists = async |conn: &mut redis::aio::MultiplexedConnection| -> bool {
            redis_cmd(conn, "EXISTS", &key).await
        };
        let load = backend.load(&id.into()).await;
        assert!(
            matches!(load, Err(Error::Corrupt { .. })),
            "{what}: {load:?}"
        );
        for expected in [Expected::Absent, Expected::Version(1), Expected::Version(0)] {
            let stored = backend
                .store(&id.into(), &record("mine"), None, expected)
                .await;
            assert!(!stored.unwrap(), "{what}: store {expected:?}");
            let deleted = backend.delete(&id.into(), expected).await;
            assert!(!deleted.unwrap(), "{what}: delete {expected:?}");
        }
        assert!(
            exists(conn).await,
            "{what}: left alone by conditional writes"
        );
        // regenerate_id from it, or onto it: "changed" and "taken", never an error.
        let moved = backend
            .store_moved(
                &id.into(),
                1,
                true,
                &"fresh-id".into(),
                &record("mine"),
                None,
            )
            .await;
        assert_eq!(moved.unwrap(), Moved::SourceChanged, "{what}");
        let moved = backend
            .store_moved(
                &live.into(),
                live_version,
                true,
                &id.into(),
                &record("mine"),
                None,
            )
            .await;
        assert_eq!(moved.unwrap(), Moved::IdTaken, "{what}");
        assert_eq!(
            stored(&storage, live).await,
            Some(("live".into(), live_version))
        );
        // A destroy deletes it; a write of Any replaces it.
        assert!(
            backend.delete(&id.into(), Expected::Any).await.unwrap(),
            "{what}"
        );
        assert!(!exists(conn).await, "{what}: deleted by a destroy");
        let _: () = redis_cmd(conn, "SET", (&key, "again")).await;
        assert!(
            backend
                .store(&id.into(), &record("mine"), None, Expected::Any)
                .await
                .unwrap()
        );
        assert_eq!(stored(&storage, id).await.unwrap().0, "mine", "{what}");
    })
    .await;
    assert!(backend.load(&"fresh-id".into()).await.unwrap().is_none());
    assert!(backend.delete(&live.into(), Expected::Any).await.unwrap());
}

/// The bytes the server has sent to all its clients so far.
async fn bytes_sent(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis_cmd(conn, "INFO", "stats").await;
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
        .expect("INFO stats lists total_net_output_bytes");
    line.trim().parse().unwrap()
}

/// A valid record of `size` encoded bytes or a little more, whose `n` is 41.
fn padded_record(size: usize) -> Vec<u8> {
    let mut big = record("big");
    big.data.values.insert("n".into(), 41.into());
    big.data
        .values
        .insert("pad".into(), "x".repeat(size).into());
    big.encode()
}

#[tokio::test]
async fn records_over_max_record_size_are_refused_both_ways() {
    // Counts the bytes the server sends, so it needs a server of its own.
    let server = start_redis();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let limit = 1 << 20;
    let storage = RedisStorage::connect(&url)
        .await
        .unwrap()
        .key_prefix(&unique_prefix())
        .max_record_size(limit);
    let mut conn = raw(&url).await;

    // A save over the limit fails and writes nothing.
    let session = Session::new();
    session.set("pad", "x".repeat(limit)).unwrap();
    match storage.save(&session).await {
        Err(Error::RecordTooLarge { size, limit: l }) => assert!(size > limit && l == limit),
        other => panic!("expected Error::RecordTooLarge, got {other:?}"),
    }
    let exists: bool = redis_cmd(&mut conn, "EXISTS", storage.key_for(&session.id())).await;
    assert!(!exists, "nothing written");

    // A hostile 8 MiB record, planted from outside, is refused by its size alone.
    let hostile = padded_record(8 << 20);
    let id = "hostile-session-id";
    let key = storage.key_for(id);
    let _: () = redis_cmd(&mut conn, "HSET", (&key, "v", "1", "d", &hostile)).await;
    let before = bytes_sent(&mut conn).await;
    let refused = storage.read(Some(id)).await;
    let sent = bytes_sent(&mut conn).await - before;
    match refused {
        Err(Error::Corrupt { record, reason }) => {
            assert!(record.contains(&key) && !record.contains(id), "{record}");
            // The size the script answered instead of the record.
            let size = format!("{} bytes, over the {limit}-byte", hostile.len());
            assert!(reason.contains(&size), "{reason}");
        }
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
    assert!(
        sent < 64 << 10,
        "the server sent {sent} bytes for a refused read"
    );
    // So is a huge version beside a small record.
    let small = record("small").encode();
    let huge_version = "1".repeat(8 << 20);
    let _: () = redis_cmd(&mut conn, "HSET", (&key, "v", huge_version, "d", small)).await;
    let before = bytes_sent(&mut conn).await;
    let refused = storage.read(Some(id)).await;
    let sent = bytes_sent(&mut conn).await - before;
    assert!(matches!(refused, Err(Error::Corrupt { .. })), "{refused:?}");
    assert!(
        sent < 64 << 10,
        "the server sent {sent} bytes for a huge version"
    );
    let _: () = redis_cmd(&mut conn, "HSET", (&key, "v", "1", "d", &hostile)).await;

    // The same record loads under a limit it fits, and a record of exactly the limit
    // loads: only the size stood in the way.
    let roomy = RedisStorage::connect(&url)
        .await
        .unwrap()
        .key_prefix(storage.backend().prefix())
        .max_record_size(hostile.len());
    let loaded = roomy.read(Some(id)).await.unwrap();
    assert_eq!(loaded.get::<u64>("n"), Some(41));
    let exact = padded_record(limit - 200);
    let exact = padded_record(limit - 200 + (limit - exact.len()));
    assert_eq!(exact.len(), limit);
    let _: () = redis_cmd(&mut conn, "HSET", (&key, "v", "1", "d", &exact)).await;
    let loaded = storage.read(Some(id)).await.unwrap();
    assert_eq!(loaded.get::<u64>("n"), Some(41));
    let _: () = redis_cmd(&mut conn, "DEL", &key).await;
}

#[tokio::test]
async fn invalid_url_is_a_config_error() {
    match RedisStorage::connect("not a url").await {
        Err(Error::Config(message)) => assert!(message.contains("Redis URL"), "{message}"),
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

#[tokio::test]
async fn connecting_to_a_down_server_fails_fast() {
    let port = common::servers::free_port();
    let start = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(3),
        RedisStorage::connect(&format!("redis://127.0.0.1:{port}")),
    )
    .await
    .expect("connect must not hang");
    assert!(matches!(result, Err(Error::Backend(_))), "{result:?}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_failed_connect_names_the_server_but_not_the_password() {
    let port = common::servers::free_port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let error = RedisStorage::connect(&url).await.unwrap_err().to_string();
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    assert!(!error.contains("hunter2"), "the password leaked: {error}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Accepts TCP connections (the kernel's backlog) but never says anything.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "redis://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let options = NetworkOptions::new()
        .connect_timeout(Duration::from_millis(400))
        .response_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(3),
        RedisStorage::connect_with(&url, options),
    )
    .await
    .expect("connect must not hang");
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        start.elapsed()
    );
    drop(listener);
}

#[tokio::test]
async fn server_down_gives_errors_and_recovery_is_automatic() {
    // Always a private server: this test kills it.
    let mut server = start_redis();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let response_timeout = Duration::from_secs(1);
    let storage = RedisStorage::connect_with(
        &url,
        NetworkOptions::new().response_timeout(response_timeout),
    )
    .await
    .unwrap()
    .key_prefix(&unique_prefix());
    let (_, cookie) = request(&storage, None, |s| s.set("user", "mj").unwrap()).await;

    server.kill();
    for attempt in 0..3 {
        let start = Instant::now();
        let read = tokio::time::timeout(Duration::from_secs(3), storage.read(cookie.as_deref()))
            .await
            .expect("read must not hang while the server is down");
        assert!(
            read.is_err(),
            "read {attempt} with the server down: {read:?}"
        );
        let session = Session::new();
        session.set("x", 1).unwrap();
        let save = tokio::time::timeout(Duration::from_secs(3), storage.save(&session))
            .await
            .expect("save must not hang while the server is down");
        assert!(
            save.is_err(),
            "save {attempt} with the server down: {save:?}"
        );
        eprintln!(
            "server down, attempt {attempt}: read {:?}, save {:?} in {:?}",
            read.as_ref().err(),
            save.as_ref().err(),
            start.elapsed()
        );
        assert!(
            start.elapsed() <= 2 * response_timeout + Duration::from_millis(300),
            "read + save took {:?}",
            start.elapsed()
        );
    }

    server.restart();
    let restarted = Instant::now();
    let mut failures = 0;
    loop {
        let session = Session::new();
        session.set("back", true).unwrap();
        let saved = tokio::time::timeout(Duration::from_secs(3), storage.save(&session))
            .await
            .expect("save must not hang after a restart");
        if let Ok(Some(id)) = saved {
            let loaded = storage.read(Some(&id)).await.expect("read after recovery");
            assert_eq!(loaded.get::<bool>("back"), Some(true));
            break;
        }
        failures += 1;
        assert!(
            restarted.elapsed() < Duration::from_secs(3),
            "still failing {:?} after the restart: {saved:?}",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "recovered {:?} after the restart ({failures} failed attempts)",
        restarted.elapsed()
    );
}

#[cfg(feature = "axum")]
mod layer_flow {
    use super::*;
    use common::app::{app, send};
    use http::StatusCode;

    async fn keys(url: &str, prefix: &str) -> Vec<String> {
        let mut conn = raw(url).await;
        redis_cmd(&mut conn, "KEYS", format!("{prefix}*")).await
    }

    #[tokio::test]
    async fn counter_login_logout_through_the_layer() {
        let mut server = start_redis();
        let url = format!("redis://127.0.0.1:{}", server.port);
        let prefix = unique_prefix();
        let storage = RedisStorage::connect_with(
            &url,
            NetworkOptions::new().response_timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap()
        .key_prefix(&prefix)
        .ttl(Duration::from_secs(600));
        let app = app(storage);

        let (status, cookie, body) = send(&app, None, "/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
        let cookie = cookie.expect("a new session sets a cookie");
        assert!(cookie.starts_with("__session="));
        let (_, _, body) = send(&app, Some(&cookie), "/").await;
        assert_eq!(body, "2");
        let before = keys(&url, &prefix).await;
        assert_eq!(before.len(), 1, "one session, one key: {before:?}");

        let (status, login_cookie, _) = send(&app, Some(&cookie), "/login").await;
        assert_eq!(status, StatusCode::OK);
        let login_cookie = login_cookie.expect("regenerate sets a new cookie");
        assert_ne!(login_cookie, cookie);
        let after = keys(&url, &prefix).await;
        assert_eq!(after.len(), 1, "the old key is deleted: {after:?}");
        assert_ne!(after, before);
        let (_, _, body) = send(&app, Some(&login_cookie), "/").await;
        assert_eq!(body, "3", "data carried over to the new id");
        let (_, _, body) = send(&app, Some(&cookie), "/").await;
        assert_eq!(body, "1", "the old cookie names no session any more");

        let (status, removal, _) = send(&app, Some(&login_cookie), "/logout").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            removal.as_deref(),
            Some("__session="),
            "logout clears the cookie"
        );
        let left = keys(&url, &prefix).await;
        // Only the session the old cookie's request created above remains.
        assert_eq!(left.len(), 1, "{left:?}");

        // A storage failure is a bare 500 and never hangs.
        server.kill();
        let (status, cookie_set, body) =
            tokio::time::timeout(Duration::from_secs(3), send(&app, Some(&login_cookie), "/"))
                .await
                .expect("no hang with the server down");
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(cookie_set, None);
        assert!(
            !body.contains("redis") && !body.contains("refused"),
            "no internals in {body:?}"
        );
    }

    /// The `Cookie` header of a request whose signed session cookie names `id`.
    fn cookie_naming(id: &str) -> String {
        let signed = session_layer::SessionCookie::new("__session")
            .secrets(["a test secret of at least 32 bytes"])
            .serialize(id)
            .unwrap();
        signed.split(';').next().unwrap().to_owned()
    }

    #[tokio::test]
    async fn a_wrong_or_oversize_record_starts_afresh_through_the_layer() {
        let redis = redis();
        let storage = redis
            .storage(&unique_prefix())
            .await
            .max_record_size(1 << 20);
        let id = "planted-session-id-0123456789";
        let key = storage.key_for(id);
        let prefix = storage.backend().prefix().to_owned();
        let app = app(storage);
        let mut conn = raw(&redis.url).await;
        let cookie = cookie_naming(id);
        let starts_afresh = async |what: &str| {
            let (status, replaced, body) = send(&app, Some(&cookie), "/").await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "1"), "{what}");
            let replaced = replaced.unwrap_or_else(|| panic!("{what}: the cookie is replaced"));
            assert_ne!(replaced, cookie);
            let (status, _, body) = send(&app, Some(&replaced), "/").await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "2"), "{what}");
            // Destroying the fresh session works too.
            let (status, cleared, _) = send(&app, Some(&replaced), "/logout").await;
            assert_eq!(status, StatusCode::OK, "{what}");
            assert_eq!(cleared.as_deref(), Some("__session="), "{what}");
        };

        plant_each_wrong_shape(&mut conn, &key, async |what, _| starts_afresh(what).await).await;
        // Valid but 8 MiB, with a count of 41: loading it would answer 42.
        let _: () = redis_cmd(
            &mut conn,
            "HSET",
            (&key, "v", "1", "d", padded_record(8 << 20)),
        )
        .await;
        starts_afresh("an oversize record").await;
        let (status, _, body) = send(&app, Some(&cookie), "/").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "1"),
            "refused again"
        );
        let _: () = redis_cmd(&mut conn, "DEL", keys(&redis.url, &prefix).await).await;
    }

    #[tokio::test]
    async fn a_session_in_the_old_format_is_not_found() {
        // A record stored as a string under the prefix plus the raw id is never looked at: a
        // session's key is the prefix plus a digest of its id.
        let redis = redis();
        let prefix = unique_prefix();
        let id = "old-format-session-id-0123456789";
        let mut conn = raw(&redis.url).await;
        let old = record("mj").encode();
        let _: () = redis_cmd(&mut conn, "SET", (format!("{prefix}{id}"), old)).await;
        let app = app(redis.storage(&prefix).await);
        let signed = session_layer::SessionCookie::new("__session")
            .secrets(["a test secret of at least 32 bytes"])
            .serialize(id)
            .unwrap();
        let cookie = signed.split(';').next().unwrap();

        let (status, replaced, body) = send(&app, Some(cookie), "/").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "1"),
            "a fresh session"
        );
        let replaced = replaced.expect("the cookie is replaced");
        assert_ne!(replaced, cookie);
        let (_, _, body) = send(&app, Some(&replaced), "/").await;
        assert_eq!(body, "2");
        let _: () = redis_cmd(&mut conn, "DEL", keys(&redis.url, &prefix).await).await;
    }
}

/// Timeouts of `Duration::MAX` are "practically never", not a panic, in the options and in
/// `wait_for_replicas`: a save on a server without replicas waits for one.
#[tokio::test]
async fn unbounded_timeouts_work() {
    let redis = redis();
    let options = NetworkOptions::new()
        .connect_timeout(Duration::MAX)
        .response_timeout(Duration::MAX);
    let storage = RedisStorage::connect_with(&redis.url, options)
        .await
        .expect("connect")
        .key_prefix(&unique_prefix());
    let (_, cookie) = request(&storage, None, |s| s.set("n", 1).unwrap()).await;
    let waiting = storage.clone().wait_for_replicas(1, Duration::MAX);
    let session = waiting.read(cookie.as_deref()).await.unwrap();
    assert_eq!(session.get::<u64>("n"), Some(1));
    session.set("n", 2).unwrap();
    let saved = tokio::time::timeout(Duration::from_millis(500), waiting.save(&session)).await;
    assert!(
        saved.is_err(),
        "the save did not wait for a replica: {saved:?}"
    );
    let stored = storage.read(cookie.as_deref()).await.unwrap();
    assert_eq!(
        stored.get::<u64>("n"),
        Some(2),
        "the master holds the write"
    );
}

// ---- Sessions of one owner: the index on the server ----

/// Every key under `prefix`, sorted.
async fn keys_under(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis_cmd(conn, "KEYS", format!("{prefix}*")).await;
    keys.sort();
    keys
}

/// The members of an owner's set with their scores.
async fn entries(conn: &mut redis::aio::MultiplexedConnection, set: &str) -> BTreeMap<String, f64> {
    let pairs: Vec<(String, f64)> = redis_cmd(conn, "ZRANGE", (set, 0, -1, "WITHSCORES")).await;
    pairs.into_iter().collect()
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64
}

/// A session of `owner` saved by one request; returns it and its cookie value.
async fn logged_in(storage: &RedisStorage, owner: &str) -> (Session, String) {
    let (session, cookie) = request(storage, None, |s| {
        s.set("n", 0).unwrap();
        s.set_owner(owner).unwrap();
    })
    .await;
    (session, cookie.expect("a cookie"))
}

#[tokio::test]
async fn an_owner_is_one_sorted_set_of_handles_scored_by_expiry() {
    use session_layer::SessionIndex;
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await.ttl(Duration::from_secs(600));
    let mut conn = raw(&redis.url).await;
    let owner = "ann@example.com";
    let set = format!("{prefix}owner:{}", id_digest(owner));
    let (first, _) = logged_in(&storage, owner).await;
    let (second, _) = logged_in(&storage, owner).await;
    let (unowned, _) = request(&storage, None, |s| s.set("n", 1).unwrap()).await;

    let mut expected = vec![
        set.clone(),
        storage.key_for(&first.id()),
        storage.key_for(&second.id()),
        storage.key_for(&unowned.id()),
    ];
    expected.sort();
    assert_eq!(keys_under(&mut conn, &prefix).await, expected);
    assert!(
        expected.iter().all(|key| !key.contains("ann")),
        "{expected:?}"
    );

    let listed = entries(&mut conn, &set).await;
    let handles: Vec<&String> = listed.keys().collect();
    let mut wanted = [first.handle().to_string(), second.handle().to_string()];
    wanted.sort();
    assert_eq!(handles, wanted.iter().collect::<Vec<_>>());
    for score in listed.values() {
        let ahead = score - now_ms();
        assert!(
            (590_000.0..=601_000.0).contains(&ahead),
            "scored {ahead} ms ahead"
        );
    }
    let pttl: i64 = redis_cmd(&mut conn, "PTTL", &set).await;
    assert!(
        (590_000..=601_000).contains(&pttl),
        "the set expires with its newest: {pttl}"
    );

    // Field o holds the owner's digest; an unowned session has none.
    let o: Option<String> = redis_cmd(&mut conn, "HGET", (storage.key_for(&first.id()), "o")).await;
    assert_eq!(o, Some(id_digest(owner)));
    let o: Option<String> =
        redis_cmd(&mut conn, "HGET", (storage.key_for(&unowned.id()), "o")).await;
    assert_eq!(o, None);
    assert_eq!(storage.sessions_of(owner).await.unwrap().len(), 2);

    // Without a TTL an entry never expires, and neither does the set.
    let forever = redis.storage(&prefix).await;
    let (third, _) = logged_in(&forever, owner).await;
    let listed = entries(&mut conn, &set).await;
    assert_eq!(listed[third.handle().as_str()], 9007199254740992.0);
    let pttl: i64 = redis_cmd(&mut conn, "PTTL", &set).await;
    assert_eq!(pttl, -1);
}

#[tokio::test]
async fn entries_follow_regenerate_owner_changes_and_destroy() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await.ttl(Duration::from_secs(600));
    let mut conn = raw(&redis.url).await;
    let ann = format!("{prefix}owner:{}", id_digest("ann"));
    let bob = format!("{prefix}owner:{}", id_digest("bob"));
    let handles = |session: &Session| vec![session.handle().to_string()];
    let members = |listed: BTreeMap<String, f64>| listed.into_keys().collect::<Vec<_>>();

    // An anonymous session logs in: one script writes it and its entry.
    let (_, cookie) = request(&storage, None, |s| s.set("n", 0).unwrap()).await;
    let (session, cookie) = request(&storage, cookie.as_deref(), |s| {
        s.regenerate_id(true).unwrap();
        s.set_owner("ann").unwrap();
    })
    .await;
    assert_eq!(members(entries(&mut conn, &ann).await), handles(&session));

    // Regenerated: the entry moves with the key.
    let old = session.handle();
    let (session, cookie) = request(&storage, cookie.as_deref(), |s| {
        s.regenerate_id(true).unwrap()
    })
    .await;
    assert_ne!(session.handle(), old);
    assert_eq!(members(entries(&mut conn, &ann).await), handles(&session));
    // Regenerated keeping the old id: both are live, both listed.
    let kept = session.handle().to_string();
    let (session, cookie) = request(&storage, cookie.as_deref(), |s| {
        s.regenerate_id(false).unwrap()
    })
    .await;
    let mut both = vec![kept.clone(), session.handle().to_string()];
    both.sort();
    assert_eq!(members(entries(&mut conn, &ann).await), both);
    let _: () = redis_cmd(&mut conn, "DEL", format!("{prefix}{kept}")).await;

    // Another owner: the entry leaves ann's set, whose key goes with its last entry
    // (the listing drops the entry of the key deleted above).
    let (session, cookie) =
        request(&storage, cookie.as_deref(), |s| s.set_owner("bob").unwrap()).await;
    use session_layer::SessionIndex;
    assert!(storage.sessions_of("ann").await.unwrap().is_empty());
    let o: Option<String> =
        redis_cmd(&mut conn, "HGET", (storage.key_for(&session.id()), "o")).await;
    assert_eq!(o, Some(id_digest("bob")));
    assert_eq!(members(entries(&mut conn, &bob).await), handles(&session));
    let exists: bool = redis_cmd(&mut conn, "EXISTS", &ann).await;
    assert!(!exists, "nothing of ann is left");

    // No owner: the entry and field o go.
    let (session, cookie) =
        request(&storage, cookie.as_deref(), |s| s.clear_owner().unwrap()).await;
    let o: Option<String> =
        redis_cmd(&mut conn, "HGET", (storage.key_for(&session.id()), "o")).await;
    assert_eq!(o, None);
    assert_eq!(
        keys_under(&mut conn, &prefix).await,
        vec![storage.key_for(&session.id())]
    );

    // Owned again, then destroyed: nothing is left of the session or its owner.
    let (_, cookie) = request(&storage, cookie.as_deref(), |s| s.set_owner("ann").unwrap()).await;
    assert_eq!(keys_under(&mut conn, &prefix).await.len(), 2);
    let (_, cookie) = request(&storage, cookie.as_deref(), |s| s.destroy()).await;
    assert_eq!(cookie, None);
    assert_eq!(keys_under(&mut conn, &prefix).await, Vec::<String>::new());
}

/// A save or a destroy is told the owner of the record its request loaded, so that one
/// script moves the entry; another request may have changed the owner since, and then the
/// entry of the owner actually stored still goes.
#[tokio::test]
async fn an_owner_changed_meanwhile_leaves_no_stale_entry() {
    use session_layer::SessionIndex;
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await.ttl(Duration::from_secs(600));
    let mut conn = raw(&redis.url).await;
    let set = |owner| format!("{prefix}owner:{}", id_digest(owner));

    // Destroyed by a request that loaded it as ann's, after another made it bob's.
    let (_, cookie) = logged_in(&storage, "ann").await;
    let late = storage.read(Some(&cookie)).await.unwrap();
    request(&storage, Some(&cookie), |s| s.set_owner("bob").unwrap()).await;
    assert_eq!(storage.sessions_of("bob").await.unwrap().len(), 1);
    late.destroy();
    storage.save(&late).await.unwrap();
    assert_eq!(keys_under(&mut conn, &prefix).await, Vec::<String>::new());

    // Written as carol's over what the writer takes for ann's record, which is bob's.
    let (session, _) = logged_in(&storage, "bob").await;
    let (ann, _) = logged_in(&storage, "ann").await;
    let mut record = record("carol");
    record.owner = Some("carol".into());
    let ttl = Some(Duration::from_secs(600));
    let backend = storage.backend();
    let id = SessionId::from(session.id());
    let written = backend.store_replacing(&id, record.clone(), ttl, Expected::Any, Some("ann"));
    assert!(written.await.unwrap());
    assert!(!redis_cmd::<bool>(&mut conn, "EXISTS", set("bob")).await);
    let carols = entries(&mut conn, &set("carol")).await.into_keys();
    assert_eq!(
        carols.collect::<Vec<_>>(),
        vec![session.handle().to_string()]
    );
    let anns = entries(&mut conn, &set("ann")).await.into_keys();
    assert_eq!(anns.collect::<Vec<_>>(), vec![ann.handle().to_string()]);

    // Cleared over what the writer takes for bob's record, which is carol's.
    record.owner = None;
    let written = backend.store_replacing(&id, record, ttl, Expected::Any, Some("bob"));
    assert!(written.await.unwrap());
    assert!(!redis_cmd::<bool>(&mut conn, "EXISTS", set("carol")).await);
    assert!(!redis_cmd::<bool>(&mut conn, "EXISTS", set("bob")).await);
    assert_eq!(storage.sessions_of("ann").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_listing_drops_and_trims_stale_entries() {
    use session_layer::SessionIndex;
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await.ttl(Duration::from_secs(600));
    let mut conn = raw(&redis.url).await;
    let set = format!("{prefix}owner:{}", id_digest("ann"));
    let (live, _) = logged_in(&storage, "ann").await;
    let (bobs, _) = logged_in(&storage, "bob").await;
    // Entries a crash or an eviction could leave: a session that is gone, one that is
    // another owner's, one expired, and a member that is no handle at all.
    let gone = id_digest("gone");
    let far = now_ms() + 600_000.0;
    let planted = (far, &gone, far, bobs.handle().to_string(), far, "junk");
    let _: () = redis_cmd(&mut conn, "ZADD", (&set, planted)).await;
    let _: () = redis_cmd(&mut conn, "ZADD", (&set, 1, id_digest("expired"))).await;

    let listed = storage.sessions_of("ann").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, live.handle());
    let left: Vec<String> = entries(&mut conn, &set).await.into_keys().collect();
    assert_eq!(left, vec![live.handle().to_string()]);
    // bob's session is untouched by a listing of ann's.
    assert_eq!(storage.sessions_of("bob").await.unwrap().len(), 1);
}

#[tokio::test]
async fn nothing_of_an_owner_is_left_once_its_sessions_expired() {
    use session_layer::SessionIndex;
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis
        .storage(&prefix)
        .await
        .ttl(Duration::from_millis(1500));
    let mut conn = raw(&redis.url).await;
    let mut cookies = Vec::new();
    for owner in ["ann", "ann", "bob"] {
        cookies.push(logged_in(&storage, owner).await.1);
    }
    // Moved, and saved again later, so that the entries have different expiries.
    let (_, moved) = request(&storage, Some(&cookies[0]), |s| {
        s.regenerate_id(true).unwrap()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    request(&storage, moved.as_deref(), |s| s.set("n", 2).unwrap()).await;
    assert_eq!(
        keys_under(&mut conn, &prefix).await.len(),
        5,
        "3 sessions, 2 sets"
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(storage.sessions_of("ann").await.unwrap().is_empty());
    // Scanned, not listed: no key of either owner nor of a session is left.
    let mut left = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis_cmd(&mut conn, "SCAN", (cursor, "MATCH", format!("{prefix}*"))).await;
        left.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(left, Vec::<String>::new());
}

#[tokio::test]
async fn an_owned_save_is_one_round_trip_and_a_listing_two() {
    use common::proxy::LatencyProxy;
    use session_layer::SessionIndex;
    const LATENCY: Duration = Duration::from_millis(100);
    let server = start_redis();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let proxy = LatencyProxy::start(([127, 0, 0, 1], server.port).into(), LATENCY);
    let storage = RedisStorage::connect(&format!("redis://127.0.0.1:{}", proxy.port))
        .await
        .unwrap()
        .ttl(Duration::from_secs(600));
    let mut conn = raw(&url).await;
    // Every script once, so that no NOSCRIPT round trip is counted below.
    let (_, warm) = logged_in(&storage, "warm").await;
    request(&storage, Some(&warm), |s| s.regenerate_id(true).unwrap()).await;
    storage.end_sessions_of("warm", None).await.unwrap();
    let (_, warm) = logged_in(&storage, "warm").await;
    let (_, warm) = request(&storage, Some(&warm), |s| s.clear_owner().unwrap()).await;
    request(&storage, warm.as_deref(), |s| s.destroy()).await;
    count_commands(&mut conn).await;

    // How many round trips `run` took: its time over the latency.
    async fn round_trips<T>(run: impl std::future::Future<Output = T>) -> (T, u32) {
        let started = Instant::now();
        let answer = run.await;
        let trips = started.elapsed().as_secs_f64() / LATENCY.as_secs_f64();
        (answer, trips.floor() as u32)
    }
    let unowned = Session::new();
    unowned.set("n", 1).unwrap();
    let (_, unowned_save) = round_trips(storage.save(&unowned)).await;
    let unowned_commands = commands_sent(&mut conn).await;
    let owned = Session::new();
    owned.set_owner("ann").unwrap();
    let (cookie, owned_create) = round_trips(storage.save(&owned)).await;
    let cookie = cookie.unwrap().unwrap();
    let session = storage.read(Some(&cookie)).await.unwrap();
    session.set("n", 2).unwrap();
    let _ = commands_sent(&mut conn).await;
    let (_, owned_save) = round_trips(storage.save(&session)).await;
    let owned_commands = commands_sent(&mut conn).await;
    for _ in 0..19 {
        logged_in(&storage, "ann").await;
    }
    let _ = commands_sent(&mut conn).await;
    let (listed, listing) = round_trips(storage.sessions_of("ann")).await;
    assert_eq!(listed.unwrap().len(), 20);
    let listing_commands = commands_sent(&mut conn).await;
    // The owner changed, then cleared, then set again, each by a request of its own.
    let mut changes = Vec::new();
    for owner in [Some("bob"), None, Some("ann")] {
        let session = storage.read(Some(&cookie)).await.unwrap();
        match owner {
            Some(owner) => session.set_owner(owner).unwrap(),
            None => session.clear_owner().unwrap(),
        }
        let _ = commands_sent(&mut conn).await;
        let (_, trips) = round_trips(storage.save(&session)).await;
        changes.push((trips, commands_sent(&mut conn).await));
    }
    let set = |owner| format!("session:owner:{}", id_digest(owner));
    let bobs: Vec<String> = redis_cmd(&mut conn, "ZRANGE", (set("bob"), 0, -1)).await;
    assert_eq!(
        bobs,
        Vec::<String>::new(),
        "bob's entry went with his ownership"
    );
    let session = storage.read(Some(&cookie)).await.unwrap();
    let handle = session.handle().to_string();
    session.destroy();
    let _ = commands_sent(&mut conn).await;
    let (_, owned_destroy) = round_trips(storage.save(&session)).await;
    let destroy_commands = commands_sent(&mut conn).await;
    let (ended, end_all) = round_trips(storage.end_sessions_of("ann", None)).await;
    assert_eq!(ended.unwrap(), 19);
    let end_all_commands = commands_sent(&mut conn).await;
    println!(
        "Round trips (commands) on a single server: unowned save {unowned_save} \
         ({unowned_commands:?}); owned create {owned_create}; owned save {owned_save} \
         ({owned_commands:?}); listing 20 sessions {listing} ({listing_commands:?}); owner \
         changed, cleared, set {changes:?}; owned destroy {owned_destroy} \
         ({destroy_commands:?}); end_sessions_of 19 sessions {end_all} ({end_all_commands:?})"
    );
    assert_eq!((unowned_save, owned_create, owned_save), (1, 1, 1));
    assert_eq!(unowned_commands, counts(&[("evalsha", 1)]));
    assert_eq!(owned_commands, counts(&[("evalsha", 1)]));
    assert_eq!(listing, 2, "the set, then every record in one pipeline");
    assert_eq!(listing_commands, counts(&[("evalsha", 21)]));
    for (trips, commands) in changes {
        assert_eq!(
            trips, 1,
            "one script rewrites the record and moves its entry"
        );
        assert_eq!(commands, counts(&[("evalsha", 1)]));
    }
    assert_eq!(
        owned_destroy, 1,
        "one script deletes the record and its entry"
    );
    assert_eq!(destroy_commands, counts(&[("evalsha", 1)]));
    let score: Option<f64> = redis_cmd(&mut conn, "ZSCORE", (set("ann"), handle)).await;
    assert_eq!(score, None, "the destroyed session's entry went with it");
    // The delete script says whether entries other than the spared ones are left, so no
    // second listing is needed when none are.
    assert_eq!(end_all, 2, "a listing, then one script deletes them all");
    assert_eq!(end_all_commands, counts(&[("evalsha", 2)]));
}

/// A Redis that may evict keys could evict an owner's set while its sessions live: the
/// first listing says so in the log, and a Redis that never evicts gets no warning.
#[tokio::test]
async fn a_redis_that_evicts_keys_is_warned_of() {
    use common::logs::Captured;
    use common::servers::start_redis_with;
    use session_layer::SessionIndex;
    let (logs, _guard) = Captured::start();
    for (policy, warned) in [("allkeys-lru", true), ("noeviction", false)] {
        let server = start_redis_with(&["--maxmemory-policy", policy]);
        let url = format!("redis://127.0.0.1:{}", server.port);
        let storage = RedisStorage::connect(&url).await.unwrap();
        let before = logs.text().len();
        storage.sessions_of("ann").await.unwrap();
        storage.sessions_of("ann").await.unwrap();
        let logged = logs.text()[before..].to_owned();
        assert_eq!(
            logged.matches("may evict keys").count(),
            usize::from(warned),
            "{policy}: {logged}"
        );
        assert!(!warned || logged.contains(policy), "{logged}");
    }
}
