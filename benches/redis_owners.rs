//! What sessions of one owner cost on Redis: a save (read, change, save) of a session with
//! and without an owner, and `sessions_of` listing 10 and 1,000 sessions of one owner, on a
//! private single server and on a private three-master Cluster. After the timings, the
//! server's own time per script call (`INFO commandstats`) for 1,000 saves of each kind.
//!
//! ```sh
//! cargo bench --bench redis_owners --features redis
//! ```
//!
//! Instructions of this process per save (callgrind; the server's are not counted), as the
//! difference between `n` saves and none:
//!
//! ```sh
//! cargo bench --bench redis_owners --features redis --no-run
//! valgrind --tool=callgrind target/release/deps/redis_owners-* --profile owned 2000
//! valgrind --tool=callgrind target/release/deps/redis_owners-* --profile owned 0
//! ```

#[path = "../tests/common/redis_ha.rs"]
#[allow(dead_code)]
mod redis_ha;
#[path = "../tests/common/servers.rs"]
#[allow(dead_code)]
mod servers;

use std::time::Duration;

use criterion::Criterion;
use session_layer::{RedisStorage, Session, SessionIndex, SessionStorage};

const TTL: Duration = Duration::from_secs(600);

/// One request that changes its session: read, set a key, save.
async fn save_once(storage: &RedisStorage, id: &str) {
    let session = storage.read(Some(id)).await.expect("read");
    session
        .update("n", |n: Option<u64>| n.unwrap_or(0) + 1)
        .unwrap();
    storage.save(&session).await.expect("save");
}

/// A stored session, owned by `owner` if any; its id.
async fn stored(storage: &RedisStorage, owner: Option<&str>) -> String {
    let session = Session::new();
    session.set("n", 0).unwrap();
    session.set("device", "Firefox on Linux").unwrap();
    if let Some(owner) = owner {
        session.set_owner(owner).unwrap();
    }
    storage.save(&session).await.unwrap().unwrap()
}

fn bench_storage(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    storage: &RedisStorage,
) {
    let unowned = runtime.block_on(stored(storage, None));
    let owned = runtime.block_on(stored(storage, Some("user-1")));
    for _ in 0..9 {
        runtime.block_on(stored(storage, Some("user-10")));
    }
    runtime.block_on(stored(storage, Some("user-10")));
    for _ in 0..1000 {
        runtime.block_on(stored(storage, Some("user-1000")));
    }
    let mut group = c.benchmark_group(format!("owners/{name}"));
    group.bench_function("save, no owner", |b| {
        b.to_async(runtime).iter(|| save_once(storage, &unowned))
    });
    group.bench_function("save, owned", |b| {
        b.to_async(runtime).iter(|| save_once(storage, &owned))
    });
    for owner in ["user-10", "user-1000"] {
        let count = owner.trim_start_matches("user-");
        group.bench_function(format!("sessions_of, {count} sessions"), |b| {
            b.to_async(runtime).iter(|| async {
                let listed = storage.sessions_of(owner).await.unwrap();
                assert_eq!(listed.len().to_string(), count);
            })
        });
    }
    group.finish();
}

/// The server's microseconds per save script over 1,000 saves of each kind, on one server:
/// the time of 1,000 requests (a read and a save each) less that of 1,000 reads.
fn server_time(runtime: &tokio::runtime::Runtime, storage: &RedisStorage, url: &str) {
    runtime.block_on(async {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        for (name, owner) in [("no owner", None), ("owned", Some("user-x"))] {
            let id = stored(storage, owner).await;
            reset_stats(&mut conn).await;
            for _ in 0..1000 {
                storage.read(Some(&id)).await.unwrap();
            }
            let reads = script_usec(&mut conn).await;
            reset_stats(&mut conn).await;
            for _ in 0..1000 {
                save_once(storage, &id).await;
            }
            let requests = script_usec(&mut conn).await;
            println!(
                "owners/single server/save, {name}: {:.2} µs of server time per save script",
                (requests - reads) / 1000.0
            );
        }
    });
}

async fn reset_stats(conn: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await
        .unwrap();
}

/// The server's microseconds in `EVALSHA` since the last reset.
async fn script_usec(conn: &mut redis::aio::MultiplexedConnection) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let line = info.lines().find(|l| l.starts_with("cmdstat_evalsha:"));
    let usec = line.and_then(|l| l.split("usec=").nth(1)?.split(',').next());
    usec.and_then(|u| u.parse().ok()).unwrap_or(f64::NAN)
}

/// `--profile <owned|unowned> <n>`: n saves and nothing else, for callgrind.
fn profile(kind: &str, saves: usize) {
    let server = servers::start_redis();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = format!("redis://127.0.0.1:{}", server.port);
        let storage = RedisStorage::connect(&url).await.unwrap().ttl(TTL);
        let owner = (kind == "owned").then_some("user-1");
        let id = stored(&storage, owner).await;
        save_once(&storage, &id).await;
        for _ in 0..saves {
            save_once(&storage, &id).await;
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--profile") {
        let kind = args.get(at + 1).map_or("owned", String::as_str);
        let saves = args
            .get(at + 2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1000);
        return profile(kind, saves);
    }
    let mut c = Criterion::default().configure_from_args();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let server = servers::start_redis();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let single = runtime.block_on(async { RedisStorage::connect(&url).await.unwrap().ttl(TTL) });
    bench_storage(&mut c, &runtime, "single server", &single);

    let cluster = redis_ha::RedisCluster::start(3, 0);
    let urls = cluster.urls();
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    let clustered = runtime.block_on(async {
        RedisStorage::connect_cluster(&nodes)
            .await
            .unwrap()
            .ttl(TTL)
    });
    bench_storage(&mut c, &runtime, "cluster", &clustered);
    c.final_summary();

    server_time(&runtime, &single, &url);
    drop((cluster, server));
}
