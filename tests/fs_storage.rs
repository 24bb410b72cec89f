//! FsStorage: the shared scenario suite, plus the file layout and filesystem hazards.
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::scenarios::{request, server_storage_scenarios, storage_scenarios};
use session_layer::{Error, FsStorage, Session, SessionStorage};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// An FsStorage in a temporary directory that goes away with it.
struct TempFs {
    storage: FsStorage,
    dir: TempDir,
}

impl TempFs {
    fn new(configure: impl FnOnce(FsStorage) -> FsStorage) -> TempFs {
        let dir = tempfile::tempdir().unwrap();
        let storage = configure(FsStorage::new(dir.path().join("sessions")).unwrap());
        TempFs { storage, dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("sessions")
    }
}

impl SessionStorage for TempFs {
    async fn read(&self, value: Option<&str>) -> Result<Session, Error> {
        self.storage.read(value).await
    }

    async fn save(&self, session: &Session) -> Result<Option<String>, Error> {
        self.storage.save(session).await
    }
}

storage_scenarios! {
    plain: async { TempFs::new(|s| s) },
    ttl: |ttl: Duration| async move { TempFs::new(|s| s.ttl(ttl)) },
    max_lifetime: |limit: Duration| async move {
        TempFs::new(|s| s.ttl(Duration::from_secs(60)).max_lifetime(limit))
    },
}

server_storage_scenarios! {
    plain: async { TempFs::new(|s| s) },
    unknown_ids: async { TempFs::new(|s| s.use_unknown_ids(true)) },
}

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file under `root`, as paths relative to it.
fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                files.push(entry.path().strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    files.sort();
    files
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every file is `<2 hex>/<62 hex>`: no temporary or stray files.
fn assert_clean_layout(root: &Path) {
    for file in all_files(root) {
        let parts: Vec<_> = file
            .iter()
            .map(|p| p.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(parts.len(), 2, "unexpected file {file:?}");
        assert!(
            is_hex(&parts[0], 2) && is_hex(&parts[1], 62),
            "unexpected file {file:?}"
        );
    }
}

async fn save_new(storage: &impl SessionStorage, key: &str, value: &str) -> Session {
    let session = storage.read(None).await.unwrap();
    session.set(key, value).unwrap();
    storage.save(&session).await.unwrap().expect("saved");
    session
}

#[tokio::test]
async fn layout_is_sha256_of_the_id() {
    let fs = TempFs::new(|s| s);
    let session = save_new(&fs, "user", "mj").await;
    let hex = hex_sha256(&session.id());
    let expected = PathBuf::from(&hex[..2]).join(&hex[2..]);
    assert_eq!(all_files(&fs.root()), vec![expected.clone()]);
    let content = std::fs::read_to_string(fs.root().join(&expected)).unwrap();
    assert!(content.contains("mj"));
    assert!(
        !content.contains(&session.id()),
        "the id need not be stored in the file"
    );
    assert_eq!(fs.storage.dir(), fs.root());
}

#[cfg(unix)]
#[tokio::test]
async fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let fs = TempFs::new(|s| s);
    let session = save_new(&fs, "user", "mj").await;
    // Overwriting keeps the mode too.
    let loaded = fs.read(Some(&session.id())).await.unwrap();
    loaded.set("user", "other").unwrap();
    fs.save(&loaded).await.unwrap();
    for file in all_files(&fs.root()) {
        let mode = std::fs::metadata(fs.root().join(&file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file:?} has mode {:o}", mode & 0o777);
    }
}

#[test]
fn new_on_a_regular_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a dir").unwrap();
    let error = FsStorage::new(&file).unwrap_err();
    assert!(error.to_string().contains("is not a directory"), "{error}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"not a dir",
        "the file is untouched"
    );
}

#[test]
fn new_creates_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a").join("b").join("c");
    FsStorage::new(&nested).unwrap();
    assert!(nested.is_dir());
    // An existing directory is fine too.
    FsStorage::new(&nested).unwrap();
}

#[tokio::test]
async fn corrupt_file_is_an_error() {
    let fs = TempFs::new(|s| s);
    let session = save_new(&fs, "secret", "do-not-leak").await;
    let hex = hex_sha256(&session.id());
    let path = fs.root().join(&hex[..2]).join(&hex[2..]);
    std::fs::write(&path, b"{not json do-not-leak").unwrap();
    match fs.read(Some(&session.id())).await {
        Err(Error::Corrupt { record, reason }) => {
            assert!(!record.contains("do-not-leak") && !reason.contains("do-not-leak"));
        }
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn no_temp_files_left_after_writes() {
    let fs = TempFs::new(|s| s);
    let mut cookie = None;
    for i in 0..20 {
        let (_, next) = request(&fs, cookie.as_deref(), |s| {
            s.set("i", i).unwrap();
            if i % 5 == 0 {
                s.regenerate_id(true).unwrap();
            }
            if i % 7 == 0 {
                s.flash("f", i).unwrap();
            }
        })
        .await;
        cookie = next;
    }
    assert_clean_layout(&fs.root());
    assert_eq!(
        all_files(&fs.root()).len(),
        1,
        "one live session, old ids deleted"
    );
    let (_, after) = request(&fs, cookie.as_deref(), |s| s.destroy()).await;
    assert_eq!(after, None);
    assert!(all_files(&fs.root()).is_empty());
}

#[tokio::test]
async fn remove_expired_keeps_live_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let short = FsStorage::new(dir.path())
        .unwrap()
        .ttl(Duration::from_millis(300));
    let long = FsStorage::new(dir.path())
        .unwrap()
        .ttl(Duration::from_secs(3600));
    let forever = FsStorage::new(dir.path()).unwrap();
    let expired = save_new(&short, "k", "expired").await;
    let live = save_new(&long, "k", "live").await;
    let unlimited = save_new(&forever, "k", "unlimited").await;
    assert_eq!(all_files(dir.path()).len(), 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(long.remove_expired().await.unwrap(), 1);
    assert_eq!(all_files(dir.path()).len(), 2);
    let hex = hex_sha256(&expired.id());
    assert!(!dir.path().join(&hex[..2]).join(&hex[2..]).exists());
    let live_again = long.read(Some(&live.id())).await.unwrap();
    assert_eq!(live_again.get::<String>("k").as_deref(), Some("live"));
    let unlimited_again = long.read(Some(&unlimited.id())).await.unwrap();
    assert_eq!(
        unlimited_again.get::<String>("k").as_deref(),
        Some("unlimited")
    );
    assert_eq!(long.remove_expired().await.unwrap(), 0);
}

#[tokio::test]
async fn expired_file_is_not_returned() {
    let fs = TempFs::new(|s| s.ttl(Duration::from_millis(300)));
    let session = save_new(&fs, "k", "v").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = fs.read(Some(&session.id())).await.unwrap();
    assert!(again.is_empty());
    assert_ne!(again.id(), session.id());
}

#[tokio::test]
async fn path_like_ids_never_become_paths() {
    let fs = TempFs::new(|s| s.use_unknown_ids(true));
    for id in [
        "../../etc/passwd",
        "../escape",
        "/abs/path",
        "a/b",
        "..",
        "x\0y",
    ] {
        let session = fs.read(Some(id)).await.unwrap();
        assert_eq!(session.id(), id);
        session.set("k", id).unwrap();
        assert_eq!(fs.save(&session).await.unwrap().as_deref(), Some(id));
        let loaded = fs.read(Some(id)).await.unwrap();
        assert_eq!(loaded.get::<String>("k").as_deref(), Some(id));
    }
    assert_clean_layout(&fs.root());
    assert_eq!(all_files(&fs.root()).len(), 6);
    // Nothing was written next to the storage directory.
    let siblings: Vec<_> = std::fs::read_dir(fs.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings, vec![std::ffi::OsString::from("sessions")]);
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let session = save_new(&FsStorage::new(dir.path()).unwrap(), "user", "mj").await;
    let reopened = FsStorage::new(dir.path()).unwrap();
    let loaded = reopened.read(Some(&session.id())).await.unwrap();
    assert_eq!(loaded.get::<String>("user").as_deref(), Some("mj"));
}

#[tokio::test]
async fn sync_writes_still_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path()).unwrap().sync_writes(true);
    let session = save_new(&storage, "user", "mj").await;
    let loaded = storage.read(Some(&session.id())).await.unwrap();
    assert_eq!(loaded.get::<String>("user").as_deref(), Some("mj"));
}

/// Set in the child process of `processes_sharing_a_directory_merge_their_updates`: the
/// directory and the session id it works on.
const CHILD_DIR: &str = "SESSION_LAYER_TEST_FS_CHILD_DIR";
const CHILD_ID: &str = "SESSION_LAYER_TEST_FS_CHILD_ID";
/// Per process: tasks at once, each adding one to the counter this many times.
const TASKS: u64 = 8;
const BUMPS: u64 = 40;

/// `TASKS` tasks of this process, each bumping the session's counter `BUMPS` times through
/// `Session::update`, every bump a read and a save of its own.
async fn bump_concurrently(storage: &FsStorage, id: &str) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (storage, id) = (storage.clone(), id.to_owned());
        tasks.spawn(async move {
            for _ in 0..BUMPS {
                let session = storage.read(Some(&id)).await.unwrap();
                assert_eq!(session.id(), id, "the session is there");
                session
                    .update("n", |n: Option<u64>| n.unwrap_or(0) + 1)
                    .unwrap();
                assert_eq!(storage.save(&session).await.unwrap().as_deref(), Some(&*id));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("no panic");
    }
}

/// Two processes that share one directory never lose each other's updates: the test runs
/// its own binary again as a second process on the same directory and session, and both
/// bump the counter at once. (In the child, the same test only does its half.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_sharing_a_directory_merge_their_updates() {
    if let (Ok(dir), Ok(id)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_ID)) {
        let storage = FsStorage::new(&dir).unwrap();
        std::fs::write(Path::new(&dir).join("child-started"), b"").unwrap();
        bump_concurrently(&storage, &id).await;
        return;
    }
    let fs = TempFs::new(|s| s);
    let (session, _) = request(&fs.storage, None, |s| s.set("n", 0).unwrap()).await;
    let id = session.id();
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "processes_sharing_a_directory_merge_their_updates",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, fs.root())
        .env(CHILD_ID, &id)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the test binary runs again");
    // Start together: the child's bumps must overlap ours.
    let started = fs.root().join("child-started");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the child never started"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bump_concurrently(&fs.storage, &id).await;
    let status = child.wait().await.unwrap();
    assert!(status.success(), "the child process failed: {status}");
    let stored = fs.storage.read(Some(&id)).await.unwrap();
    assert_eq!(
        stored.get::<u64>("n"),
        Some(2 * TASKS * BUMPS),
        "updates were lost between the processes"
    );
}

