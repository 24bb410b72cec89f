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
    /// The indexes `migrate` makes sure the table has: the one on `expires_at`.
    pub indexes: Vec<Index>,
    /// (limit, id) -> (version, length, data if length <= limit).
    pub load: String,
    /// (id, data, version, expires_at), writing nothing when the id exists: either no row
    /// affected or a unique violation, and nothing else tolerated.
    pub insert: String,
    /// (data, version, expires_at, id, old version).
    pub update: String,
    /// (id, data, version, expires_at), overwriting.
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
            indexes,
            load,
            insert,
            update,
            upsert,
            delete_version,
            delete_any,
            version,
            version_locked,
            remove_expired,
        } = self;
        let mut pinned = vec![("create_table", create_table)];
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
            ("upsert", upsert),
            ("delete_version", delete_version),
            ("delete_any", delete_any),
            ("version", version),
            ("version_locked", version_locked),
            ("remove_expired", remove_expired),
        ]);
        pinned
    }
}
