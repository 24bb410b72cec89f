//! Sessions as files, one per session.

mod owners;
mod sweep;

use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{
    DEFAULT_MAX_RECORD_SIZE, Error, Expected, OwnerIndexBackend, Record, Renewal, ServerStorage,
    SessionBackend, SessionId, Versioned,
};
use crate::SessionHandle;

/// Sessions as files under a directory: for single-server deployments that must keep
/// sessions across restarts.
///
/// Each session is one file at `dir/<2 hex>/<62 hex>`, named from the SHA-256 of its id, so
/// no id ever becomes a path and no directory grows too large. Files are created `0600`.
/// A write goes to a temporary file that is renamed into place, so a crash never leaves a
/// torn file.
///
/// # Expired files
///
/// Nothing caps the number of files: every new session that is saved is one more (a
/// handler that writes to the session of every cookieless request makes one per request),
/// and it stays until it is destroyed or expires *and* is swept. An expired file is
/// ignored on read but not deleted then; [`remove_expired`](FsStorage::remove_expired)
/// deletes it. So set a [`ttl`](ServerStorage::ttl) (or a
/// [`max_lifetime`](ServerStorage::max_lifetime)): without either no record ever expires
/// and no sweep removes anything. Then run `remove_expired` now and then, from a task of
/// your own (see its cost there), so that the directory holds the sessions of about one TTL
/// and one sweep interval.
///
/// # Sessions of one owner
///
/// [`SessionIndex`](crate::SessionIndex) is implemented: an owned session also has an empty
/// file at `dir/owners/<SHA-256 of the owner>/<its handle>`, written before its record and
/// removed after it (with the owner's folder once it is empty), so a listing reads one
/// folder and the records it names. An unowned session's save costs nothing more. Expired
/// sessions leave their entries until `remove_expired` deletes both, and the sweep also
/// removes entries that a write failing halfway left behind.
///
/// Writes are conditional on the file's content as loaded, checked under an exclusive lock
/// (`flock`) on the file's directory, so several processes may share one directory on a
/// local file system and still never lose each other's updates.
///
/// ```no_run
/// use std::time::Duration;
/// use session_layer::FsStorage;
///
/// let storage = FsStorage::new("/var/lib/myapp/sessions")?.ttl(Duration::from_secs(86400));
/// # Ok::<(), session_layer::Error>(())
/// ```
pub type FsStorage = ServerStorage<FsBackend>;

impl FsStorage {
    /// A storage in `dir`, created if missing. A path that exists and is not a directory is
    /// an error.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        if dir.exists() && !dir.is_dir() {
            return Err(Error::Config(format!(
                "session directory {} is not a directory",
                dir.display()
            )));
        }
        std::fs::create_dir_all(&dir)?;
        Ok(ServerStorage::with_backend(FsBackend {
            dir: Arc::new(dir),
            sync: false,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
        }))
    }

    /// Also `fsync` each file before it is moved into place, so that a session saved just
    /// before a power loss survives it. Off by default: it costs a disk flush per write.
    ///
    /// A process crash (even `kill -9`) never loses or tears a saved session either way: the
    /// file is complete in the page cache before it replaces the old one. Without this
    /// option a power loss or kernel crash can leave the sessions written in the last
    /// seconds empty on disk; such a file reads as [`Error::Corrupt`], which the layer
    /// answers with a fresh session.
    pub fn sync_writes(mut self, enabled: bool) -> Self {
        self.backend_mut().sync = enabled;
        self
    }

    /// The directory the sessions are in.
    pub fn dir(&self) -> &Path {
        &self.backend().dir
    }

    /// Deletes every expired session file (with its owner index entry), temporary files
    /// left by a crash, and owner index entries that name no session of their owner;
    /// returns how many session and temporary files went. Run it now and then (say hourly) to reclaim disk space.
    ///
    /// Its cost grows with every file in the directory, live ones included: each is opened,
    /// read and parsed once, and each expired one is read again under its bucket's lock
    /// (so that a save racing the sweep is never deleted) and unlinked. It runs on tokio's
    /// blocking pool, one file at a time, holding a bucket's lock for one file at most, so
    /// requests go on meanwhile. On a file system that discards freed blocks synchronously
    /// (ext4 mounted with `discard`), unlinking a file already on disk dominates. Files that
    /// are corrupt or over [`max_record_size`](ServerStorage::max_record_size) are left
    /// for inspection (reading them is what the limit prevents): delete them by hand.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use session_layer::FsStorage;
    ///
    /// # async fn run() -> Result<(), session_layer::Error> {
    /// let storage = FsStorage::new("/var/lib/myapp/sessions")?.ttl(Duration::from_secs(86400));
    /// let sweeper = storage.clone();
    /// tokio::spawn(async move {
    ///     let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    ///     loop {
    ///         hourly.tick().await;
    ///         if let Err(error) = sweeper.remove_expired().await {
    ///             eprintln!("sweeping session files failed: {error}");
    ///         }
    ///     }
    /// });
    /// # Ok(())
    /// # }
    /// ```
    pub async fn remove_expired(&self) -> Result<usize, Error> {
        let backend = self.backend().clone();
        blocking(move || backend.remove_expired()).await
    }
}

