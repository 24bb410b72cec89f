//! The merge of concurrent requests, through the public API only: a session is loaded
//! (`read`) from a stored record A, one fuzzed request changes it (`set`, `unset`, `update`
//! of a counter, `flash`, reads, `regenerate_id(false / true)`, `destroy`), another request
//! meanwhile leaves A alone, replaces it with a record B, writes A again, lets it expire or
//! deletes it, and then the session is saved through a `ServerStorage` over an in-memory
//! backend whose versions come from one counter.
//!
//! Properties, checked against a reference model written here (the request's operations
//! replayed one after another on what is stored at save time), never against the crate's
//! own merge:
//! * during the request the session shows A with its own changes: `get`, `has`, `len`,
//!   `data` and `update`'s result; an incoming flash is readable until its key is changed;
//! * keys the request did not touch keep B's value, the last `set` of a key wins, an unset
//!   key is absent, and every `update` increment lands on B's value (none is lost);
//! * a seen incoming flash is removed only while B still holds the same value, a newer one
//!   survives, and the flash the request set is written;
//! * when nothing changed meanwhile (or A was only written again) the stored data is
//!   `session.data()`;
//! * a destroyed session leaves nothing stored and its save returns `Some("")`;
//! * a session whose record was deleted (or expired) meanwhile is not written back: its
//!   save returns `Some("")` and writes nothing;
//! * after `regenerate_id` the session is written under its new id, which the save
//!   returns; with delete the old id is empty, without it the old record is untouched;
//! * a request that changed nothing (and saw no flash) saves nothing;
//! * with a small `max_record_size`, a save that fails fails with `Error::RecordTooLarge`
//!   for a record the size of the session's data or of the merge, and writes nothing; a
//!   written record always fits;
//! * nothing panics, and the only errors are `Error::Destroyed` for changes after
//!   `destroy` and `RecordTooLarge`.
//!
//! Input (a byte past the end reads as 0):
//! * byte 0: bits 0-2 what happened meanwhile (modulo 5: A unchanged, B stored, deleted,
//!   B stored but expired, A written again), bit 3: a size limit follows;
//! * with bit 3: the `max_record_size`, 48 + the byte;
//! * record A, and B when one is stored: a byte per key k0..k3 for its value, then one per
//!   key for its flash (0: absent, else one of a few JSON values), then its creation time;
//! * the rest: operations, one byte each (bits 0-2 the operation, bits 3-4 the key), `set`
//!   and `flash` followed by a value byte; at most 48.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use session_layer::storage::{Expected, Record, ServerStorage, SessionBackend, SessionId, Versioned};
use session_layer::{Error, Session, SessionData, SessionStorage};
use tokio::runtime::Runtime;

/// Paused time: a save's back-off between attempts passes at once.
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
});

const ID: &str = "fuzz-id";
const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];
const MAX_OPS: usize = 48;

/// Rows of (encoded record, version) by id; versions come from one counter, so that a
/// record written again never has the version it had.
#[derive(Default)]
struct Rows {
    rows: Mutex<HashMap<String, (Vec<u8>, u64)>>,
    last_version: Mutex<u64>,
    limit: usize,
}

impl Rows {
    fn put(&self, id: &str, record: &Record) {
        let mut last = self.last_version.lock().unwrap();
        *last += 1;
        let row = (record.encode(), *last);
        self.rows.lock().unwrap().insert(id.to_owned(), row);
    }

    fn snapshot(&self) -> HashMap<String, (Vec<u8>, u64)> {
        self.rows.lock().unwrap().clone()
    }

    fn record(&self, id: &str) -> Option<Record> {
        let rows = self.rows.lock().unwrap();
        let (bytes, _) = rows.get(id)?;
        Some(Record::decode("a fuzz row", bytes).expect("rows decode"))
    }
}

impl SessionBackend for Rows {
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
        let row = self.rows.lock().unwrap().get(id).cloned();
        let Some((bytes, version)) = row else {
            return Ok(None);
        };
        Record::check_stored_size("a fuzz row", bytes.len() as u64, self.limit)?;
        let record = Record::decode("a fuzz row", &bytes)?;
        Ok(Some(Versioned { record, version }))
    }

    async fn store(
        &self,
        id: &SessionId,
        record: &Record,
        _ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        let encoded = record.encode();
        assert_eq!(record.encoded_len(), encoded.len());
        assert!(
            encoded.len() <= self.limit,
            "a record over the limit reached the backend"
        );
        let mut rows = self.rows.lock().unwrap();
        if !expected.is_met_by(rows.get(id).map(|(_, v)| *v)) {
            return Ok(false);
        }
        let mut last = self.last_version.lock().unwrap();
        *last += 1;
        rows.insert(id.to_owned(), (encoded, *last));
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

/// The fuzz input, a byte at a time; zeros past its end.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&byte, rest)) => {
                self.0 = rest;
                byte
            }
            None => 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A few JSON values: integers for the counter (one at its limit, one past `i64`), a