// ---- record size limits ----

/// The file that holds `id`'s session.
fn session_file(fs: &TempFs, id: &str) -> PathBuf {
    let hex = hex_sha256(id);
    fs.root().join(&hex[..2]).join(&hex[2..])
}

/// A valid record of exactly `size` bytes: its JSON padded with spaces, which JSON allows,
/// so that only its size can make a load refuse it.
fn padded_record(size: usize) -> Vec<u8> {
    let mut bytes = br#"{"d":{"values":{"planted":true},"flash":{}},"c":1}"#.to_vec();
    assert!(bytes.len() <= size);
    bytes.resize(size, b' ');
    bytes
}

#[tokio::test]
async fn a_stored_file_over_the_limit_is_refused_as_corrupt() {
    let fs = TempFs::new(|s| s.max_record_size(1024));
    let session = save_new(&fs, "user", "mj").await;
    let path = session_file(&fs, &session.id());

    std::fs::write(&path, padded_record(1024)).unwrap();
    let loaded = fs.read(Some(&session.id())).await.unwrap();
    assert_eq!(loaded.get::<bool>("planted"), Some(true), "1024 bytes fit");

    std::fs::write(&path, padded_record(1025)).unwrap();
    match fs.read(Some(&session.id())).await {
        Err(Error::Corrupt { record, reason }) => {
            assert!(reason.contains("1025 bytes"), "{reason}");
            assert!(reason.contains("1024-byte"), "{reason}");
            assert!(!record.contains(&session.id()), "{record}");
        }
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
    // A fresh session (what the layer starts on Corrupt) is saved under a new id; the
    // oversize file is left as it is.
    let fresh = save_new(&fs, "user", "kj").await;
    assert_ne!(fresh.id(), session.id());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 1025);
    // A sweep neither reads it whole nor removes it.
    assert_eq!(fs.storage.remove_expired().await.unwrap(), 0);
    assert!(path.exists());
}

