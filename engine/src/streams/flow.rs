//! Flow-control credit (RFC 9000 §4): receive windows with auto-tuning, send limits with BLOCKED signals.

use std::time::{Duration, Instant};

use crate::error::{Error, TransportErrorCode};

/// Receive-side credit for one stream or for the whole connection.
///
/// `received` is the credit the peer has consumed (the highest stream offset, or the sum of
/// those over all streams); `consumed` is what the application has read (or what was
/// discarded). The limit we advertise is `consumed + window`; an update is due once half the
/// window has been read since the last advertised limit.
///
/// Auto-tuning (as in Chromium's `QuicFlowController`): each time an update is issued, if the
/// previous one was issued less than two round trips ago, the half window was consumed in
/// under 2 RTTs, so the window is what limits throughput: it doubles, up to `max_window`.
#[derive(Clone, Debug)]
pub struct RecvFlow {
    max: u64,
    window: u64,
    max_window: u64,
    received: u64,
    consumed: u64,
    last_update: Option<Instant>,
    resend: bool,
}

impl RecvFlow {
    /// Credit starting at `window` bytes, allowed to grow to `max_window` (at least `window`).
    pub fn new(window: u64, max_window: u64) -> Self {
        let window = window.min(crate::varint::MAX);
        Self {
            max: window,
            window,
            max_window: max_window.clamp(window, crate::varint::MAX),
            received: 0,
            consumed: 0,
            last_update: None,
            resend: false,
        }
    }

    /// The limit currently granted to the peer.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The current window size.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Credit the peer has used.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Bytes the application has read or that were discarded.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Checks that the peer may use credit up to `total` without recording it.
    pub fn check(&self, total: u64) -> Result<(), Error> {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-4.1
        //# A receiver MUST close the connection with an error of type
        //# FLOW_CONTROL_ERROR if the sender violates the advertised connection
        //# or stream data limits; see Section 11 for details on error handling.
        if total > self.max {
            Err(Error::new(
                TransportErrorCode::FLOW_CONTROL_ERROR,
                "peer exceeded flow control limit",
            ))
        } else {
            Ok(())
        }
    }

    /// Records that the peer has used credit up to `total` (never decreases).
    pub fn on_received(&mut self, total: u64) -> Result<(), Error> {
        self.check(total)?;
        self.received = self.received.max(total);
        Ok(())
    }

    /// Records that `n` more bytes were read by the application or discarded.
    pub fn on_consumed(&mut self, n: u64) {
        self.consumed = self.consumed.saturating_add(n).min(self.received);
    }

    /// Whether a MAX_DATA / MAX_STREAM_DATA should be sent: half the window has been
    /// consumed since the advertised limit, or a lost update must be repeated.
    pub fn update_due(&self) -> bool {
        if self.resend {
            return true;
        }
        let target = self.consumed.saturating_add(self.window).min(crate::varint::MAX);
        target > self.max && target - self.max >= (self.window / 2).max(1)
    }

    /// The new limit to advertise, if one is due. `rtt` is the smoothed RTT (zero when no
    /// sample exists yet, which disables auto-tuning).
    pub fn poll_update(&mut self, now: Instant, rtt: Duration) -> Option<u64> {
        if !self.update_due() {
            return None;
        }
        if std::mem::take(&mut self.resend) && !self.update_due() {
            return Some(self.max);
        }
        if let Some(prev) = self.last_update {
            if !rtt.is_zero() && now.saturating_duration_since(prev) < rtt.saturating_mul(2) {
                self.window = self.window.saturating_mul(2).min(self.max_window);
            }
        }
        self.last_update = Some(now);
        self.max = self.max.max(self.consumed.saturating_add(self.window).min(crate::varint::MAX));
        Some(self.max)
    }

    /// The update carrying `max` was lost: repeat it if it is still the current limit.
    pub fn on_update_lost(&mut self, max: u64) {
        if max == self.max {
            self.resend = true;
        }
    }

    /// Drops any pending repeat of a lost update (the stream no longer needs credit).
    pub fn cancel_update(&mut self) {
        self.resend = false;
    }

    /// Grows the window to at least `window` (bounded by the maximum), e.g. to keep the
    /// connection window ahead of a stream window that auto-tuning enlarged.
    pub fn ensure_window(&mut self, window: u64) {
        self.window = self.window.max(window.min(self.max_window));
    }
}

/// Send-side credit: the peer's limit, what we used, and DATA_BLOCKED /
/// STREAM_DATA_BLOCKED signalling (once per limit value).
#[derive(Clone, Debug)]
pub struct SendFlow {
    max: u64,
    used: u64,
    blocked_at: Option<u64>,
    blocked_pending: bool,
}

impl SendFlow {
    /// A limit of `max` bytes, none used.
    pub fn new(max: u64) -> Self {
        Self { max, used: 0, blocked_at: None, blocked_pending: false }
    }

    /// The peer's current limit.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Credit used so far.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Credit left.
    pub fn available(&self) -> u64 {
        self.max.saturating_sub(self.used)
    }

    /// Uses `n` bytes of credit (clamped to what is available).
    pub fn consume(&mut self, n: u64) {
        debug_assert!(n <= self.available());
        self.used = self.used.saturating_add(n).min(self.max.max(self.used));
    }

    /// A new limit from the peer; returns whether it raised the limit.
    pub fn on_max(&mut self, max: u64) -> bool {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-4.1
        //# A sender MUST ignore any MAX_STREAM_DATA or MAX_DATA frames that do
        //# not increase flow control limits.
        if max > self.max {
            self.max = max;
            self.blocked_pending = false;
            true
        } else {
            false
        }
    }