/// The [`SessionBackend`] behind [`FsStorage`].
#[derive(Clone, Debug)]
pub struct FsBackend {
    dir: Arc<PathBuf>,
    sync: bool,
    /// The largest file `load` reads ([`SessionBackend::limit_record_size`]).
    max_record_size: usize,
}

impl FsBackend {
    /// The file of the session whose handle (the digest of its id) is `handle`.
    fn path(&self, handle: &str) -> PathBuf {
        self.dir.join(&handle[..2]).join(&handle[2..])
    }

    /// Writes `bytes`, the record of the session `handle` owned by `owner`, if what is
    /// stored is what `expected` says; keeps the owner index in step.
    fn write(
        &self,
        handle: &str,
        bytes: &[u8],
        owner: Option<&str>,
        expected: Expected,
    ) -> Result<bool, Error> {
        let path = self.path(handle);
        with_bucket_lock(&path, || {
            let Some(replaced) = check(&path, expected, self.max_record_size)? else {
                return Ok(false);
            };
            // A record that keeps its owner has its entry already.
            if let Some(owner) = owner
                && replaced.owner.as_deref() != Some(owner)
            {
                owners::add(&self.dir, owner, handle)?;
            }
            write_file(&path, bytes, self.sync)?;
            match replaced.owner {
                Some(old) if Some(old.as_str()) != owner => {
                    owners::remove(&self.dir, &old, handle)?;
                }
                _ => {}
            }
            Ok(true)
        })
    }

    /// Deletes the record of the session `handle` if what is stored is what `expected`
    /// says (and, with `owner`, if it is that owner's), and its owner index entry.
    fn delete(&self, handle: &str, expected: Expected, owner: Option<&str>) -> Result<bool, Error> {
        let path = self.path(handle);
        with_bucket_lock(&path, || {
            let Some(deleted) = check(&path, expected, self.max_record_size)? else {
                return Ok(false);
            };
            if owner.is_some() && deleted.owner.as_deref() != owner {
                return Ok(false);
            }
            remove_file(&path)?;
            if let Some(old) = deleted.owner {
                owners::remove(&self.dir, &old, handle)?;
            }
            Ok(true)
        })
    }
}

impl FsBackend {
    /// Renews the live record of the session `handle` under its bucket's lock, as a save
    /// takes it: its file's modification time becomes the new expiry (see [`RENEWED_NANOS`]),
    /// its bytes stay. Where the file system cannot keep that time, the record is written
    /// again instead. Returns whether a live record was there.
    fn renew(&self, handle: &str, expires_at_ms: Option<u64>, now_ms: u64) -> Result<bool, Error> {
        let path = self.path(handle);
        with_bucket_lock(&path, || {
            let stored = match read_file(&path, self.max_record_size) {
                Ok(Some(stored)) => stored,
                // Gone, or never loadable: nothing to renew.
                Ok(None) | Err(Error::Corrupt { .. }) => return Ok(false),
                Err(e) => return Err(e),
            };
            let mut record = stored.record;
            if !record.is_live(now_ms, None) {
                return Ok(false);
            }
            let Some(new) =
                expires_at_ms.filter(|new| record.expires_at_ms.is_some_and(|at| at < *new))
            else {
                return Ok(true);
            };
            let time = renewed_time(new);
            std::fs::File::open(&path)?.set_modified(time)?;
            if std::fs::metadata(&path)?.modified()? != time {
                // A coarse clock (FAT, old ext4 inodes) loses the mark: write the record.
                record.renew(Some(new), now_ms);
                write_file(&path, &record.encode(), self.sync)?;
            }
            Ok(true)
        })
    }

