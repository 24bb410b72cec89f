//! [`FsStorage::remove_expired`](super::FsStorage::remove_expired): what the directory
//! keeps that nothing deletes on its own.

use std::io;

use super::{
    FsBackend, Record, STALE_TEMP_AGE, TEMP_PREFIX, owners, read_bounded, read_file, remove_file,
    with_bucket_lock,
};
use crate::Error;
use crate::storage::unix_now_ms;

impl FsBackend {
    /// [`FsStorage::remove_expired`](super::FsStorage::remove_expired): expired records, stale temporary files, then owner
    /// index entries that name no record of their owner.
    pub(super) fn remove_expired(&self) -> Result<usize, Error> {
        let now = unix_now_ms();
        let mut removed = 0;
        for bucket in std::fs::read_dir(&*self.dir)? {
            let bucket = bucket?;
            let name = bucket.file_name();
            let Some(prefix) = name.to_str().filter(|n| is_bucket_name(n)) else {
                continue;
            };
            if !bucket.file_type()?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(bucket.path())? {
                let entry = entry?;
                let file_name = entry.file_name();
                let file_name = file_name.to_string_lossy();
                let gone = if file_name.starts_with(TEMP_PREFIX) {
                    // A write in progress renames its temporary file away at any moment.
                    let modified = match entry.metadata().and_then(|m| m.modified()) {
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        modified => modified?,
                    };
                    let stale = modified.elapsed().unwrap_or_default() > STALE_TEMP_AGE;
                    stale && remove_file(&entry.path()).map(|()| true)?
                } else {
                    match read_file(&entry.path(), self.max_record_size) {
                        // Only if still this version: a save may have renewed it meanwhile.
                        Ok(Some(stored)) if !stored.record.is_live(now, None) => {
                            let handle = format!("{prefix}{file_name}");
                            self.delete_expired(&handle, stored.version, now)?
                        }
                        // Live, gone, or corrupt or over the size limit (reported on read;
                        // left for inspection).
                        _ => false,
                    }
                };
                removed += usize::from(gone);
            }
        }
        self.remove_stale_owner_entries()?;
        Ok(removed)
    }

    /// Removes the owner index entries whose session is gone or has another owner: what a
    /// write that failed between the entry and the record left.
    fn remove_stale_owner_entries(&self) -> Result<(), Error> {
        let index = self.dir.join(owners::OWNERS);
        let folders = match std::fs::read_dir(&index) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            folders => folders?,
        };
        for folder in folders {
            let folder = folder?.path();
            for handle in owners::handles_in(&folder)? {
                let path = self.path(handle.as_str());
                // Under the lock, as a write adds its entry before its record.
                with_bucket_lock(&path, || {
                    let owner = match read_bounded(&path, self.max_record_size) {
                        Ok(bytes) => bytes.as_deref().and_then(Record::owner_in),
                        // Left for inspection, with its entry.
                        Err(Error::Corrupt { .. }) => return Ok(()),
                        Err(e) => return Err(e),
                    };
                    if owner.is_none_or(|owner| owners::folder(&self.dir, &owner) != folder) {
                        owners::remove_entry(&folder, handle.as_str())?;
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }
}

/// Whether `name` is a bucket's: the first two hex digits of the digests in it.
fn is_bucket_name(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit())
}
