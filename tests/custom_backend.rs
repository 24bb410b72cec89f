//! The redb backend of `examples/custom_backend` against the shared scenario suite, plus
//! checks of its conditional writes, its expiry sweep and the lifecycle's merge over them.
//! Every test has a database file of its own in a temporary directory.
mod common;

#[allow(dead_code)]
#[path = "../examples/custom_backend/backend.rs"]
mod backend;

use std::time::Duration;

use backend::{RedbBackend, RedbStorage};
use common::scenarios::{server_storage_scenarios, storage_scenarios};
use session_layer::storage::{Expected, Record, SessionBackend, Versioned};
use session_layer::{Session, SessionStorage};

async fn redb() -> RedbStorage {
    RedbStorage::with_backend(redb_backend())
}

/// A backend over a new file; the directory is left for the OS to clean, since the
/// storage may outlive the test's last line.
fn redb_backend() -> RedbBackend {
    let dir = tempfile::tempdir().expect("a temporary directory").keep();
    RedbBackend::open(dir.join("sessions.redb")).expect("a new redb file")
}

storage_scenarios! {
    plain: redb(),
    ttl: |ttl: Duration| async move { redb().await.ttl(ttl) },
    max_lifetime: |limit: Duration| async move {
        redb().await.ttl(Duration::from_secs(60)).max_lifetime(limit)
    },
}

server_storage_scenarios! {
    plain: redb(),
    unknown_ids: async { redb().await.use_unknown_ids(true) },
}

fn record(value: &str, expires_at_ms: Option<u64>) -> Record {
    let mut record = Record {
        data: Default::default(),
        created_at: 0,
        expires_at_ms,
        ..Record::default()
    };
    record.data.values.insert("v".into(), value.into());
    record
}

fn value(stored: &Option<Versioned>) -> Option<&str> {
    stored.as_ref()?.record.data.values.get("v")?.as_str()
}

async fn put(db: &RedbBackend, id: &str, record: &Record, expected: Expected) -> bool {
    db.store(&id.into(), record, None, expected).await.unwrap()
}

async fn version(db: &RedbBackend, id: &str) -> u64 {
    db.load(&id.into())
        .await
        .unwrap()
        .expect("a stored row")
        .version
}

#[tokio::test]
async fn absent_never_overwrites_and_load_shows_expired_rows() {
    let db = &redb_backend();
    assert!(put(db, "a", &record("first", None), Expected::Absent).await);
    assert!(!put(db, "a", &record("second", None), Expected::Absent).await);
    assert_eq!(value(&db.load(&"a".into()).await.unwrap()), Some("first"));

    let before = version(db, "a").await;
    assert!(put(db, "a", &record("third", None), Expected::Any).await);
    let after = db.load(&"a".into()).await.unwrap();
    assert_eq!(value(&after), Some("third"));
    assert_ne!(
        after.unwrap().version,
        before,
        "every write changes the version"
    );

    // Expired a second ago: load still shows it (the lifecycle decides), an `Absent` write
    // does not take it, a write at its version does.
    let past = record("old", Some(now_ms() - 1000));
    assert!(put(db, "b", &past, Expected::Any).await);
    let expired = db
        .load(&"b".into())
        .await
        .unwrap()
        .expect("expired rows are loaded");
    assert_eq!(expired.record, past);
    let new = record("new", None);
    assert!(!put(db, "b", &new, Expected::Absent).await);
    let at = Expected::Version(expired.version);
    assert!(put(db, "b", &new, at).await);
    assert_eq!(value(&db.load(&"b".into()).await.unwrap()), Some("new"));

    let old = record("old", Some(now_ms() - 1000));
    assert!(put(db, "c", &old, Expected::Any).await);
    assert_eq!(db.remove_expired().await.unwrap(), 1);
    assert_eq!(db.load(&"c".into()).await.unwrap(), None);
    assert!(db.delete(&"a".into(), Expected::Any).await.unwrap());
    assert!(
        db.delete(&"a".into(), Expected::Any).await.unwrap(),
        "deleting a missing row is fine"
    );
    assert_eq!(db.load(&"a".into()).await.unwrap(), None);
}

#[tokio::test]
async fn a_store_at_a_stale_version_writes_nothing() {
    let db = &redb_backend();
    assert!(put(db, "a", &record("first", None), Expected::Absent).await);
    let stale = version(db, "a").await;
    let at = Expected::Version(stale);
    assert!(put(db, "a", &record("second", None), at).await);
    let current = db.load(&"a".into()).await.unwrap();

    assert!(!put(db, "a", &record("late", None), at).await);
    assert_eq!(
        db.load(&"a".into()).await.unwrap(),
        current,
        "record and version unchanged"
    );
    // Nor does a version create a row that is not there.
    assert!(!put(db, "b", &record("late", None), at).await);
    assert_eq!(db.load(&"b".into()).await.unwrap(), None);
}

