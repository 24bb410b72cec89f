//! Sessions of one owner: what an owner adds to a save, and what listing an owner's
//! sessions costs, per storage that implements `SessionIndex`.
//!
//! * `save/<storage>/unowned` and `save/<storage>/owned`: load a stored session, set a
//!   value, save it; the same session with and without an owner.
//! * `list/<storage>/10` and `list/<storage>/1000`: `sessions_of` an owner with that many
//!   sessions.
//!
//! ```sh
//! cargo bench --bench owners --features redis,postgres   # REDIS_URL, DATABASE_URL
//! ```
//!
//! Redis is the server at `REDIS_URL` (default `redis://127.0.0.1:6379`), under a key prefix
//! of its own that the run deletes; PostgreSQL is `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), in a table of its own that the run drops.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use session_layer::{FsStorage, MemoryStorage, SessionIndex, SessionStorage};
use tokio::runtime::Runtime;

const TTL: Duration = Duration::from_secs(3600);

/// A stored session, owned by `owner` if given; returns its cookie value.
async fn stored<S: SessionStorage>(storage: &S, owner: Option<&str>) -> String {
    let session = storage.read(None).await.unwrap();
    session.set("user", "a name of some length").unwrap();
    if let Some(owner) = owner {
        session.set_owner(owner).unwrap();
    }
    storage.save(&session).await.unwrap().unwrap()
}

/// Both groups on one storage.
fn bench_storage<S: SessionIndex + Clone>(c: &mut Criterion, rt: &Runtime, name: &str, storage: S) {
    let mut saves = c.benchmark_group("save");
    for (label, owner) in [("unowned", None), ("owned", Some("owner-of-one"))] {
        let cookie = rt.block_on(stored(&storage, owner));
        saves.bench_function(BenchmarkId::new(name, label), |b| {
            let mut n = 0u64;
            b.to_async(rt).iter(|| {
                n += 1;
                let (storage, cookie) = (&storage, &cookie);
                async move {
                    let session = storage.read(Some(cookie)).await.unwrap();
                    session.set("n", n).unwrap();
                    storage.save(&session).await.unwrap();
                }
            })
        });
    }
    saves.finish();

    let mut lists = c.benchmark_group("list");
    for count in [10, 1000] {
        let owner = format!("owner-of-{count}");
        rt.block_on(async {
            for _ in 0..count {
                stored(&storage, Some(&owner)).await;
            }
        });
        lists.sample_size(if count > 100 { 20 } else { 100 });
        lists.bench_function(BenchmarkId::new(name, count), |b| {
            b.to_async(rt).iter(|| async {
                let listed = storage.sessions_of(&owner).await.unwrap();
                assert_eq!(listed.len(), count);
            })
        });
    }
    lists.finish();
}

fn owners(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    bench_storage(c, &rt, "memory", MemoryStorage::new().ttl(TTL));
    let dir = tempfile::tempdir().unwrap();
    bench_storage(c, &rt, "fs", FsStorage::new(dir.path()).unwrap().ttl(TTL));
}

criterion_group!(benches, owners);
criterion_main!(benches);
