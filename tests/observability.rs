//! What operators see: the `session` span's fields, the events, and the metrics of the
//! feature `metrics`, for the scenarios that produce them; and that none of it carries a
//! session id, a cookie value or a secret.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use session_layer::storage::id_digest;
use session_layer::{MemoryStorage, Session, SessionCookie, SessionLayer, SessionStorage};
use tokio::sync::Barrier;

use common::app::send;
use common::broken::Broken;
use common::logs::{SpanRecord, Traced};

const NAME: &str = "sid";
const SECRET: &str = "an observability secret, 32 bytes+";

async fn count(session: Session) -> String {
    let n = session.get::<u64>("n").unwrap_or(0) + 1;
    session.set("n", n).unwrap();
    n.to_string()
}

/// Answers the session's id, for the test that searches for it.
async fn id(session: Session) -> String {
    session.set("seen", true).unwrap();
    session.id()
}

async fn logout(session: Session) -> &'static str {
    session.destroy();
    "bye"
}

fn app<St: SessionStorage>(storage: St, barrier: Option<Arc<Barrier>>) -> Router {
    let cookie = SessionCookie::new(NAME).secrets([SECRET]);
    let bump = move |session: Session| {
        let barrier = barrier.clone();
        async move {
            let n = session.get::<u64>("n").unwrap_or(0) + 1;
            session.set("n", n).unwrap();
            // Both requests have loaded the session before either saves.
            if let Some(barrier) = barrier {
                barrier.wait().await;
            }
            n.to_string()
        }
    };
    Router::new()
        .route("/", get(count))
        .route("/id", get(id))
        .route("/bump", get(bump))
        .route("/logout", get(logout))
        .layer(SessionLayer::new(cookie, storage))
}

/// A recorder for this thread (the tests run on a current-thread runtime).
fn recorder() -> (Snapshotter, metrics::LocalRecorderGuard<'static>) {
    let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
    let snapshotter = recorder.snapshotter();
    (snapshotter, metrics::set_default_local_recorder(recorder))
}

/// A metric: name, sorted labels, value.
type Metric = (String, Vec<(String, String)>, DebugValue);

/// Every metric recorded, once: a snapshot drains what it reads.
fn metrics_of(snapshotter: &Snapshotter) -> Vec<Metric> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            (key.name().to_owned(), labels, value)
        })
        .collect()
}

fn find<'m>(metrics: &'m [Metric], name: &str, labels: &[(&str, &str)]) -> Option<&'m DebugValue> {
    let mut wanted: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wanted.sort();
    metrics
        .iter()
        .find(|(n, l, _)| n == name && *l == wanted)
        .map(|(_, _, value)| value)
}

/// A counter's value in `metrics`, 0 when never incremented.
fn counter(metrics: &[Metric], name: &str, labels: &[(&str, &str)]) -> u64 {
    match find(metrics, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        Some(other) => panic!("{name} is not a counter: {other:?}"),
    }
}

/// The single `session` span of each request, in order.
fn sessions(traced: &Traced) -> Vec<SpanRecord> {
    traced.spans("session")
}

#[tokio::test]
async fn a_session_story_is_in_the_span_and_the_counters() {
    let (snapshotter, _m) = recorder();
    let (traced, _t) = Traced::start();
    let app = app(MemoryStorage::new(), None);

    let (_, cookie, _) = send(&app, None, "/").await;
    let cookie = cookie.unwrap();
    send(&app, Some(&cookie), "/").await;
    send(&app, Some(&cookie), "/logout").await;
    send(&app, Some(&cookie), "/").await;

    let spans = sessions(&traced);
    assert_eq!(spans.len(), 4, "{spans:?}");
    let outcomes: Vec<(Option<&str>, Option<&str>)> = spans
        .iter()
        .map(|s| (s.get("session.load"), s.get("session.save")))
        .collect();
    assert_eq!(
        outcomes,
        [
            (Some("new"), Some("saved")),
            (Some("loaded"), Some("saved")),
            (Some("loaded"), Some("destroyed")),
            (Some("unknown_id"), Some("saved")),
        ]
    );
    assert_eq!(spans[0].get("db.system.name"), Some("memory"));
    // The lines of one session join on its digest's prefix: the same in the first three.
    let prefix = spans[0].get("session.id_prefix").unwrap();
    assert_eq!(prefix.len(), 8);
    assert_eq!(spans[1].get("session.id_prefix"), Some(prefix));

    let memory = [("storage", "memory")];
    let with = |outcome| [memory[0], ("outcome", outcome)];
    let metrics = metrics_of(&snapshotter);
    assert_eq!(counter(&metrics, "session_loads_total", &with("new")), 1);
    assert_eq!(counter(&metrics, "session_loads_total", &with("loaded")), 2);
    assert_eq!(
        counter(&metrics, "session_loads_total", &with("unknown_id")),
        1
    );
    assert_eq!(counter(&metrics, "session_saves_total", &with("saved")), 3);
    assert_eq!(
        counter(&metrics, "session_saves_total", &with("destroyed")),
        1
    );
    // Timed by operation: 3 loads (one per request with a cookie), 3 stores and a delete.
    let timings = |operation| match find(
        &metrics,
        "db_client_operation_duration_seconds",
        &[
            ("db_system_name", "memory"),
            ("db_operation_name", operation),
        ],
    ) {
        Some(DebugValue::Histogram(values)) => values.len(),
        other => panic!("{operation}: {other:?}"),
    };
    assert_eq!(
        (timings("load"), timings("store"), timings("delete")),
        (3, 3, 1)
    );
    // Normal outcomes are DEBUG: nothing louder.
    assert!(
        traced
            .events()
            .iter()
            .all(|e| e.level >= tracing::Level::DEBUG)
    );
}

