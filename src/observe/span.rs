//! The `session` span: one per request, created by the layer's service with every field
//! declared empty, and filled in as the request goes (tower-http's `TraceLayer` habit).

use tracing::field::Empty;

use crate::session::SessionId;

/// The span of one request's session work, or `Span::none()` when no subscriber was ever
/// set: then no span macro runs, as with tracing's `log` feature (which many dependencies
/// turn on) even a disabled span costs about 150 instructions per request.
#[inline]
pub(crate) fn request_span(storage: &'static str) -> tracing::Span {
    if !listening() {
        return tracing::Span::none();
    }
    tracing::debug_span!(
        "session",
        db.system.name = storage,
        session.id_prefix = Empty,
        session.load = Empty,
        session.cookie_refused = Empty,
        session.save = Empty,
        session.save_retries = Empty,
        error.type = Empty,
    )
}

/// Records the first 8 hex digits of the digest of the id `id()` gives on the current
/// span: enough to join the lines of one session, useless to take it over. The id is
/// asked for only when a subscriber listens; its digest is the one the storage used.
#[inline]
pub(crate) fn id_prefix(id: impl FnOnce() -> SessionId) {
    if listening() {
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record("session.id_prefix", &id().digest()[..8]);
        }
    }
}

/// Records `value` on the current span (the request's, entered around the storage calls);
/// a check of the global level filter when nothing listens.
#[inline]
pub(super) fn record(field: &'static str, value: &'static str) {
    if listening() {
        tracing::Span::current().record(field, value);
    }
}

/// Like [`record`], for a number.
#[inline]
pub(super) fn record_u64(field: &'static str, value: u64) {
    if listening() {
        tracing::Span::current().record(field, value);
    }
}

/// Runs `f` inside `span`, without touching a span that is none.
#[inline]
pub(crate) fn in_span<R>(span: &tracing::Span, f: impl FnOnce() -> R) -> R {
    if span.is_none() {
        f()
    } else {
        span.in_scope(f)
    }
}

/// Enters `span` until the guard drops, unless it is none.
#[inline]
pub(crate) fn enter(span: &tracing::Span) -> Option<tracing::span::Entered<'_>> {
    (!span.is_none()).then(|| span.enter())
}

/// Whether a subscriber may want the session span: one was set (globally or for a thread)
/// and DEBUG is not filtered out everywhere.
#[inline]
fn listening() -> bool {
    tracing::dispatcher::has_been_set() && tracing::level_enabled!(tracing::Level::DEBUG)
}
