//! RedisStorage against a private `redis-server` (or the server at `REDIS_URL`).
#![cfg(feature = "redis")]
mod common;

use std::time::{Duration, Instant};

use common::scenarios::{request, server_storage_scenarios, storage_scenarios};
use common::servers::{ServerProcess, redis_cmd, start_redis, unique_prefix};
use session_layer::storage::{Record, RedisOptions, SessionBackend, WriteMode};
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
async fn key_is_prefix_plus_id_and_ttl_is_set() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await.ttl(Duration::from_secs(600));
    let (session, _) = request(&storage, None, |s| s.set("user", "mj").unwrap()).await;
    let key = format!("{prefix}{}", session.id());
    assert_eq!(storage.backend().key(&session.id()), key);

    let mut conn = raw(&redis.url).await;
    let bytes: Option<Vec<u8>> = redis_cmd(&mut conn, "GET", &key).await;
    let record = Record::decode("test", &bytes.expect("the key prefix + id exists")).unwrap();
    assert_eq!(record.data.values["user"], "mj");
    let pttl: i64 = redis_cmd(&mut conn, "PTTL", &key).await;
    assert!(
        pttl > 590_000 && pttl <= 600_000,
        "PTTL {pttl} should be about 600 s"
    );

    // Another save refreshes the expiry.
    let _: () = redis_cmd(&mut conn, "PEXPIRE", (&key, 1_000_000_000u64)).await;
    let (_, _) = request(&storage, Some(&session.id()), |s| s.set("n", 1).unwrap()).await;
    let pttl: i64 = redis_cmd(&mut conn, "PTTL", &key).await;
    assert!(
        pttl > 590_000 && pttl <= 600_000,
        "PTTL {pttl} after a second save"
    );
    let _: () = redis_cmd(&mut conn, "DEL", &key).await;
}

#[tokio::test]
async fn without_ttl_keys_do_not_expire() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await;
    let (session, _) = request(&storage, None, |s| s.set("a", 1).unwrap()).await;
    let mut conn = raw(&redis.url).await;
    let key = format!("{prefix}{}", session.id());
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
    let key = format!("{prefix}{}", session.id());
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
    let key = format!("session:{}", session.id());
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
    }
}

#[tokio::test]
async fn create_never_overwrites_an_existing_key() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await;
    let backend = storage.backend();
    let id = "taken-id";
    assert!(
        backend
            .store(id, &record("first"), None, WriteMode::Create)
            .await
            .unwrap()
    );
    assert!(
        !backend
            .store(id, &record("second"), None, WriteMode::Create)
            .await
            .unwrap()
    );
    let kept = backend.load(id).await.unwrap().unwrap();
    assert_eq!(
        kept.data.values["user"], "first",
        "Create must not overwrite"
    );

    // Also a key written by someone else, and through delete_and_store.
    let mut conn = raw(&redis.url).await;
    let other = format!("{prefix}other");
    let _: () = redis_cmd(&mut conn, "SET", (&other, "not ours")).await;
    let stored = backend
        .delete_and_store(id, "other", &record("third"), None, WriteMode::Create)
        .await
        .unwrap();
    assert!(!stored, "delete_and_store reports the SET NX result");
    let value: String = redis_cmd(&mut conn, "GET", &other).await;
    assert_eq!(value, "not ours");
    assert!(
        backend.load(id).await.unwrap().is_none(),
        "the DEL still ran"
    );

    // Overwrite does overwrite.
    assert!(
        backend
            .store(id, &record("fourth"), None, WriteMode::Overwrite)
            .await
            .unwrap()
    );
    assert!(
        backend
            .store(id, &record("fifth"), None, WriteMode::Overwrite)
            .await
            .unwrap()
    );
    assert_eq!(
        backend.load(id).await.unwrap().unwrap().data.values["user"],
        "fifth"
    );
    let _: () = redis_cmd(&mut conn, "DEL", (&other, format!("{prefix}{id}"))).await;
}