#[tokio::test]
async fn the_default_limit_is_one_mib_both_ways() {
    let fs = TempFs::new(|s| s);
    let session = save_new(&fs, "user", "mj").await;
    let path = session_file(&fs, &session.id());
    std::fs::write(&path, padded_record(1 << 20)).unwrap();
    let loaded = fs.read(Some(&session.id())).await.unwrap();
    assert_eq!(loaded.get::<bool>("planted"), Some(true));
    std::fs::write(&path, padded_record((1 << 20) + 1)).unwrap();
    let read = fs.read(Some(&session.id())).await;
    assert!(matches!(read, Err(Error::Corrupt { .. })), "{read:?}");

    let big = fs.read(None).await.unwrap();
    big.set("big", "x".repeat(1 << 20)).unwrap();
    match fs.save(&big).await {
        Err(Error::RecordTooLarge { size, limit }) => {
            assert_eq!(limit, 1 << 20);
            assert!(size > 1 << 20, "{size}");
        }
        other => panic!("expected Error::RecordTooLarge, got {other:?}"),
    }
    assert_eq!(all_files(&fs.root()).len(), 1, "nothing written");
}

#[tokio::test]
async fn a_save_over_max_record_size_fails_and_writes_nothing() {
    let fs = TempFs::new(|s| s.max_record_size(1024));
    let session = save_new(&fs, "user", "mj").await;
    let before = std::fs::read(session_file(&fs, &session.id())).unwrap();
    let loaded = fs.read(Some(&session.id())).await.unwrap();
    loaded.set("big", "x".repeat(1024)).unwrap();
    let saved = fs.save(&loaded).await;
    assert!(
        matches!(saved, Err(Error::RecordTooLarge { limit: 1024, .. })),
        "{saved:?}"
    );
    assert_eq!(
        std::fs::read(session_file(&fs, &session.id())).unwrap(),
        before
    );
}

