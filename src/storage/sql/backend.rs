//! [`SqlBackend`]: the session table, on any database with a [`Dialect`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Pool;
use sqlx::pool::PoolConnection;

use super::dialect::{Dialect, Statements};
use super::driver::Param;
use super::owners::check_owner;
use super::table_name::check_table;
use crate::Error;
use crate::storage::{
    Expected, Moved, Record, Renewal, SessionBackend, SessionId, Versioned, unix_now_ms,
};

/// The [`SessionBackend`] behind the SQL storages: a sqlx pool of the database `D` and a
/// table. Clones share the pool.
pub struct SqlBackend<D: Dialect> {
    pool: Pool<D>,
    table: String,
    /// The SQL for `table`, or why `table` was refused, which every call then says.
    sql: Arc<Result<Statements, String>>,
    /// In the signed type the load statement binds it as.
    max_record_size: i64,
}

impl<D: Dialect> Clone for SqlBackend<D> {
    fn clone(&self) -> Self {
        SqlBackend {
            pool: self.pool.clone(),
            table: self.table.clone(),
            sql: Arc::clone(&self.sql),
            max_record_size: self.max_record_size,
        }
    }
}

impl<D: Dialect> fmt::Debug for SqlBackend<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlBackend")
            .field("database", &D::NAME)
            .field("table", &self.table)
            .field("max_record_size", &self.max_record_size)
            .finish_non_exhaustive()
    }
}

impl<D: Dialect> SqlBackend<D> {
    /// A backend over `pool` in `table`.
    pub(super) fn new(pool: Pool<D>, table: &str) -> Self {
        SqlBackend {
            pool,
            table: table.to_owned(),
            sql: Arc::new(checked_statements::<D>(table)),
            max_record_size: i64::MAX,
        }
    }

    /// Moves to `table`; a name that [`check_table`] refuses makes every later call fail.
    pub(super) fn set_table(&mut self, table: &str) {
        self.table = table.to_owned();
        self.sql = Arc::new(checked_statements::<D>(table));
    }

    /// The pool the storage uses.
    pub fn pool(&self) -> &Pool<D> {
        &self.pool
    }

    /// The table the sessions are in.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The record size limit, in the signed type the statements bind it as.
    pub(super) fn record_size_limit(&self) -> i64 {
        self.max_record_size
    }

    /// Deletes the expired rows and returns how many.
    pub(super) async fn remove_expired(&self) -> Result<u64, Error> {
        let now = Param::Int(column_ms(unix_now_ms()));
        self.execute(&self.sql()?.remove_expired, &[now]).await
    }

    /// The statements for the table, unless its name was refused.
    pub(super) fn sql(&self) -> Result<&Statements, Error> {
        self.sql
            .as_ref()
            .as_ref()
            .map_err(|why| Error::Config(why.clone()))
    }

    /// What errors call a row: the table, never the id.
    pub(super) fn name(&self) -> String {
        format!("a row of {}", self.table)
    }

    /// A connection of the pool, for one statement.
    pub(super) async fn connection(&self) -> Result<PoolConnection<D>, Error> {
        self.pool.acquire().await.map_err(map_error)
    }

    /// Runs `sql` on a connection of the pool and returns how many rows it wrote.
    pub(super) async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, Error> {
        let mut connection = self.connection().await?;
        let done = D::execute(&mut connection, sql, params)
            .await
            .map_err(map_error)?;
        Ok(D::rows_affected(&done))
    }

