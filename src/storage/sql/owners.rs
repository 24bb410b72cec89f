//! [`OwnerIndexBackend`] for the SQL storages: the index is the `owner` column of each
//! session's own row, indexed.
//!
//! The statement that writes a row writes its owner, and the one that deletes it (a
//! destroy, a move's delete, `remove_expired`) takes its index entry along: the index can
//! never be stale nor miss a session, and once an owner's last row is deleted nothing of
//! the owner is left.

use sha2::{Digest, Sha256};

use super::backend::{SqlBackend, column_ms, is_conflict, map_error};
use super::dialect::{DeleteOwned, Dialect, Statements};
use super::driver::Param;
use crate::storage::index::delete_all_owned_in_rounds;
use crate::storage::{OwnerIndexBackend, Record, unix_now_ms};
use crate::{Error, SessionHandle};

/// The longest owner the SQL storages store, in bytes (of UTF-8): what a MySQL
/// `VARBINARY` indexes whole in any row format, and the same on every database so that an
/// application moves between them unchanged.
pub(super) const MAX_OWNER_LEN: usize = 255;

/// Refuses a record whose owner the `owner` column cannot hold as it is, rather than
/// have the database cut it or fail with a message about bytes.
pub(super) fn check_owner(record: &Record) -> Result<(), Error> {
    match record.owner.as_deref() {
        Some(owner) if owner.len() > MAX_OWNER_LEN => Err(Error::Config(format!(
            "a session owner of {} bytes is longer than the {MAX_OWNER_LEN} bytes the SQL \
             storages store",
            owner.len()
        ))),
        Some(owner) if owner.contains('\0') => Err(Error::Config(
            "a session owner with a NUL character cannot be stored by the SQL storages \
             (PostgreSQL text has none)"
                .to_owned(),
        )),
        _ => Ok(()),
    }
}

/// Whether `owner` can be in the column at all: one that cannot owns no row, and is not
/// sent (PostgreSQL would refuse a NUL in a parameter).
fn storable(owner: &str) -> bool {
    owner.len() <= MAX_OWNER_LEN && !owner.contains('\0')
}

impl<D: Dialect> OwnerIndexBackend for SqlBackend<D> {
    /// One query over the owner index, unexpired rows only.
    async fn records_of(&self, owner: &str) -> Result<Vec<(SessionHandle, Record)>, Error> {
        let sql = self.sql()?;
        if !storable(owner) {
            return Ok(Vec::new());
        }
        let now = column_ms(unix_now_ms());
        let params = [
            Param::Int(self.record_size_limit()),
            Param::Text(owner),
            Param::Int(now),
        ];
        let mut connection = self.connection().await?;
        let rows = D::fetch_all(&mut connection, &sql.records_of, &params)
            .await
            .map_err(map_error)?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(listed) = self.listed(row)? {
                records.push(listed);
            }
        }
        Ok(records)
    }

    async fn delete_owned(&self, owner: &str, handle: &SessionHandle) -> Result<bool, Error> {
        let sql = self.sql()?;
        if !storable(owner) {
            return Ok(false);
        }
        let params = [Param::Text(handle.as_str()), Param::Text(owner)];
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.execute(&sql.delete_owned, &params).await {
                Err(error) if is_conflict(&error) && attempts < MAX_ATTEMPTS => continue,
                deleted => return Ok(deleted? == 1),
            }
        }
    }

    /// One `DELETE` of the owner's rows but the spared ones (two on MySQL), after the
    /// owner's lock where the database needs it.
    async fn delete_all_owned(&self, owner: &str, except: &[SessionHandle]) -> Result<u64, Error> {
        let sql = self.sql()?;
        if !storable(owner) {
            return Ok(0);
        }
        // The statement spares two ids, what the lifecycle passes (the current id and the
        // one the session was loaded under); no id is empty.
        let spared = match except {
            [] => ["", ""],
            [one] => [one.as_str(); 2],
            [first, second] => [first.as_str(), second.as_str()],
            _ => return delete_all_owned_in_rounds(self, owner, except).await,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.end_owned(sql, owner, spared).await {
                Err(error) if is_conflict(&error) && attempts < MAX_ATTEMPTS => continue,
                ended => return ended,
            }
        }
    }
}

