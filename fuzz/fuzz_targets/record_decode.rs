//! `Record::decode`, the decoder every server-side backend shares (filesystem, Redis,
//! Memcached, your own), then what the lifecycle does with a decoded record: the expiry
//! checks, loading it as a `Session` through a `ServerStorage` over a backend that returns
//! the fuzzed bytes, using the session, and saving it back.
//!
//! Properties: decode never panics, and its errors never quote the record (session data)
//! into the log; what it accepts re-encodes to a record that decodes to itself, and
//! `encoded_len` is the length of `encode`'s bytes; `is_live` agrees with its definition; a
//! loaded session shows the record's data; a save writes the session's data with the
//! record's creation time (one in the future counts as now), and what it writes decodes
//! again.
//!
//! The record size limit (`max_record_size`): the backend is told the limit and, as the
//! built-in backends do, refuses a bigger row with `Record::check_stored_size` before
//! decoding it; such a row never loads (the read fails as `Error::Corrupt`, and the session
//! starts afresh, as the layer does for a corrupt record). A save whose record would exceed
//! the limit fails with `Error::RecordTooLarge` naming that record's size and writes
//! nothing; one within it succeeds.
//!
//! Input: first byte picks the storage options (bits 0-4) and the size limit (bits 5-7:
//! the default, one byte under the row, exactly the row, 0, 64, 128, 512 or `usize::MAX`),
//! the rest is the stored record.
#![no_main]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use session_layer::storage::{SessionId, 
    DEFAULT_MAX_RECORD_SIZE, Expected, Record, ServerStorage, SessionBackend, Versioned,
};
use session_layer::{Error, Session, SessionStorage};
use tokio::runtime::Runtime;

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
});

/// A table of rows (bytes, version) by id, as a database holds them: the fuzzed row sits
/// under `fuzz-id`, and every write is checked against `expected` as a real backend's is.
/// A row over the size limit is refused before it is decoded, as the built-in backends
/// refuse it before reading it.
#[derive(Default)]
struct Rows {
    rows: Mutex<HashMap<String, (Vec<u8>, u64)>>,
    writes: Mutex<Vec<Record>>,
    /// From `limit_record_size`.
    limit: usize,
    /// How many rows `load` decoded.
    decoded: AtomicUsize,
}