/// A file that keeps growing while it is read (here a pipe, whose length reads as 0) is
/// read only up to the limit, not to its end.
#[cfg(unix)]
#[tokio::test]
async fn a_file_growing_while_read_is_read_only_up_to_the_limit() {
    use std::io::Write as _;
    let fs = TempFs::new(|s| s.max_record_size(1024));
    let session = save_new(&fs, "user", "mj").await;
    let path = session_file(&fs, &session.id());
    std::fs::remove_file(&path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    // Writes a valid record padded to 64 MiB, or until the reader goes away.
    let writer = std::thread::spawn({
        let path = path.clone();
        move || {
            let mut pipe = std::fs::OpenOptions::new().write(true).open(path)?;
            pipe.write_all(br#"{"d":{"values":{},"flash":{}},"c":1}"#)?;
            let spaces = vec![b' '; 64 * 1024];
            for _ in 0..1024 {
                pipe.write_all(&spaces)?;
            }
            Ok::<_, std::io::Error>(())
        }
    });
    let read = tokio::time::timeout(Duration::from_secs(10), fs.read(Some(&session.id())))
        .await
        .expect("the read stops at the limit");
    match read {
        Err(Error::Corrupt { reason, .. }) => assert!(reason.contains("1025 bytes"), "{reason}"),
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
    let written = writer.join().unwrap();
    assert!(written.is_err(), "the reader stopped before the end");
}

// ---- durations that do not fit ----

#[tokio::test]
async fn duration_max_ttl_and_lifetime_keep_the_session() {
    for (label, fs) in [
        ("ttl", TempFs::new(|s| s.ttl(Duration::MAX))),
        (
            "max_lifetime",
            TempFs::new(|s| s.max_lifetime(Duration::MAX)),
        ),
        (
            "both",
            TempFs::new(|s| s.ttl(Duration::MAX).max_lifetime(Duration::MAX)),
        ),
    ] {
        let (_, cookie) = request(&fs, None, |s| s.set("user", "mj").unwrap()).await;
        let (session, cookie) = request(&fs, cookie.as_deref(), |s| {
            assert_eq!(s.get::<String>("user").as_deref(), Some("mj"), "{label}");
            s.set("n", 1).unwrap();
        })
        .await;
        assert_eq!(cookie.as_deref(), Some(&*session.id()), "{label}");
        assert_eq!(fs.storage.remove_expired().await.unwrap(), 0, "{label}");
        let (again, _) = request(&fs, cookie.as_deref(), |_| {}).await;
        assert_eq!(again.get::<u32>("n"), Some(1), "{label}");
    }
}

/// Through the layer: a request whose session file went over the limit gets a fresh
/// session and a new cookie, not a 500.
#[cfg(feature = "axum")]
#[tokio::test]
async fn through_the_layer_an_oversize_file_starts_a_fresh_session() {
    use common::app::{app, send};
    use http::StatusCode;
    let fs = TempFs::new(|s| s.max_record_size(1024));
    let app = app(fs.storage.clone());
    let (_, cookie, _) = send(&app, None, "/").await;
    let cookie = cookie.expect("a session cookie");
    let (_, _, body) = send(&app, Some(&cookie), "/").await;
    assert_eq!(body, "2");
    let files = all_files(&fs.root());
    assert_eq!(files.len(), 1);
    std::fs::write(fs.root().join(&files[0]), padded_record(1025)).unwrap();
    let (status, fresh, body) = send(&app, Some(&cookie), "/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
    assert_ne!(fresh.as_deref(), Some(&*cookie), "a new cookie");
}

/// An owned session has an empty entry at `owners/<sha256 of owner>/<sha256 of id>`, which
/// moves with a new id or owner and goes with the session.
#[tokio::test]
async fn the_owner_index_is_a_folder_of_handles_per_owner() {
    let fs = TempFs::new(|s| s);
    let session = fs.storage.read(None).await.unwrap();
    session.set_owner("ann").unwrap();
    let id = fs.storage.save(&session).await.unwrap().unwrap();
    let entry = |owner: &str, id: &str| {
        PathBuf::from("owners")
            .join(hex_sha256(owner))
            .join(hex_sha256(id))
    };
    let record = |id: &str| {
        let hex = hex_sha256(id);
        PathBuf::from(&hex[..2]).join(&hex[2..])
    };
    assert_eq!(
        all_files(&fs.root()),
        sorted([record(&id), entry("ann", &id)])
    );
    assert!(
        std::fs::read(fs.root().join(entry("ann", &id)))
            .unwrap()
            .is_empty()
    );

    let session = fs.storage.read(Some(&id)).await.unwrap();
    session.regenerate_id(true).unwrap();
    session.set_owner("bob").unwrap();
    let moved = fs.storage.save(&session).await.unwrap().unwrap();
    assert_eq!(
        all_files(&fs.root()),
        sorted([record(&moved), entry("bob", &moved)])
    );
    assert!(!fs.root().join("owners").join(hex_sha256("ann")).exists());

    session.destroy();
    fs.storage.save(&session).await.unwrap();
    assert_eq!(all_files(&fs.root()), Vec::<PathBuf>::new());
    assert!(!fs.root().join("owners").join(hex_sha256("bob")).exists());
}

fn sorted<const N: usize>(paths: [PathBuf; N]) -> Vec<PathBuf> {
    let mut paths = paths.to_vec();
    paths.sort();
    paths
}

/// Entries a write left behind when it failed between its entry and its record (one that
/// names no record, one that names another owner's) are not listed, and the sweep removes
/// them with their folder; a live entry stays.
#[tokio::test]
async fn the_sweep_removes_owner_entries_that_name_no_record_of_their_owner() {
    use session_layer::SessionIndex;
    let fs = TempFs::new(|s| s);
    let ann = fs.storage.read(None).await.unwrap();
    ann.set_owner("ann").unwrap();
    let ann_id = fs.storage.save(&ann).await.unwrap().unwrap();
    let bob = fs.storage.read(None).await.unwrap();
    bob.set_owner("bob").unwrap();
    let bob_id = fs.storage.save(&bob).await.unwrap().unwrap();
    let ann_folder = fs.root().join("owners").join(hex_sha256("ann"));
    let no_record = hex_sha256("an id that was never stored");
    std::fs::write(ann_folder.join(&no_record), b"").unwrap();
    std::fs::write(ann_folder.join(hex_sha256(&bob_id)), b"").unwrap();
    let stale_folder = fs.root().join("owners").join(hex_sha256("carol"));
    std::fs::create_dir_all(&stale_folder).unwrap();
    std::fs::write(stale_folder.join(hex_sha256(&ann_id)), b"").unwrap();

    let listed = fs.storage.sessions_of("ann").await.unwrap();
    assert_eq!(listed.len(), 1, "only Ann's own session");
    assert!(fs.storage.sessions_of("carol").await.unwrap().is_empty());
    assert_eq!(fs.storage.remove_expired().await.unwrap(), 0);
    let entries = |folder: &Path| std::fs::read_dir(folder).map(|d| d.count()).unwrap_or(0);
    assert_eq!(entries(&ann_folder), 1);
    assert!(!stale_folder.exists());
    assert_eq!(fs.storage.sessions_of("ann").await.unwrap().len(), 1);
    assert_eq!(fs.storage.sessions_of("bob").await.unwrap().len(), 1);
}
