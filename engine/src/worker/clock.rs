//! The clock. The worker module is the only place that reads it (the core takes `now` as an
//! argument); handles that wait with a timeout read it through here. A worker reads the time
//! through a [`Clock`]: the system's, or a virtual one (a [`ManualClock`], or the simulated
//! network's) so that whole endpoints run on virtual time in tests.

// The one file that reads the system clock.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where a worker reads the time.
pub trait Clock: Send + Sync + 'static {
    /// The monotonic time.
    fn now(&self) -> Instant;
    /// Seconds since the Unix epoch, read together with [`Clock::now`] (address validation
    /// tokens carry wall-clock times).
    fn unix_secs(&self) -> u64;
}

/// The system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn unix_secs(&self) -> u64 {
        unix_secs()
    }
}

/// A virtual clock moved by hand (tests, simulations): starts at the given instant and only
/// moves forward, when told.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    unix_start: u64,
    elapsed_ns: AtomicU64,
}

impl ManualClock {
    /// A clock reading `start` (and `unix_start` seconds since the Unix epoch) until moved.
    pub fn new(start: Instant, unix_start: u64) -> Self {
        Self { start, unix_start, elapsed_ns: AtomicU64::new(0) }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_ns.fetch_add(ns, Ordering::AcqRel);
    }

    /// Moves the clock to `t` (never backwards).
    pub fn advance_to(&self, t: Instant) {
        let ns =
            u64::try_from(t.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_ns.fetch_max(ns, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + Duration::from_nanos(self.elapsed_ns.load(Ordering::Acquire))
    }
    fn unix_secs(&self) -> u64 {
        self.unix_start + self.elapsed_ns.load(Ordering::Acquire) / 1_000_000_000
    }
}

impl Clock for peregrine_datapath::sim::SimNetwork {
    fn now(&self) -> Instant {
        peregrine_datapath::sim::SimNetwork::now(self)
    }
    fn unix_secs(&self) -> u64 {
        // A fixed epoch for simulated networks: runs stay reproducible.
        1_700_000_000 + self.elapsed().as_secs()
    }
}

/// The system's monotonic clock.
pub fn now() -> Instant {
    Instant::now()
}

/// Seconds since the Unix epoch (for address validation tokens).
pub fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch (a qlog trace's `reference_time`).
pub fn unix_millis() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
