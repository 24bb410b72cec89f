//! Captures what the crate logs, for tests of what a log line says and never says.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;

/// Everything logged at `WARN` or above on this thread while its guard lives.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Starts capturing on this thread: a current-thread runtime (`#[tokio::test]`'s
    /// default) keeps every task of the test on it.
    pub fn start() -> (Captured, DefaultGuard) {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every SQL statement sqlx runs in this process, recorded from its `sqlx::query` events,
/// for tests that count round trips. A test that counts holds [`Statements::serial`], so
/// that no other test's statements mix in.
pub struct Statements;

static STATEMENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl Statements {
    /// Installs the recorder as the process's subscriber (once) and returns the lock that
    /// keeps counting tests one at a time.
    pub fn serial() -> &'static tokio::sync::Mutex<()> {
        use tracing_subscriber::layer::SubscriberExt as _;
        static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(Recorder);
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
        });
        &SERIAL
    }

    /// The statements recorded since the last call, each as its SQL text.
    pub fn take() -> Vec<String> {
        std::mem::take(&mut *STATEMENTS.lock().unwrap())
    }
}

/// Records the SQL of each `sqlx::query` event: its `db.statement` field when sqlx gives
/// the whole text there, else its `summary` (the whole of a short statement).
struct Recorder;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        #[derive(Default)]
        struct Sql {
            summary: String,
            statement: String,
        }
        impl tracing::field::Visit for Sql {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                match field.name() {
                    "summary" => self.summary = value.to_owned(),
                    "db.statement" => self.statement = value.trim().to_owned(),
                    _ => {}
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut sql = Sql::default();
        event.record(&mut sql);
        let text = if sql.statement.is_empty() {
            sql.summary
        } else {
            sql.statement
        };
        STATEMENTS.lock().unwrap().push(text);
    }
}