    /// Runs `sql` on a connection of the pool and returns its first row, if any.
    pub(super) async fn fetch_optional(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<D::Row>, Error> {
        let mut connection = self.connection().await?;
        D::fetch_optional(&mut connection, sql, params)
            .await
            .map_err(map_error)
    }

    /// Inserts a row for `key` unless one exists, and returns whether it did.
    async fn insert(
        connection: &mut D::Connection,
        sql: &Statements,
        key: &str,
        record: &Record,
    ) -> Result<bool, Error> {
        let data = record.encode();
        let params = [
            Param::Text(key),
            Param::Bytes(&data),
            Param::Int(new_version()),
            Param::NullableInt(expires_at(record)),
            Param::NullableText(record.owner.as_deref()),
        ];
        match D::execute(connection, &sql.insert, &params).await {
            Ok(done) => Ok(D::rows_affected(&done) == 1),
            // MySQL has no insert that skips only a taken id, so it says so with an error.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(map_error(e)),
        }
    }

    /// Whether the row of `from_key` still holds version `expected`, deleting it with
    /// `delete`, in the transaction of `connection`.
    async fn source_unchanged(
        connection: &mut D::Connection,
        sql: &Statements,
        from_key: &str,
        expected: u64,
        delete: bool,
    ) -> Result<bool, Error> {
        if delete {
            let params = [Param::Text(from_key), Param::Int(expected as i64)];
            let done = D::execute(connection, &sql.delete_version, &params)
                .await
                .map_err(map_error)?;
            return Ok(D::rows_affected(&done) == 1);
        }
        // Locked: a write to the row between this check and the commit would be missing
        // from the new one.
        let params = [Param::Text(from_key)];
        let row = D::fetch_optional(connection, &sql.version_locked, &params)
            .await
            .map_err(map_error)?;
        match row {
            Some(row) => Ok(D::int(&row, 0).map_err(map_error)? as u64 == expected),
            None => Ok(false),
        }
    }
}

impl<D: Dialect> SessionBackend for SqlBackend<D> {
    const NAME: &'static str = D::SYSTEM_NAME;

    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
        let sql = self.sql()?;
        let key = id.digest();
        // The length always, the data only when it fits the limit, so that an oversize row
        // is refused without being transferred.
        let params = [Param::Int(self.max_record_size), Param::Text(key)];
        let Some(row) = self.fetch_optional(&sql.load, &params).await? else {
            return Ok(None);
        };
        let version = D::int(&row, 0).map_err(map_error)?;
        let length = D::int(&row, 1).map_err(map_error)?;
        let limit = usize::try_from(self.max_record_size).unwrap_or(usize::MAX);
        Record::check_stored_size(&self.name(), u64::try_from(length).unwrap_or(0), limit)?;
        let data = D::nullable_bytes(&row, 2).map_err(map_error)?;
        let mut record = Record::decode(&self.name(), data.as_deref().unwrap_or(b""))?;
        if let Some(expires_at) = D::nullable_int(&row, 3).map_err(map_error)? {
            record.extend_to(u64::try_from(expires_at).unwrap_or(0));
        }
        // BIGINT is signed: the cast keeps the bits.
        Ok(Some(Versioned {
            record,
            version: version as u64,
        }))
    }

    async fn store(
        &self,
        id: &SessionId,
        record: &Record,
        _ttl: Option<Duration>, // the same instant is in the record
        expected: Expected,
    ) -> Result<bool, Error> {
        let sql = self.sql()?;
        check_owner(record)?;
        let key = id.digest();
        match expected {
            Expected::Absent => {
                let mut connection = self.connection().await?;
                match Self::insert(&mut connection, sql, key, record).await {
                    // A deadlock's victim wrote nothing: as for a taken id, the lifecycle
                    // tries again.
                    Err(error) if is_conflict(&error) => Ok(false),
                    inserted => inserted,
                }
            }
            Expected::Version(old) => {
                let data = record.encode();
                let params = [
                    Param::Bytes(&data),
                    Param::Int(new_version()),
                    Param::NullableInt(expires_at(record)),
                    Param::NullableText(record.owner.as_deref()),
                    Param::Text(key),
                    Param::Int(old as i64),
                ];
                // The new version always differs, so a matched row is a changed row; a
                // deadlock's victim wrote nothing, and the lifecycle merges and retries.
                match self.execute(&sql.update, &params).await {
                    Err(error) if is_conflict(&error) => Ok(false),
                    updated => Ok(updated? == 1),
                }
            }
            Expected::Any => {
                let data = record.encode();
                let params = [
                    Param::Text(key),
                    Param::Bytes(&data),
                    Param::Int(new_version()),
                    Param::NullableInt(expires_at(record)),
                    Param::NullableText(record.owner.as_deref()),
                ];
                // MySQL counts an upsert that updated as 2 rows: any success wrote.
                self.execute(&sql.upsert, &params).await?;
                Ok(true)
            }
        }
    }

    /// One `UPDATE` of the `expires_at` column of a live row, which leaves the data and the
    /// version alone; when it matches nothing, a read tells a gone row from one whose expiry
    /// is already later (a concurrent save; MySQL also counts an unchanged row as none).
    async fn renew(&self, id: &SessionId, renewal: Renewal<'_>) -> Result<bool, Error> {
        let sql = self.sql()?;
        let now = Param::Int(column_ms(renewal.now_ms));
        if let Some(expires_at) = renewal.expires_at_ms {
            let expires_at = column_ms(expires_at);
            let params = [
                Param::Int(expires_at),
                Param::Text(id.digest()),
                now,
                Param::Int(expires_at),
            ];
            if self.execute(&sql.renew, &params).await? == 1 {
                return Ok(true);
            }
        }
        let params = [Param::Text(id.digest()), now];
        Ok(self.fetch_optional(&sql.live, &params).await?.is_some())
    }