/// float, strings, a bool, an array and `null` (which a `set` turns into an unset).
fn value(code: u8) -> Value {
    match code % 12 {
        0 => json!(0),
        1 => json!(1),
        2 => json!(2),
        3 => json!(-1),
        4 => json!(i64::MAX),
        5 => json!(u64::MAX),
        6 => json!(1.5),
        7 => json!("a"),
        8 => json!("b"),
        9 => json!(true),
        10 => Value::Null,
        _ => json!([1, {"x": "y"}]),
    }
}

/// A record: a value byte per key, a flash byte per key (0: absent), a creation time.
fn record(input: &mut Input) -> Record {
    let mut data = SessionData::default();
    for map in [&mut data.values, &mut data.flash] {
        for key in KEYS {
            let code = input.byte();
            if code != 0 {
                map.insert(key.to_owned(), value(code - 1));
            }
        }
    }
    Record {
        data,
        // Always ten digits: the size of a record does not depend on whose time it keeps.
        created_at: 1_700_000_000 + u64::from(input.byte()),
        expires_at_ms: None,
        ..Record::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Meanwhile {
    Unchanged,
    Replaced,
    Deleted,
    Expired,
    Rewritten,
}

#[derive(Clone, Debug)]
enum Op {
    Set(&'static str, Value),
    Unset(&'static str),
    Update(&'static str),
    Flash(&'static str, Value),
    Get(&'static str),
    Regenerate(bool),
    Destroy,
}

fn ops(input: &mut Input) -> Vec<Op> {
    let mut ops = Vec::new();
    while !input.is_empty() && ops.len() < MAX_OPS {
        let byte = input.byte();
        let key = KEYS[usize::from(byte >> 3) % KEYS.len()];
        ops.push(match byte % 8 {
            0 => Op::Set(key, value(input.byte())),
            1 => Op::Unset(key),
            2 => Op::Update(key),
            3 => Op::Flash(key, value(input.byte())),
            4 => Op::Get(key),
            5 => Op::Regenerate(false),
            6 => Op::Regenerate(true),
            _ => Op::Destroy,
        });
    }
    ops
}

/// The counter every `update` runs: one more, starting from 0 when the value is absent or
/// not an `i64`.
fn bump(value: Option<&Value>) -> i64 {
    value.and_then(Value::as_i64).unwrap_or(0).saturating_add(1)
}

/// The reference model of a save: the request's changes replayed, one after another, on
/// `base` (what is stored at save time); the incoming flash it saw goes where `base` still
/// holds it, and the flash it set is added.
fn merged(base: &SessionData, seen_flash: &Map<String, Value>, ops: &[Op]) -> SessionData {
    let mut values = base.values.clone();
    let mut flash_set = Map::new();
    for op in ops {
        match op {
            Op::Set(key, value) if value.is_null() => {
                values.remove(*key);
            }
            Op::Set(key, value) => {
                values.insert((*key).to_owned(), value.clone());
            }
            Op::Unset(key) => {
                values.remove(*key);
                flash_set.remove(*key);
            }
            Op::Update(key) => {
                let next = bump(values.get(*key));
                values.insert((*key).to_owned(), json!(next));
            }
            Op::Flash(key, value) => {
                flash_set.insert((*key).to_owned(), value.clone());
            }
            Op::Get(_) | Op::Regenerate(_) | Op::Destroy => {}
        }
    }
    let mut flash = base.flash.clone();
    for (key, seen) in seen_flash {
        if flash.get(key) == Some(seen) {
            flash.remove(key);
        }
    }
    flash.extend(flash_set);
    SessionData { values, flash }
}

/// The encoded size of a record of `data` as this target's saves write it (no expiry, a
/// ten-digit creation time).
fn record_size(data: &SessionData) -> usize {
    Record {
        data: data.clone(),
        created_at: 1_700_000_000,
        expires_at_ms: None,
        ..Record::default()
    }
    .encoded_len()
}

/// Runs `ops` on the session, checking each against the model of what the request sees;
/// returns the operations that took effect (none after a destroy).
fn run(session: &Session, a: &SessionData, ops: &[Op]) -> Vec<Op> {
    let mut values = a.values.clone();
    let incoming = &a.flash;
    let mut flash_set = Map::new();
    let mut changed: HashSet<&str> = HashSet::new();
    let mut destroyed = false;
    let mut dirty = !incoming.is_empty();
    let mut applied = Vec::new();
    for op in ops {
        if destroyed {
            let result = match op {
                Op::Set(key, value) => session.set(*key, value),
                Op::Unset(key) => session.unset(key),
                Op::Update(key) => session
                    .update(*key, |n: Option<i64>| n.unwrap_or(0))
                    .map(drop),
                Op::Flash(key, value) => session.flash(*key, value),
                Op::Regenerate(delete_old) => session.regenerate_id(*delete_old),
                Op::Get(key) => {
                    assert_eq!(
                        session.get_value(key),
                        None,
                        "a destroyed session shows {key}"
                    );
                    assert!(!session.has(key));
                    Ok(())
                }
                Op::Destroy => {
                    session.destroy();
                    Ok(())
                }
            };
            if !matches!(op, Op::Get(_) | Op::Destroy) {
                assert!(
                    matches!(result, Err(Error::Destroyed)),
                    "{op:?} after destroy gave {result:?}"
                );
            }
            assert!(session.is_destroyed());
            assert_eq!(session.len(), 0);
            assert_eq!(session.data(), SessionData::default());
            continue;
        }
        match op {
            Op::Set(key, value) => {
                session.set(*key, value).expect("a live session");
                if value.is_null() {
                    values.remove(*key);
                } else {
                    values.insert((*key).to_owned(), value.clone());
                }
                changed.insert(key);
            }
            Op::Unset(key) => {
                session.unset(key).expect("a live session");
                values.remove(*key);
                flash_set.remove(*key);
                changed.insert(key);
            }
            Op::Update(key) => {
                let got = session
                    .update(*key, |n: Option<i64>| n.unwrap_or(0).saturating_add(1))
                    .expect("a live session");
                let expected = bump(values.get(*key));
                assert_eq!(got, expected, "update of {key}");
                values.insert((*key).to_owned(), json!(expected));
                changed.insert(key);
            }
            Op::Flash(key, value) => {
                session.flash(*key, value).expect("a live session");
                flash_set.insert((*key).to_owned(), value.clone());
            }
            Op::Get(key) => {
                let expected = values
                    .get(*key)
                    .or_else(|| incoming.get(*key).filter(|_| !changed.contains(key)));
                assert_eq!(session.get_value(key).as_ref(), expected, "get {key}");
                assert_eq!(session.has(key), expected.is_some());
                let readable = values.len()
                    + incoming
                        .keys()
                        .filter(|k| !values.contains_key(*k) && !changed.contains(k.as_str()))
                        .count();
                assert_eq!(session.len(), readable);
            }
            Op::Regenerate(delete_old) => {
                session.regenerate_id(*delete_old).expect("a live session");
                assert_ne!(session.id(), ID);
                assert_eq!(session.original_id(), ID);
            }
            Op::Destroy => {
                session.destroy();
                destroyed = true;
            }
        }
        dirty |= !matches!(op, Op::Get(_));
        applied.push(op.clone());
        if !destroyed {
            let data = SessionData {
                values: values.clone(),
                flash: flash_set.clone(),
            };
            assert_eq!(session.data(), data, "after {op:?}");
        }
        assert_eq!(session.is_dirty(), dirty, "after {op:?}");
    }
    assert_eq!(session.is_dirty(), dirty);
    applied
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let header = input.byte();
    let meanwhile = match (header & 7) % 5 {
        0 => Meanwhile::Unchanged,
        1 => Meanwhile::Replaced,
        2 => Meanwhile::Deleted,
        3 => Meanwhile::Expired,
        _ => Meanwhile::Rewritten,
    };
    let limit = (header & 8 != 0).then(|| 48 + usize::from(input.byte()));
    let a = record(&mut input);
    let b = match meanwhile {
        Meanwhile::Replaced => Some(record(&mut input)),
        Meanwhile::Expired => Some(Record {
            expires_at_ms: Some(1),
            ..record(&mut input)
        }),
        _ => None,
    };
    let ops = ops(&mut input);
    if let (Some(limit), Some(b)) = (limit, &b)
        && b.encoded_len() > limit
    {
        // Another request's save could not have stored it.
        return;
    }

    let mut storage = ServerStorage::with_backend(Rows::default());
    if let Some(limit) = limit {
        storage = storage.max_record_size(limit);
    }
    let limit = limit.unwrap_or(session_layer::storage::DEFAULT_MAX_RECORD_SIZE);
    assert_eq!(
        storage.backend().limit,
        limit,
        "the backend is told the limit"
    );
    let a_fits = a.encoded_len() <= limit;
    storage.backend().put(ID, &a);

    RUNTIME.block_on(async {
        let session = match storage.read(Some(ID)).await {
            Ok(session) => session,
            Err(Error::Corrupt { .. }) if !a_fits => return,
            Err(error) => panic!("read: {error}"),
        };
        assert!(a_fits, "a record over the limit was loaded");
        assert!(session.is_loaded());
        assert_eq!(session.id(), ID);

        let applied = run(&session, &a.data, &ops);
        let destroyed = session.is_destroyed();
        let regenerated = applied.iter().any(|op| matches!(op, Op::Regenerate(_)));
        let delete_old = applied.iter().any(|op| matches!(op, Op::Regenerate(true)));

        // What the other request did meanwhile.
        let backend = storage.backend();
        match (meanwhile, &b) {
            (Meanwhile::Unchanged, _) => {}
            (Meanwhile::Replaced | Meanwhile::Expired, Some(b)) => backend.put(ID, b),
            (Meanwhile::Rewritten, _) => backend.put(ID, &a),
            (Meanwhile::Deleted, _) => {
                backend.rows.lock().unwrap().remove(ID);
            }
            _ => unreachable!(),
        }
        let before = backend.snapshot();
        // What is stored, and live, when the save comes.
        let base = match meanwhile {
            Meanwhile::Unchanged | Meanwhile::Rewritten => Some(&a),
            Meanwhile::Replaced => b.as_ref(),
            Meanwhile::Deleted | Meanwhile::Expired => None,
        };
        let expected = base.map(|base| merged(&base.data, &a.data.flash, &applied));
        let dirty = session.is_dirty();
        let own_data = session.data();

        let saved = storage.save(&session).await;
        let after = backend.snapshot();

        if let Err(Error::RecordTooLarge {
            size,
            limit: refused,
        }) = &saved
        {
            assert_eq!(*refused, limit);
            assert!(*size > limit);
            let merged_size = expected.as_ref().map(record_size);
            assert!(
                *size == record_size(&own_data) || Some(*size) == merged_size,
                "refused {size} bytes: the session's data is {}, the merge {merged_size:?}",
                record_size(&own_data)
            );
            assert!(!destroyed && dirty);
            assert_eq!(after, before, "a refused save wrote");
            return;
        }
        let saved = saved.expect("saves fail only on the size limit");

        if !dirty {
            assert_eq!(saved, None, "a clean session was saved");
            assert_eq!(after, before, "a clean session wrote");
            return;
        }
        if destroyed {
            assert_eq!(saved.as_deref(), Some(""), "a destroyed session's save");
            assert!(after.is_empty(), "left after destroy: {:?}", after.keys());
            return;
        }
        let Some(expected) = expected else {
            // Deleted or expired meanwhile: nothing comes back.
            assert_eq!(saved.as_deref(), Some(""), "a gone session's save");
            assert_eq!(after, before, "a gone session was written back");
            return;
        };

        let id = session.id();
        assert_eq!(
            saved.as_deref(),
            Some(id.as_str()),
            "the save names the current id"
        );
        assert_eq!(regenerated, id != ID);
        let written = backend
            .record(&id)
            .expect("the session is stored under its id");
        assert!(written.encoded_len() <= limit);
        let stored = &written.data;
        let base = base.expect("a stored base");
        for key in KEYS {
            let touched = applied
                .iter()
                .any(|op| matches!(op, Op::Set(k, _) | Op::Unset(k) | Op::Update(k) if *k == key));
            if !touched {
                assert_eq!(
                    stored.values.get(key),
                    base.data.values.get(key),
                    "untouched {key} lost what is stored"
                );
            }
        }
        assert_eq!(*stored, expected, "the merge of {applied:?}");
        if meanwhile != Meanwhile::Replaced || base.data == a.data {
            assert_eq!(*stored, own_data, "nothing changed meanwhile");
        }
        assert!(
            [a.created_at, base.created_at].contains(&written.created_at),
            "created at {}",
            written.created_at
        );
        if regenerated {
            if delete_old {
                assert!(
                    !after.contains_key(ID),
                    "regenerate_id(true) left the old id"
                );
            } else {
                assert_eq!(
                    after.get(ID),
                    before.get(ID),
                    "regenerate_id(false) changed the old id"
                );
            }
            assert_eq!(after.len(), 1 + usize::from(!delete_old));
        } else {
            assert_eq!(after.len(), 1);
        }
        // What was written loads again.
        let again = storage
            .read(Some(&id))
            .await
            .expect("the written record loads");
        assert!(again.is_loaded());
        assert_eq!(again.id(), id);
        for (key, value) in &expected.values {
            assert_eq!(again.get_value(key).as_ref(), Some(value));
        }
    });
});