    /// Deletes the record of the session `handle` if it is still at `version` and expired
    /// at `now_ms`, under its bucket's lock: a renewal keeps the version but moves the
    /// expiry, so the sweep looks at both.
    pub(super) fn delete_expired(
        &self,
        handle: &str,
        version: u64,
        now_ms: u64,
    ) -> Result<bool, Error> {
        let path = self.path(handle);
        with_bucket_lock(&path, || {
            let owner = match read_file(&path, self.max_record_size) {
                Ok(Some(stored))
                    if stored.version == version && !stored.record.is_live(now_ms, None) =>
                {
                    stored.record.owner
                }
                Ok(_) | Err(Error::Corrupt { .. }) => return Ok(false),
                Err(e) => return Err(e),
            };
            remove_file(&path)?;
            if let Some(old) = owner {
                owners::remove(&self.dir, &old, handle)?;
            }
            Ok(true)
        })
    }
}

/// The nanoseconds within its millisecond of a file's modification time that a renewal
/// sets: the mark that tells its expiry from a time that a copy, a restore or a `touch`
/// gave the file, which must not bring an expired session back.
const RENEWED_NANOS: u32 = 424_242;

/// The modification time a renewal to `expires_at_ms` gives a record file.
fn renewed_time(expires_at_ms: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH
        + Duration::from_millis(expires_at_ms)
        + Duration::from_nanos(u64::from(RENEWED_NANOS))
}

/// The expiry a renewal left in a record file's modification time, if it carries the mark.
fn renewed_expiry(modified: std::time::SystemTime) -> Option<u64> {
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    let ms = u64::try_from(since.as_millis()).ok()?;
    (since.subsec_nanos() % 1_000_000 == RENEWED_NANOS).then_some(ms)
}

/// Runs file work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::backend(format!("filesystem task failed: {e}")))?
}

/// Temporary files start with this, so sweeps can tell them from sessions.
const TEMP_PREFIX: &str = ".tmp-";

/// A temporary file this old was left by a crash (writes take milliseconds).
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// The version of a record file: a hash of its bytes. Two different writes of one session
/// never have the same bytes (the expiry is in milliseconds, the data differs), and a write
/// of the very same bytes is the same record, which a merge may take as its base.
fn version_of(bytes: &[u8]) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// Runs `work` while holding an exclusive `flock` on `path`'s bucket directory itself, so
/// that no lock file sits among the sessions.
fn with_bucket_lock<T>(path: &Path, work: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let parent = path.parent().expect("session paths have a parent");
    std::fs::create_dir_all(parent)?;
    let lock = std::fs::File::open(parent)?;
    lock.lock()?;
    // Dropping the file releases the lock, on every path out.
    work()
}

/// The bytes of the file at `path` (`None` if there is none), read only if they are at most
/// `limit`: a bigger file is [`Error::Corrupt`] ([`Record::check_stored_size`]), never read
/// whole or held in memory, even if it grows while it is read.
fn read_bounded(path: &Path, limit: usize) -> Result<Option<Vec<u8>>, Error> {
    Ok(read_bounded_with_time(path, limit)?.map(|(bytes, _)| bytes))
}

/// [`read_bounded`], with the file's modification time.
fn read_bounded_with_time(
    path: &Path,
    limit: usize,
) -> Result<Option<(Vec<u8>, std::time::SystemTime)>, Error> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // The path names a digest of the id, never the id.
    let name = || path.display().to_string();
    let metadata = file.metadata()?;
    let (len, modified) = (metadata.len(), metadata.modified()?);
    Record::check_stored_size(&name(), len, limit)?;
    // `len` is at most `limit`, a `usize`. One byte past the limit tells a file that grew
    // since its length was taken.
    let mut bytes = Vec::with_capacity(len as usize);
    file.take((limit as u64).saturating_add(1))
        .read_to_end(&mut bytes)?;
    Record::check_stored_size(&name(), bytes.len() as u64, limit)?;
    Ok(Some((bytes, modified)))
}

/// What a write that met its expectation replaces.
struct Replaced {
    /// The owner of the record replaced, if any.
    owner: Option<String>,
}

/// Whether the file at `path` is what `expected` says: `None` when it is not, else what is
/// there.
fn check(path: &Path, expected: Expected, limit: usize) -> Result<Option<Replaced>, Error> {
    let stored = match read_bounded(path, limit) {
        Ok(bytes) => bytes,
        // Over the limit: never loaded, so no version a load gave out names it, and it is
        // not absent either. Its owner's entry, if any, goes at the next sweep.
        Err(Error::Corrupt { .. }) => {
            return Ok((expected == Expected::Any).then_some(Replaced { owner: None }));
        }
        Err(e) => return Err(e),
    };
    if !expected.is_met_by(stored.as_deref().map(version_of)) {
        return Ok(None);
    }
    let owner = stored.as_deref().and_then(Record::owner_in);
    Ok(Some(Replaced { owner }))
}

