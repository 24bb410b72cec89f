//! A [`SessionBackend`] over [redb](https://www.redb.org), an embedded key-value store that
//! session-layer does not ship.
//!
//! A backend is a load and two conditional writes: each store or delete names what it
//! expects to find (nothing, a version, anything) and answers whether it acted.
//! [`ServerStorage::with_backend`] adds the whole session lifecycle on top: fresh ids,
//! unknown ids, flash, regenerate, destroy, expiry, and the merge of concurrent requests.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use session_layer::Error;
use session_layer::storage::{
    Expected, Record, ServerStorage, SessionBackend, SessionId, Versioned,
};

/// Sessions in a redb file.
pub type RedbStorage = ServerStorage<RedbBackend>;

/// Key: the digest of the session id ([`SessionId::digest`]), so the file holds no usable id.
/// Value: (version, expiry in ms since the Unix epoch, record bytes).
type Row = (u64, Option<u64>, &'static [u8]);
const SESSIONS: TableDefinition<&str, Row> = TableDefinition::new("sessions");

/// One redb database. Its calls block, so each runs on tokio's blocking threads.
#[derive(Clone)]
pub struct RedbBackend {
    db: Arc<Database>,
    limit: usize,
}

impl RedbBackend {
    /// Opens the database at `path`, creating the file and the table if missing.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbBackend, Error> {
        let db = Database::create(path).map_err(backend_error)?;
        let tx = db.begin_write().map_err(backend_error)?;
        tx.open_table(SESSIONS).map_err(backend_error)?;
        tx.commit().map_err(backend_error)?;
        Ok(RedbBackend {
            db: Arc::new(db),
            limit: usize::MAX,
        })
    }

    /// Deletes the expired sessions and returns how many: redb has no expiry of its own, so
    /// run this now and then (the lifecycle ignores expired sessions meanwhile).
    pub async fn remove_expired(&self) -> Result<u64, Error> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |now| now.as_millis() as u64);
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend_error)?;
            let mut removed = 0;
            tx.open_table(SESSIONS)
                .map_err(backend_error)?
                .retain(|_, (_, expires_at_ms, _)| {
                    let live = expires_at_ms.is_none_or(|at| at > now_ms);
                    removed += u64::from(!live);
                    live
                })
                .map_err(backend_error)?;
            tx.commit().map_err(backend_error)?;
            Ok(removed)
        })
        .await
    }

    /// Runs `f` on a blocking thread, so that a disk write never stalls the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(Error::backend)?
    }

    /// Runs `write` if what is stored under `id` is what `expected` says, in one write
    /// transaction: redb runs them one at a time, so nothing changes between check and write.
    async fn write_if(
        &self,
        id: &SessionId,
        expected: Expected,
        write: impl FnOnce(&mut redb::Table<&str, Row>, &str) -> Result<(), Error> + Send + 'static,
    ) -> Result<bool, Error> {
        let key = id.digest().to_owned();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend_error)?;
            {
                let mut table = tx.open_table(SESSIONS).map_err(backend_error)?;
                let stored = table.get(key.as_str()).map_err(backend_error)?;
                if !expected.is_met_by(stored.map(|row| row.value().0)) {
                    return Ok(false); // another request wrote first: the lifecycle merges
                }
                write(&mut table, &key)?;
            }
            tx.commit().map_err(backend_error)?;
            Ok(true)
        })
        .await
    }
}

impl SessionBackend for RedbBackend {
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
        let (key, limit) = (id.digest().to_owned(), self.limit);
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend_error)?;
            let table = tx.open_table(SESSIONS).map_err(backend_error)?;
            let Some(row) = table.get(key.as_str()).map_err(backend_error)? else {
                return Ok(None);
            };
            let (version, _, bytes) = row.value();
            // Errors name the table, never the id: ids are credentials, logs are not secret.
            Record::check_stored_size("a row of sessions", bytes.len() as u64, limit)?;
            let record = Record::decode("a row of sessions", bytes)?;
            Ok(Some(Versioned { record, version }))
        })
        .await
    }

    async fn store(
        &self,
        id: &SessionId,
        record: &Record,
        _ttl: Option<Duration>, // redb has no expiry: the lifecycle checks the record's own
        expected: Expected,
    ) -> Result<bool, Error> {
        // Random rather than `version + 1`, so that a session deleted and created again
        // under the same id never repeats a version a request loaded from the old one.
        let (data, version) = (record.encode(), rand::random::<u64>());
        let expires_at_ms = record.expires_at_ms;
        self.write_if(id, expected, move |table, key| {
            let row = (version, expires_at_ms, data.as_slice());
            table.insert(key, row).map_err(backend_error)?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, id: &SessionId, expected: Expected) -> Result<bool, Error> {
        self.write_if(id, expected, |table, key| {
            table.remove(key).map_err(backend_error)?;
            Ok(())
        })
        .await
    }

    fn limit_record_size(&mut self, bytes: usize) {
        self.limit = bytes;
    }
}

/// Any redb error as the crate's backend error.
fn backend_error(error: impl Into<redb::Error>) -> Error {
    Error::backend(error.into())
}
