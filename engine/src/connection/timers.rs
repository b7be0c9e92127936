//! The connection's fixed timer table: one slot per [`Timer`], the next wakeup is the minimum.

use std::time::Instant;

/// Every timer a connection runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Idle timeout (RFC 9000 §10.1).
    Idle,
    /// Loss detection or PTO (RFC 9002 §6), mirrored from the loss detector.
    LossDetection,
    /// Delayed ACK (RFC 9000 §13.2.1).
    AckDelay,
    /// Pacing: the next in-flight packet may leave (RFC 9002 §7.7).
    Pacing,
    /// End of the closing or draining period (RFC 9000 §10.2).
    Close,
    /// Discard the previous 1-RTT receive key (RFC 9001 §6.5).
    KeyDiscard,
    /// The handshake has not completed in time: drop the connection silently.
    Handshake,
    /// Server: drop the 0-RTT keys, three PTO after the first 1-RTT packet (RFC 9001 §4.9.3).
    ZeroRttDiscard,
    /// Client: give up validating the path a migration moved to (RFC 9000 §8.2.4).
    PathValidation,
}

impl Timer {
    /// All timers, in table order.
    pub const ALL: [Timer; 9] = [
        Timer::Idle,
        Timer::LossDetection,
        Timer::AckDelay,
        Timer::Pacing,
        Timer::Close,
        Timer::KeyDiscard,
        Timer::Handshake,
        Timer::ZeroRttDiscard,
        Timer::PathValidation,
    ];

    const fn index(self) -> usize {
        self as usize
    }
}

/// Deadlines of the [`Timer`]s.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimerTable {
    slots: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    /// Arms `t` for `at`.
    pub fn set(&mut self, t: Timer, at: Instant) {
        self.slots[t.index()] = Some(at);
    }

    /// Disarms `t`.
    pub fn stop(&mut self, t: Timer) {
        self.slots[t.index()] = None;
    }

    /// Arms or disarms `t`.
    pub fn set_opt(&mut self, t: Timer, at: Option<Instant>) {
        self.slots[t.index()] = at;
    }

    /// The deadline of `t`.
    pub fn get(&self, t: Timer) -> Option<Instant> {
        self.slots[t.index()]
    }

    /// Whether `t` is armed and due at `now`.
    pub fn is_expired(&self, t: Timer, now: Instant) -> bool {
        self.get(t).is_some_and(|at| at <= now)
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.slots.iter().flatten().min().copied()
    }

    /// Disarms everything.
    pub fn clear(&mut self) {
        self.slots = [None; Timer::ALL.len()];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn next_is_min() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Idle, t0 + Duration::from_secs(30));
        t.set(Timer::AckDelay, t0 + Duration::from_millis(25));
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(25)));
        assert!(t.is_expired(Timer::AckDelay, t0 + Duration::from_millis(25)));
        t.stop(Timer::AckDelay);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(30)));
        assert_eq!(Timer::ALL.len(), 9);
    }
}
