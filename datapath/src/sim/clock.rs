//! Virtual clock of the simulated network: a fixed base instant plus a virtual offset.

use std::time::{Duration, Instant};

/// Virtual time. Only moves forward, and only when told to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VirtualClock {
    base: Instant,
    offset: Duration,
}

impl VirtualClock {
    /// A clock reading `base` until advanced.
    pub fn new(base: Instant) -> Self {
        Self { base, offset: Duration::ZERO }
    }

    /// The instant virtual time started at.
    pub fn base(&self) -> Instant {
        self.base
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.base + self.offset
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.offset
    }

    /// Virtual time since the start at instant `t` (zero before the start).
    pub fn since_start(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.base)
    }

    /// Moves time forward by `d`.
    pub fn advance(&mut self, d: Duration) {
        self.offset = self.offset.saturating_add(d);
    }

    /// Moves time forward to `t`; an instant in the past is ignored (time never goes back).
    pub fn advance_to(&mut self, t: Instant) {
        self.offset = self.offset.max(self.since_start(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_and_never_goes_back() {
        #[allow(clippy::disallowed_methods)] // an arbitrary anchor; only differences are used
        let base = Instant::now();
        let mut c = VirtualClock::new(base);
        assert_eq!(c.now(), base);
        c.advance(Duration::from_millis(5));
        assert_eq!(c.now() - base, Duration::from_millis(5));
        c.advance_to(base + Duration::from_millis(3));
        assert_eq!(c.elapsed(), Duration::from_millis(5), "the past is ignored");
        c.advance_to(base + Duration::from_millis(12));
        assert_eq!(c.now(), base + Duration::from_millis(12));
        assert_eq!(c.since_start(base), Duration::ZERO);
    }
}
