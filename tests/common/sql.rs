//! The SQL test databases: pools on the test servers, a table of each test's own that is
//! dropped when the test ends, and the tables a killed run left behind swept at start.
//!
//! PostgreSQL at 127.0.0.1:5432 (user postgres, database `test`, or `DATABASE_URL`),
//! MariaDB/MySQL at 127.0.0.1:3306 (root, database `test`, or `MYSQL_URL`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use session_layer::{Error, Session, SessionStorage};

/// Every test table's name starts with this.
const PREFIX: &str = "sltest_";

/// A table left for longer than this belongs to a run that was killed before it could drop
/// it: no test runs this long.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The PostgreSQL server the tests use.
pub fn postgres_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The MariaDB/MySQL server the tests use.
pub fn mysql_url() -> String {
    std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A table name no other test (or run) uses: the prefix, the time it was drawn (so that a
/// sweep can tell a leftover from a table in use) and a random part.
pub fn unique_table() -> String {
    format!("{PREFIX}{:x}_{:016x}", unix_secs(), rand::random::<u64>())
}

/// A name of [`unique_table`] followed by `_` and as many `x` as make it `length` long.
pub fn unique_table_of_length(length: usize) -> String {
    let table = unique_table();
    let padding = length.saturating_sub(table.len() + 1);
    format!("{table}_{}", "x".repeat(padding))
}

/// Whether `table` is a test table drawn longer ago than [`STALE_AFTER`].
fn is_stale(table: &str) -> bool {
    let Some(rest) = table.strip_prefix(PREFIX) else {
        return false;
    };
    match rest
        .split_once('_')
        .map(|(secs, _)| u64::from_str_radix(secs, 16))
    {
        Some(Ok(drawn)) => unix_secs().saturating_sub(drawn) > STALE_AFTER.as_secs(),
        // A name of another shape under our prefix: an older run's.
        _ => true,
    }
}

/// A server-side database the tests create tables in.
#[derive(Clone, Copy, Debug)]
pub enum Server {
    Postgres,
    MySql,
}

impl Server {
    /// Drops `table` on a connection of its own, on a thread of its own: it runs from
    /// `Drop`, inside or outside a runtime.
    fn drop_table(self, table: String) {
        let sql = format!("DROP TABLE IF EXISTS {table}");
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(self.execute(&[sql]))
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test table {table}: {e}");
        }
    }

    #[cfg_attr(
        not(any(feature = "postgres", feature = "mysql")),
        allow(unused_variables)
    )]
    async fn execute(self, statements: &[String]) -> Result<(), sqlx::Error> {
        use sqlx::Connection as _;
        match self {
            #[cfg(feature = "postgres")]
            Server::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&postgres_url()).await?;
                for sql in statements {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.as_str()))
                        .execute(&mut conn)
                        .await?;
                }
                conn.close().await
            }
            #[cfg(feature = "mysql")]
            Server::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(&mysql_url()).await?;
                for sql in statements {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.as_str()))
                        .execute(&mut conn)
                        .await?;
                }
                conn.close().await
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("{self:?} needs its feature"),
        }
    }

    /// Drops the test tables that killed runs left, once per process and server.
    async fn sweep_once(self) {
        use tokio::sync::OnceCell;
        static POSTGRES: OnceCell<()> = OnceCell::const_new();
        static MYSQL: OnceCell<()> = OnceCell::const_new();
        let cell = match self {
            Server::Postgres => &POSTGRES,
            Server::MySql => &MYSQL,
        };
        cell.get_or_init(|| self.sweep()).await;
    }

    async fn sweep(self) {
        let names = match self.table_names().await {
            Ok(names) => names,
            Err(e) => return eprintln!("could not list {self:?}'s test tables: {e}"),
        };
        let drops: Vec<String> = names
            .into_iter()
            .filter(|t| is_stale(t))
            .map(|t| format!("DROP TABLE IF EXISTS {t}"))
            .collect();
        if !drops.is_empty()
            && let Err(e) = self.execute(&drops).await
        {
            eprintln!("could not drop {self:?}'s stale test tables: {e}");
        }
    }

    /// The names of the tables under [`PREFIX`] in the test database.
    async fn table_names(self) -> Result<Vec<String>, sqlx::Error> {
        use sqlx::Connection as _;
        match self {
            #[cfg(feature = "postgres")]
            Server::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&postgres_url()).await?;
                let names = sqlx::query_scalar(
                    "SELECT tablename::TEXT FROM pg_tables \
                     WHERE schemaname = current_schema() AND starts_with(tablename, $1)",
                )
                .bind(PREFIX)
                .fetch_all(&mut conn)
                .await?;
                conn.close().await?;
                Ok(names)
            }
            #[cfg(feature = "mysql")]
            Server::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(&mysql_url()).await?;
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
                     WHERE table_schema = DATABASE() AND LEFT(table_name, 7) = ?",
                )
                .bind(PREFIX)
                .fetch_all(&mut conn)
                .await?;
                conn.close().await?;
                Ok(names)
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("{self:?} needs its feature"),
        }
    }
}