#[tokio::test]
async fn a_tampered_cookie_is_refused_and_counted() {
    let (snapshotter, _m) = recorder();
    let (traced, _t) = Traced::start();
    let app = app(MemoryStorage::new(), None);
    let (_, cookie, _) = send(&app, None, "/").await;
    let cookie = cookie.unwrap();
    // Flip one character of the signed payload: the shape stays, the signature fails.
    let mut tampered = cookie.into_bytes();
    let at = NAME.len() + 2;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    let (status, set, body) = send(&app, Some(&tampered), "/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
    assert!(set.is_some(), "a fresh session");
    send(&app, Some("sid=not-a-sealed-value"), "/").await;

    let metrics = metrics_of(&snapshotter);
    let reason = |reason| {
        counter(
            &metrics,
            "session_cookies_refused_total",
            &[("reason", reason)],
        )
    };
    assert_eq!((reason("tampered"), reason("malformed")), (1, 1));
    let spans = sessions(&traced);
    assert_eq!(spans[1].get("session.cookie_refused"), Some("tampered"));
    assert_eq!(spans[1].get("session.load"), Some("new"));
    assert_eq!(spans[2].get("session.cookie_refused"), Some("malformed"));
}

#[tokio::test]
async fn a_planted_duplicate_is_refused_and_counted() {
    let (snapshotter, _m) = recorder();
    let (traced, _t) = Traced::start();
    let app = app(MemoryStorage::new(), None);
    let (_, victim, _) = send(&app, None, "/").await;
    let (_, planted, _) = send(&app, None, "/").await;
    let both = format!("{}; {}", planted.unwrap(), victim.unwrap());

    let (_, _, body) = send(&app, Some(&both), "/").await;
    assert_eq!(body, "1", "neither session is used");

    let metrics = metrics_of(&snapshotter);
    let planted = counter(
        &metrics,
        "session_cookies_refused_total",
        &[("reason", "planted_duplicate")],
    );
    assert_eq!(planted, 1);
    let spans = sessions(&traced);
    assert_eq!(
        spans[2].get("session.cookie_refused"),
        Some("planted_duplicate")
    );
    let warned = traced.events().iter().any(|e| {
        e.level == tracing::Level::WARN && e.get("message").is_some_and(|m| m.contains("planted"))
    });
    assert!(warned, "{:?}", traced.events());
}

#[tokio::test]
async fn a_conflict_is_retried_and_counted() {
    let (snapshotter, _m) = recorder();
    let (traced, _t) = Traced::start();
    let app = app(MemoryStorage::new(), Some(Arc::new(Barrier::new(2))));
    let (_, cookie, _) = send(&Router::clone(&app), None, "/").await;
    let cookie = cookie.unwrap();

    let (a, b) = tokio::join!(
        send(&app, Some(&cookie), "/bump"),
        send(&app, Some(&cookie), "/bump")
    );
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK));
    let (_, _, n) = send(&app, Some(&cookie), "/").await;
    // Each bump set n to 2 on the session it loaded; the later one's set was replayed on the
    // record the earlier wrote, then the visit.
    assert_eq!(n, "3");

    let memory = [("storage", "memory")];
    let metrics = metrics_of(&snapshotter);
    assert_eq!(
        counter(&metrics, "session_save_conflicts_total", &memory),
        1
    );
    let attempts = match find(&metrics, "session_save_attempts", &memory) {
        Some(DebugValue::Histogram(values)) => {
            let mut values: Vec<f64> = values.iter().map(|v| v.into_inner()).collect();
            values.sort_by(f64::total_cmp);
            values
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(attempts, [1.0, 1.0, 2.0]);
    let spans = sessions(&traced);
    let retries: Vec<Option<&str>> = spans
        .iter()
        .map(|s| s.get("session.save_retries"))
        .collect();
    assert_eq!(
        retries.iter().filter(|r| **r == Some("1")).count(),
        1,
        "{spans:?}"
    );
}

#[tokio::test]
async fn a_store_failure_is_an_error_with_its_kind() {
    let (snapshotter, _m) = recorder();
    let (traced, _t) = Traced::start();
    // A cookie that verifies, from an app with the same secret.
    let (_, cookie, _) = send(&app(MemoryStorage::new(), None), None, "/").await;
    let broken = app(Broken, None);

    let (status, _, body) = send(&broken, cookie.as_deref(), "/").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "")
    );
    let (status, _, _) = send(&broken, None, "/").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    let custom = |outcome| [("storage", "custom"), ("outcome", outcome)];
    let metrics = metrics_of(&snapshotter);
    assert_eq!(
        counter(&metrics, "session_loads_total", &custom("error")),
        1
    );
    assert_eq!(
        counter(&metrics, "session_saves_total", &custom("error")),
        1
    );
    let spans: Vec<SpanRecord> = sessions(&traced)
        .into_iter()
        .filter(|s| s.get("db.system.name") == Some("custom"))
        .collect();
    assert_eq!(spans[0].get("session.load"), Some("error"));
    assert_eq!(spans[0].get("error.type"), Some("backend"));
    assert_eq!(spans[1].get("session.save"), Some("error"));
    let errors: Vec<_> = traced
        .events()
        .into_iter()
        .filter(|e| e.level == tracing::Level::ERROR)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| e.get("error.type") == Some("backend"))
    );
}

