//! A [`SessionBackend`] that keeps session records in a PostgreSQL table.
//!
//! A backend is a load and conditional writes: each store or delete names what it expects
//! to find (nothing, a version, anything) and answers whether it acted.
//! [`ServerStorage::with_backend`] adds the whole session lifecycle: fresh ids, unknown ids,
//! flash, regenerate, destroy, expiry, and the merge of concurrent requests.

use std::time::{Duration, UNIX_EPOCH};

use session_layer::Error;
use session_layer::storage::{
    Expected, Record, ServerStorage, SessionBackend, Versioned, id_digest,
};
use tokio_postgres::{Client, NoTls, Statement};

/// Sessions in PostgreSQL.
pub type PgStorage = ServerStorage<PgBackend>;

/// One connection and prepared statements over a table
/// `(id text primary key, data bytea not null, expires_at timestamptz, version bigint not null)`,
/// where `id` holds the [`id_digest`] of the session id: any id fits, and the table holds no
/// usable id.
///
/// One `Client` pipelines concurrent queries; a busy app would use a pool
/// (deadpool-postgres, bb8) the same way.
pub struct PgBackend {
    client: Client,
    table: String,
    load: Statement,
    insert: Statement,
    update: Statement,
    upsert: Statement,
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
                "CREATE TABLE IF NOT EXISTS {table} (id text PRIMARY KEY, data bytea NOT NULL, \
                 expires_at timestamptz, version bigint NOT NULL)"
            ))
            .await
            .map_err(Error::backend)?;
        let insert = format!(
            "INSERT INTO {table} (id, data, expires_at, version) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO"
        );
        let sql = [
            // Expired rows too: the lifecycle checks expiry, and overwrites such a row by its
            // version, which an `Expected::Absent` insert could never do.
            format!("SELECT data, version FROM {table} WHERE id = $1"),
            format!("{insert} NOTHING"),
            format!(
                "UPDATE {table} SET data = $2, expires_at = $3, version = $4 \
                 WHERE id = $1 AND version = $5"
            ),
            format!(
                "{insert} UPDATE SET data = excluded.data, expires_at = excluded.expires_at, \
                 version = excluded.version"
            ),
            // `$2` NULL: whatever version is stored.
            format!("DELETE FROM {table} WHERE id = $1 AND version = coalesce($2, version)"),
            format!("DELETE FROM {table} WHERE expires_at <= now()"),
        ];
        let mut statements = Vec::new();
        for sql in &sql {
            statements.push(client.prepare(sql).await.map_err(Error::backend)?);
        }
        let [load, insert, update, upsert, delete, remove_expired] =
            <[Statement; 6]>::try_from(statements).expect("six statements");
        Ok(PgBackend {
            client,
            table: table.to_owned(),
            load,
            insert,
            update,
            upsert,
            delete,
            remove_expired,
        })
    }

    /// Deletes the expired rows; run it now and then (the lifecycle ignores them meanwhile).
    pub async fn remove_expired(&self) -> Result<u64, Error> {
        self.client
            .execute(&self.remove_expired, &[])
            .await
            .map_err(Error::backend)
    }
}

impl SessionBackend for PgBackend {
    async fn load(&self, id: &str) -> Result<Option<Versioned>, Error> {
        let row = self.client.query_opt(&self.load, &[&id_digest(id)]).await;
        let Some(row) = row.map_err(Error::backend)? else {
            return Ok(None);
        };
        // Name the table in errors, never the id: ids are credentials and logs are not secret.
        let record = Record::decode(&format!("a row of {}", self.table), row.get(0))?;
        let version = row.get::<_, i64>(1) as u64; // bigint is signed: the cast keeps the bits
        Ok(Some(Versioned { record, version }))
    }

    async fn store(
        &self,
        id: &str,
        record: &Record,
        _ttl: Option<Duration>, // the same instant is in `record.expires_at_ms`
        expected: Expected,
    ) -> Result<bool, Error> {
        let expires_at = record
            .expires_at_ms
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
        // Random rather than `version + 1`, so that a row deleted and created again under
        // the same id never repeats a version that a request loaded from the old one.
        let (key, data, new) = (id_digest(id), record.encode(), rand::random::<i64>());
        let c = &self.client;
        let rows = match expected {
            Expected::Absent => {
                c.execute(&self.insert, &[&key, &data, &expires_at, &new])
                    .await
            }
            Expected::Any => {
                c.execute(&self.upsert, &[&key, &data, &expires_at, &new])
                    .await
            }
            Expected::Version(v) => {
                let v = v as i64;
                c.execute(&self.update, &[&key, &data, &expires_at, &new, &v])
                    .await
            }
        };
        Ok(rows.map_err(Error::backend)? == 1)
    }

    async fn delete(&self, id: &str, expected: Expected) -> Result<bool, Error> {
        let version = match expected {
            Expected::Version(v) => Some(v as i64),
            Expected::Any => None,
            // Nothing to delete: done if nothing is there.
            Expected::Absent => {
                let row = self.client.query_opt(&self.load, &[&id_digest(id)]).await;
                return Ok(row.map_err(Error::backend)?.is_none());
            }
        };
        let rows = self
            .client
            .execute(&self.delete, &[&id_digest(id), &version])
            .await
            .map_err(Error::backend)?;
        Ok(rows == 1 || expected == Expected::Any)
    }
}
