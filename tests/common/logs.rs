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

/// One span as it ended: its name and every field recorded on it, in order.
#[derive(Clone, Debug, Default)]
pub struct SpanRecord {
    pub name: String,
    pub fields: Vec<(String, String)>,
}

impl SpanRecord {
    /// The last value recorded for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        let mut found = self.fields.iter().filter(|(name, _)| name == field);
        found.next_back().map(|(_, value)| value.as_str())
    }
}

/// One event: its level, and its fields (the message under `message`).
#[derive(Clone, Debug)]
pub struct EventRecord {
    pub level: tracing::Level,
    pub fields: Vec<(String, String)>,
}

impl EventRecord {
    pub fn get(&self, field: &str) -> Option<&str> {
        let mut found = self.fields.iter().filter(|(name, _)| name == field);
        found.next_back().map(|(_, value)| value.as_str())
    }
}

#[derive(Default)]
struct Traces {
    open: std::collections::HashMap<tracing::span::Id, SpanRecord>,
    closed: Vec<SpanRecord>,
    events: Vec<EventRecord>,
}

/// Every span (with its fields) and every event, at every level, on this thread while its
/// guard lives: for tests of what the crate tells a subscriber.
#[derive(Clone, Default)]
pub struct Traced(Arc<Mutex<Traces>>);

impl Traced {
    pub fn start() -> (Traced, DefaultGuard) {
        use tracing_subscriber::layer::SubscriberExt as _;
        let traced = Traced::default();
        let subscriber = tracing_subscriber::registry().with(traced.clone());
        (traced, tracing::subscriber::set_default(subscriber))
    }

    /// The spans named `name` closed so far.
    pub fn spans(&self, name: &str) -> Vec<SpanRecord> {
        let traces = self.0.lock().unwrap();
        traces
            .closed
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    pub fn events(&self) -> Vec<EventRecord> {
        self.0.lock().unwrap().events.clone()
    }

    /// Every span name, field name and value, and event field, as one text to search.
    pub fn everything(&self) -> String {
        let traces = self.0.lock().unwrap();
        let spans = traces.closed.iter().chain(traces.open.values());
        let mut text = String::new();
        for span in spans {
            text += &format!("{} {:?}\n", span.name, span.fields);
        }
        for event in &traces.events {
            text += &format!("{} {:?}\n", event.level, event.fields);
        }
        text
    }
}

/// Collects a span's or an event's fields as text.
struct Fields<'a>(&'a mut Vec<(String, String)>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S> tracing_subscriber::Layer<S> for Traced
where
    S: tracing::Subscriber + for<'l> tracing_subscriber::registry::LookupSpan<'l>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut span = SpanRecord {
            name: attrs.metadata().name().to_owned(),
            fields: Vec::new(),
        };
        attrs.record(&mut Fields(&mut span.fields));
        self.0.lock().unwrap().open.insert(id.clone(), span);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = self.0.lock().unwrap().open.get_mut(id) {
            values.record(&mut Fields(&mut span.fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        let level = *event.metadata().level();
        self.0
            .lock()
            .unwrap()
            .events
            .push(EventRecord { level, fields });
    }

    fn on_close(&self, id: tracing::span::Id, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut traces = self.0.lock().unwrap();
        if let Some(span) = traces.open.remove(&id) {
            traces.closed.push(span);
        }
    }
}
