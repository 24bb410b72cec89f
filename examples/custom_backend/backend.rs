//! A [`SessionBackend`] that keeps session records in a PostgreSQL table.
//!
//! Three statements are all a backend is: load, store (create-only or overwrite) and
//! delete a record by id. [`ServerStorage::with_backend`] adds the whole session lifecycle:
//! fresh ids, unknown ids, flash, regenerate, destroy and expiry.

use std::time::{Duration, UNIX_EPOCH};

use session_layer::Error;
use session_layer::storage::{Record, ServerStorage, SessionBackend, WriteMode};
use tokio_postgres::{Client, NoTls, Statement};

/// Sessions in PostgreSQL.
pub type PgStorage = ServerStorage<PgBackend>;

/// One connection and four prepared statements over a table
/// `(id text primary key, data bytea not null, expires_at timestamptz)`.
///
/// One `Client` pipelines concurrent queries; a busy app would use a pool
/// (deadpool-postgres, bb8) the same way.
pub struct PgBackend {
    client: Client,
    table: String,
    load: Statement,
    create: Statement,
    overwrite: Statement,
    delete: Statement,
    remove_expired: Statement,
}

impl PgBackend {
    /// Connects (`config`: `"host=... user=... dbname=..."` or a `postgres://` URL) and
    /// creates `table` if missing. `pg_temp.NAME` makes a table private to this connection.
    pub async fn connect(config: &str, table: &str) -> Result<PgBackend, Error> {
        let identifier =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !table.split('.').all(identifier) || table.split('.').count() > 2 {
            return Err(Error::Config(format!("{table:?} is not a table name")));
        }
        let (client, connection) = tokio_postgres::connect(config, NoTls)
            .await
            .map_err(Error::backend)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::error!(%error, "PostgreSQL connection closed");
            }
        });
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} \
                 (id text PRIMARY KEY, data bytea NOT NULL, expires_at timestamptz)"
            ))
            .await
            .map_err(Error::backend)?;
        let live = "(expires_at IS NULL OR expires_at > now())";
        let insert = format!("INSERT INTO {table} AS t (id, data, expires_at) VALUES ($1, $2, $3)");
        let sql = [
            format!("SELECT data FROM {table} WHERE id = $1 AND {live}"),
            // Create-only: a live row under the id wins (0 rows affected); an expired one
            // is fair game.
            format!(
                "{insert} ON CONFLICT (id) DO UPDATE SET data = excluded.data, \
                 expires_at = excluded.expires_at WHERE NOT (t.expires_at IS NULL OR t.expires_at > now())"
            ),
            format!(
                "{insert} ON CONFLICT (id) DO UPDATE SET data = excluded.data, \
                 expires_at = excluded.expires_at"
            ),
            format!("DELETE FROM {table} WHERE id = $1"),
            format!("DELETE FROM {table} WHERE expires_at <= now()"),
        ];
        let mut statements = Vec::new();
        for sql in &sql {
            statements.push(client.prepare(sql).await.map_err(Error::backend)?);
        }
        let [load, create, overwrite, delete, remove_expired] =
            <[Statement; 5]>::try_from(statements).expect("five statements");
        Ok(PgBackend {
            client,
            table: table.to_owned(),
            load,
            create,
            overwrite,
            delete,
            remove_expired,
        })
    }

    /// Deletes the expired rows; run it now and then (reads ignore them meanwhile).
    pub async fn remove_expired(&self) -> Result<u64, Error> {
        self.client
            .execute(&self.remove_expired, &[])
            .await
            .map_err(Error::backend)
    }
}

impl SessionBackend for PgBackend {
    async fn load(&self, id: &str) -> Result<Option<Record>, Error> {
        let row = self
            .client
            .query_opt(&self.load, &[&id])
            .await
            .map_err(Error::backend)?;
        // Name the table in errors, never the id: ids are credentials and logs are not secret.
        let name = format!("a row of {}", self.table);
        row.map(|row| Record::decode(&name, row.get::<_, &[u8]>(0)))
            .transpose()
    }

    async fn store(
        &self,
        id: &str,
        record: &Record,
        _ttl: Option<Duration>, // the same instant is in `record.expires_at_ms`
        mode: WriteMode,
    ) -> Result<bool, Error> {
        let expires_at = record
            .expires_at_ms
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
        let statement = match mode {
            WriteMode::Create => &self.create,
            WriteMode::Overwrite => &self.overwrite,
        };
        let rows = self
            .client
            .execute(statement, &[&id, &record.encode(), &expires_at])
            .await
            .map_err(Error::backend)?;
        Ok(rows == 1)
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        self.client
            .execute(&self.delete, &[&id])
            .await
            .map_err(Error::backend)?;
        Ok(())
    }
}
