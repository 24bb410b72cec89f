//! [`exptime`]: a session's TTL as the expiration memcached reads in a storage command.

use std::time::Duration;

/// Memcached reads an expiration above 30 days as an absolute Unix time.
const RELATIVE_EXPIRY_LIMIT_SECS: u64 = 30 * 24 * 3600;

/// The expiration sent with a write. `0` means "never" to memcached, so a TTL is rounded up
/// to whole seconds and never down to 0; over 30 days it must be an absolute Unix time.
///
/// Memcached parses the expiration as a signed 32-bit number: an end past that (past
/// January 2038, a `Duration::MAX` TTL or lifetime) is sent as `0`, no expiry of the item.
/// The session still ends when its record says, which the lifecycle checks on every read.
pub(super) fn exptime(ttl: Option<Duration>, now_secs: u64) -> u32 {
    let Some(ttl) = ttl else { return 0 };
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0))
        .max(1);
    let value = if secs <= RELATIVE_EXPIRY_LIMIT_SECS {
        secs
    } else {
        now_secs.saturating_add(secs)
    };
    i32::try_from(value).map_or(0, |value| value as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exptime_rounds_up_and_switches_to_absolute_after_30_days() {
        assert_eq!(exptime(None, 1_000), 0);
        assert_eq!(exptime(Some(Duration::ZERO), 1_000), 1);
        assert_eq!(exptime(Some(Duration::from_millis(1)), 1_000), 1);
        assert_eq!(exptime(Some(Duration::from_millis(1500)), 1_000), 2);
        let thirty_days = Duration::from_secs(RELATIVE_EXPIRY_LIMIT_SECS);
        assert_eq!(exptime(Some(thirty_days), 1_000), 2_592_000);
        let now = 1_800_000_000;
        let more = Duration::from_secs(RELATIVE_EXPIRY_LIMIT_SECS + 1);
        assert_eq!(exptime(Some(more), now), (now + 2_592_001) as u32);
        // Past what a signed 32-bit Unix time holds: no expiry of the item, never a wrapped
        // or clamped time (i32::MAX is in the past from 2038 on, which would expire it).
        assert_eq!(exptime(Some(Duration::from_secs(u64::MAX)), now), 0);
        assert_eq!(exptime(Some(Duration::MAX), now), 0);
        assert_eq!(exptime(Some(Duration::MAX), 0), 0);
        let end_of_i32 = i32::MAX as u64;
        let ttl = |secs| Some(Duration::from_secs(secs));
        assert_eq!(
            exptime(
                ttl(RELATIVE_EXPIRY_LIMIT_SECS + 1),
                end_of_i32 - RELATIVE_EXPIRY_LIMIT_SECS - 1
            ),
            i32::MAX as u32
        );
        assert_eq!(
            exptime(
                ttl(RELATIVE_EXPIRY_LIMIT_SECS + 1),
                end_of_i32 - RELATIVE_EXPIRY_LIMIT_SECS
            ),
            0
        );
        // Relative TTLs do not depend on the clock.
        assert_eq!(exptime(ttl(60), u64::MAX), 60);
    }
}
