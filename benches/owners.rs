//! Sessions of one owner: what an owner adds to a save, and what listing an owner's
//! sessions costs, per storage that implements `SessionIndex` (memory, files, and
//! PostgreSQL with its feature; Redis has `benches/redis_owners.rs`, which also runs a
//! Cluster).
//!
//! * `save/<storage>/unowned` and `save/<storage>/owned`: load a stored session, set a
//!   value, save it; the same session with and without an owner.
//! * `list/<storage>/10` and `list/<storage>/1000`: `sessions_of` an owner with that many
//!   sessions.
//!
//! ```sh
//! cargo bench --bench owners --features postgres   # DATABASE_URL
//! ```
//!
//! PostgreSQL is `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), in a
//! table of its own that the run drops.
//!
//! With `OWNERS_PROFILE=<storage>/<case>:<n>` (a storage of `memory`, `fs`, `postgres`; a
//! case of `save/unowned`, `save/owned`, `list/10`, `list/1000`) the binary runs that case
//! `n` times without criterion, on one thread, for callgrind: the client's instructions
//! per operation are the difference between two runs divided by the difference of their `n`.
//!
//! ```sh
//! bench=$(ls -t target/release/deps/owners-* | grep -v '\.d$' | head -1)
//! OWNERS_PROFILE=postgres/save/owned:0 valgrind --tool=callgrind --callgrind-out-file=/dev/null $bench
//! OWNERS_PROFILE=postgres/save/owned:200 valgrind --tool=callgrind --callgrind-out-file=/dev/null $bench
//! ```

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group};
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

/// One request that changes its session: read, set a value, save.
async fn save_once<S: SessionStorage>(storage: &S, cookie: &str, n: u64) {
    let session = storage.read(Some(cookie)).await.unwrap();
    session.set("n", n).unwrap();
    storage.save(&session).await.unwrap();
}

/// Both groups on one storage.
fn bench_storage<S: SessionIndex>(c: &mut Criterion, rt: &Runtime, name: &str, storage: &S) {
    let mut saves = c.benchmark_group("save");
    for (label, owner) in [("unowned", None), ("owned", Some("owner-of-one"))] {
        let cookie = rt.block_on(stored(storage, owner));
        saves.bench_function(BenchmarkId::new(name, label), |b| {
            let mut n = 0u64;
            b.to_async(rt).iter(|| {
                n += 1;
                save_once(storage, &cookie, n)
            })
        });
    }
    saves.finish();

    let mut lists = c.benchmark_group("list");
    for count in [10, 1000] {
        let owner = format!("owner-of-{count}");
        rt.block_on(async {
            for _ in 0..count {
                stored(storage, Some(&owner)).await;
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

/// Runs `case` `n` times on `storage`, for callgrind (see the module's docs).
async fn profile<S: SessionIndex>(storage: &S, case: &str, n: u64) {
    match case {
        "save/unowned" | "save/owned" => {
            let owner = (case == "save/owned").then_some("owner-of-one");
            let cookie = stored(storage, owner).await;
            for n in 0..n {
                save_once(storage, &cookie, n).await;
            }
        }
        "list/10" | "list/1000" => {
            let count = if case == "list/10" { 10 } else { 1000 };
            for _ in 0..count {
                stored(storage, Some("owner")).await;
            }
            for _ in 0..n {
                let listed = storage.sessions_of("owner").await.unwrap();
                assert_eq!(listed.len(), count);
            }
        }
        other => panic!("no case {other:?}"),
    }
}

/// A PostgreSQL storage in a migrated table of its own, dropped when it goes.
#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use session_layer::PostgresStorage;

    pub(super) struct Table {
        pub(super) storage: PostgresStorage,
        drop: String,
    }

    impl Table {
        pub(super) fn new(rt: &Runtime) -> Table {
            let url = std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
            let pool = rt.block_on(sqlx::PgPool::connect(&url)).unwrap();
            let table = format!("bench_owners_{:016x}", rand::random::<u64>());
            let storage = PostgresStorage::new(pool).table(&table).ttl(TTL);
            rt.block_on(storage.migrate()).unwrap();
            let drop = format!("DROP TABLE {table}");
            Table { storage, drop }
        }

        pub(super) fn drop_in(self, rt: &Runtime) {
            let pool = self.storage.backend().pool();
            let done = sqlx::raw_sql(sqlx::AssertSqlSafe(self.drop)).execute(pool);
            rt.block_on(done).unwrap();
        }
    }
}

fn owners(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    bench_storage(c, &rt, "memory", &MemoryStorage::new().ttl(TTL));
    let dir = tempfile::tempdir().unwrap();
    let fs = FsStorage::new(dir.path()).unwrap().ttl(TTL);
    bench_storage(c, &rt, "fs", &fs);
    #[cfg(feature = "postgres")]
    {
        let table = postgres::Table::new(&rt);
        bench_storage(c, &rt, "postgres", &table.storage);
        table.drop_in(&rt);
    }
}

criterion_group!(benches, owners);

fn main() {
    if let Ok(spec) = std::env::var("OWNERS_PROFILE") {
        let (what, n) = spec
            .rsplit_once(':')
            .expect("OWNERS_PROFILE=<storage>/<case>:<n>");
        let (storage, case) = what.split_once('/').expect("<storage>/<case>");
        let n = n.parse().expect("a count");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        match storage {
            "memory" => rt.block_on(profile(&MemoryStorage::new().ttl(TTL), case, n)),
            "fs" => {
                let dir = tempfile::tempdir().unwrap();
                let fs = FsStorage::new(dir.path()).unwrap().ttl(TTL);
                rt.block_on(profile(&fs, case, n));
            }
            #[cfg(feature = "postgres")]
            "postgres" => {
                let table = postgres::Table::new(&rt);
                rt.block_on(profile(&table.storage, case, n));
                table.drop_in(&rt);
            }
            other => panic!("no storage {other:?}"),
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