/// What a test's storage leaves behind, removed when this is dropped: its table on a
/// server, or its SQLite file's directory.
pub enum Cleanup {
    Table(Server, String),
    Dir(tempfile::TempDir),
    Nothing,
}

impl Cleanup {
    /// A fresh table name on `server`, dropped with the returned guard; the first call per
    /// process also drops what killed runs left there.
    pub async fn table(server: Server) -> (String, Cleanup) {
        let table = unique_table();
        (table.clone(), Cleanup::named(server, table).await)
    }

    /// A guard that drops `table` on `server`, a name drawn from [`unique_table`] (it may
    /// have a suffix); the first call per process also drops what killed runs left there.
    pub async fn named(server: Server, table: String) -> Cleanup {
        server.sweep_once().await;
        Cleanup::Table(server, table)
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Cleanup::Table(server, table) = self {
            server.drop_table(std::mem::take(table));
        }
    }
}

/// A storage with its [`Cleanup`], which runs after the storage (and its pool) is dropped.
pub struct Guarded<S> {
    pub storage: S,
    pub cleanup: Cleanup,
}

impl<S> Guarded<S> {
    /// The same cleanup around `f(storage)`: for builder options.
    pub fn map<T>(self, f: impl FnOnce(S) -> T) -> Guarded<T> {
        let Guarded { storage, cleanup } = self;
        Guarded {
            storage: f(storage),
            cleanup,
        }
    }
}

impl<S> std::ops::Deref for Guarded<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.storage
    }
}

impl<S: SessionStorage> SessionStorage for Guarded<S> {
    async fn read(&self, value: Option<&str>) -> Result<Session, Error> {
        self.storage.read(value).await
    }

    async fn save(&self, session: &Session) -> Result<Option<String>, Error> {
        self.storage.save(session).await
    }
}

/// A pool of at most `max` connections on the PostgreSQL test server.
#[cfg(feature = "postgres")]
pub async fn postgres_pool(max: u32) -> sqlx::PgPool {
    let url = postgres_url();
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max)
        .connect(&url)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at {url} (set DATABASE_URL, create database test): {e}")
        })
}

/// A pool of at most `max` connections on the MariaDB/MySQL test server.
#[cfg(feature = "mysql")]
pub async fn mysql_pool(max: u32) -> sqlx::MySqlPool {
    let url = mysql_url();
    sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(max)
        .connect(&url)
        .await
        .unwrap_or_else(|e| {
            panic!("MySQL/MariaDB at {url} (set MYSQL_URL, create database test): {e}")
        })
}

/// A pool of at most `max` connections on a database file in a temporary directory, which
/// the returned cleanup removes. In WAL mode, as docs/sql.md advises: in the default
/// rollback-journal mode readers block the writer, and under many concurrent requests one
/// can wait out the busy timeout.
#[cfg(feature = "sqlite")]
pub async fn sqlite_file_pool(max: u32) -> (sqlx::SqlitePool, Cleanup) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("sessions.db"))
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .create_if_missing(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(max)
        .connect_with(options)
        .await
        .expect("SQLite file");
    (pool, Cleanup::Dir(dir))
}

/// An in-memory database: one connection that is never closed, since each connection has a
/// database of its own that ends with it. Not pinged before use either: sqlx closes a
/// connection whose ping a cancelled request interrupts.
#[cfg(feature = "sqlite")]
pub async fn sqlite_memory_pool() -> sqlx::SqlitePool {
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .connect("sqlite::memory:")
        .await
        .expect("SQLite in memory")
}
