//! The one wall clock that creation times and expiries are read from.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(saturating_millis)
        .unwrap_or(0)
}

/// Whole seconds since the Unix epoch, as session creation times are kept.
pub(crate) fn unix_now_secs() -> u64 {
    unix_now_ms() / 1000
}

/// A duration in whole milliseconds, `u64::MAX` for anything longer: a `Duration::MAX` TTL
/// means "forever", never a wrapped short one.
pub(crate) fn saturating_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
