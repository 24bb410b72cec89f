//! RedisStorage against a private three-node Redis Cluster (or the cluster whose node URLs
//! are in `REDIS_CLUSTER_URLS`, comma-separated).
#![cfg(feature = "redis")]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_ha::RedisCluster;
use common::scenarios::{request, server_storage_scenarios, storage_scenarios};
use common::servers::{redis_cmd, unique_prefix};
use redis::cluster_async::ClusterConnection;
use session_layer::storage::{
    Expected, NetworkOptions, Record, SessionBackend, SessionId, id_digest,
};
use session_layer::{Error, RedisStorage, Session, SessionData, SessionStorage};

/// The test's cluster: private unless `REDIS_CLUSTER_URLS` is set.
struct Cluster {
    urls: Vec<String>,
    _private: Option<Arc<RedisCluster>>,
}

/// The cluster at `REDIS_CLUSTER_URLS`, else the private one the tests running at the same
/// time share ([`RedisCluster::shared`]).
fn cluster() -> Cluster {
    match std::env::var("REDIS_CLUSTER_URLS") {
        Ok(urls) if !urls.is_empty() => Cluster {
            urls: urls.split(',').map(str::to_owned).collect(),
            _private: None,
        },
        _ => {
            let private = RedisCluster::shared();
            Cluster {
                urls: private.urls(),
                _private: Some(private),
            }
        }
    }
}

impl Cluster {
    async fn storage(&self) -> RedisStorage {
        let urls: Vec<&str> = self.urls.iter().map(String::as_str).collect();
        RedisStorage::connect_cluster(&urls)
            .await
            .expect("connect to the cluster")
            .key_prefix(&unique_prefix())
    }

    /// A plain cluster connection for looking at the keys from the outside.
    async fn raw(&self) -> ClusterConnection {
        redis::cluster::ClusterClient::new(self.urls.clone())
            .unwrap()
            .get_async_connection()
            .await
            .expect("raw cluster connection")
    }
}

/// A storage that keeps its cluster alive for as long as the test uses it.
struct Held {
    storage: RedisStorage,
    _cluster: Cluster,
}

impl SessionStorage for Held {
    async fn read(&self, value: Option<&str>) -> Result<Session, Error> {
        self.storage.read(value).await
    }
    async fn save(&self, session: &Session) -> Result<Option<String>, Error> {
        self.storage.save(session).await
    }
}

