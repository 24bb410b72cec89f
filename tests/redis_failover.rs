//! RedisStorage through the faults of a replicated Redis: a Cluster master killed under
//! traffic on every master, slots resharded under traffic with logins among the writes, a
//! replica that lags when its master dies, and a Sentinel failover. Always on private
//! servers: the tests kill and pause them.
//!
//! Each test prints one `figures:` line; docs/deployment.md gives them over repeated runs.
#![cfg(feature = "redis")]
mod common;

use std::time::Duration;

use common::redis_ha::{RedisCluster, SentinelSetup, cli, wait_until};
use common::servers::unique_prefix;
use common::traffic::{Log, Traffic, Verdict, verdict};
use session_layer::RedisStorage;
use tokio::sync::Mutex;

/// One fault test at a time: each runs its own servers and times what they do.
static ALONE: Mutex<()> = Mutex::const_new(());

/// Sessions and writers, as in the failover experiment of docs/deployment.md.
const SESSIONS: usize = 200;
const WORKERS: usize = 16;

/// Runs blocking harness work (redis-cli, process signals) off the async workers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("harness work panicked")
}

/// The port of the master serving each session at the start.
fn masters_of(cluster: &RedisCluster, storage: &RedisStorage, ids: &[String]) -> Vec<u16> {
    let port = cluster.nodes[0].port;
    ids.iter()
        .map(|id| {
            let slot = cli(port, &["cluster", "keyslot", &storage.key_for(id)]);
            cluster.master_of_slot(slot.trim().parse().expect("a slot number"))
        })
        .collect()
}

fn most_common(ports: &[u16]) -> u16 {
    let mut counts = std::collections::HashMap::new();
    for port in ports {
        *counts.entry(*port).or_insert(0) += 1;
    }
    counts.into_iter().max_by_key(|&(_, n)| n).unwrap().0
}

/// A storage on the cluster under `prefix`; the verdict reads through a fresh one, so that
/// it judges what is stored, not the state of the connection under test.
async fn cluster_storage(cluster: &RedisCluster, prefix: &str) -> RedisStorage {
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisStorage::connect_cluster(&urls)
        .await
        .expect("connect to the cluster")
        .key_prefix(prefix)
        .ttl(Duration::from_secs(600))
}

/// What a fault did to the traffic: printed as one `figures:` line.
struct Figures {
    name: &'static str,
    /// From the fault to the deployment being whole again (promotion, end of resharding).
    healed: Duration,
    /// From healed to the last failed request (zero when none failed after).
    recovered: Duration,
    failures: usize,
    on_healthy: usize,
    verdict: Verdict,
}

impl Figures {
    fn new(name: &'static str, log: &Log, fault: Duration, healed: Duration) -> Self {
        let last = log.failures.iter().map(|f| f.at).max();
        Figures {
            name,
            healed: healed.saturating_sub(fault),
            recovered: last.map_or(Duration::ZERO, |last| last.saturating_sub(healed)),
            failures: log.failures.len(),
            on_healthy: 0,
            verdict: Verdict::default(),
        }
    }

    /// No request failed later than `limit` after the deployment was whole again.
    fn assert_recovered_within(&self, limit: Duration) {
        assert!(
            self.recovered <= limit,
            "{}: requests still failed {:?} after it healed",
            self.name,
            self.recovered
        );
    }

    fn print(&self, log: &Log) {
        let mut kinds = std::collections::BTreeMap::new();
        for failure in &log.failures {
            *kinds.entry(failure.message.as_str()).or_insert(0) += 1;
        }
        eprintln!(
            "figures: {}: healed {:?} after the fault; last failure {:?} after that; \
             {} failed requests ({} on healthy masters): {kinds:?}; {} reads, {} logins; {:?}",
            self.name,
            self.healed,
            self.recovered,
            self.failures,
            self.on_healthy,
            log.reads,
            log.logins,
            self.verdict
        );
    }
}

/// A Cluster master dies under traffic on every master, and its replica takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_under_traffic_on_every_master() {
    let _alone = ALONE.lock().await;
    let mut cluster = blocking(|| RedisCluster::start(3, 1)).await;
    let prefix = unique_prefix();
    let mut traffic = Traffic::create(cluster_storage(&cluster, &prefix).await, SESSIONS).await;
    let ids = traffic.ids().await;
    let masters = masters_of(&cluster, traffic.storage(), &ids);
    let victim = most_common(&masters);
    let replica = cluster.replicas_of(victim)[0];

    traffic.start(WORKERS, 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = traffic.elapsed();
    cluster.node(victim).kill();
    let cluster = blocking(move || {
        wait_until("the replica's promotion", Duration::from_secs(20), || {
            cli(replica, &["role"]).starts_with("master") && cluster.is_ok()
        });
        cluster
    })
    .await;
    let ok_at = traffic.elapsed();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (log, ids, _) = traffic.stop().await;

    let mut figures = Figures::new("cluster failover", &log, killed_at, ok_at);
    figures.on_healthy = log
        .failures
        .iter()
        .filter(|f| masters[f.session] != victim)
        .count();
    figures.verdict = verdict(&cluster_storage(&cluster, &prefix).await, &ids, &log).await;
    figures.print(&log);
    figures.assert_recovered_within(Duration::from_secs(2));
    figures.verdict.assert_nothing_lost();
}

