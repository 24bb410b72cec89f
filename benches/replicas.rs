//! What `RedisStorage::wait_for_replicas` costs a save: one save (read, update, save) of a
//! session on a master with one replica, with and without waiting for the replica, alone
//! and 16 at once (throughput: 16 divided by the time of a batch); and 16 reads on their
//! own against 16 reads beside 16 waiting saves, to show that reads do not queue behind a
//! `WAIT`.
//!
//! ```sh
//! cargo bench --bench replicas --features redis
//! ```
//!
//! The master and the replica run as private servers on free ports, as in the tests.

#[path = "../tests/common/servers.rs"]
#[allow(dead_code)]
mod servers;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use session_layer::{RedisStorage, Session, SessionStorage};

const TTL: Duration = Duration::from_secs(600);

async fn save_once(storage: &RedisStorage, id: &str) {
    let session = storage.read(Some(id)).await.expect("read");
    session
        .update("n", |n: Option<u64>| n.unwrap_or(0) + 1)
        .unwrap();
    storage.save(&session).await.expect("save");
}

async fn sessions(storage: &RedisStorage, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let session = Session::new();
        session.set("n", 0).unwrap();
        ids.push(storage.save(&session).await.unwrap().unwrap());
    }
    ids
}

fn bench(c: &mut Criterion) {
    // The replica keeps the snapshot of its first sync in `--dir`.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let master = servers::start_redis_with(&["--dir", &data]);
    let master_port = master.port.to_string();
    let replica =
        servers::start_redis_with(&["--dir", &data, "--replicaof", "127.0.0.1", &master_port]);
    std::thread::sleep(Duration::from_secs(1));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!("redis://127.0.0.1:{}", master.port);
    let plain = runtime.block_on(async { RedisStorage::connect(&url).await.unwrap().ttl(TTL) });
    let waiting = runtime.block_on(async {
        RedisStorage::connect(&url)
            .await
            .unwrap()
            .ttl(TTL)
            .wait_for_replicas(1, Duration::from_secs(1))
    });
    let ids = runtime.block_on(sessions(&plain, 16));

    let mut group = c.benchmark_group("replicas");
    for (name, storage) in [("plain", &plain), ("wait_for_replicas(1)", &waiting)] {
        group.bench_function(format!("one save, {name}"), |b| {
            b.to_async(&runtime).iter(|| save_once(storage, &ids[0]))
        });
        group.bench_function(format!("16 saves at once, {name}"), |b| {
            b.to_async(&runtime).iter(|| async {
                let mut saves = tokio::task::JoinSet::new();
                for id in ids.clone() {
                    let storage = storage.clone();
                    saves.spawn(async move { save_once(&storage, &id).await });
                }
                while saves.join_next().await.is_some() {}
            })
        });
    }
    let read_all = |storage: &RedisStorage, saves: bool| {
        let (storage, ids) = (storage.clone(), ids.clone());
        async move {
            let mut requests = tokio::task::JoinSet::new();
            for id in ids {
                let storage = storage.clone();
                requests.spawn(async move {
                    if saves {
                        save_once(&storage, &id).await;
                    } else {
                        storage.read(Some(&id)).await.expect("read");
                    }
                });
            }
            requests
        }
    };
    group.bench_function("16 reads at once", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut reads = read_all(&waiting, false).await;
            while reads.join_next().await.is_some() {}
        })
    });
    group.bench_function("16 reads at once beside 16 waiting saves", |b| {
        // Only the reads are timed: the saves are under way when they start.
        b.to_async(&runtime).iter_custom(|iterations| {
            let read_all = &read_all;
            let waiting = &waiting;
            async move {
                let mut reading = Duration::ZERO;
                for _ in 0..iterations {
                    let mut saves = read_all(waiting, true).await;
                    let start = std::time::Instant::now();
                    let mut reads = read_all(waiting, false).await;
                    while reads.join_next().await.is_some() {}
                    reading += start.elapsed();
                    while saves.join_next().await.is_some() {}
                }
                reading
            }
        })
    });
    group.finish();
    drop((replica, master));
}

criterion_group!(benches, bench);
criterion_main!(benches);