#[tokio::test]
async fn chosen_id_colliding_with_a_concurrent_create_is_overwritten_by_its_owner() {
    // use_unknown_ids(true): the id is the client's; if it appears between read and save,
    // the lifecycle retries with Overwrite (same owner), so the save still succeeds.
    let redis = redis();
    let storage = redis.storage(&unique_prefix()).await.use_unknown_ids(true);
    let session = storage.read(Some("client-id")).await.unwrap();
    session.set("n", 2).unwrap();
    storage
        .backend()
        .store("client-id", &record("racer"), None, WriteMode::Create)
        .await
        .unwrap();
    assert_eq!(
        storage.save(&session).await.unwrap().as_deref(),
        Some("client-id")
    );
    let loaded = storage.read(Some("client-id")).await.unwrap();
    assert_eq!(loaded.get::<u64>("n"), Some(2));
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
    let old: bool = redis_cmd(&mut conn, "EXISTS", format!("{prefix}{}", s1.id())).await;
    assert!(!old, "the old key must be deleted");
    let new_key = format!("{prefix}{}", s2.id());
    let pttl: i64 = redis_cmd(&mut conn, "PTTL", &new_key).await;
    assert!(
        pttl > 0 && pttl <= 60_000,
        "the new key has the TTL (PTTL {pttl})"
    );
    let (s3, _) = request(&storage, c2.as_deref(), |_| {}).await;
    assert_eq!(s3.get::<String>("user").as_deref(), Some("anon"));
    let _: () = redis_cmd(&mut conn, "DEL", &new_key).await;
}

/// How many times the server has run `command` since its statistics were reset.
async fn calls(conn: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let stats: String = redis_cmd(conn, "INFO", "commandstats").await;
    let field = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&field))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn each_save_is_one_round_trip() {
    // Counts the server's own command statistics, so it needs a server of its own.
    let server = start_redis();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let storage = RedisStorage::connect(&url).await.unwrap();
    let mut conn = raw(&url).await;
    let (_, c1) = request(&storage, None, |s| s.set("user", "anon").unwrap()).await;

    // regenerate_id(true): DEL and SET inside one MULTI/EXEC.
    let _: () = redis_cmd(&mut conn, "CONFIG", ("RESETSTAT",)).await;
    let (_, c2) = request(&storage, c1.as_deref(), |s| s.regenerate_id(true).unwrap()).await;
    assert_eq!(calls(&mut conn, "exec").await, 1);
    assert_eq!(calls(&mut conn, "get").await, 1, "one command for the read");

    // regenerate_id(true) then destroy: both keys in one DEL.
    let _: () = redis_cmd(&mut conn, "CONFIG", ("RESETSTAT",)).await;
    let (_, c3) = request(&storage, c2.as_deref(), |s| {
        s.regenerate_id(true).unwrap();
        s.destroy();
    })
    .await;
    assert_eq!(c3, None, "the cookie is cleared");
    assert_eq!(calls(&mut conn, "del").await, 1, "one DEL for both keys");
    let left: Vec<String> = redis_cmd(&mut conn, "KEYS", "session:*").await;
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn corrupt_records_are_errors_not_panics() {
    let redis = redis();
    let prefix = unique_prefix();
    let storage = redis.storage(&prefix).await;
    let mut conn = raw(&redis.url).await;
    let garbage: [&[u8]; 4] = [b"not json", b"\xff\xfe\x00", b"{\"d\":42}", b""];
    for (i, bytes) in garbage.iter().enumerate() {
        let id = format!("corrupt-session-id-{i}");
        let _: () = redis_cmd(&mut conn, "SET", (format!("{prefix}{id}"), *bytes)).await;
        match storage.read(Some(&id)).await {
            Err(Error::Corrupt { record, .. }) => {
                assert!(
                    !record.contains(&id),
                    "the error must not carry the whole id: {record}"
                );
            }
            other => panic!("expected Error::Corrupt for {bytes:?}, got {other:?}"),
        }
    }
    // A key of the wrong type is a server error, not a panic.
    let id = "list-session-id";
    let _: () = redis_cmd(&mut conn, "RPUSH", (format!("{prefix}{id}"), "x")).await;
    match storage.read(Some(id)).await {
        Err(Error::Backend(_)) => {}
        other => panic!("expected Error::Backend for a list, got {other:?}"),
    }
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}{id}"))
        .arg(
            (0..garbage.len())
                .map(|i| format!("{prefix}corrupt-session-id-{i}"))
                .collect::<Vec<_>>(),
        )
        .query_async(&mut conn)
        .await
        .unwrap();
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
async fn a_server_that_never_answers_times_out() {
    // Accepts TCP connections (the kernel's backlog) but never says anything.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "redis://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let options = RedisOptions::new()
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
    let storage =
        RedisStorage::connect_with(&url, RedisOptions::new().response_timeout(response_timeout))
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
            RedisOptions::new().response_timeout(Duration::from_millis(500)),
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
}
