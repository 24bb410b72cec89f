//! MemcacheStorage against real memcached servers: the shared scenario suite, key layout,
//! expiry, conditional writes and deletes, options, round trips, consistent hashing,
//! corrupt records and server faults.
//!
//! Each test starts its own `memcached` on a free port (or uses `MEMCACHE_ADDR` for the
//! tests that do not need to kill or count servers).
#![cfg(feature = "memcache")]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::scenarios::{request, server_storage_scenarios, storage_scenarios};
use common::servers::{ServerProcess, start_memcached, start_memcached_with};
use session_layer::storage::{Expected, NetworkOptions, Record, SessionBackend, SessionId};
use session_layer::{Error, MemcacheStorage, Session, SessionData, SessionStorage};
use sha2::{Digest, Sha256};

fn addr(server: &ServerProcess) -> String {
    format!("127.0.0.1:{}", server.port)
}

/// A storage on `MEMCACHE_ADDR` if set, else on a private server kept alive with it.
async fn storage() -> (MemcacheStorage, Option<ServerProcess>) {
    match std::env::var("MEMCACHE_ADDR") {
        Ok(addr) if !addr.is_empty() => (MemcacheStorage::connect(&addr).await.unwrap(), None),
        _ => {
            let server = start_memcached();
            let storage = MemcacheStorage::connect(&addr(&server)).await.unwrap();
            (storage, Some(server))
        }
    }
}

/// The scenario helpers take a storage by value; this keeps its server alive alongside.
struct WithServer(MemcacheStorage, #[allow(dead_code)] Option<ServerProcess>);

impl SessionStorage for WithServer {
    async fn read(&self, value: Option<&str>) -> Result<Session, Error> {
        self.0.read(value).await
    }
    async fn save(&self, session: &Session) -> Result<Option<String>, Error> {
        self.0.save(session).await
    }
}

async fn plain() -> WithServer {
    let (storage, server) = storage().await;
    WithServer(storage, server)
}

storage_scenarios! {
    plain: plain(),
    ttl: |ttl: Duration| async move {
        let (storage, server) = storage().await;
        WithServer(storage.ttl(ttl), server)
    },
}

server_storage_scenarios! {
    plain: plain(),
    unknown_ids: async {
        let (storage, server) = storage().await;
        WithServer(storage.use_unknown_ids(true), server)
    },
}

// ---- a raw text-protocol client, to look at the server behind the storage's back ----

fn raw(addr: &str, command: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(command).unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).unwrap();
    line
}

