//! The sqlx calls the backend makes, written once for every sqlx database that stores the
//! table's column types.

use std::future::Future;

use sqlx::query::Query;
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row as _, Type,
};

/// A value bound to a statement, in one of the table's column types.
#[derive(Clone, Copy, Debug)]
pub enum Param<'a> {
    /// An `id`: a session id's digest.
    Text(&'a str),
    /// A `data`: an encoded record.
    Bytes(&'a [u8]),
    /// A `BIGINT`: a version, a time or a length.
    Int(i64),
    /// A nullable `BIGINT`: an `expires_at`.
    NullableInt(Option<i64>),
    /// A nullable text: an `owner`.
    NullableText(Option<&'a str>),
}

/// Runs a statement and reads a column on a sqlx database. It exists so that the sqlx
/// bounds these calls need are written once, on its implementation, rather than on every
/// generic item of the backend.
pub trait Driver: Database {
    /// `sql` with `params` bound in order.
    fn query(sql: &str, params: &[Param<'_>]) -> Query<'static, Self, Self::Arguments>;

    /// Runs `sql` with `params` on `connection`.
    fn execute(
        connection: &mut Self::Connection,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Self::QueryResult, sqlx::Error>> + Send;

    /// Runs `sql` with `params` on `connection` and returns its first row, if any.
    fn fetch_optional(
        connection: &mut Self::Connection,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send;

    /// Runs `sql` with `params` on `connection` and returns every row.
    fn fetch_all(
        connection: &mut Self::Connection,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send;

    /// Column `index` of `row`, a `BIGINT`.
    fn int(row: &Self::Row, index: usize) -> Result<i64, sqlx::Error>;

    /// Column `index` of `row`, bytes or `NULL`.
    fn nullable_bytes(row: &Self::Row, index: usize) -> Result<Option<Vec<u8>>, sqlx::Error>;

    /// Column `index` of `row`, a nullable `BIGINT`.
    fn nullable_int(row: &Self::Row, index: usize) -> Result<Option<i64>, sqlx::Error>;

    /// Column `index` of `row`, text: an `id`.
    fn text(row: &Self::Row, index: usize) -> Result<String, sqlx::Error>;
}

impl<DB> Driver for DB
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    fn query(sql: &str, params: &[Param<'_>]) -> Query<'static, DB, DB::Arguments> {
        params.iter().fold(
            sqlx::query(AssertSqlSafe(sql)),
            |query, param| match *param {
                Param::Text(text) => query.bind(text),
                Param::Bytes(bytes) => query.bind(bytes),
                Param::Int(int) => query.bind(int),
                Param::NullableInt(int) => query.bind(int),
                Param::NullableText(text) => query.bind(text),
            },
        )
    }

    fn execute(
        connection: &mut DB::Connection,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<DB::QueryResult, sqlx::Error>> + Send {
        connection.execute(Self::query(sql, params))
    }

    fn fetch_optional(
        connection: &mut DB::Connection,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Option<DB::Row>, sqlx::Error>> + Send {
        connection.fetch_optional(Self::query(sql, params))
    }

    fn fetch_all(
        connection: &mut DB::Connection,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Vec<DB::Row>, sqlx::Error>> + Send {
        connection.fetch_all(Self::query(sql, params))
    }

    fn int(row: &DB::Row, index: usize) -> Result<i64, sqlx::Error> {
        row.try_get(index)
    }

    fn nullable_bytes(row: &DB::Row, index: usize) -> Result<Option<Vec<u8>>, sqlx::Error> {
        row.try_get(index)
    }

    fn nullable_int(row: &DB::Row, index: usize) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(index)
    }

    fn text(row: &DB::Row, index: usize) -> Result<String, sqlx::Error> {
        row.try_get(index)
    }
}
