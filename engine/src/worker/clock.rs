//! The clock. The worker module is the only place that reads it (the core takes `now` as an
//! argument); handles that wait with a timeout read it through here.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The monotonic clock.
pub fn now() -> Instant {
    Instant::now()
}

/// Seconds since the Unix epoch (for address validation tokens).
pub fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
