//! The owner index of [`FsStorage`](super::FsStorage): under `dir/owners/`, a folder per
//! owner named from the SHA-256 of the owner, holding an empty file per owned session
//! named by its handle.
//!
//! An entry is written under its session's bucket lock before the record and removed after
//! it, so a live owned session is never missing from its owner's folder; an entry left by a
//! write that failed halfway names no record of that owner, which listings skip and
//! [`remove_expired`](super::FsStorage::remove_expired) deletes.

use std::io;
use std::path::{Path, PathBuf};

use crate::SessionHandle;
use crate::storage::id_digest;

/// The folder of the index, beside the two-hex-digit buckets of the records.
pub(super) const OWNERS: &str = "owners";

/// The folder of `owner`'s entries: a digest, so that any owner is a short, safe name.
pub(super) fn folder(root: &Path, owner: &str) -> PathBuf {
    root.join(OWNERS).join(id_digest(owner))
}

/// Adds the session `handle` to `owner`'s entries.
pub(super) fn add(root: &Path, owner: &str, handle: &str) -> io::Result<()> {
    let folder = folder(root, owner);
    let entry = folder.join(handle);
    // The owner's last other session may go meanwhile and take the folder with it.
    let mut attempts = 3;
    loop {
        std::fs::create_dir_all(&folder)?;
        match std::fs::File::create(&entry) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts > 1 => attempts -= 1,
            created => return created.map(drop),
        }
    }
}

/// Removes the session `handle` from `owner`'s entries, and the owner's folder with its
/// last entry.
pub(super) fn remove(root: &Path, owner: &str, handle: &str) -> io::Result<()> {
    remove_entry(&folder(root, owner), handle)
}

/// Removes the entry `handle` from `folder`, and the folder if that was its last.
pub(super) fn remove_entry(folder: &Path, handle: &str) -> io::Result<()> {
    match std::fs::remove_file(folder.join(handle)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    match std::fs::remove_dir(folder) {
        Err(e)
            if !matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Err(e)
        }
        _ => Ok(()),
    }
}

/// The handles in `folder`; none when it does not exist.
pub(super) fn handles_in(folder: &Path) -> io::Result<Vec<SessionHandle>> {
    let entries = match std::fs::read_dir(folder) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        entries => entries?,
    };
    let mut handles = Vec::new();
    for entry in entries {
        if let Some(handle) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
            handles.push(handle);
        }
    }
    Ok(handles)
}