impl SessionBackend for Rows {
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
        let row = self.rows.lock().unwrap().get(id).cloned();
        let Some((bytes, version)) = row else {
            return Ok(None);
        };
        Record::check_stored_size("fuzz row", bytes.len() as u64, self.limit)?;
        self.decoded.fetch_add(1, Ordering::Relaxed);
        let record = Record::decode("fuzz row", &bytes)?;
        Ok(Some(Versioned { record, version }))
    }

    async fn store(
        &self,
        id: &SessionId,
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
        // What a real backend writes must decode again, and fit the limit.
        let encoded = record.encode();
        assert_eq!(record.encoded_len(), encoded.len());
        assert!(
            encoded.len() <= self.limit,
            "a {}-byte record reached the backend past the {}-byte limit",
            encoded.len(),
            self.limit
        );
        assert_eq!(
            &Record::decode("written", &encoded).expect("own encoding"),
            record
        );
        rows.insert(id.to_owned(), (encoded, version));
        self.writes.lock().unwrap().push(record.clone());
        Ok(true)
    }

    async fn delete(&self, id: &SessionId, expected: Expected) -> Result<bool, Error> {
        let mut rows = self.rows.lock().unwrap();
        if !expected.is_met_by(rows.get(id).map(|(_, v)| *v)) {
            return Ok(false);
        }
        rows.remove(id);
        Ok(true)
    }

    fn limit_record_size(&mut self, bytes: usize) {
        self.limit = bytes;
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

/// What a session loaded from `record` (through `read`) shows.
fn check_loaded(record: &Record, session: &Session, max_lifetime: Option<Duration>) {
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
}

/// The size limit the selector's bits 5-7 pick, `None` for the default; `row` is the
/// stored row's length.
fn size_limit(selector: u8, row: usize) -> Option<usize> {
    match selector >> 5 {
        0 => None,
        1 => Some(row.saturating_sub(1)),
        2 => Some(row),
        3 => Some(0),
        4 => Some(64),
        5 => Some(128),
        6 => Some(512),
        _ => Some(usize::MAX),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let decoded = Record::decode("fuzz record", bytes);
    match &decoded {
        Ok(record) => {
            // Decoding what encode wrote gives the record back, and encoded_len counts it.
            let encoded = record.encode();
            assert_eq!(record.encoded_len(), encoded.len());
            let again = Record::decode("re-encoded", &encoded).expect("own encoding decodes");
            assert_eq!(&again, record);
            check_is_live(record);
        }
        Err(error) => {
            // The layer logs this error: it names the record and says what is wrong, but
            // never quotes the record's content (session data), however long.
            let message = error.to_string();
            assert!(message.len() <= 200, "a {}-byte message", message.len());
            assert!(
                !message.contains(['"', '`']),
                "record content in the error: {message}"
            );
        }
    }

    let backend = Rows::default();
    backend
        .rows
        .lock()
        .unwrap()
        .insert("fuzz-id".to_owned(), (bytes.to_vec(), 1));
    let mut storage = ServerStorage::with_backend(backend);
    let ttl = selector & 1 != 0;
    if ttl {
        storage = storage.ttl(Duration::from_secs(3600));
    }
    let max_lifetime = (selector & 2 != 0).then_some(Duration::from_secs(86_400));
    if let Some(limit) = max_lifetime {
        storage = storage.max_lifetime(limit);
    }
    let limit = size_limit(selector, bytes.len());
    if let Some(limit) = limit {
        storage = storage.max_record_size(limit);
    }
    let limit = limit.unwrap_or(DEFAULT_MAX_RECORD_SIZE);
    assert_eq!(
        storage.backend().limit,
        limit,
        "the backend is told the limit"
    );
    let over_limit = bytes.len() > limit;
    let start_secs = unix_now_secs();
    RUNTIME.block_on(async {
        let read = storage.read(Some("fuzz-id")).await;
        let record = match (&decoded, read) {
            (_, Err(error @ Error::Corrupt { .. })) if over_limit => {
                // Refused for its size, never decoded.
                assert!(error.to_string().contains("record size limit"), "{error}");
                assert_eq!(storage.backend().decoded.load(Ordering::Relaxed), 0);
                None
            }
            (_, Ok(_)) if over_limit => panic!("a row over the size limit was loaded"),
            (Err(_), Err(Error::Corrupt { .. })) => None,
            (Err(_), read) => panic!("an undecodable row read as {read:?}"),
            (Ok(record), Ok(session)) => Some((record, session)),
            (Ok(_), Err(error)) => panic!("the row decodes, yet: {error}"),
        };
        let session = match record {
            Some((record, session)) => {
                check_loaded(record, &session, max_lifetime);
                session
            }
            // The layer starts a fresh session when the record is corrupt.
            None => Session::new(),
        };
        let loaded = session.is_loaded();

        session.set("fuzz-counter", 1).expect("live session");
        if selector & 4 != 0 {
            session.flash("fuzz-flash", true).expect("live session");
        }
        if selector & 8 != 0 {
            session
                .regenerate_id(selector & 16 != 0)
                .expect("live session");
        }

        // The record the save builds: the session's data, its creation time (one in the
        // future, or a fresh session's, counts as now: ten digits either way) and, with a
        // TTL or lifetime, an expiry (now plus at most a day: thirteen digits either way).
        let now_secs = unix_now_secs();
        let created_at = match (&decoded, loaded) {
            (Ok(record), true) => record.created_at.min(now_secs),
            _ => now_secs,
        };
        let expected_size = Record {
            data: session.data(),
            created_at,
            expires_at_ms: (ttl || max_lifetime.is_some()).then_some(now_secs * 1000),
            ..Record::default()
        }
        .encoded_len();
        let rows_before = storage.backend().rows.lock().unwrap().clone();

        let saved = storage.save(&session).await;
        if expected_size > limit {
            match saved {
                Err(Error::RecordTooLarge {
                    size,
                    limit: refused,
                }) => {
                    assert_eq!((size, refused), (expected_size, limit));
                }
                other => panic!("a {expected_size}-byte record over {limit}: {other:?}"),
            }
            let backend = storage.backend();
            assert!(
                backend.writes.lock().unwrap().is_empty(),
                "a refused save wrote"
            );
            assert_eq!(*backend.rows.lock().unwrap(), rows_before);
            return;
        }
        let saved = saved.expect("the backend stores");
        assert_eq!(saved, Some(session.id()));
        let writes = storage.backend().writes.lock().unwrap();
        let written = writes.last().expect("a dirty session is written");
        assert_eq!(written.data, session.data());
        assert_eq!(written.encoded_len(), expected_size);
        if let (Ok(record), true) = (&decoded, loaded) {
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