#[tokio::test]
async fn evictions_and_held_sessions_are_counted() {
    let (snapshotter, _m) = recorder();
    let app = app(MemoryStorage::new().max_sessions(2), None);
    for _ in 0..5 {
        send(&app, None, "/").await;
    }
    let metrics = metrics_of(&snapshotter);
    assert_eq!(counter(&metrics, "session_memory_evictions_total", &[]), 3);
    match find(&metrics, "session_memory_sessions", &[]) {
        Some(DebugValue::Gauge(held)) => assert_eq!(held.into_inner(), 2.0),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_record_over_the_limit_is_counted() {
    let (snapshotter, _m) = recorder();
    let (traced, _t) = Traced::start();
    let app = app(MemoryStorage::new().max_record_size(8), None);
    let (status, _, _) = send(&app, None, "/").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let memory = [("storage", "memory")];
    let metrics = metrics_of(&snapshotter);
    assert_eq!(
        counter(&metrics, "session_records_too_large_total", &memory),
        1
    );
    assert_eq!(
        sessions(&traced)[0].get("error.type"),
        Some("record_too_large")
    );
}

/// Everything a subscriber and a recorder receive, across the scenarios above, holds no
/// session id, no cookie value, no secret, and no whole id digest (a store key).
#[tokio::test]
async fn no_id_cookie_value_or_secret_reaches_a_field_or_label() {
    let (snapshotter, _m) = recorder();
    let (traced, _t) = Traced::start();
    let app = app(MemoryStorage::new().max_sessions(3), None);

    let (_, cookie, id) = send(&app, None, "/id").await;
    let cookie = cookie.unwrap();
    let (_, other, other_id) = send(&app, None, "/id").await;
    let other = other.unwrap();
    send(&app, Some(&cookie), "/").await;
    send(&app, Some(&format!("{cookie}; {other}")), "/").await;
    let tampered = cookie.replacen(".", ".A", 1);
    send(&app, Some(&tampered), "/").await;
    send(&app, Some(&cookie), "/logout").await;
    for _ in 0..4 {
        send(&app, None, "/").await;
    }

    let mut seen = traced.everything();
    for (name, labels, _) in metrics_of(&snapshotter) {
        seen += &format!("{name} {labels:?}\n");
    }
    assert!(
        seen.contains("session.id_prefix"),
        "the capture works: {seen}"
    );
    let value = |pair: &str| pair.split_once('=').unwrap().1.to_owned();
    let secrets = [
        id.clone(),
        other_id.clone(),
        value(&cookie),
        value(&other),
        value(&tampered),
        SECRET.to_owned(),
        id_digest(&id),
        id_digest(&other_id),
    ];
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(
            !seen.contains(&secret),
            "{secret:?} reached a field or label:\n{seen}"
        );
    }
}
