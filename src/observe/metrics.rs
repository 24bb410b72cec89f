//! The names of the metrics the crate records with the feature `metrics`, through the
//! [`metrics`](https://docs.rs/metrics) facade: install any exporter (Prometheus,
//! OpenTelemetry, StatsD) and they appear. Labels, units and the alerts worth setting are in
//! the [observability guide](crate::guide::observability).
//!
//! ```
//! // Once, after installing the exporter: gives each metric its help text and unit.
//! session_layer::metrics::describe();
//! ```

use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Counter of session loads, by `storage` and `outcome` (`loaded`, `new`, `expired`,
/// `unknown_id`, `corrupt`, `error`).
pub const LOADS: &str = "session_loads_total";
/// Counter of requests' saves, by `storage` and `outcome` (`saved`, `unchanged`,
/// `destroyed`, `gone`, `error`).
pub const SAVES: &str = "session_saves_total";
/// Counter of save attempts that found the session changed by another request, by
/// `storage`.
pub const SAVE_CONFLICTS: &str = "session_save_conflicts_total";
/// Histogram of the conditional writes each save of a stored session took, by `storage`.
pub const SAVE_ATTEMPTS: &str = "session_save_attempts";
/// Counter of refused session values, by `reason` (`tampered`, `malformed`,
/// `planted_duplicate`, `oversize`).
pub const COOKIES_REFUSED: &str = "session_cookies_refused_total";
/// Counter of saves refused for a record over the storage's `max_record_size`, by `storage`.
pub const RECORDS_TOO_LARGE: &str = "session_records_too_large_total";
/// Counter of sessions the memory storage evicted to stay under `max_sessions`.
pub const MEMORY_EVICTIONS: &str = "session_memory_evictions_total";
/// Gauge of the sessions the memory storage holds.
pub const MEMORY_SESSIONS: &str = "session_memory_sessions";
/// Histogram of store operations' duration in seconds, by `db_system_name` (the storage)
/// and `db_operation_name` (`load`, `store`, `delete`, `store_moved`): OpenTelemetry's
/// `db.client.operation.duration`, as its Prometheus exporters name it.
pub const STORE_OPERATION_DURATION: &str = "db_client_operation_duration_seconds";

/// Gives each metric its description and unit in the installed recorder: call it once,
/// after installing the exporter (recording works without it).
pub fn describe() {
    describe_counter!(LOADS, Unit::Count, "Session loads by storage and outcome.");
    describe_counter!(SAVES, Unit::Count, "Session saves by storage and outcome.");
    describe_counter!(
        SAVE_CONFLICTS,
        Unit::Count,
        "Save attempts that found the session changed by another request."
    );
    describe_histogram!(
        SAVE_ATTEMPTS,
        Unit::Count,
        "Conditional writes per save of a stored session."
    );
    describe_counter!(
        COOKIES_REFUSED,
        Unit::Count,
        "Session values refused, by reason."
    );
    describe_counter!(
        RECORDS_TOO_LARGE,
        Unit::Count,
        "Saves refused for a record over max_record_size."
    );
    describe_counter!(
        MEMORY_EVICTIONS,
        Unit::Count,
        "Sessions the memory storage evicted to stay under max_sessions."
    );
    describe_gauge!(
        MEMORY_SESSIONS,
        Unit::Count,
        "Sessions the memory storage holds."
    );
    describe_histogram!(
        STORE_OPERATION_DURATION,
        Unit::Seconds,
        "Duration of session store operations."
    );
}
