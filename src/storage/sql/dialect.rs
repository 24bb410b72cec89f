//! What differs between the databases: the SQL text, and how sqlx reports affected rows.

use super::driver::Driver;

/// A database the SQL storages run on: sqlx's `Postgres`, `MySql` and `Sqlite`, with the
/// features `postgres`, `mysql` and `sqlite`. [`SqlBackend`](super::backend::SqlBackend)
/// runs the same logic on each, with the statements of its dialect.
///
/// Sealed: its methods name types private to this crate, so only these three implement it.
pub trait Dialect: Driver {
    /// The database's OpenTelemetry `db.system.name`, the storage's name in metrics.
    const SYSTEM_NAME: &'static str;

    /// The statements for `table`, a name already checked to be a plain identifier, as the
    /// database is sent them.
    fn statements(table: &str) -> Statements;

    /// How many rows a statement wrote: each sqlx driver reports it on a type of its own.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// The SQL of one database, with the table name filled in (checked to be a plain
/// identifier, hence the `AssertSqlSafe` around each statement). Every statement binds
/// its parameters in the order the comment gives, whatever the placeholder syntax.
pub struct Statements {
    /// `CREATE TABLE IF NOT EXISTS`.
    pub create_table: String,
    /// The columns `migrate` adds to a table made by an earlier version: `owner`.
    pub columns: Vec<Column>,
    /// The indexes `migrate` makes sure the table has: on `expires_at` and on `owner`.
    pub indexes: Vec<Index>,
    /// (limit, id) -> (version, length, data if length <= limit, expires_at): the column's
    /// expiry, which a renewal moves without rewriting the data, over the data's.
    pub load: String,
    /// (id, data, version, expires_at, owner), writing nothing when the id exists: either no
    /// row affected or a unique violation, and nothing else tolerated.
    pub insert: String,
    /// (data, version, expires_at, owner, id, old version).
    pub update: String,
    /// (expires_at, id, now ms, expires_at): moves a live row's expiry forward (or to the
    /// same, which still counts the row), without rewriting its data or version.
    pub renew: String,
    /// (id, now ms) -> (version) of a live row.
    pub live: String,
    /// (id, data, version, expires_at, owner), overwriting.
    pub upsert: String,
    /// (id, version).
    pub delete_version: String,
    /// (id).
    pub delete_any: String,
    /// (id) -> (version).
    pub version: String,
    /// (id) -> (version), the row locked against writes to the end of the transaction.
    pub version_locked: String,
    /// (now ms).
    pub remove_expired: String,
    /// (limit, owner, now ms) -> (id, data if its length <= limit, expires_at) of the
    /// owner's unexpired rows.
    pub records_of: String,
    /// (id, owner).
    pub delete_owned: String,
    /// Deletes every row of an owner but two spared ids, and counts the live ones.
    pub delete_owned_except: DeleteOwned,
    /// Where a single statement cannot see a row that a transaction committed while the
    /// statement ran (PostgreSQL's snapshots), the lock that makes an end of an owner's
    /// sessions wait for the moves of the owner's sessions under way.
    pub owner_lock: Option<OwnerLock>,
}

/// A column that tables made by earlier versions lack, in one database's SQL.
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// () -> a row if the table has it.
    pub find: String,
    /// Adds it.
    pub add: String,
}

/// How a database deletes all the rows of an owner, expired ones too (a request that loaded
/// one before it expired could otherwise save it back), and counts only the live ones.
pub enum DeleteOwned {
    /// (owner, spared id, spared id) -> (expires_at) of each row it deleted.
    Returning(String),
    /// Without `DELETE ... RETURNING` (MySQL): `expired` (owner, spared id, spared id, now
    /// ms) deletes the expired rows, then `rest` (owner, spared id, spared id) the others,
    /// which it counts.
    ExpiredFirst {
        /// Run first.
        expired: String,
        /// Run second.
        rest: String,
    },
}

/// A lock per table and owner, held to the end of a transaction.
pub struct OwnerLock {
    /// (key): taken by a move to a new id, which others' moves do not wait for.
    pub shared: String,
    /// (key): taken by an end of the owner's sessions, which waits for every move.
    pub exclusive: String,
}

/// An index of the table, in one database's SQL.
pub struct Index {
    /// The column it is on, and the first of the index.
    pub column: &'static str,
    /// The name it is created under: [`index_name`](super::schema::index_name).
    pub name: String,
    /// () -> a row if the table has an index whose first column is `column`, whatever its
    /// name.
    pub find: String,
    /// Creates it.
    pub create: String,
}

#[cfg(test)]
impl Statements {
    /// Every statement, named, in one order: each dialect pins its SQL in one comparison, and
    /// a statement added here cannot go unpinned.
    pub(super) fn pinned(self) -> Vec<(&'static str, String)> {
        let Statements {
            create_table,
            columns,
            indexes,
            load,
            insert,
            update,
            renew,
            live,
            upsert,
            delete_version,
            delete_any,
            version,
            version_locked,
            remove_expired,
            records_of,
            delete_owned,
            delete_owned_except,
            owner_lock,
        } = self;
        let mut pinned = vec![("create_table", create_table)];
        for Column { name, find, add } in columns {
            pinned.push(("column name", name.to_owned()));
            pinned.push(("column find", find));
            pinned.push(("column add", add));
        }
        for Index {
            column,
            name,
            find,
            create,
        } in indexes
        {
            pinned.push(("index column", column.to_owned()));
            pinned.push(("index name", name));
            pinned.push(("index find", find));
            pinned.push(("index create", create));
        }
        pinned.extend([
            ("load", load),
            ("insert", insert),
            ("update", update),
            ("renew", renew),
            ("live", live),
            ("upsert", upsert),
            ("delete_version", delete_version),
            ("delete_any", delete_any),
            ("version", version),
            ("version_locked", version_locked),
            ("remove_expired", remove_expired),
            ("records_of", records_of),
            ("delete_owned", delete_owned),
        ]);
        match delete_owned_except {
            DeleteOwned::Returning(sql) => pinned.push(("delete_owned_except", sql)),
            DeleteOwned::ExpiredFirst { expired, rest } => {
                pinned.push(("delete_owned_except expired", expired));
                pinned.push(("delete_owned_except rest", rest));
            }
        }
        if let Some(OwnerLock { shared, exclusive }) = owner_lock {
            pinned.push(("owner_lock shared", shared));
            pinned.push(("owner_lock exclusive", exclusive));
        }
        pinned
    }
}
