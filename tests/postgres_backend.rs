//! The PostgreSQL backend of `examples/custom_backend` against the shared scenario suite.
//!
//! Needs a PostgreSQL server: `DATABASE_URL` (a `postgres://` URL or `key=value` pairs),
//! else `host=127.0.0.1 user=postgres dbname=test`. Fails, rather than skips, without one.
//! Every test has a connection and a temporary table of its own (`pg_temp.sessions`), so
//! tests neither see each other's rows nor leave tables behind.
mod common;

#[allow(dead_code)]
#[path = "../examples/custom_backend/backend.rs"]
mod backend;

use std::time::Duration;

use backend::{PgBackend, PgStorage};
use common::scenarios::{server_storage_scenarios, storage_scenarios};
use session_layer::storage::{Record, SessionBackend, WriteMode};

async fn pg() -> PgStorage {
    PgStorage::with_backend(pg_backend().await)
}

async fn pg_backend() -> PgBackend {
    let config = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=test".to_owned());
    PgBackend::connect(&config, "pg_temp.sessions")
        .await
        .unwrap_or_else(|e| {
            let mut e: &dyn std::error::Error = &e;
            let mut why = e.to_string();
            while let Some(source) = e.source() {
                let text = source.to_string();
                if !why.ends_with(&text) {
                    why = format!("{why}: {text}");
                }
                e = source;
            }
            panic!(
                "PostgreSQL is needed for this test and is not reachable with {config:?}: {why}. \
                 Start it, or set DATABASE_URL to a database where you may create tables."
            )
        })
}

storage_scenarios! {
    plain: pg(),
    ttl: |ttl: Duration| async move { pg().await.ttl(ttl) },
}

server_storage_scenarios! {
    plain: pg(),
    unknown_ids: async { pg().await.use_unknown_ids(true) },
}

fn record(value: &str, expires_at_ms: Option<u64>) -> Record {
    let mut record = Record {
        data: Default::default(),
        created_at: 0,
        expires_at_ms,
    };
    record.data.values.insert("v".into(), value.into());
    record
}

fn value(record: Option<Record>) -> Option<String> {
    record.and_then(|r| r.data.values.get("v")?.as_str().map(str::to_owned))
}

#[tokio::test]
async fn create_never_overwrites_a_live_row_but_takes_an_expired_one() {
    let db = pg_backend().await;
    let live = record("first", None);
    assert!(db.store("a", &live, None, WriteMode::Create).await.unwrap());
    assert!(
        !db.store("a", &record("second", None), None, WriteMode::Create)
            .await
            .unwrap()
    );
    assert_eq!(value(db.load("a").await.unwrap()).as_deref(), Some("first"));

    assert!(
        db.store("a", &record("third", None), None, WriteMode::Overwrite)
            .await
            .unwrap()
    );
    assert_eq!(value(db.load("a").await.unwrap()).as_deref(), Some("third"));

    // Expired a second ago: invisible to load, and free for a create.
    let past = record("old", Some(now_ms() - 1000));
    assert!(
        db.store("b", &past, None, WriteMode::Overwrite)
            .await
            .unwrap()
    );
    assert_eq!(db.load("b").await.unwrap(), None);
    assert!(
        db.store("b", &record("new", None), None, WriteMode::Create)
            .await
            .unwrap()
    );
    assert_eq!(value(db.load("b").await.unwrap()).as_deref(), Some("new"));

    db.store(
        "c",
        &record("old", Some(now_ms() - 1000)),
        None,
        WriteMode::Overwrite,
    )
    .await
    .unwrap();
    assert_eq!(db.remove_expired().await.unwrap(), 1);
    db.delete("a").await.unwrap();
    db.delete("a").await.unwrap(); // deleting a missing row is fine
    assert_eq!(db.load("a").await.unwrap(), None);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
