//! The `session` span: one per request, created by the layer's service with every field
//! declared empty, and filled in as the request goes (tower-http's `TraceLayer` habit).

use tracing::field::Empty;

use crate::session::id_digest;

/// The span of one request's session work, or a disabled span when no subscriber wants
/// DEBUG spans of this crate (then it costs a check of the callsite's interest).
pub(crate) fn request_span(storage: &'static str) -> tracing::Span {
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
/// asked for only when a subscriber listens.
pub(crate) fn id_prefix(id: impl FnOnce() -> String) {
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record("session.id_prefix", &id_digest(&id())[..8]);
        }
    }
}

/// Records `value` on the current span (the request's, entered around the storage calls);
/// a check of the global level filter when nothing listens.
pub(super) fn record(field: &'static str, value: &'static str) {
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        tracing::Span::current().record(field, value);
    }
}

/// Like [`record`], for a number.
pub(super) fn record_u64(field: &'static str, value: u64) {
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        tracing::Span::current().record(field, value);
    }
}
