//! `Record::decode`, the decoder every server-side backend shares (filesystem, Redis,
//! Memcached, your own), then what the lifecycle does with a decoded record: the expiry
//! checks, loading it as a `Session` through a `ServerStorage` over a backend that returns
//! the fuzzed bytes, using the session, and saving it back.
//!
//! Properties: decode never panics, and its errors never quote the record (session data)
//! into the log; what it accepts re-encodes to a record that decodes to itself; `is_live`
//! agrees with its definition; a loaded session shows the record's data; a save writes the
//! session's data with the record's creation time (one in the future counts as now), and
//! what it writes decodes again.
//!
//! Input: first byte picks the storage options, the rest is the stored record.
#![no_main]

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use session_layer::storage::{Expected, Record, ServerStorage, SessionBackend, Versioned};
use session_layer::{Error, SessionStorage};
use tokio::runtime::Runtime;

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
});

/// A table of rows (bytes, version) by id, as a database holds them: the fuzzed row sits
/// under `fuzz-id`, and every write is checked against `expected` as a real backend's is.
#[derive(Default)]
struct Rows {
    rows: Mutex<HashMap<String, (Vec<u8>, u64)>>,
    writes: Mutex<Vec<Record>>,
}

impl SessionBackend for Rows {
    async fn load(&self, id: &str) -> Result<Option<Versioned>, Error> {
        let row = self.rows.lock().unwrap().get(id).cloned();
        let Some((bytes, version)) = row else {
            return Ok(None);
        };
        let record = Record::decode("fuzz row", &bytes)?;
        Ok(Some(Versioned { record, version }))
    }

    async fn store(
        &self,
        id: &str,
        record: &Record,
        _ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        let mut rows = self.rows.lock().unwrap();
        let row = rows.get(id);
        if !expected.is_met_by(row.map(|(_, v)| *v)) {
            return Ok(false);
        }
        let version = row.map_or(1, |(_, v)| v + 1);
        // What a real backend writes must decode again.
        let encoded = record.encode();
        assert_eq!(
            &Record::decode("written", &encoded).expect("own encoding"),
            record
        );
        rows.insert(id.to_owned(), (encoded, version));
        self.writes.lock().unwrap().push(record.clone());
        Ok(true)
    }

    async fn delete(&self, id: &str, expected: Expected) -> Result<bool, Error> {
        let mut rows = self.rows.lock().unwrap();
        if !expected.is_met_by(rows.get(id).map(|(_, v)| *v)) {
            return Ok(false);
        }
        rows.remove(id);
        Ok(true)
    }
}

fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn check_is_live(record: &Record) {
    let now_ms = [0, 1, 1_700_000_000_000, u64::MAX / 2, u64::MAX];
    let limits = [
        None,
        Some(Duration::ZERO),
        Some(Duration::from_secs(3600)),
        Some(Duration::MAX),
    ];
    for now in now_ms {
        for limit in limits {
            let expected_unexpired = record.expires_at_ms.is_none_or(|at| at > now);
            let expected_young = limit.is_none_or(|l| {
                u128::from(record.created_at) + u128::from(l.as_secs()) > u128::from(now / 1000)
            });
            assert_eq!(
                record.is_live(now, limit),
                expected_unexpired && expected_young,
                "is_live({now}, {limit:?}) for c={} e={:?}",
                record.created_at,
                record.expires_at_ms
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let record = match Record::decode("fuzz record", bytes) {
        Ok(record) => record,
        Err(error) => {
            // The layer logs this error: it names the record and says what is wrong, but
            // never quotes the record's content (session data), however long.
            let message = error.to_string();
            assert!(
                message.len() <= 200,
                "a {}-byte error message",
                message.len()
            );
            assert!(
                !message.contains(['"', '`']),
                "record content in the error: {message}"
            );
            return;
        }
    };
    // Decoding what encode wrote gives the record back.
    let again = Record::decode("re-encoded", &record.encode()).expect("own encoding decodes");
    assert_eq!(again, record);
    check_is_live(&record);

    let backend = Rows::default();
    backend
        .rows
        .lock()
        .unwrap()
        .insert("fuzz-id".to_owned(), (bytes.to_vec(), 1));
    let mut storage = ServerStorage::with_backend(backend);
    if selector & 1 != 0 {
        storage = storage.ttl(Duration::from_secs(3600));
    }
    let max_lifetime = (selector & 2 != 0).then_some(Duration::from_secs(86_400));
    if let Some(limit) = max_lifetime {
        storage = storage.max_lifetime(limit);
    }
    let start_secs = unix_now_secs();
    RUNTIME.block_on(async {
        let session = storage
            .read(Some("fuzz-id"))
            .await
            .expect("the row decodes");
        let _ = session.created_at();
        let _ = format!("{session:?}");
        if session.is_loaded() {
            assert_eq!(session.id(), "fuzz-id");
            for (key, value) in &record.data.values {
                assert_eq!(session.get_value(key).as_ref(), Some(value));
            }
            for (key, value) in &record.data.flash {
                if !record.data.values.contains_key(key) {
                    assert_eq!(session.get_value(key).as_ref(), Some(value));
                }
            }
            assert_eq!(session.is_dirty(), !record.data.flash.is_empty());
        } else {
            // Only an expired record is not loaded (and stays expired), and its id is not
            // kept: the session starts afresh under a new one.
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_millis() as u64;
            assert!(
                !record.is_live(now_ms, max_lifetime),
                "a live record was not loaded"
            );
            assert_ne!(session.id(), "fuzz-id");
        }

        session.set("fuzz-counter", 1).expect("live session");
        if selector & 4 != 0 {
            session.flash("fuzz-flash", true).expect("live session");
        }
        if selector & 8 != 0 {
            session
                .regenerate_id(selector & 16 != 0)
                .expect("live session");
        }
        let saved = storage.save(&session).await.expect("the backend stores");
        assert_eq!(saved, Some(session.id()));
        let writes = storage.backend().writes.lock().unwrap();
        let written = writes.last().expect("a dirty session is written");
        assert_eq!(written.data, session.data());
        if session.is_loaded() {
            // The creation time carries over; one in the future (only a corrupt record has
            // one) counts as the time it was loaded.
            if record.created_at <= start_secs {
                assert_eq!(written.created_at, record.created_at);
            } else {
                let now_secs = unix_now_secs();
                assert!(
                    written.created_at <= now_secs,
                    "kept c = {}",
                    record.created_at
                );
            }
        }
    });
});
