//! What the layer and the storages tell operators: the fields of each request's `session`
//! span, its events, and with the feature `metrics` the counters, histograms and gauges
//! (see the [observability guide](crate::guide::observability)).
//!
//! Every function here costs a check of an atomic when no `tracing` subscriber wants DEBUG
//! and the feature is off, so the request path pays nothing measurable for it.

#[cfg(feature = "metrics")]
pub mod metrics;
mod outcome;
mod span;

pub(crate) use self::outcome::{Load, Refusal, Save};
pub(crate) use self::span::{enter, id_prefix, in_span, request_span};

#[cfg(feature = "metrics")]
use self::metrics as names;

/// How a request's session was loaded, on the request's span and counted by storage.
#[inline]
pub(crate) fn load(storage: &'static str, outcome: Load) {
    span::record("session.load", outcome.as_str());
    #[cfg(feature = "metrics")]
    ::metrics::counter!(names::LOADS, "storage" => storage, "outcome" => outcome.as_str())
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = storage;
}

/// How a request's session was saved, on the request's span and counted by storage.
#[inline]
pub(crate) fn save(storage: &'static str, outcome: Save) {
    span::record("session.save", outcome.as_str());
    #[cfg(feature = "metrics")]
    ::metrics::counter!(names::SAVES, "storage" => storage, "outcome" => outcome.as_str())
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = storage;
}

/// What kind of error failed the request, on its span: never the error's text.
#[inline]
pub(crate) fn error(error: &crate::Error) {
    span::record("error.type", error.kind());
}

/// A session value the request carried was refused.
#[inline]
pub(crate) fn refused(reason: Refusal) {
    span::record("session.cookie_refused", reason.as_str());
    #[cfg(feature = "metrics")]
    ::metrics::counter!(names::COOKIES_REFUSED, "reason" => reason.as_str()).increment(1);
}

/// A save found the session changed by another request since it was loaded.
pub(crate) fn conflict(storage: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(names::SAVE_CONFLICTS, "storage" => storage).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = storage;
}

/// The conditional writes a save of a stored session took; more than one means conflicts.
pub(crate) fn save_attempts(storage: &'static str, attempts: u32) {
    if attempts > 1 {
        span::record_u64("session.save_retries", u64::from(attempts - 1));
    }
    #[cfg(feature = "metrics")]
    ::metrics::histogram!(names::SAVE_ATTEMPTS, "storage" => storage).record(attempts);
    #[cfg(not(feature = "metrics"))]
    let _ = storage;
}

/// A save gave up on a session that other requests kept changing.
pub(crate) fn retries_exhausted(storage: &'static str, attempts: u32) {
    span::record_u64("session.save_retries", u64::from(attempts));
    tracing::warn!(
        db.system.name = storage,
        attempts,
        "session save gave up: other requests kept changing the session"
    );
}

/// A save was refused for a record over the storage's size limit.
pub(crate) fn record_too_large(storage: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(names::RECORDS_TOO_LARGE, "storage" => storage).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = storage;
}

/// The memory storage evicted its least recently used session to make room.
pub(crate) fn memory_evicted() {
    tracing::debug!("memory session storage full: evicted the least recently used session");
    #[cfg(feature = "metrics")]
    ::metrics::counter!(names::MEMORY_EVICTIONS).increment(1);
}

/// How many sessions the memory storage holds now.
pub(crate) fn memory_held(sessions: usize) {
    #[cfg(feature = "metrics")]
    ::metrics::gauge!(names::MEMORY_SESSIONS).set(sessions as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = sessions;
}

/// Runs one backend operation, timed by storage and operation with the feature `metrics`;
/// without it, the operation itself.
#[cfg(feature = "metrics")]
pub(crate) async fn timed<F: Future>(
    storage: &'static str,
    operation: &'static str,
    op: F,
) -> F::Output {
    let started = std::time::Instant::now();
    let output = op.await;
    ::metrics::histogram!(
        names::STORE_OPERATION_DURATION,
        "db_system_name" => storage,
        "db_operation_name" => operation
    )
    .record(started.elapsed().as_secs_f64());
    output
}

/// Runs one backend operation, timed by storage and operation with the feature `metrics`;
/// without it, the operation itself.
#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn timed<F: Future>(_storage: &'static str, _operation: &'static str, op: F) -> F {
    op
}