async fn held(configure: impl FnOnce(RedisStorage) -> RedisStorage) -> Held {
    let cluster = cluster();
    let storage = configure(cluster.storage().await);
    assert!(storage.backend().is_cluster());
    Held {
        storage,
        _cluster: cluster,
    }
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

async fn slot_of(conn: &mut ClusterConnection, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

/// The node (its port) serving `slot`, from `CLUSTER SLOTS`.
async fn node_of(conn: &mut ClusterConnection, slot: u16) -> i64 {
    let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(conn)
        .await
        .unwrap();
    for range in ranges {
        let redis::Value::Array(parts) = range else {
            continue;
        };
        let (redis::Value::Int(first), redis::Value::Int(last), redis::Value::Array(master)) =
            (&parts[0], &parts[1], &parts[2])
        else {
            continue;
        };
        if (*first..=*last).contains(&i64::from(slot))
            && let redis::Value::Int(port) = master[1]
        {
            return port;
        }
    }
    panic!("no node serves slot {slot}");
}

#[tokio::test]
async fn regenerate_with_delete_across_nodes() {
    let cluster = cluster();
    let storage = cluster.storage().await.ttl(Duration::from_secs(60));
    let mut raw = cluster.raw().await;

    let (first, mut cookie) = request(&storage, None, |s| s.set("user", "anon").unwrap()).await;
    let mut old_id = first.id();
    // Regenerate until the old and the new key live on different nodes (2 in 3 per try).
    let mut crossed = false;
    for _ in 0..20 {
        let (session, next) = request(&storage, cookie.as_deref(), |s| {
            s.regenerate_id(true).unwrap()
        })
        .await;
        let new_id = session.id();
        assert_ne!(new_id, old_id);
        let old_key = storage.key_for(&old_id);
        let new_key = storage.key_for(&new_id);
        let exists: bool = redis_cmd(&mut raw, "EXISTS", &old_key).await;
        assert!(!exists, "the old key must be deleted");
        let pttl: i64 = redis_cmd(&mut raw, "PTTL", &new_key).await;
        assert!(pttl > 0 && pttl <= 60_000, "new key PTTL {pttl}");
        let old_slot = slot_of(&mut raw, &old_key).await;
        let new_slot = slot_of(&mut raw, &new_key).await;
        let different_nodes =
            node_of(&mut raw, old_slot).await != node_of(&mut raw, new_slot).await;
        old_id = new_id;
        cookie = next;
        if different_nodes {
            crossed = true;
            break;
        }
    }
    assert!(crossed, "never regenerated onto another node in 20 tries");
    let (last, _) = request(&storage, cookie.as_deref(), |_| {}).await;
    assert_eq!(last.get::<String>("user").as_deref(), Some("anon"));
    let _: () = redis_cmd(&mut raw, "DEL", storage.key_for(&old_id)).await;
}

#[tokio::test]
async fn keys_and_conditional_writes_in_a_cluster() {
    let cluster = cluster();
    let storage = cluster.storage().await.ttl(Duration::from_secs(600));
    let prefix = storage.backend().prefix().to_owned();
    let mut raw = cluster.raw().await;

    let (session, _) = request(&storage, None, |s| s.set("user", "mj").unwrap()).await;
    let id = SessionId::from(session.id());
    let key = storage.key_for(&id);
    assert_eq!(key, format!("{prefix}{}", id_digest(&id)));
    let bytes: Option<Vec<u8>> = redis_cmd(&mut raw, "HGET", (&key, "d")).await;
    let record = Record::decode("test", &bytes.expect("prefix + id digest exists")).unwrap();
    assert_eq!(record.data.values["user"], "mj");
    let pttl: i64 = redis_cmd(&mut raw, "PTTL", &key).await;
    assert!(pttl > 590_000 && pttl <= 600_000, "PTTL {pttl}");

    let mut data = SessionData::default();
    data.values.insert("user".into(), "intruder".into());
    let other = Record {
        data,
        created_at: 1,
        expires_at_ms: None,
        ..Record::default()
    };
    let backend = storage.backend();
    let version = backend.load(&id).await.unwrap().unwrap().version;
    let store = async |expected| backend.store(&id, &other, None, expected).await.unwrap();
    assert!(!store(Expected::Absent).await, "Absent must not overwrite");
    assert!(
        !store(Expected::Version(version + 1)).await,
        "nor a wrong version"
    );
    assert!(
        !backend
            .delete(&id, Expected::Version(version + 1))
            .await
            .unwrap()
    );
    let loaded = storage.read(Some(&id)).await.unwrap();
    assert_eq!(loaded.get::<String>("user").as_deref(), Some("mj"));

    assert!(store(Expected::Version(version)).await);
    let stored = backend.load(&id).await.unwrap().unwrap();
    assert_eq!(stored.record.data.values["user"], "intruder");
    assert_ne!(stored.version, version);
    assert!(
        backend
            .delete(&id, Expected::Version(stored.version))
            .await
            .unwrap()
    );
    let exists: bool = redis_cmd(&mut raw, "EXISTS", &key).await;
    assert!(!exists);

    // A key of another type (here a string) is corrupt.
    let old_key = storage.key_for("old-format-id");
    assert!(!old_key.contains("old-format-id"));
    let _: () = redis_cmd(&mut raw, "SET", (&old_key, other.encode())).await;
    match storage.read(Some("old-format-id")).await {
        Err(Error::Corrupt { record, .. }) => assert!(!record.contains("old-format-id")),
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
    // A hash of the right shape over the size limit (1 MiB unless set) is refused by size.
    let mut big = other.clone();
    big.data
        .values
        .insert("pad".into(), "x".repeat(2 << 20).into());
    let big = big.encode();
    let _: () = redis_cmd(&mut raw, "DEL", &old_key).await;
    let _: () = redis_cmd(&mut raw, "HSET", (&old_key, "v", "1", "d", &big)).await;
    match storage.read(Some("old-format-id")).await {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(reason.contains(&format!("{} bytes", big.len())), "{reason}");
        }
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
    let _: () = redis_cmd(&mut raw, "DEL", &old_key).await;
}

#[tokio::test]
async fn concurrent_saves_merge_in_a_cluster() {
    let storage = held(|s| s).await;
    let (_, cookie) = request(&storage, None, |s| s.set("base", 1).unwrap()).await;
    let cookie = cookie.as_deref();
    let a = storage.read(cookie).await.unwrap();
    let b = storage.read(cookie).await.unwrap();
    let late = storage.read(cookie).await.unwrap();
    a.set("a", 1).unwrap();
    b.set("b", 2).unwrap();
    assert_eq!(storage.save(&a).await.unwrap().as_deref(), cookie);
    assert_eq!(storage.save(&b).await.unwrap().as_deref(), cookie);
    let merged = storage.read(cookie).await.unwrap();
    assert_eq!(
        (merged.get::<u64>("a"), merged.get::<u64>("b")),
        (Some(1), Some(2))
    );

    merged.destroy();
    assert_eq!(storage.save(&merged).await.unwrap().as_deref(), Some(""));
    late.set("c", 3).unwrap();
    assert_eq!(
        storage.save(&late).await.unwrap().as_deref(),
        Some(""),
        "a destroyed session is not written back"
    );
    assert!(
        storage
            .storage
            .backend()
            .load(&cookie.unwrap().into())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn empty_node_list_is_a_config_error() {
    assert!(matches!(
        RedisStorage::connect_cluster(&[]).await,
        Err(Error::Config(_))
    ));
}

#[tokio::test]
async fn connecting_to_a_down_cluster_fails_fast() {
    let url = format!("redis://127.0.0.1:{}", common::servers::free_port());
    let start = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(6),
        RedisStorage::connect_cluster(&[url.as_str()]),
    )
    .await
    .expect("connect_cluster must not hang");
    assert!(result.is_err(), "{result:?}");
    eprintln!("down cluster: {result:?} after {:?}", start.elapsed());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_node_down_gives_errors_and_recovery_is_automatic() {
    // Always a private cluster: this test kills one of its nodes.
    let mut cluster = RedisCluster::start(3, 0);
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let response_timeout = Duration::from_millis(500);
    let storage = RedisStorage::connect_cluster_with(
        &urls,
        NetworkOptions::new().response_timeout(response_timeout),
    )
    .await
    .unwrap()
    .key_prefix(&unique_prefix());

    let save_new = || async {
        let session = Session::new();
        session.set("x", 1).unwrap();
        let start = Instant::now();
        let saved = tokio::time::timeout(Duration::from_secs(5), storage.save(&session))
            .await
            .expect("a save must not hang");
        (saved, start.elapsed())
    };

    cluster.nodes[0].kill();
    let mut failed = 0;
    let mut attempts = 0;
    while attempts < 48 && failed < 2 {
        attempts += 1;
        let (saved, took) = save_new().await;
        assert!(
            took <= response_timeout + Duration::from_millis(500),
            "a save took {took:?} with a node down: {saved:?}"
        );
        if let Err(e) = &saved {
            eprintln!("node down: save failed in {took:?}: {e}");
            failed += 1;
        }
    }
    // Each fresh id lands on the dead node with probability 1/3, so 48 tries all miss it
    // once in 280 million runs.
    assert!(failed > 0, "no save failed with a third of the slots down");

    cluster.nodes[0].restart();
    let restarted = Instant::now();
    let mut streak = 0;
    while streak < 12 {
        let (saved, _) = save_new().await;
        if saved.is_ok() {
            streak += 1;
        } else {
            eprintln!("{:?} after the restart: {saved:?}", restarted.elapsed());
            streak = 0;
            assert!(
                restarted.elapsed() < Duration::from_secs(10),
                "still failing {:?} after the restart: {saved:?}",
                restarted.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "cluster: {failed}/{attempts} saves failed with a node down; all slots usable {:?} after its restart",
        restarted.elapsed()
    );
}

// ---- Sessions of one owner: the index on a Cluster ----

/// One plain connection per node of the cluster, to look at what each holds.
async fn nodes(cluster: &Cluster) -> Vec<redis::aio::MultiplexedConnection> {
    let mut conns = Vec::new();
    for url in &cluster.urls {
        let client = redis::Client::open(url.as_str()).unwrap();
        conns.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    conns
}

/// Every key under `prefix` on every node, sorted: scanned, not listed.
async fn scan_all(conns: &mut [redis::aio::MultiplexedConnection], prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for conn in conns {
        let mut cursor = 0u64;
        loop {
            let (next, found): (u64, Vec<String>) =
                redis_cmd(conn, "SCAN", (cursor, "MATCH", format!("{prefix}*"))).await;
            keys.extend(found);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    keys.sort();
    keys
}

/// How many times each node ran each of `commands` since the last call, summed.
async fn commands_run(
    conns: &mut [redis::aio::MultiplexedConnection],
    commands: &[&str],
) -> Vec<u64> {
    let mut total = vec![0; commands.len()];
    for conn in conns {
        let info: String = redis_cmd(conn, "INFO", "commandstats").await;
        for (at, command) in commands.iter().enumerate() {
            let line = info
                .lines()
                .find(|line| line.starts_with(&format!("cmdstat_{command}:")));
            if let Some(calls) = line
                .and_then(|line| line.split("calls=").nth(1))
                .and_then(|rest| rest.split(',').next())
            {
                total[at] += calls.parse::<u64>().unwrap();
            }
        }
        let _: () = redis_cmd(conn, "CONFIG", "RESETSTAT").await;
    }
    total
}

#[tokio::test]
async fn the_owner_index_in_a_cluster() {
    use session_layer::SessionIndex;
    let cluster = cluster();
    let storage = cluster.storage().await.ttl(Duration::from_secs(600));
    let prefix = storage.backend().prefix().to_owned();
    let mut conns = nodes(&cluster).await;
    let ann = format!("{prefix}owner:{}", id_digest("ann"));
    let bob = format!("{prefix}owner:{}", id_digest("bob"));
    let login = |owner: &'static str| {
        move |s: &Session| {
            s.set("n", 0).unwrap();
            s.set_owner(owner).unwrap();
        }
    };
    let mut cookies = Vec::new();
    for _ in 0..6 {
        cookies.push(request(&storage, None, login("ann")).await.1.unwrap());
    }
    let mut raw = cluster.raw().await;
    let members: Vec<String> = redis_cmd(&mut raw, "ZRANGE", (&ann, 0, -1)).await;
    assert_eq!(members.len(), 6);
    let pttl: i64 = redis_cmd(&mut raw, "PTTL", &ann).await;
    // Past the sessions' expiry by the write timeout (2 s) and a second of clock skew.
    assert!((600_000..=603_100).contains(&pttl), "{pttl}");
    assert_eq!(storage.sessions_of("ann").await.unwrap().len(), 6);

    // Regenerated (the keys on different nodes in general), moved to bob, cleared, destroyed.
    let (moved, _) = request(&storage, Some(&cookies[0]), |s| {
        s.regenerate_id(true).unwrap()
    })
    .await;
    request(&storage, Some(&cookies[1]), |s| s.set_owner("bob").unwrap()).await;
    request(&storage, Some(&cookies[2]), |s| s.clear_owner().unwrap()).await;
    request(&storage, Some(&cookies[3]), |s| s.destroy()).await;
    let members: Vec<String> = redis_cmd(&mut raw, "ZRANGE", (&ann, 0, -1)).await;
    assert_eq!(members.len(), 3, "the moved session and two untouched ones");
    assert!(members.contains(&moved.handle().to_string()));
    let listed = storage.sessions_of("ann").await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(storage.sessions_of("bob").await.unwrap().len(), 1);

    // Ending: owner-checked, then all but one.
    let bobs = storage.sessions_of("bob").await.unwrap()[0].handle.clone();
    assert!(!storage.end_session("ann", &bobs).await.unwrap());
    assert!(storage.end_session("bob", &bobs).await.unwrap());
    let current = storage.read(Some(&cookies[4])).await.unwrap();
    assert_eq!(
        storage
            .end_sessions_of("ann", Some(&current))
            .await
            .unwrap(),
        2
    );
    let left = storage.sessions_of("ann").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].handle, current.handle());
    assert_eq!(storage.end_sessions_of("ann", None).await.unwrap(), 1);

    // All that is left is the unowned session (its owner cleared).
    let left = scan_all(&mut conns, &prefix).await;
    assert_eq!(
        left,
        vec![storage.key_for(&cookies[2])],
        "no set of ann or bob"
    );
    assert!(!left.contains(&ann) && !left.contains(&bob));
    let _: () = redis_cmd(&mut raw, "DEL", storage.key_for(&cookies[2])).await;
}

/// Counted on every node: an owned save is the record then its entry rescored (two
/// commands, one after the other); an unowned one is the record only; a listing is the
/// set, then the records side by side.
#[tokio::test]
async fn an_owned_save_in_a_cluster_is_two_commands() {
    use session_layer::SessionIndex;
    // Counts every command the nodes run, so it needs a cluster of its own.
    let private = RedisCluster::start(3, 0);
    let urls = private.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let storage = RedisStorage::connect_cluster(&urls)
        .await
        .unwrap()
        .ttl(Duration::from_secs(600));
    let own = Cluster {
        urls: private.urls(),
        _private: None,
    };
    let mut conns = nodes(&own).await;
    // Every script once on every node, so that no NOSCRIPT retry is counted below.
    for n in 0..30 {
        let owner = format!("warm-{n}");
        let (_, cookie) = request(&storage, None, |s| s.set_owner(&owner).unwrap()).await;
        let (_, cookie) = request(&storage, cookie.as_deref(), |s| s.clear_owner().unwrap()).await;
        let (_, cookie) = request(&storage, cookie.as_deref(), |s| {
            s.set_owner(&owner).unwrap()
        })
        .await;
        request(&storage, cookie.as_deref(), |s| s.destroy()).await;
        storage.sessions_of(&owner).await.unwrap();
    }
    let scripts = ["evalsha", "eval"];
    commands_run(&mut conns, &scripts).await;

    let unowned = Session::new();
    unowned.set("n", 1).unwrap();
    storage.save(&unowned).await.unwrap();
    let unowned_save = commands_run(&mut conns, &scripts).await;
    let owned = Session::new();
    owned.set_owner("ann").unwrap();
    let cookie = storage.save(&owned).await.unwrap().unwrap();
    let session = storage.read(Some(&cookie)).await.unwrap();
    session.set("n", 2).unwrap();
    commands_run(&mut conns, &scripts).await;
    storage.save(&session).await.unwrap();
    let owned_save = commands_run(&mut conns, &scripts).await;
    for _ in 0..9 {
        request(&storage, None, |s| s.set_owner("ann").unwrap()).await;
    }
    commands_run(&mut conns, &scripts).await;
    assert_eq!(storage.sessions_of("ann").await.unwrap().len(), 10);
    let listing = commands_run(&mut conns, &scripts).await;
    println!(
        "Scripts run on the cluster's nodes (evalsha, eval): unowned save {unowned_save:?}; \
         owned save {owned_save:?}; listing 10 sessions {listing:?}"
    );
    assert_eq!(unowned_save, [1, 0]);
    assert_eq!(owned_save, [2, 0]);
    assert_eq!(listing, [11, 0]);
}

#[tokio::test]
async fn nothing_of_an_owner_is_left_in_a_cluster_once_its_sessions_expired() {
    use session_layer::SessionIndex;
    let cluster = cluster();
    let urls: Vec<&str> = cluster.urls.iter().map(String::as_str).collect();
    // A short write timeout, so that the entries' margin past their sessions is short.
    let options = NetworkOptions::new().response_timeout(Duration::from_millis(500));
    let prefix = unique_prefix();
    let storage = RedisStorage::connect_cluster_with(&urls, options)
        .await
        .unwrap()
        .key_prefix(&prefix)
        .ttl(Duration::from_millis(1000));
    let mut conns = nodes(&cluster).await;
    let mut cookies = Vec::new();
    for owner in ["ann", "ann", "ann", "bob"] {
        let (_, cookie) = request(&storage, None, |s| s.set_owner(owner).unwrap()).await;
        cookies.push(cookie.unwrap());
    }
    request(&storage, Some(&cookies[0]), |s| {
        s.regenerate_id(true).unwrap()
    })
    .await;
    request(&storage, Some(&cookies[1]), |s| s.set_owner("bob").unwrap()).await;
    assert_eq!(
        scan_all(&mut conns, &prefix).await.len(),
        6,
        "4 sessions, 2 sets"
    );
    // The sessions' TTL, then the entries' margin (0.5 s write timeout + 1 s).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(storage.sessions_of("ann").await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(scan_all(&mut conns, &prefix).await, Vec::<String>::new());
}
