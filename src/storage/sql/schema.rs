//! The table's columns and indexes: the names the indexes get, and how
//! [`migrate`](SqlBackend::migrate) makes sure each one exists.

use sha2::{Digest, Sha256};

use super::backend::SqlBackend;
use super::dialect::{Column, Dialect, Index};
use crate::Error;

/// The longest identifier PostgreSQL keeps whole, in bytes (MySQL keeps 64, SQLite any).
const MAX_NAME: usize = 63;

/// The name of the index on `column` of `table`: `sl_`, the lowercased table name cut to
/// what fits, `_`, the first 8 hex digits of the SHA-256 of the lowercased table name, `_`
/// and the column; at most 63 bytes for a column of up to 50 characters.
///
/// Index names share a namespace per schema with tables in PostgreSQL and SQLite, so the
/// name is short enough never to be cut, and the hash of the whole table name keeps apart
/// tables that differ only past the cut: only a table deliberately named after this very
/// string can take it. Lowercased because PostgreSQL and SQLite take `Sessions` and
/// `sessions` for one table.
pub(super) fn index_name(table: &str, column: &str) -> String {
    let table = table.to_ascii_lowercase();
    let hash: String = Sha256::digest(table.as_bytes())[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let room = MAX_NAME.saturating_sub("sl___".len() + hash.len() + column.len());
    let kept = &table[..table.len().min(room)];
    format!("sl_{kept}_{hash}_{column}")
}

impl<D: Dialect> SqlBackend<D> {
    /// Creates the table if it does not exist, then each of its columns and indexes it
    /// lacks.
    pub(super) async fn migrate(&self) -> Result<(), Error> {
        let sql = self.sql()?;
        self.execute(&sql.create_table, &[]).await?;
        for column in &sql.columns {
            self.ensure_column(column).await?;
        }
        for index in &sql.indexes {
            self.ensure_index(index).await?;
        }
        Ok(())
    }

    /// Adds `column` to a table made by an earlier version, which lacks it.
    async fn ensure_column(&self, column: &Column) -> Result<(), Error> {
        if self.fetch_optional(&column.find, &[]).await?.is_some() {
            return Ok(());
        }
        let added = self.execute(&column.add, &[]).await;
        // Looked for again whatever the outcome: a concurrent migrate may have added it
        // (and failed this one, where there is no `IF NOT EXISTS`).
        if self.fetch_optional(&column.find, &[]).await?.is_some() {
            return Ok(());
        }
        added?;
        Err(Error::Config(format!(
            "{} has no column {} and adding it did nothing",
            self.table(),
            column.name
        )))
    }

    /// Creates `index` unless the table has an index that starts with its column, whatever
    /// its name (a table made by an older version keeps the index it has and gets no
    /// second one), and fails rather than return with no such index.
    async fn ensure_index(&self, index: &Index) -> Result<(), Error> {
        if self.fetch_optional(&index.find, &[]).await?.is_some() {
            return Ok(());
        }
        let created = self.execute(&index.create, &[]).await;
        // Looked for again whatever the outcome: a concurrent migrate may have made it
        // (and failed this one), and `IF NOT EXISTS` skips a name that something else has.
        if self.fetch_optional(&index.find, &[]).await?.is_some() {
            return Ok(());
        }
        created?;
        Err(Error::Config(format!(
            "{} has no index on {}, and {} is taken by another object or an invalid index: \
             drop or rename it, or create an index on {} yourself",
            self.table(),
            index.column,
            index.name,
            index.column
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::index_name;

    #[test]
    fn names_for_the_default_tables() {
        assert_eq!(
            index_name("sessions", "expires_at"),
            "sl_sessions_1225ae6c_expires_at"
        );
        assert_eq!(
            index_name("app_sessions", "expires_at"),
            "sl_app_sessions_651e9353_expires_at"
        );
        assert_eq!(
            index_name("App_Sessions", "expires_at"),
            index_name("app_sessions", "expires_at")
        );
    }

    /// The longest table names fit whole in no database's limit once the column is added,
    /// so they are cut, and those that differ only past the cut still get names of their
    /// own.
    #[test]
    fn long_table_names_give_short_distinct_names() {
        let base = "t".repeat(40);
        for column in ["expires_at", "owner"] {
            let mut seen = std::collections::HashSet::new();
            for len in 40..=63 {
                let table = format!("{base}{}", "x".repeat(len - 40));
                let name = index_name(&table, column);
                assert!(name.len() <= 63, "{name} is {} bytes", name.len());
                assert!(name.ends_with(&format!("_{column}")), "{name}");
                assert_ne!(name, table);
                assert!(seen.insert(name.clone()), "{name} repeats");
            }
        }
        assert_eq!(index_name(&"t".repeat(63), "expires_at").len(), 63);
    }
}