/// Puts `bytes` at `path` through a temporary file, under the bucket lock.
fn write_file(path: &Path, bytes: &[u8], sync: bool) -> Result<(), Error> {
    let temp = path.with_file_name(format!("{TEMP_PREFIX}{}", crate::session::generate_id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp)?;
    let written = (|| {
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
        drop(file);
        replace(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    Ok(written?)
}

/// Puts the file at `temp` in place of `path` atomically: a reader finds the old record or
/// the new one, never neither. `temp` is gone afterwards.
fn replace(temp: &Path, path: &Path) -> io::Result<()> {
    // Exchange the two names, then drop the old record: a plain rename over an existing file
    // makes ext4 flush the new file's data before it returns (`auto_da_alloc`), which an
    // exchange and an unlink do not (BENCHMARKS.md has the figures).
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        use rustix::io::Errno;
        match renameat_with(CWD, temp, CWD, path, RenameFlags::EXCHANGE) {
            // `temp` now names the old record, with the old record's time: a concurrent
            // `remove_expired` may take it for a stale temporary file and remove it first.
            Ok(()) => return remove_file(temp),
            // Nothing to exchange with yet (a plain rename is cheap then), or a file system
            // or kernel without exchange.
            Err(Errno::NOENT | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    std::fs::rename(temp, path)
}

/// The record in the file at `path`; one over `limit` bytes is [`Error::Corrupt`], unread.
fn read_file(path: &Path, limit: usize) -> Result<Option<Versioned>, Error> {
    let Some((bytes, modified)) = read_bounded_with_time(path, limit)? else {
        return Ok(None);
    };
    // The path names a digest of the id, never the id.
    let mut record = Record::decode(&path.display().to_string(), &bytes)?;
    if let Some(renewed) = renewed_expiry(modified) {
        record.extend_to(renewed);
    }
    Ok(Some(Versioned {
        record,
        version: version_of(&bytes),
    }))
}

/// Removes the file at `path`; one that is gone already is not an error.
fn remove_file(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl SessionBackend for FsBackend {
    const NAME: &'static str = "fs";

    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
        let path = self.path(id.digest());
        let limit = self.max_record_size;
        blocking(move || read_file(&path, limit)).await
    }

    async fn store(
        &self,
        id: &SessionId,
        record: &Record,
        _ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        let (backend, handle) = (self.clone(), id.digest().to_owned());
        let (bytes, owner) = (record.encode(), record.owner.clone());
        blocking(move || backend.write(&handle, &bytes, owner.as_deref(), expected)).await
    }

    async fn delete(&self, id: &SessionId, expected: Expected) -> Result<bool, Error> {
        let (backend, handle) = (self.clone(), id.digest().to_owned());
        blocking(move || backend.delete(&handle, expected, None)).await
    }

    /// The file's modification time, set under the bucket lock: the bytes stay as they are.
    async fn renew(&self, id: &SessionId, renewal: Renewal<'_>) -> Result<bool, Error> {
        let (backend, handle) = (self.clone(), id.digest().to_owned());
        let (expires_at_ms, now_ms) = (renewal.expires_at_ms, renewal.now_ms);
        blocking(move || backend.renew(&handle, expires_at_ms, now_ms)).await
    }

    fn limit_record_size(&mut self, bytes: usize) {
        self.max_record_size = bytes;
    }
}

/// Deletes run under the bucket lock of the session they touch, as saves do; a listing reads
/// without it, as a load does.
impl OwnerIndexBackend for FsBackend {
    async fn records_of(&self, owner: &str) -> Result<Vec<(SessionHandle, Record)>, Error> {
        let (backend, owner) = (self.clone(), owner.to_owned());
        blocking(move || {
            let mut records = Vec::new();
            for handle in owners::handles_in(&owners::folder(&backend.dir, &owner))? {
                let path = backend.path(handle.as_str());
                // Unreadable ones are left out of a listing, as a load starts afresh.
                if let Ok(Some(stored)) = read_file(&path, backend.max_record_size)
                    && stored.record.owner.as_deref() == Some(owner.as_str())
                {
                    records.push((handle, stored.record));
                }
            }
            Ok(records)
        })
        .await
    }

    async fn delete_owned(&self, owner: &str, handle: &SessionHandle) -> Result<bool, Error> {
        let (backend, owner, handle) = (self.clone(), owner.to_owned(), handle.clone());
        blocking(move || backend.delete(handle.as_str(), Expected::Any, Some(&owner))).await
    }
}
