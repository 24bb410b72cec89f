//! RedisStorage against a private three-node Redis Cluster (or the cluster whose node URLs
//! are in `REDIS_CLUSTER_URLS`, comma-separated).
#![cfg(feature = "redis")]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::scenarios::{request, server_storage_scenarios, storage_scenarios};
use common::servers::RedisCluster;
use redis::cluster_async::ClusterConnection;
use session_layer::storage::{Record, SessionBackend, WriteMode};
use session_layer::{Error, RedisStorage, Session, SessionData, SessionStorage};

/// The test's cluster: private (stopped when dropped) unless `REDIS_CLUSTER_URLS` is set.
struct Cluster {
    urls: Vec<String>,
    _private: Option<RedisCluster>,
}

fn cluster() -> Cluster {
    match std::env::var("REDIS_CLUSTER_URLS") {
        Ok(urls) if !urls.is_empty() => Cluster {
            urls: urls.split(',').map(str::to_owned).collect(),
            _private: None,
        },
        _ => {
            let private = RedisCluster::start(3);
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

fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "session-layer-test:{}:{nanos}:{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
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
        if (*first..=*last).contains(&i64::from(slot)) {
            if let redis::Value::Int(port) = master[1] {
                return port;
            }
        }
    }
    panic!("no node serves slot {slot}");
}

#[tokio::test]
async fn regenerate_with_delete_across_nodes() {
    let cluster = cluster();
    let storage = cluster.storage().await.ttl(Duration::from_secs(60));
    let prefix = storage.backend().prefix().to_owned();
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
        let old_key = format!("{prefix}{old_id}");
        let new_key = format!("{prefix}{new_id}");
        let exists: bool = redis::cmd("EXISTS")
            .arg(&old_key)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(!exists, "the old key must be deleted");
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&new_key)
            .query_async(&mut raw)
            .await
            .unwrap();
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
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}{old_id}"))
        .query_async(&mut raw)
        .await
        .unwrap();
}

#[tokio::test]
async fn keys_and_create_only_writes_in_a_cluster() {
    let cluster = cluster();
    let storage = cluster.storage().await.ttl(Duration::from_secs(600));
    let prefix = storage.backend().prefix().to_owned();
    let mut raw = cluster.raw().await;

    let (session, _) = request(&storage, None, |s| s.set("user", "mj").unwrap()).await;
    let key = format!("{prefix}{}", session.id());
    let bytes: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    let record = Record::decode("test", &bytes.expect("prefix + id exists")).unwrap();
    assert_eq!(record.data.values["user"], "mj");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(pttl > 590_000 && pttl <= 600_000, "PTTL {pttl}");

    let mut data = SessionData::default();
    data.values.insert("user".into(), "intruder".into());
    let other = Record {
        data,
        created_at: 1,
        expires_at_ms: None,
    };
    let backend = storage.backend();
    let stored = backend
        .store(&session.id(), &other, None, WriteMode::Create)
        .await
        .unwrap();
    assert!(!stored, "Create must not overwrite");
    // Also when the delete goes to another key (probably another node).
    let stored = backend
        .delete_and_store(
            "some-old-id",
            &session.id(),
            &other,
            None,
            WriteMode::Create,
        )
        .await
        .unwrap();
    assert!(!stored, "delete_and_store reports the SET NX result");
    let loaded = storage.read(Some(&session.id())).await.unwrap();
    assert_eq!(loaded.get::<String>("user").as_deref(), Some("mj"));
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
}

#[tokio::test]
async fn empty_node_list_is_a_config_error() {
    assert!(matches!(
        RedisStorage::connect_cluster(&[]).await,
        Err(Error::Config(_))
    ));
}
