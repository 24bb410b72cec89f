//! Sessions of one owner on PostgreSQL: what an owner adds to a save, and what listing an
//! owner's sessions costs, in the groups and names of `benches/owners.rs` so that the two
//! read as one table.
//!
//! * `save/postgres/unowned` and `save/postgres/owned`: load a stored session, set a
//!   value, save it; the same session with and without an owner.
//! * `list/postgres/10` and `list/postgres/1000`: `sessions_of` an owner with that many
//!   sessions.
//!
//! ```sh
//! cargo bench --bench owners_postgres --features postgres   # DATABASE_URL
//! ```
//!
//! PostgreSQL is `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), in a
//! table of its own that the run drops.
//!
//! With `OWNERS_PROFILE=<case>:<n>` (a case of `save/unowned`, `save/owned`, `list/10`,
//! `list/1000`) the binary runs that case `n` times without criterion, on one thread, for
//! callgrind: the client's instructions per operation are the difference between two runs
//! divided by the difference of their `n`.
//!
//! ```sh
//! bench=$(ls -t target/release/deps/owners_postgres-* | grep -v '\.d$' | head -1)
//! OWNERS_PROFILE=save/owned:0 valgrind --tool=callgrind --callgrind-out-file=/dev/null $bench
//! OWNERS_PROFILE=save/owned:200 valgrind --tool=callgrind --callgrind-out-file=/dev/null $bench
//! ```

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group};
use session_layer::{PostgresStorage, SessionIndex, SessionStorage};
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
fn bench_storage<S: SessionIndex>(c: &mut Criterion, rt: &Runtime, name: &str, storage: &S) {
    let mut saves = c.benchmark_group("save");
    for (label, owner) in [("unowned", None), ("owned", Some("owner-of-one"))] {
        let cookie = rt.block_on(stored(storage, owner));
        saves.bench_function(BenchmarkId::new(name, label), |b| {
            let mut n = 0u64;
            b.to_async(rt).iter(|| {
                n += 1;
                let cookie = &cookie;
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

/// A migrated storage in a table of its own, and the statement that drops the table.
fn storage(rt: &Runtime) -> (PostgresStorage, String) {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let pool = rt.block_on(sqlx::PgPool::connect(&url)).unwrap();
    let table = format!("bench_owners_{:016x}", rand::random::<u64>());
    let storage = PostgresStorage::new(pool).table(&table).ttl(TTL);
    rt.block_on(storage.migrate()).unwrap();
    (storage, format!("DROP TABLE {table}"))
}

fn drop_table(rt: &Runtime, storage: &PostgresStorage, drop: String) {
    let done = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(storage.backend().pool());
    rt.block_on(done).unwrap();
}

fn owners(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (storage, drop) = storage(&rt);
    bench_storage(c, &rt, "postgres", &storage);
    drop_table(&rt, &storage, drop);
}

/// Runs `case` `n` times, for callgrind (see the module's docs).
fn profile(case: &str, n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (storage, drop) = storage(&rt);
    rt.block_on(async {
        match case {
            "save/unowned" | "save/owned" => {
                let owner = (case == "save/owned").then_some("owner-of-one");
                let cookie = stored(&storage, owner).await;
                for n in 0..n {
                    let session = storage.read(Some(&cookie)).await.unwrap();
                    session.set("n", n).unwrap();
                    storage.save(&session).await.unwrap();
                }
            }
            "list/10" | "list/1000" => {
                let count = if case == "list/10" { 10 } else { 1000 };
                for _ in 0..count {
                    stored(&storage, Some("owner")).await;
                }
                for _ in 0..n {
                    let listed = storage.sessions_of("owner").await.unwrap();
                    assert_eq!(listed.len(), count);
                }
            }
            other => panic!("no case {other:?}"),
        }
    });
    drop_table(&rt, &storage, drop);
}

criterion_group!(benches, owners);

fn main() {
    if let Ok(spec) = std::env::var("OWNERS_PROFILE") {
        let (case, n) = spec.rsplit_once(':').expect("OWNERS_PROFILE=<case>:<n>");
        return profile(case, n.parse().expect("a count"));
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