/// `Some(value)` if the server holds `key`.
fn raw_get(addr: &str, key: &str) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(format!("get {key}\r\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    reader.read_line(&mut header).unwrap();
    if header == "END\r\n" {
        return None;
    }
    let parts: Vec<&str> = header.trim_end().split(' ').collect();
    assert_eq!(parts[0], "VALUE", "unexpected answer {header:?}");
    assert_eq!(parts[1], key);
    let len: usize = parts[3].parse().unwrap();
    let mut data = vec![0; len + 2];
    reader.read_exact(&mut data).unwrap();
    data.truncate(len);
    Some(data)
}

fn raw_set(addr: &str, key: &str, data: &[u8]) {
    let mut command = format!("set {key} 0 0 {}\r\n", data.len()).into_bytes();
    command.extend_from_slice(data);
    command.extend_from_slice(b"\r\n");
    assert_eq!(raw(addr, &command), b"STORED\r\n");
}

fn hex_sha256(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn save_new(storage: &MemcacheStorage, key: &str, value: &str) -> String {
    let session = storage.read(None).await.unwrap();
    session.set(key, value).unwrap();
    storage
        .save(&session)
        .await
        .unwrap()
        .expect("a cookie value")
}

// ---- key layout and expiry ----

#[tokio::test]
async fn key_is_prefix_plus_hex_sha256_of_the_id() {
    let server = start_memcached();
    let storage = MemcacheStorage::connect(&addr(&server)).await.unwrap();
    let id = save_new(&storage, "user", "mj").await;
    let key = format!("session:{}", hex_sha256(&id));
    assert_eq!(storage.key_for(&id), key);
    assert_eq!(key.len(), "session:".len() + 64);
    let stored = raw_get(&addr(&server), &key).expect("the record under session:<sha256>");
    let record = Record::decode(&key, &stored).unwrap();
    assert_eq!(record.data.values["user"], "mj");
    assert!(
        raw_get(&addr(&server), &format!("session:{id}")).is_none(),
        "the id is never a key"
    );

    let custom = MemcacheStorage::connect(&addr(&server))
        .await
        .unwrap()
        .key_prefix("shop:s:")
        .unwrap();
    let id = save_new(&custom, "user", "kj").await;
    assert!(raw_get(&addr(&server), &format!("shop:s:{}", hex_sha256(&id))).is_some());
}

#[tokio::test]
async fn ttl_is_set_on_the_server() {
    let server = start_memcached();
    let storage = MemcacheStorage::connect(&addr(&server))
        .await
        .unwrap()
        .ttl(Duration::from_secs(1));
    let id = save_new(&storage, "user", "mj").await;
    let key = storage.key_for(&id);
    assert!(raw_get(&addr(&server), &key).is_some());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        raw_get(&addr(&server), &key).is_none(),
        "memcached must expire the item itself"
    );

    // No TTL: the item stays.
    let forever = MemcacheStorage::connect(&addr(&server)).await.unwrap();
    let id = save_new(&forever, "user", "mj").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(raw_get(&addr(&server), &forever.key_for(&id)).is_some());
}

#[tokio::test]
async fn ttl_over_30_days_is_sent_as_an_absolute_time() {
    let server = start_memcached();
    let storage = MemcacheStorage::connect(&addr(&server))
        .await
        .unwrap()
        .ttl(Duration::from_secs(31 * 24 * 3600));
    let (_, cookie) = request(&storage, None, |s| s.set("user", "mj").unwrap()).await;
    let id = cookie.unwrap();
    // Sent as a relative 2,678,400 s, memcached would read a 1970 timestamp: gone at once.
    assert!(raw_get(&addr(&server), &storage.key_for(&id)).is_some());
    let (session, _) = request(&storage, Some(&id), |_| {}).await;
    assert_eq!(session.get::<String>("user").as_deref(), Some("mj"));
}

// ---- configuration errors ----

#[tokio::test]
async fn bad_prefixes_are_config_errors() {
    let server = start_memcached();
    let connect = || MemcacheStorage::connect_pool([addr(&server)]);
    for prefix in ["has space", "tab\t", "nul\0", "bell\x07", "é:"] {
        match connect().await.unwrap().key_prefix(prefix) {
            Err(Error::Config(message)) => {
                assert!(message.contains("printable ASCII"), "{prefix:?}: {message}")
            }
            other => panic!("{prefix:?} must be refused, got {other:?}"),
        }
    }
    let longest = "p".repeat(250 - 64);
    assert!(connect().await.unwrap().key_prefix(&longest).is_ok());
    match connect().await.unwrap().key_prefix(&format!("{longest}p")) {
        Err(Error::Config(message)) => assert!(message.contains("250"), "{message}"),
        other => panic!("a too long prefix must be refused, got {other:?}"),
    }
    // The longest prefix works end to end.
    let storage = connect().await.unwrap().key_prefix(&longest).unwrap();
    let id = save_new(&storage, "user", "mj").await;
    assert_eq!(storage.key_for(&id).len(), 250);
    let (session, _) = request(&storage, Some(&id), |_| {}).await;
    assert_eq!(session.get::<String>("user").as_deref(), Some("mj"));
}

#[tokio::test]
async fn bad_addresses_are_errors() {
    assert!(matches!(
        MemcacheStorage::connect("no-port").await,
        Err(Error::Config(_))
    ));
    assert!(matches!(
        MemcacheStorage::connect_pool(Vec::<String>::new()).await,
        Err(Error::Config(_))
    ));
    let server = start_memcached();
    assert!(matches!(
        MemcacheStorage::connect_pool([addr(&server), addr(&server)]).await,
        Err(Error::Config(_))
    ));
    let port = common::servers::free_port();
    let refused = MemcacheStorage::connect(&format!("127.0.0.1:{port}")).await;
    assert!(matches!(refused, Err(Error::Backend(_))), "{refused:?}");
}

// ---- collisions and corrupt data ----

#[tokio::test]
async fn create_on_an_existing_id_leaves_the_old_record() {
    let server = start_memcached();
    let storage = MemcacheStorage::connect(&addr(&server)).await.unwrap();
    let id = SessionId::from(save_new(&storage, "owner", "alice").await);
    let intruder = Record {
        data: SessionData::default(),
        created_at: 0,
        expires_at_ms: None,
        ..Record::default()
    };
    let stored = storage
        .backend()
        .store(&id, &intruder, None, Expected::Absent)
        .await
        .unwrap();
    assert!(!stored, "add on an existing key must report false");
    let (session, _) = request(&storage, Some(&id), |_| {}).await;
    assert_eq!(session.get::<String>("owner").as_deref(), Some("alice"));

    // Any does replace; deleting twice is fine.
    assert!(
        storage
            .backend()
            .store(&id, &intruder, None, Expected::Any)
            .await
            .unwrap()
    );
    let loaded = storage.backend().load(&id).await.unwrap().unwrap();
    assert!(loaded.record.data.values.is_empty());
    assert!(storage.backend().delete(&id, Expected::Any).await.unwrap());
    assert!(storage.backend().delete(&id, Expected::Any).await.unwrap());
    assert!(storage.backend().load(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_chosen_id_that_exists_is_not_clobbered_by_a_fresh_write() {
    // use_unknown_ids: a client names an id another request created meanwhile. The
    // lifecycle writes with `add` first; the backend must answer false, not overwrite.
    let server = start_memcached();
    let storage = MemcacheStorage::connect(&addr(&server))
        .await
        .unwrap()
        .use_unknown_ids(true);
    let session = storage.read(Some("chosen-id")).await.unwrap();
    assert_eq!(session.id(), "chosen-id");
    raw_set(
        &addr(&server),
        &storage.key_for("chosen-id"),
        br#"{"d":{"values":{"a":1},"flash":{}},"c":1}"#,
    );
    session.set("b", 2).unwrap();
    // The lifecycle merges this request's change into what is stored, with a `cas`.
    assert_eq!(
        storage.save(&session).await.unwrap().as_deref(),
        Some("chosen-id")
    );
    let stored = raw_get(&addr(&server), &storage.key_for("chosen-id")).unwrap();
    let record = Record::decode("chosen", &stored).unwrap();
    assert_eq!(
        record.data.values["a"], 1,
        "the other request's key is kept"
    );
    assert_eq!(record.data.values["b"], 2);
}

#[tokio::test]
async fn corrupt_records_are_corrupt_errors() {
    let server = start_memcached();
    let storage = MemcacheStorage::connect(&addr(&server)).await.unwrap();
    for garbage in [&b"not json"[..], b"", b"\xff\xfe\x00", b"{\"d\":42}"] {
        raw_set(&addr(&server), &storage.key_for("victim"), garbage);
        match storage.read(Some("victim")).await {
            Err(Error::Corrupt { record, .. }) => {
                assert!(
                    !record.contains("victim"),
                    "the error names the key, not the id"
                )
            }
            other => panic!("{garbage:?} must be Corrupt, got {other:?}"),
        }
    }
    // The connection is still usable afterwards.
    let id = SessionId::from(save_new(&storage, "user", "mj").await);
    assert!(storage.backend().load(&id).await.unwrap().is_some());
}

// ---- conditional writes and deletes (the record's version is memcached's CAS unique) ----

#[tokio::test]
async fn a_cas_with_a_stale_version_returns_false_and_writes_nothing() {
    let server = start_memcached();
    let storage = MemcacheStorage::connect(&addr(&server)).await.unwrap();
    let backend = storage.backend();
    let id = SessionId::from(save_new(&storage, "user", "first").await);
    let key = storage.key_for(&id);
    let first = backend.load(&id).await.unwrap().expect("the saved record");

    let mut second = first.record.clone();
    second.data.values.insert("user".into(), "second".into());
    let expected = Expected::Version(first.version);
    assert!(backend.store(&id, &second, None, expected).await.unwrap());
    let now = backend.load(&id).await.unwrap().unwrap();
    assert_ne!(now.version, first.version, "a write changes the version");
    assert_eq!(now.record, second);

    let mut stale = first.record.clone();
    stale.data.values.insert("user".into(), "stale".into());
    let stored = backend.store(&id, &stale, None, expected).await.unwrap();
    assert!(
        !stored,
        "a cas on a version that was overwritten must report false"
    );
    let raw = raw_get(&addr(&server), &key).expect("still stored");
    assert_eq!(
        Record::decode(&key, &raw).unwrap(),
        second,
        "nothing was written"
    );
    let after = backend.load(&id).await.unwrap().unwrap();
    assert_eq!(after.version, now.version, "nor was the version touched");

    // A cas on an item that is gone writes nothing either.
    let missing = Expected::Version(now.version);
    assert!(
        !backend
            .store(&"gone".into(), &stale, None, missing)
            .await
            .unwrap()
    );
    assert!(raw_get(&addr(&server), &storage.key_for("gone")).is_none());
}

#[tokio::test]
async fn a_conditional_delete_deletes_only_at_the_expected_version() {
    let server = start_memcached();
    let storage = MemcacheStorage::connect(&addr(&server)).await.unwrap();
    let backend = storage.backend();
    let id = SessionId::from(save_new(&storage, "user", "mj").await);
    let key = storage.key_for(&id);
    let old = backend.load(&id).await.unwrap().unwrap();
    // Another request writes: the version moves on.
    assert!(
        backend
            .store(&id, &old.record, None, Expected::Any)
            .await
            .unwrap()
    );
    let current = backend.load(&id).await.unwrap().unwrap().version;
    assert_ne!(current, old.version);

    let stale = Expected::Version(old.version);
    assert!(!backend.delete(&id, stale).await.unwrap(), "stale version");
    assert!(
        raw_get(&addr(&server), &key).is_some(),
        "a stale delete keeps it"
    );
    assert!(!backend.delete(&id, Expected::Absent).await.unwrap());
    assert!(raw_get(&addr(&server), &key).is_some());

    let exact = Expected::Version(current);
    assert!(backend.delete(&id, exact).await.unwrap(), "current version");
    assert!(raw_get(&addr(&server), &key).is_none(), "deleted");
    assert!(!backend.delete(&id, exact).await.unwrap(), "nothing left");
    assert!(backend.delete(&id, Expected::Absent).await.unwrap());
    assert!(backend.delete(&id, Expected::Any).await.unwrap());
}

#[tokio::test]
async fn a_server_without_cas_is_an_error_not_a_retry_loop() {
    // -C: no CAS values.
    let server = start_memcached_with(&["-C"]);
    let storage = MemcacheStorage::connect(&addr(&server)).await.unwrap();
    let id = save_new(&storage, "user", "mj").await;
    match storage.read(Some(&id)).await {
        Err(Error::Backend(e)) => assert!(e.to_string().contains("-C"), "{e}"),
        other => panic!("a server without CAS must be an error, got {other:?}"),
    }
}

// ---- options given before connecting ----

/// The connections `addr` accepted between two `stats` calls, the second call's own
/// excluded.
fn connections_opened(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> u64 {
    after["total_connections"] - before["total_connections"] - 1
}

/// Sixteen fresh sessions saved at once.
async fn sixteen_concurrent_saves(storage: MemcacheStorage) {
    let storage = Arc::new(storage);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let storage = storage.clone();
            tokio::spawn(async move { save_new(&storage, "i", &i.to_string()).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn pool_size_keeps_the_connection_that_checked_the_server() {
    let server = start_memcached();
    let addr = addr(&server);

    let before = stats(&addr);
    let single = MemcacheStorage::connect(&addr).await.unwrap().pool_size(1);
    assert_eq!(single.backend().pool_size(), 1);
    sixteen_concurrent_saves(single).await;
    let with_one = connections_opened(&before, &stats(&addr));

    let before = stats(&addr);
    let default = MemcacheStorage::connect(&addr).await.unwrap();
    sixteen_concurrent_saves(default).await;
    let with_default = connections_opened(&before, &stats(&addr));

    eprintln!("connections opened: pool_size(1) {with_one}, default pool {with_default}");
    // One: the connection that checked the server at connect time serves every request.
    assert_eq!(with_one, 1, "pool_size(1) opened {with_one} connections");
    assert!(
        with_default > 1,
        "the same load opens more with the default pool"
    );
}

#[tokio::test]
async fn connect_with_applies_the_connect_timeout_to_the_first_connect() {
    let (listener, _fillers) = unaccepting_listener();
    let target = listener.local_addr().unwrap().to_string();
    let options = NetworkOptions::new().connect_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(3),
        MemcacheStorage::connect_with(&target, options),
    )
    .await;
    let elapsed = started.elapsed();
    eprintln!("connect_timeout 200 ms on a full backlog: {result:?} after {elapsed:?}");
    assert!(matches!(result, Ok(Err(Error::Timeout))), "{result:?}");
    assert!(
        elapsed >= Duration::from_millis(190) && elapsed < Duration::from_millis(800),
        "{elapsed:?}: not the 200 ms asked for"
    );
}

// ---- round trips, counted by the server ----

/// The server's `stats` counters.
fn stats(addr: &str) -> HashMap<String, u64> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"stats\r\n").unwrap();
    let mut counters = HashMap::new();
    for line in BufReader::new(stream).lines() {
        let line = line.unwrap();
        if line == "END" {
            break;
        }
        let mut fields = line.split(' ');
        if let (Some("STAT"), Some(name), Some(value)) =
            (fields.next(), fields.next(), fields.next())
            && let Ok(value) = value.parse()
        {
            counters.insert(name.to_owned(), value);
        }
    }
    counters
}

/// The counters of each command kind: every command bumps exactly one of them (`gets` and
/// `mg` count as `cmd_get`, `cas` as `cmd_set`, `delete` and `md` as a delete hit or miss).
const COMMAND_COUNTERS: &[&str] = &[
    "cmd_get",
    "cmd_set",
    "cmd_touch",
    "cmd_flush",
    "delete_hits",
    "delete_misses",
    "incr_hits",
    "incr_misses",
    "decr_hits",
    "decr_misses",
];

/// The commands `step` sent to the server, printed with every counter that moved.
async fn commands_of<F: Future>(addr: &str, label: &str, step: F) -> (u64, F::Output) {
    let before = stats(addr);
    let output = step.await;
    let after = stats(addr);
    let moved: Vec<String> = after
        .iter()
        .filter(|(name, _)| {
            COMMAND_COUNTERS.contains(&name.as_str())
                || ["cas_", "get_", "cmd_meta"]
                    .iter()
                    .any(|p| name.starts_with(p))
        })
        .filter(|(name, value)| before.get(*name) != Some(*value))
        .map(|(name, value)| format!("{name} +{}", value - before.get(name).unwrap_or(&0)))
        .collect();
    let count = COMMAND_COUNTERS
        .iter()
        .map(|name| after[*name] - before[*name])
        .sum();
    let mut moved = moved;
    moved.sort();
    eprintln!("{label}: {count} command(s) ({})", moved.join(", "));
    (count, output)
}

#[tokio::test]
async fn a_read_is_one_command_and_a_save_without_conflict_is_one_command() {
    let server = start_memcached();
    let addr = addr(&server);
    let storage = MemcacheStorage::connect(&addr).await.unwrap();

    let (new_save, id) = commands_of(&addr, "save of a new session", async {
        save_new(&storage, "n", "1").await
    })
    .await;
    let (read, session) = commands_of(&addr, "read", async {
        storage.read(Some(&id)).await.unwrap()
    })
    .await;
    assert_eq!(session.get::<String>("n").as_deref(), Some("1"));
    session.set("n", "2").unwrap();
    let (save, _) = commands_of(&addr, "save without conflict", async {
        storage.save(&session).await.unwrap()
    })
    .await;

    // For comparison: a save that finds another request's save in its way.
    let first = storage.read(Some(&id)).await.unwrap();
    let second = storage.read(Some(&id)).await.unwrap();
    first.set("a", 1).unwrap();
    second.set("b", 2).unwrap();
    storage.save(&first).await.unwrap();
    let (conflicted, _) = commands_of(&addr, "save after a conflict", async {
        storage.save(&second).await.unwrap()
    })
    .await;

    let merged = storage.read(Some(&id)).await.unwrap();
    assert_eq!(
        (merged.get::<u64>("a"), merged.get::<u64>("b")),
        (Some(1), Some(2))
    );

    merged.destroy();
    let (destroy, _) = commands_of(&addr, "save of a destroyed session", async {
        storage.save(&merged).await.unwrap()
    })
    .await;

    assert_eq!(new_save, 1, "a new session is one add");
    assert_eq!(read, 1, "a read is one gets");
    assert_eq!(save, 1, "a save without conflict is one cas");
    assert_eq!(conflicted, 3, "a conflict costs a cas, a gets and a cas");
    assert_eq!(destroy, 1, "a destroy is one delete");
    assert!(raw_get(&addr, &storage.key_for(&id)).is_none(), "destroyed");
}

// ---- several servers ----

#[tokio::test]
async fn sessions_spread_over_a_pool_by_consistent_hashing() {
    let servers: Vec<ServerProcess> = (0..4).map(|_| start_memcached()).collect();
    let addrs: Vec<String> = servers.iter().map(addr).collect();
    let three = MemcacheStorage::connect_pool(&addrs[..3]).await.unwrap();
    let four = MemcacheStorage::connect_pool(&addrs).await.unwrap();

    // Placement follows server_for, on the real servers.
    let mut ids = Vec::new();
    for i in 0..60 {
        let id = save_new(&three, "n", &i.to_string()).await;
        let home = three.server_for(&id).to_owned();
        for a in &addrs {
            let held = raw_get(a, &three.key_for(&id)).is_some();
            assert_eq!(held, *a == home, "session {i} must be on {home} only");
        }
        ids.push(id);
    }
    for (i, id) in ids.iter().enumerate() {
        let (session, _) = request(&three, Some(id), |_| {}).await;
        assert_eq!(session.get::<String>("n"), Some(i.to_string()));
    }

    // Distribution and movement over many ids.
    let total = 12_000;
    let mut per_server: HashMap<String, usize> = HashMap::new();
    let mut moved = 0;
    for i in 0..total {
        let id = format!("id-{i}");
        let before = three.server_for(&id);
        let after = four.server_for(&id);
        *per_server.entry(before.to_owned()).or_default() += 1;
        if before != after {
            moved += 1;
            assert_eq!(after, addrs[3], "a key only ever moves to the new server");
        }
    }
    for a in &addrs[..3] {
        let share = per_server[a] as f64 / total as f64;
        assert!(
            (0.25..0.42).contains(&share),
            "{a} holds {share:.3} of the keys"
        );
    }
    let moved_share = moved as f64 / total as f64;
    assert!(
        (0.17..0.33).contains(&moved_share),
        "3 -> 4 servers should move about 1/4 of the keys, moved {moved_share:.3}"
    );
    drop(servers);
}

// ---- faults ----

#[tokio::test]
async fn a_dead_server_gives_errors_fast_and_a_restarted_one_works_again() {
    let mut server = start_memcached();
    let options = NetworkOptions::new()
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500));
    let storage = MemcacheStorage::connect_with(&addr(&server), options)
        .await
        .unwrap();
    let id = save_new(&storage, "user", "mj").await;

    server.kill();
    let limit = Duration::from_secs(2);
    let started = Instant::now();
    let read = tokio::time::timeout(limit, storage.read(Some(&id))).await;
    assert!(
        matches!(read, Ok(Err(_))),
        "read on a dead server: {read:?}"
    );
    let session = Session::new();
    session.set("x", 1).unwrap();
    let save = tokio::time::timeout(limit, storage.save(&session)).await;
    assert!(
        matches!(save, Ok(Err(_))),
        "save on a dead server: {save:?}"
    );
    eprintln!("errors while down after {:?}", started.elapsed());

    server.restart();
    let back = Instant::now();
    loop {
        let session = Session::new();
        session.set("x", 1).unwrap();
        match tokio::time::timeout(limit, storage.save(&session)).await {
            Ok(Ok(Some(id))) => {
                let (again, _) = request(&storage, Some(&id), |_| {}).await;
                assert_eq!(again.get::<u64>("x"), Some(1));
                break;
            }
            other => assert!(
                back.elapsed() < Duration::from_secs(3),
                "no recovery within 3 s of the restart: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("working again {:?} after the restart", back.elapsed());
}

#[tokio::test]
async fn a_restart_is_transparent_for_pooled_connections() {
    let mut server = start_memcached();
    let storage = MemcacheStorage::connect(&addr(&server))
        .await
        .unwrap()
        .pool_size(2);
    // Open both pooled connections.
    let (a, b) = tokio::join!(save_new(&storage, "k", "1"), save_new(&storage, "k", "2"));
    assert_ne!(a, b);
    server.restart();
    // Every pooled connection is stale now; each request replaces its own once.
    for _ in 0..4 {
        let session = storage.read(Some(&a)).await.expect("read after restart");
        assert_eq!(
            session.get::<String>("k"),
            None,
            "a restart loses the sessions"
        );
    }
}

#[tokio::test]
async fn concurrent_requests_do_not_wait_on_each_other() {
    let server = start_memcached();
    let storage = MemcacheStorage::connect(&addr(&server)).await.unwrap();
    let storage = std::sync::Arc::new(storage);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let id = save_new(&storage, "i", &i.to_string()).await;
                let (session, _) = request(&*storage, Some(&id), |_| {}).await;
                assert_eq!(session.get::<String>("i"), Some(i.to_string()));
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

// ---- protocol errors only a broken or hostile server sends (fake servers) ----

/// A fake server: answers `version` properly, then `reply` to every other command
/// (`None`: never answers).
async fn fake_server(reply: Option<&'static [u8]>) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut stream = tokio::io::BufReader::new(stream);
                let mut line = String::new();
                while stream.read_line(&mut line).await.unwrap_or(0) > 0 {
                    if line.starts_with("version") {
                        let _ = stream.get_mut().write_all(b"VERSION 1.6.0\r\n").await;
                    } else if ["gets ", "delete ", "md "]
                        .iter()
                        .any(|c| line.starts_with(c))
                    {
                        match reply {
                            Some(reply) => {
                                let _ = stream.get_mut().write_all(reply).await;
                            }
                            None => std::future::pending::<()>().await,
                        }
                    } else if ["set ", "add ", "cas "].iter().any(|c| line.starts_with(c)) {
                        // Skip the data line, then answer.
                        let mut data = String::new();
                        let _ = stream.read_line(&mut data).await;
                        match reply {
                            Some(reply) => {
                                let _ = stream.get_mut().write_all(reply).await;
                            }
                            None => std::future::pending::<()>().await,
                        }
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn garbage_and_hostile_responses_are_errors() {
    let huge = b"VALUE session:x 0 99999999999\r\n";
    let cases: &[&'static [u8]] = &[
        b"HELLO\r\n",
        b"\xff\xfe\r\n",
        b"SERVER_ERROR out of memory\r\n",
        b"CLIENT_ERROR bad data chunk\r\n",
        b"ERROR\r\n",
        b"VALUE\r\n",
        b"VALUE a b c d e f\r\n",
        b"VALUE session:0000 0 4294967296\r\n",
        huge,
        b"no line end",
    ];
    for &reply in cases {
        let addr = fake_server(Some(reply)).await;
        let options = NetworkOptions::new().response_timeout(Duration::from_millis(300));
        let storage = MemcacheStorage::connect_with(&addr, options).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(2), storage.read(Some("id"))).await;
        assert!(matches!(read, Ok(Err(_))), "{reply:?}: read gave {read:?}");
        let session = Session::new();
        session.set("a", 1).unwrap();
        let save = tokio::time::timeout(Duration::from_secs(2), storage.save(&session)).await;
        assert!(matches!(save, Ok(Err(_))), "{reply:?}: save gave {save:?}");
    }
    // An endless line is cut off, not buffered.
    let endless: &'static [u8] = Box::leak(vec![b'A'; 64 * 1024].into_boxed_slice());
    let addr = fake_server(Some(endless)).await;
    let storage = MemcacheStorage::connect(&addr).await.unwrap();
    assert!(storage.read(Some("id")).await.is_err());
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let addr = fake_server(None).await;
    let options = NetworkOptions::new().response_timeout(Duration::from_millis(300));
    let storage = MemcacheStorage::connect_with(&addr, options).await.unwrap();
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(2), storage.read(Some("id"))).await;
    assert!(matches!(read, Ok(Err(Error::Timeout))), "{read:?}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(290) && elapsed < Duration::from_secs(1),
        "{elapsed:?}"
    );
    let session = Session::new();
    session.set("a", 1).unwrap();
    let save = tokio::time::timeout(Duration::from_secs(2), storage.save(&session)).await;
    assert!(matches!(save, Ok(Err(Error::Timeout))), "{save:?}");
}

/// A listener nobody accepts on, its backlog filled: further handshakes never finish. The
/// streams hold the backlog full; keep them alive with the listener.
fn unaccepting_listener() -> (std::net::TcpListener, Vec<TcpStream>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    while fillers.len() < 10_000 {
        match TcpStream::connect_timeout(&target, Duration::from_millis(200)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => break,
        }
    }
    (listener, fillers)
}

#[tokio::test]
async fn a_server_that_never_accepts_hits_the_connect_timeout() {
    let (listener, fillers) = unaccepting_listener();
    let target = listener.local_addr().unwrap();
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(3),
        MemcacheStorage::connect(&target.to_string()),
    )
    .await;
    let elapsed = started.elapsed();
    eprintln!(
        "full backlog: {result:?} after {elapsed:?} ({} fillers)",
        fillers.len()
    );
    assert!(matches!(result, Ok(Err(Error::Timeout))), "{result:?}");
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2000));
}

/// A fake server that answers every `gets <key>` with a valid record of `size` bytes (JSON
/// padded with spaces).
async fn fake_big_value_server(size: usize) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = tokio::io::BufReader::new(stream);
                let mut line = String::new();
                while stream.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let reply = if line.starts_with("version") {
                        b"VERSION 1.6.0\r\n".to_vec()
                    } else if let Some(key) = line.trim_end().strip_prefix("gets ") {
                        let mut value = br#"{"d":{"values":{"big":true}},"c":1}"#.to_vec();
                        value.resize(size, b' ');
                        let mut reply = format!("VALUE {key} 0 {size} 1\r\n").into_bytes();
                        reply.extend_from_slice(&value);
                        reply.extend_from_slice(b"\r\nEND\r\n");
                        reply
                    } else {
                        b"ERROR\r\n".to_vec()
                    };
                    if stream.get_mut().write_all(&reply).await.is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn values_over_the_limit_are_read_past_and_the_connection_goes_on() {
    let addr = fake_big_value_server(1024 * 1024).await;
    let storage = MemcacheStorage::connect(&addr).await.unwrap();
    let session = storage
        .read(Some("id"))
        .await
        .expect("a 1 MiB value is accepted");
    assert_eq!(session.get::<bool>("big"), Some(true));

    // One connection: each reply must be read to its end for the next to be read right.
    let addr = fake_big_value_server(1024 * 1024 + 1).await;
    let storage = MemcacheStorage::connect(&addr).await.unwrap().pool_size(1);
    for _ in 0..3 {
        let read = storage.read(Some("id")).await;
        match read {
            Err(Error::Corrupt { reason, .. }) => {
                assert!(reason.contains("1048577 bytes"), "{reason}")
            }
            other => panic!("expected Error::Corrupt, got {other:?}"),
        }
    }
    // The same value under a higher limit is read.
    let raised = storage.max_record_size(2 * 1024 * 1024);
    let session = raised.read(Some("id")).await.unwrap();
    assert_eq!(session.get::<bool>("big"), Some(true));
}

/// A valid record of exactly `size` bytes (its JSON padded with spaces), so that only its
/// size can make a load refuse it.
fn padded_record(size: usize) -> Vec<u8> {
    let mut bytes = br#"{"d":{"values":{"planted":true},"flash":{}},"c":1}"#.to_vec();
    assert!(bytes.len() <= size);
    bytes.resize(size, b' ');
    bytes
}

/// What memcached says of `key` with `mg <key> t`: `None` when it holds nothing, else the
/// remaining TTL in seconds (`-1`: none).
fn raw_ttl(addr: &str, key: &str) -> Option<i64> {
    let line = raw(addr, format!("mg {key} t\r\n").as_bytes());
    let line = String::from_utf8(line).unwrap();
    if line == "EN\r\n" {
        return None;
    }
    let ttl = line
        .trim_end()
        .strip_prefix("HD t")
        .unwrap_or_else(|| panic!("unexpected answer {line:?}"));
    Some(ttl.parse().unwrap())
}

#[tokio::test]
async fn a_planted_oversize_record_is_refused_and_the_connection_goes_on() {
    let server = start_memcached();
    let addr = addr(&server);
    let storage = MemcacheStorage::connect(&addr)
        .await
        .unwrap()
        .pool_size(1)
        .max_record_size(1024);
    let id = save_new(&storage, "user", "mj").await;
    let key = storage.key_for(&id);

    raw_set(&addr, &key, &padded_record(1024));
    let loaded = storage.read(Some(&id)).await.unwrap();
    assert_eq!(loaded.get::<bool>("planted"), Some(true), "1024 bytes fit");

    raw_set(&addr, &key, &padded_record(1025));
    let before = stats(&addr);
    match storage.read(Some(&id)).await {
        Err(Error::Corrupt { record, reason }) => {
            assert_eq!(record, key, "named by its key, not the id");
            assert!(reason.contains("1025 bytes"), "{reason}");
            assert!(reason.contains("1024-byte"), "{reason}");
        }
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
    // The next requests on the same (only) connection work, with no reconnection: the
    // value was read past, in step.
    let fresh = save_new(&storage, "user", "kj").await;
    assert_ne!(fresh, id);
    let again = storage.read(Some(&fresh)).await.unwrap();
    assert_eq!(again.get::<String>("user").as_deref(), Some("kj"));
    assert_eq!(connections_opened(&before, &stats(&addr)), 0);
    // A save of the fresh session never touched the planted record.
    assert_eq!(raw_get(&addr, &key).unwrap().len(), 1025);
}

#[tokio::test]
async fn the_default_limit_is_one_mib_both_ways() {
    // Items of up to 2 MiB, so that a record just over 1 MiB can be planted.
    let server = start_memcached_with(&["-I", "2m"]);
    let addr = addr(&server);
    let storage = MemcacheStorage::connect(&addr).await.unwrap();
    let id = save_new(&storage, "user", "mj").await;
    let key = storage.key_for(&id);
    raw_set(&addr, &key, &padded_record(1 << 20));
    let loaded = storage.read(Some(&id)).await.unwrap();
    assert_eq!(loaded.get::<bool>("planted"), Some(true));
    raw_set(&addr, &key, &padded_record((1 << 20) + 1));
    let read = storage.read(Some(&id)).await;
    assert!(matches!(read, Err(Error::Corrupt { .. })), "{read:?}");

    let big = storage.read(None).await.unwrap();
    big.set("big", "x".repeat(1 << 20)).unwrap();
    match storage.save(&big).await {
        Err(Error::RecordTooLarge { size, limit }) => {
            assert_eq!(limit, 1 << 20);
            assert!(size > 1 << 20, "{size}");
        }
        other => panic!("expected Error::RecordTooLarge, got {other:?}"),
    }
    assert!(raw_get(&addr, &storage.key_for(&big.id())).is_none());
}

#[tokio::test]
async fn a_save_over_max_record_size_fails_and_writes_nothing() {
    let server = start_memcached();
    let addr = addr(&server);
    let storage = MemcacheStorage::connect(&addr)
        .await
        .unwrap()
        .max_record_size(1024);
    let id = save_new(&storage, "user", "mj").await;
    let before = raw_get(&addr, &storage.key_for(&id)).unwrap();
    let loaded = storage.read(Some(&id)).await.unwrap();
    loaded.set("big", "x".repeat(1024)).unwrap();
    let saved = storage.save(&loaded).await;
    assert!(
        matches!(saved, Err(Error::RecordTooLarge { limit: 1024, .. })),
        "{saved:?}"
    );
    assert_eq!(raw_get(&addr, &storage.key_for(&id)).unwrap(), before);
}

/// A record under max_record_size but over memcached's own item limit (`-I`, 1 MiB with
/// the key and item header) is memcached's to refuse: an error, and the next request works.
#[tokio::test]
async fn a_record_over_memcacheds_item_limit_is_a_server_error() {
    let server = start_memcached();
    let storage = MemcacheStorage::connect(&addr(&server))
        .await
        .unwrap()
        .pool_size(1);
    let session = storage.read(None).await.unwrap();
    session.set("big", "x".repeat((1 << 20) - 100)).unwrap();
    match storage.save(&session).await {
        Err(Error::Backend(e)) => assert!(e.to_string().contains("too large"), "{e}"),
        other => panic!("expected memcached's refusal, got {other:?}"),
    }
    let id = save_new(&storage, "user", "mj").await;
    let loaded = storage.read(Some(&id)).await.unwrap();
    assert_eq!(loaded.get::<String>("user").as_deref(), Some("mj"));
}

// ---- durations that do not fit ----

#[tokio::test]
async fn duration_max_ttl_and_lifetime_keep_the_record_on_the_server() {
    let server = start_memcached();
    let addr = addr(&server);
    let plain = MemcacheStorage::connect(&addr).await.unwrap();
    for (label, storage) in [
        ("ttl", plain.clone().ttl(Duration::MAX)),
        ("max_lifetime", plain.clone().max_lifetime(Duration::MAX)),
        (
            "both",
            plain.clone().ttl(Duration::MAX).max_lifetime(Duration::MAX),
        ),
    ] {
        let (_, cookie) = request(&storage, None, |s| s.set("user", "mj").unwrap()).await;
        let id = cookie.expect("saved");
        // Sent as a wrapped or clamped time, memcached would drop the item at once or in
        // 2038; a 32-bit Unix time cannot say more, so the item gets no expiry at all.
        assert_eq!(raw_ttl(&addr, &storage.key_for(&id)), Some(-1), "{label}");
        let (session, _) = request(&storage, Some(&id), |s| s.set("n", 1).unwrap()).await;
        assert_eq!(
            session.get::<String>("user").as_deref(),
            Some("mj"),
            "{label}"
        );
        assert_eq!(raw_ttl(&addr, &storage.key_for(&id)), Some(-1), "{label}");
    }
}

// ---- the whole stack: SessionLayer + MemcacheStorage on an axum Router ----

#[cfg(feature = "axum")]
mod layer_flow {
    use super::*;
    use common::app::{app, send};
    use http::StatusCode;

    #[tokio::test]
    async fn counter_logout_and_a_dead_server() {
        let mut server = start_memcached();
        let options = NetworkOptions::new().response_timeout(Duration::from_millis(500));
        let storage = MemcacheStorage::connect_with(&addr(&server), options)
            .await
            .unwrap()
            .ttl(Duration::from_secs(600));
        let app = app(storage);

        let (status, cookie, body) = send(&app, None, "/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
        let cookie = cookie.expect("a session cookie");
        assert!(cookie.starts_with("__session="));
        let (_, _, body) = send(&app, Some(&cookie), "/").await;
        assert_eq!(body, "2");

        // A forged cookie is ignored: a fresh session.
        let (_, _, body) = send(&app, Some("__session=someone-elses-id"), "/").await;
        assert_eq!(body, "1");

        let (_, removal, _) = send(&app, Some(&cookie), "/logout").await;
        assert_eq!(removal.as_deref(), Some("__session="), "cookie cleared");
        let (_, _, body) = send(&app, Some(&cookie), "/").await;
        assert_eq!(body, "1", "the destroyed session is gone");

        server.kill();
        let (status, _, text) =
            tokio::time::timeout(Duration::from_secs(3), send(&app, Some(&cookie), "/"))
                .await
                .expect("no hang while memcached is down");
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !text.contains("memcached") && !text.contains("127.0.0.1"),
            "{text:?}"
        );

        server.restart();
        let (status, _, _) = send(&app, None, "/").await;
        assert_eq!(status, StatusCode::OK);
    }

    /// A request whose record went over the limit gets a fresh session and a new cookie,
    /// not a 500.
    #[tokio::test]
    async fn an_oversize_record_starts_a_fresh_session() {
        let server = start_memcached();
        let storage = MemcacheStorage::connect(&addr(&server))
            .await
            .unwrap()
            .max_record_size(1024);
        let app = app(storage.clone());
        let (_, cookie, _) = send(&app, None, "/").await;
        let cookie = cookie.expect("a session cookie");
        let (_, _, body) = send(&app, Some(&cookie), "/").await;
        assert_eq!(body, "2");
        // The id, as the layer reads it from the cookie.
        let id = session_layer::SessionCookie::new("__session")
            .secrets(["a test secret of at least 32 bytes"])
            .parse(Some(&cookie))
            .expect("the app's own cookie");
        raw_set(&addr(&server), &storage.key_for(&id), &padded_record(1025));
        let (status, fresh, body) = send(&app, Some(&cookie), "/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
        assert_ne!(fresh.as_deref(), Some(&*cookie), "a new cookie");
    }
}

/// A fake server that answers `add` after 200 ms: `NOT_STORED` for keys starting with
/// `taken:`, else `STORED`.
async fn slow_add_server() -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = tokio::io::BufReader::new(stream);
                let mut line = String::new();
                while stream.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let reply: &[u8] = if line.starts_with("version") {
                        b"VERSION 1.6.0\r\n"
                    } else if line.starts_with("add ") {
                        let mut data = String::new();
                        let _ = stream.read_line(&mut data).await;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if line.starts_with("add taken:") {
                            b"NOT_STORED\r\n"
                        } else {
                            b"STORED\r\n"
                        }
                    } else {
                        b"ERROR\r\n"
                    };
                    if stream.get_mut().write_all(reply).await.is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_cancelled_request_never_leaves_its_reply_to_the_next_one() {
    let addr = slow_add_server().await;
    let free = MemcacheStorage::connect(&addr).await.unwrap().pool_size(1);
    let taken = free.clone().key_prefix("taken:").unwrap(); // same connection pool
    let record = Record {
        data: SessionData::default(),
        created_at: 0,
        expires_at_ms: None,
        ..Record::default()
    };
    // Written, then dropped before its STORED arrives (a client went away mid-request).
    let cancelled = tokio::time::timeout(
        Duration::from_millis(50),
        free.backend()
            .store(&"a".into(), &record, None, Expected::Absent),
    )
    .await;
    assert!(cancelled.is_err(), "the first add must still be waiting");
    // The next add on the same (only) connection must get its own answer.
    let stored = taken
        .backend()
        .store(&"b".into(), &record, None, Expected::Absent)
        .await
        .unwrap();
    assert!(
        !stored,
        "the cancelled add's STORED was taken for this add's answer"
    );
}