    /// Replaces the limit, lower ones included: the remembered 0-RTT limit gives way to the
    /// handshake's after 0-RTT was rejected (RFC 9000 §7.4.1). The caller checks that the
    /// credit already used fits.
    pub fn reset_max(&mut self, max: u64) {
        self.max = max;
        self.blocked_at = None;
        self.blocked_pending = false;
    }

    /// We have data the limit stops us from sending: queue a BLOCKED signal unless one was
    /// already queued for this limit value.
    pub fn on_blocked(&mut self) {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-4.1
        //# A sender SHOULD send a
        //# STREAM_DATA_BLOCKED or DATA_BLOCKED frame to indicate to the receiver
        //# that it has data to write but is blocked by flow control limits.
        if self.available() == 0 && self.blocked_at != Some(self.max) {
            self.blocked_at = Some(self.max);
            self.blocked_pending = true;
        }
    }

    /// Whether a BLOCKED signal is waiting to be sent.
    pub fn blocked_pending(&self) -> bool {
        self.blocked_pending && self.available() == 0
    }

    /// The limit to report in a BLOCKED frame, if one is due.
    pub fn poll_blocked(&mut self) -> Option<u64> {
        let due = self.blocked_pending();
        self.blocked_pending = false;
        due.then_some(self.max)
    }

    /// The BLOCKED frame for `limit` was lost: repeat it if we are still blocked at it.
    pub fn on_blocked_lost(&mut self, limit: u64) {
        if limit == self.max && self.available() == 0 {
            self.blocked_pending = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Instant {
        #[allow(clippy::disallowed_methods)]
        Instant::now()
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-4.1
    //= type=test
    //# A receiver MUST close the connection with an error of type
    //# FLOW_CONTROL_ERROR if the sender violates the advertised connection
    //# or stream data limits; see Section 11 for details on error handling.
    #[test]
    fn error_exactly_at_limit_plus_one() {
        let mut f = RecvFlow::new(1000, 1000);
        assert!(f.on_received(1000).is_ok());
        let e = f.on_received(1001).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FLOW_CONTROL_ERROR);
        assert_eq!(f.received(), 1000);
    }

    #[test]
    fn update_when_half_window_consumed() {
        let t = base();
        let mut f = RecvFlow::new(1000, 1000);
        f.on_received(1000).unwrap();
        f.on_consumed(499);
        assert!(!f.update_due());
        assert_eq!(f.poll_update(t, Duration::ZERO), None);
        f.on_consumed(1);
        assert_eq!(f.poll_update(t, Duration::ZERO), Some(1500));
        assert_eq!(f.poll_update(t, Duration::ZERO), None);
        // Lost update is repeated once, a stale one is not.
        f.on_update_lost(1000);
        assert_eq!(f.poll_update(t, Duration::ZERO), None);
        f.on_update_lost(1500);
        assert_eq!(f.poll_update(t, Duration::ZERO), Some(1500));
        assert_eq!(f.poll_update(t, Duration::ZERO), None);
    }

    /// Reads `rounds` half-windows, issuing an update after each, `gap` apart.
    fn run(gap: Duration, rtt: Duration, rounds: u32) -> u64 {
        let t0 = base();
        let mut f = RecvFlow::new(1000, 16_000);
        let mut now = t0;
        for _ in 0..rounds {
            let half = f.window() / 2;
            let total = f.consumed() + half;
            f.on_received(total).unwrap();
            f.on_consumed(half);
            now += gap;
            assert!(f.poll_update(now, rtt).is_some());
        }
        f.window()
    }

    #[test]
    fn autotune_grows_when_fast_only() {
        let rtt = Duration::from_millis(50);
        // Half a window consumed every RTT (< 2 RTT): doubles each round up to the cap.
        assert_eq!(run(rtt, rtt, 3), 4000);
        assert_eq!(run(rtt, rtt, 10), 16_000);
        // Half a window every 3 RTTs: the window is not the bottleneck, no growth.
        assert_eq!(run(rtt * 3, rtt, 10), 1000);
        // No RTT sample: no tuning.
        assert_eq!(run(Duration::from_millis(1), Duration::ZERO, 10), 1000);
    }

    #[test]
    fn connection_window_follows_streams() {
        let mut f = RecvFlow::new(100, 400);
        f.ensure_window(1000);
        assert_eq!(f.window(), 400);
        f.ensure_window(10);
        assert_eq!(f.window(), 400);
    }

    #[test]
    fn blocked_once_per_limit() {
        let mut s = SendFlow::new(10);
        s.on_blocked();
        assert_eq!(s.poll_blocked(), None, "not blocked while credit remains");
        s.consume(10);
        s.on_blocked();
        s.on_blocked();
        assert_eq!(s.poll_blocked(), Some(10));
        s.on_blocked();
        assert_eq!(s.poll_blocked(), None, "only once for limit 10");
        s.on_blocked_lost(10);
        assert_eq!(s.poll_blocked(), Some(10), "a lost signal is repeated");
        assert!(!s.on_max(5), "smaller limits are ignored");
        assert!(s.on_max(20));
        s.on_blocked_lost(10);
        assert_eq!(s.poll_blocked(), None, "stale loss");
        s.consume(10);
        s.on_blocked();
        assert_eq!(s.poll_blocked(), Some(20));
    }
}