#[tokio::test]
async fn a_delete_acts_only_at_the_expected_version() {
    let db = &redb_backend();
    assert!(put(db, "a", &record("first", None), Expected::Absent).await);
    let stale = version(db, "a").await;
    let at = Expected::Version(stale);
    assert!(put(db, "a", &record("second", None), at).await);
    let current = version(db, "a").await;

    assert!(
        !db.delete(&"a".into(), Expected::Version(stale))
            .await
            .unwrap()
    );
    assert!(!db.delete(&"a".into(), Expected::Absent).await.unwrap());
    assert_eq!(value(&db.load(&"a".into()).await.unwrap()), Some("second"));
    assert!(
        db.delete(&"a".into(), Expected::Version(current))
            .await
            .unwrap()
    );
    assert_eq!(db.load(&"a".into()).await.unwrap(), None);
    assert!(
        !db.delete(&"a".into(), Expected::Version(current))
            .await
            .unwrap()
    );
    assert!(db.delete(&"a".into(), Expected::Absent).await.unwrap());

    // Created again: a request that loaded the deleted row cannot write over the new one.
    assert!(put(db, "a", &record("again", None), Expected::Absent).await);
    let late = record("late", None);
    assert!(!put(db, "a", &late, Expected::Version(stale)).await);
    assert!(!put(db, "a", &late, Expected::Version(current)).await);
    assert_eq!(value(&db.load(&"a".into()).await.unwrap()), Some("again"));
}

/// Two requests load one session and change different keys: the later save merges over
/// the earlier one instead of overwriting it.
#[tokio::test]
async fn overlapping_saves_of_different_keys_both_keep_their_change() {
    let storage = redb().await;
    let first = Session::new();
    first.set("base", 0).unwrap();
    let id = storage.save(&first).await.unwrap().expect("a cookie value");

    let a = storage.read(Some(&id)).await.unwrap();
    let b = storage.read(Some(&id)).await.unwrap();
    a.set("a", 1).unwrap();
    b.set("b", 2).unwrap();
    assert_eq!(
        storage.save(&a).await.unwrap().as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        storage.save(&b).await.unwrap().as_deref(),
        Some(id.as_str())
    );

    let stored = storage.read(Some(&id)).await.unwrap();
    assert!(stored.is_loaded());
    assert_eq!(stored.get::<u64>("base"), Some(0));
    assert_eq!(
        stored.get::<u64>("a"),
        Some(1),
        "the first save's key survives"
    );
    assert_eq!(stored.get::<u64>("b"), Some(2));
}

/// A session saved under an id whose row has expired takes that row over: were expired rows
/// hidden from `load`, the create-only insert would conflict with it on every attempt.
#[tokio::test]
async fn a_save_takes_over_an_expired_row() {
    let storage = redb().await.use_unknown_ids(true);
    let past = record("old", Some(now_ms() - 1000));
    let db = storage.backend();
    assert!(put(db, "chosen", &past, Expected::Any).await);

    let session = storage.read(Some("chosen")).await.unwrap();
    assert!(!session.is_loaded() && session.get::<String>("v").is_none());
    session.set("fresh", true).unwrap();
    assert_eq!(
        storage.save(&session).await.unwrap().as_deref(),
        Some("chosen")
    );
    let stored = storage.read(Some("chosen")).await.unwrap();
    assert_eq!(stored.get::<bool>("fresh"), Some(true));
    assert_eq!(stored.get::<String>("v"), None);
}

/// A record over `max_record_size` is refused as corrupt (the layer then starts a fresh
/// session), with an error that names the table and never the id.
#[tokio::test]
async fn a_stored_record_over_the_size_limit_is_refused() {
    let big = redb().await;
    let session = Session::new();
    session.set("blob", "x".repeat(500)).unwrap();
    let id = big.save(&session).await.unwrap().expect("a cookie value");
    let small = RedbStorage::with_backend(big.backend().clone()).max_record_size(100);
    match small.read(Some(&id)).await {
        Err(session_layer::Error::Corrupt { record, reason }) => {
            assert!(reason.contains("100-byte record size limit"), "{reason}");
            assert!(!record.contains(&id), "{record}");
        }
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
    let stored = big.read(Some(&id)).await.unwrap();
    assert_eq!(stored.get::<String>("blob").map(|b| b.len()), Some(500));
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