/// 2,000 slots move from one master to another while requests, logins among them, go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_under_traffic_loses_nothing() {
    let _alone = ALONE.lock().await;
    let cluster = blocking(|| RedisCluster::start(3, 0)).await;
    let prefix = unique_prefix();
    let mut traffic = Traffic::create(cluster_storage(&cluster, &prefix).await, SESSIONS).await;
    traffic.start(WORKERS, 20);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started_at = traffic.elapsed();
    let cluster = blocking(move || {
        let masters: Vec<_> = cluster
            .topology()
            .into_iter()
            .filter(|n| n.is_master)
            .collect();
        let output = std::process::Command::new("redis-cli")
            .args([
                "--cluster",
                "reshard",
                &format!("127.0.0.1:{}", masters[0].port),
            ])
            .args([
                "--cluster-from",
                &masters[0].id,
                "--cluster-to",
                &masters[1].id,
            ])
            .args(["--cluster-slots", "2000", "--cluster-yes"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run redis-cli --cluster reshard");
        assert!(
            output.status.success(),
            "reshard failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        cluster
    })
    .await;
    let done_at = traffic.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (log, ids, _) = traffic.stop().await;

    let fresh = cluster_storage(&cluster, &prefix).await;
    let mut figures = Figures::new("resharding", &log, started_at, done_at);
    figures.verdict = verdict(&fresh, &ids, &log).await;
    figures.print(&log);
    let keys: usize = cluster
        .topology()
        .iter()
        .filter(|n| n.is_master)
        .map(|n| {
            let listing = cli(n.port, &["--scan", "--pattern", &format!("{prefix}*")]);
            listing.lines().count()
        })
        .sum();
    assert!(
        log.failures.iter().all(|f| !f.message.contains("hung")),
        "a request hung"
    );
    figures.verdict.assert_nothing_lost();
    assert!(log.logins > 0, "no login ran during the resharding");
    assert_eq!(keys, SESSIONS, "orphan keys left by logins");
}

/// The replica stops taking the master's writes, the master dies, and the replica is forced
/// to take over: what the master acknowledged meanwhile is lost, unless saves waited for it.
async fn lagging_replica(wait: bool) -> (Log, Verdict) {
    let mut cluster = blocking(|| RedisCluster::start(3, 1)).await;
    let prefix = unique_prefix();
    let storage = cluster_storage(&cluster, &prefix).await;
    let storage = if wait {
        storage.wait_for_replicas(1, Duration::from_millis(100))
    } else {
        storage
    };
    // 16 kB more per save: more than the sockets between master and replica hold in the
    // time the replica is paused, so that the rest waits in the master, which then dies.
    let mut traffic = Traffic::create_padded(storage, SESSIONS, 16 << 10).await;
    let ids = traffic.ids().await;
    let masters = masters_of(&cluster, traffic.storage(), &ids);
    let victim = most_common(&masters);
    let replica = cluster.replicas_of(victim)[0];

    traffic.start(WORKERS, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.node(replica).pause();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = traffic.elapsed();
    cluster.node(victim).kill();
    cluster.node(replica).resume();
    let cluster = blocking(move || {
        cli(replica, &["cluster", "failover", "takeover"]);
        wait_until("the forced takeover", Duration::from_secs(20), || {
            cli(replica, &["role"]).starts_with("master") && cluster.is_ok()
        });
        cluster
    })
    .await;
    let ok_at = traffic.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (log, ids, _) = traffic.stop().await;
    let name = if wait {
        "lagging replica, wait_for_replicas(1, 100 ms)"
    } else {
        "lagging replica, no wait"
    };
    let mut figures = Figures::new(name, &log, killed_at, ok_at);
    figures.verdict = verdict(&cluster_storage(&cluster, &prefix).await, &ids, &log).await;
    figures.print(&log);
    (log, figures.verdict)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_loses_acknowledged_writes() {
    let _alone = ALONE.lock().await;
    let (_, verdict) = lagging_replica(false).await;
    assert!(
        verdict.lost > 0,
        "no acknowledged write was lost: the test no longer makes the replica lag"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_replicas_loses_no_acknowledged_write() {
    let _alone = ALONE.lock().await;
    let (log, verdict) = lagging_replica(true).await;
    verdict.assert_nothing_lost();
    assert!(
        log.failures.iter().any(|f| f.message.contains("replicas")),
        "no save waited in vain for the paused replica"
    );
}

/// Sentinel promotes the replica of a master that died under traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_under_traffic() {
    let _alone = ALONE.lock().await;
    let mut setup = blocking(SentinelSetup::start).await;
    let prefix = unique_prefix();
    let connect = |urls: Vec<String>, prefix: String| async move {
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        RedisStorage::connect_sentinel(&urls, "sessions")
            .await
            .expect("connect through Sentinel")
            .key_prefix(&prefix)
            .ttl(Duration::from_secs(600))
    };
    let storage = connect(setup.sentinel_urls(), prefix.clone()).await;
    let mut traffic = Traffic::create(storage, SESSIONS).await;
    traffic.start(WORKERS, 20);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = traffic.elapsed();
    setup.master.kill();
    let replica = setup.replica.port;
    let setup = blocking(move || {
        wait_until("Sentinel's promotion", Duration::from_secs(30), || {
            setup.reported_master() == Some(replica)
                && cli(replica, &["role"]).starts_with("master")
        });
        setup
    })
    .await;
    let promoted_at = traffic.elapsed();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (log, ids, _) = traffic.stop().await;

    let mut figures = Figures::new("sentinel failover", &log, killed_at, promoted_at);
    figures.verdict = verdict(&connect(setup.sentinel_urls(), prefix).await, &ids, &log).await;
    figures.print(&log);
    figures.assert_recovered_within(Duration::from_secs(2));
    figures.verdict.assert_nothing_lost();
}

/// The interleaving that erased sessions during resharding, forced: the session's slot is
/// migrating while its key is still on the old master, so the old master refuses any
/// command on the key once a script has made it absent. A save must still land, in place;
/// and once the key has moved, reads and saves follow the old master's `ASK`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_during_a_slot_migration_keeps_the_session() {
    use session_layer::SessionStorage;
    use session_layer::storage::{Expected, SessionBackend, SessionId};
    let _alone = ALONE.lock().await;
    let cluster = blocking(|| RedisCluster::start(3, 0)).await;
    let storage = cluster_storage(&cluster, &unique_prefix()).await;
    let session = session_layer::Session::new();
    session.set("user", "mj").unwrap();
    let id = SessionId::from(storage.save(&session).await.unwrap().unwrap());
    let key = storage.key_for(&id);
    let port = cluster.nodes[0].port;
    let slot = cli(port, &["cluster", "keyslot", &key]).trim().to_owned();
    let nodes = cluster.topology();
    let source = cluster.master_of_slot(slot.parse().unwrap());
    let source = nodes.iter().find(|n| n.port == source).unwrap();
    let target = nodes
        .iter()
        .find(|n| n.is_master && n.port != source.port)
        .unwrap();
    cli(
        target.port,
        &["cluster", "setslot", &slot, "importing", &source.id],
    );
    cli(
        source.port,
        &["cluster", "setslot", &slot, "migrating", &target.id],
    );

    let backend = storage.backend();
    let stored = backend.load(&id).await.unwrap().expect("the session");
    let mut record = stored.record.clone();
    record.data.values.insert("user".into(), "changed".into());
    let saved = backend
        .store(&id, &record, None, Expected::Version(stored.version))
        .await;
    let exists = cli(source.port, &["exists", &key]);
    // The key moves on: the source now answers ASK, and the target serves it after ASKING.
    let target_port = target.port.to_string();
    cli(
        source.port,
        &["migrate", "127.0.0.1", &target_port, &key, "0", "5000"],
    );
    let moved = backend.load(&id).await;
    let saved_again = match &moved {
        Ok(Some(stored)) => backend
            .store(&id, &record, None, Expected::Version(stored.version))
            .await
            .ok(),
        _ => None,
    };
    for node in [source, target] {
        cli(
            node.port,
            &["cluster", "setslot", &slot, "node", &target.id],
        );
    }
    assert_eq!(
        saved.ok(),
        Some(true),
        "the save failed during the migration"
    );
    assert_eq!(exists.trim(), "1", "the session's key is gone");
    assert!(
        matches!(moved, Ok(Some(_))),
        "a read of the migrated key: {moved:?}"
    );
    assert_eq!(saved_again, Some(true), "a save of the migrated key");
    let loaded = storage.read(Some(&id)).await.unwrap();
    assert_eq!(loaded.get::<String>("user").as_deref(), Some("changed"));
}
