//! Private Redis deployments with replicas, for failover tests: a Redis Cluster of masters
//! and replicas, and a master with a replica watched by Sentinels. Everything runs on
//! loopback, on free ports, with its files in a temporary directory, and stops on drop.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::servers::{ServerProcess, start_redis_with};

/// Runs `redis-cli -p port args…` and answers what it printed: nothing when the server is
/// gone, or silent (paused) for a second.
pub fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("timeout")
        .args(["1", "redis-cli", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `done` every 20 ms until it holds; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One node as `CLUSTER NODES` lists it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    pub is_master: bool,
    pub failed: bool,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    /// Inclusive slot ranges served, for a master.
    pub slots: Vec<(u16, u16)>,
}

/// A private Redis Cluster of masters and their replicas (`cluster-node-timeout 1000`, as in
/// production set-ups that fail over quickly), with its files in a temporary directory.
pub struct RedisCluster {
    pub nodes: Vec<ServerProcess>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// A three-master Cluster shared by the callers alive at once (starting one takes a second
    /// or two) and stopped when the last of them drops it, so that no server outlives the test
    /// binary (a `static` holding it would never be dropped).
    pub fn shared() -> std::sync::Arc<RedisCluster> {
        use std::sync::{Arc, Mutex, Weak};
        static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        shared.upgrade().unwrap_or_else(|| {
            let started = Arc::new(RedisCluster::start(3, 0));
            *shared = Arc::downgrade(&started);
            started
        })
    }

    /// Starts `masters` masters with `replicas` replicas each and waits for
    /// `cluster_state:ok` on every node and for every replica to be in sync.
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = format!("{}/nodes-{{port}}.conf", dir.path().display());
        let data = dir.path().display().to_string();
        let nodes: Vec<ServerProcess> = (0..masters * (1 + replicas))
            .map(|_| {
                // A replica keeps the snapshot of its first sync in `--dir`.
                start_redis_with(&[
                    "--dir",
                    &data,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &config,
                    "--cluster-node-timeout",
                    "1000",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = RedisCluster { nodes, _dir: dir };
        cluster.wait_ok(Duration::from_secs(20));
        wait_until("replicas in sync", Duration::from_secs(20), || {
            cluster
                .topology()
                .iter()
                .filter(|n| !n.is_master)
                .all(|n| cli(n.port, &["info", "replication"]).contains("master_link_status:up"))
        });
        cluster
    }

    /// `redis://127.0.0.1:<port>` of every node, replicas included.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// Every node's port; a node that is down answers `cli` with nothing.
    fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The cluster as the first node that answers sees it.
    pub fn topology(&self) -> Vec<NodeInfo> {
        for port in self.ports() {
            let listing = cli(port, &["cluster", "nodes"]);
            if !listing.trim().is_empty() {
                return parse_nodes(&listing);
            }
        }
        panic!("no node of the cluster answers");
    }

    /// Whether every node that answers reports `cluster_state:ok`.
    pub fn is_ok(&self) -> bool {
        self.ports().into_iter().all(|port| {
            let info = cli(port, &["cluster", "info"]);
            info.is_empty() || info.contains("cluster_state:ok")
        })
    }

    /// Waits until every node that answers reports `cluster_state:ok`.
    pub fn wait_ok(&self, limit: Duration) {
        wait_until("cluster_state:ok", limit, || self.is_ok());
    }

    /// The port of the master serving `slot`.
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        self.topology()
            .into_iter()
            .find(|n| n.is_master && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
            .map(|n| n.port)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// The ports of `master`'s replicas.
    pub fn replicas_of(&self, master: u16) -> Vec<u16> {
        let nodes = self.topology();
        let id = &nodes.iter().find(|n| n.port == master).expect("master").id;
        nodes
            .iter()
            .filter(|n| n.master_id.as_ref() == Some(id))
            .map(|n| n.port)
            .collect()
    }

    /// The node process listening on `port`.
    pub fn node(&mut self, port: u16) -> &mut ServerProcess {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
    }
}

/// Parses `CLUSTER NODES`: `id addr flags master ping pong epoch link slot…` per line.
fn parse_nodes(listing: &str) -> Vec<NodeInfo> {
    listing
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let port = fields[1].split(['@', ',']).next()?.rsplit(':').next()?;
            let flags = fields[2];
            let slots = fields[8..]
                .iter()
                .filter(|f| !f.starts_with('['))
                .filter_map(|f| {
                    let (a, b) = f.split_once('-').unwrap_or((f, f));
                    Some((a.parse().ok()?, b.parse().ok()?))
                })
                .collect();
            Some(NodeInfo {
                id: fields[0].to_owned(),
                port: port.parse().ok()?,
                is_master: flags.contains("master"),
                failed: flags.contains("fail"),
                master_id: (fields[3] != "-").then(|| fields[3].to_owned()),
                slots,
            })
        })
        .collect()
}

/// A master with one replica, watched by three Sentinels that agree on a failover within
/// about a second of the master going silent.
pub struct SentinelSetup {
    pub master: ServerProcess,
    pub replica: ServerProcess,
    pub sentinels: Vec<ServerProcess>,
    pub name: &'static str,
    _dir: tempfile::TempDir,
}

impl SentinelSetup {
    pub fn start() -> SentinelSetup {
        let dir = tempfile::tempdir().expect("temporary directory");
        let name = "sessions";
        let data = dir.path().display().to_string();
        let master = start_redis_with(&["--dir", &data]);
        let replica_of = master.port.to_string();
        let replica = start_redis_with(&["--dir", &data, "--replicaof", "127.0.0.1", &replica_of]);
        wait_until("replica in sync", Duration::from_secs(10), || {
            cli(replica.port, &["info", "replication"]).contains("master_link_status:up")
        });
        let sentinels = (0..3)
            .map(|i| {
                let path = dir.path().join(format!("sentinel-{i}.conf"));
                std::fs::write(
                    &path,
                    format!(
                        "sentinel monitor {name} 127.0.0.1 {port} 2\n\
                         sentinel down-after-milliseconds {name} 1000\n\
                         sentinel failover-timeout {name} 5000\n\
                         sentinel parallel-syncs {name} 1\n",
                        port = master.port
                    ),
                )
                .expect("write a sentinel config");
                let path = path.display().to_string();
                ServerProcess::start(
                    "redis-server",
                    &[
                        &path,
                        "--sentinel",
                        "--port",
                        "{port}",
                        "--bind",
                        "127.0.0.1",
                    ],
                )
            })
            .collect::<Vec<_>>();
        let setup = SentinelSetup {
            master,
            replica,
            sentinels,
            name,
            _dir: dir,
        };
        wait_until("sentinels see the replica", Duration::from_secs(15), || {
            setup.sentinels.iter().all(|s| {
                let replicas = cli(s.port, &["sentinel", "replicas", name]);
                replicas.contains(&setup.replica.port.to_string())
            })
        });
        setup
    }

    /// `redis://127.0.0.1:<port>` of every Sentinel.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port))
            .collect()
    }

    /// The master's port as the first Sentinel reports it.
    pub fn reported_master(&self) -> Option<u16> {
        let answer = cli(
            self.sentinels[0].port,
            &["sentinel", "get-master-addr-by-name", self.name],
        );
        answer.lines().nth(1)?.trim().parse().ok()
    }
}