    async fn delete(&self, id: &SessionId, expected: Expected) -> Result<bool, Error> {
        let sql = self.sql()?;
        let key = Param::Text(id.digest());
        match expected {
            Expected::Version(version) => {
                let params = [key, Param::Int(version as i64)];
                Ok(self.execute(&sql.delete_version, &params).await? == 1)
            }
            Expected::Any => {
                self.execute(&sql.delete_any, &[key]).await?;
                Ok(true)
            }
            Expected::Absent => Ok(self.fetch_optional(&sql.version, &[key]).await?.is_none()),
        }
    }

    async fn store_moved(
        &self,
        from: &SessionId,
        expected: u64,
        delete_from: bool,
        to: &SessionId,
        record: &Record,
        _ttl: Option<Duration>,
    ) -> Result<Moved, Error> {
        // Before the transaction, so that a refused table or owner opens none.
        let sql = self.sql()?;
        check_owner(record)?;
        match self
            .move_row(sql, from, expected, delete_from, to, record)
            .await
        {
            // Rolled back by the database, as if the old row had changed: the lifecycle
            // looks at it again.
            Err(error) if is_conflict(&error) => Ok(Moved::SourceChanged),
            moved => moved,
        }
    }

    fn limit_record_size(&mut self, bytes: usize) {
        self.max_record_size = i64::try_from(bytes).unwrap_or(i64::MAX);
    }
}

impl<D: Dialect> SqlBackend<D> {
    /// [`store_moved`](SessionBackend::store_moved), in one transaction: the new row
    /// appears only together with the old one's deletion (or check), never alone.
    async fn move_row(
        &self,
        sql: &Statements,
        from: &SessionId,
        expected: u64,
        delete_from: bool,
        to: &SessionId,
        record: &Record,
    ) -> Result<Moved, Error> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        if let (Some(lock), Some(owner)) = (&sql.owner_lock, &record.owner) {
            let key = Param::Int(self.owner_lock_key(owner));
            D::execute(&mut tx, &lock.shared, &[key])
                .await
                .map_err(map_error)?;
        }
        if !Self::insert(&mut tx, sql, to.digest(), record).await? {
            tx.rollback().await.map_err(map_error)?;
            return Ok(Moved::IdTaken);
        }
        if Self::source_unchanged(&mut tx, sql, from.digest(), expected, delete_from).await? {
            tx.commit().await.map_err(map_error)?;
            Ok(Moved::Stored)
        } else {
            tx.rollback().await.map_err(map_error)?;
            Ok(Moved::SourceChanged)
        }
    }
}

/// `table`'s statements, or why the name is refused.
fn checked_statements<D: Dialect>(table: &str) -> Result<Statements, String> {
    check_table(table).map(|()| D::statements(table))
}

/// A sqlx error as the crate's: a pool that had no connection in time is a timeout.
/// sqlx's messages carry no bound values, so no session id reaches the log through them.
pub(super) fn map_error(error: sqlx::Error) -> Error {
    match error {
        sqlx::Error::PoolTimedOut => Error::Timeout,
        other => Error::backend(other),
    }
}

/// Whether the database rolled back a statement or transaction to break a deadlock or a
/// serialization conflict (SQLSTATE 40001, or PostgreSQL's 40P01): it wrote nothing, and
/// the same step again can succeed. InnoDB's locks on the owner index make an end of an
/// owner's sessions and a move of one of them such a pair.
pub(super) fn is_conflict(error: &Error) -> bool {
    let Error::Backend(source) = error else {
        return false;
    };
    let Some(sqlx::Error::Database(database)) = source.downcast_ref::<sqlx::Error>() else {
        return false;
    };
    matches!(database.code().as_deref(), Some("40001" | "40P01"))
}

/// A new version: random, so that a row deleted and created again under the same id never
/// repeats a version a request loaded from the old one; positive, to read well in a dump.
fn new_version() -> i64 {
    rand::random::<i64>() & i64::MAX
}

/// Milliseconds since the Unix epoch as the signed `BIGINT` columns hold them.
pub(super) fn column_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A record's expiry as the `expires_at` column stores it.
fn expires_at(record: &Record) -> Option<i64> {
    record.expires_at_ms.map(column_ms)
}