/// How many times an end of one or all of an owner's sessions runs when the database picks
/// it as a deadlock's victim: the move it ran into commits or fails meanwhile.
const MAX_ATTEMPTS: u32 = 8;

impl<D: Dialect> SqlBackend<D> {
    /// One attempt of [`delete_all_owned`](OwnerIndexBackend::delete_all_owned).
    async fn end_owned(
        &self,
        sql: &Statements,
        owner: &str,
        spared: [&str; 2],
    ) -> Result<u64, Error> {
        let Some(lock) = &sql.owner_lock else {
            let mut connection = self.connection().await?;
            return delete_owned_except::<D>(
                &mut connection,
                &sql.delete_owned_except,
                owner,
                spared,
            )
            .await;
        };
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        let key = [Param::Int(self.owner_lock_key(owner))];
        D::execute(&mut tx, &lock.exclusive, &key)
            .await
            .map_err(map_error)?;
        let ended =
            delete_owned_except::<D>(&mut tx, &sql.delete_owned_except, owner, spared).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(ended)
    }
}

/// Deletes every row of `owner` but the `spared` ids, and returns how many of them were
/// live, as an end counts them.
async fn delete_owned_except<D: Dialect>(
    connection: &mut D::Connection,
    sql: &DeleteOwned,
    owner: &str,
    spared: [&str; 2],
) -> Result<u64, Error> {
    let now = column_ms(unix_now_ms());
    let params = [
        Param::Text(owner),
        Param::Text(spared[0]),
        Param::Text(spared[1]),
        Param::Int(now),
    ];
    match sql {
        DeleteOwned::Returning(sql) => {
            let rows = D::fetch_all(connection, sql, &params[..3])
                .await
                .map_err(map_error)?;
            let mut live = 0;
            for row in &rows {
                let expires_at = D::nullable_int(row, 0).map_err(map_error)?;
                if expires_at.is_none_or(|at| at > now) {
                    live += 1;
                }
            }
            Ok(live)
        }
        DeleteOwned::ExpiredFirst { expired, rest } => {
            D::execute(connection, expired, &params)
                .await
                .map_err(map_error)?;
            let done = D::execute(connection, rest, &params[..3])
                .await
                .map_err(map_error)?;
            Ok(D::rows_affected(&done))
        }
    }
}

impl<D: Dialect> SqlBackend<D> {
    /// The key of `owner`'s lock on this table
    /// ([`OwnerLock`](super::dialect::OwnerLock)): a hash, since the database's locks
    /// are named by a number; a collision only makes one wait for the other.
    pub(super) fn owner_lock_key(&self, owner: &str) -> i64 {
        let digest = Sha256::new()
            .chain_update(self.table().to_ascii_lowercase())
            .chain_update([0])
            .chain_update(owner)
            .finalize();
        let mut key = [0; 8];
        key.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(key)
    }

    /// A row of `records_of` as a listed record, or `None` for one the lifecycle would not
    /// load either: over the record size limit, undecodable, or not under a session's key.
    fn listed(&self, row: &D::Row) -> Result<Option<(SessionHandle, Record)>, Error> {
        let id = D::text(row, 0).map_err(map_error)?;
        let Ok(handle) = id.parse::<SessionHandle>() else {
            return Ok(None);
        };
        let Some(data) = D::nullable_bytes(row, 1).map_err(map_error)? else {
            return Ok(None);
        };
        let Ok(mut record) = Record::decode(&self.name(), &data) else {
            return Ok(None);
        };
        if let Some(expires_at) = D::nullable_int(row, 2).map_err(map_error)? {
            record.extend_to(u64::try_from(expires_at).unwrap_or(0));
        }
        Ok(Some((handle, record)))
    }
}
