//! NewReno congestion control (RFC 9002 §7 and Appendix B).

use std::time::Instant;

use super::{initial_window, minimum_window, Config, Controller};
use crate::recovery::RttEstimator;

/// kLossReductionFactor: the window is halved on a congestion event.
pub const LOSS_REDUCTION_FACTOR: (u64, u64) = (1, 2);

/// The RFC 9002 NewReno controller: slow start, one reduction per recovery period, additive
/// increase of one max_datagram_size per window acknowledged.
#[derive(Clone, Debug)]
pub struct NewReno {
    mds: u16,
    window: u64,
    ssthresh: u64,
    /// Start of the current recovery period: packets sent before it do not change the window.
    recovery_start: Option<Instant>,
    /// Bytes acknowledged in congestion avoidance since the last increase.
    bytes_acked: u64,
    initial_override: Option<u64>,
    /// No acknowledgment or congestion event yet: the window is still the initial one.
    fresh: bool,
}

impl NewReno {
    /// A controller in slow start with the configured initial window.
    pub fn new(config: &Config) -> Self {
        Self {
            mds: config.max_datagram_size(),
            window: config.initial_window(),
            ssthresh: u64::MAX,
            recovery_start: None,
            bytes_acked: 0,
            initial_override: config.initial_window_override(),
            fresh: true,
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc9002#section-7.3.2
    //# A recovery period ends and the sender enters congestion avoidance
    //# when a packet sent during the recovery period is acknowledged.
    fn in_recovery(&self, time_sent: Instant) -> bool {
        self.recovery_start.is_some_and(|start| time_sent <= start)
    }

    fn minimum(&self) -> u64 {
        minimum_window(self.mds)
    }
}

impl Controller for NewReno {
    fn name(&self) -> &'static str {
        "newreno"
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    fn on_packet_sent(&mut self, _now: Instant, _bytes: u64, _bytes_in_flight: u64) {}

    fn on_ack(
        &mut self,
        _now: Instant,
        time_sent: Instant,
        bytes: u64,
        app_limited: bool,
        _rtt: &RttEstimator,
    ) {
        self.fresh = false;
        //= https://www.rfc-editor.org/rfc/rfc9002#section-7.8
        //# When this occurs, the congestion window SHOULD NOT be increased in
        //# either slow start or congestion avoidance.
        if app_limited || self.in_recovery(time_sent) {
            return;
        }
        if self.window < self.ssthresh {
            //= https://www.rfc-editor.org/rfc/rfc9002#section-7.3.1
            //# While a sender is in slow start, the congestion window increases by
            //# the number of bytes acknowledged when each acknowledgment is
            //# processed.
            self.window = self.window.saturating_add(bytes);
        } else {
            //= https://www.rfc-editor.org/rfc/rfc9002#section-7.3.3
            //# A sender in congestion avoidance uses an Additive Increase
            //# Multiplicative Decrease (AIMD) approach that MUST limit the increase
            //# to the congestion window to at most one maximum datagram size for
            //# each congestion window that is acknowledged.
            self.bytes_acked += bytes;
            if self.bytes_acked >= self.window {
                self.bytes_acked -= self.window;
                self.window += u64::from(self.mds);
            }
        }
    }

    fn on_congestion_event(&mut self, now: Instant, time_sent: Instant) {
        self.fresh = false;
        //= https://www.rfc-editor.org/rfc/rfc9002#section-7.3.2
        //# A sender that is already in a recovery period stays in it and does not
        //# reenter it.
        if self.in_recovery(time_sent) {
            return;
        }
        self.recovery_start = Some(now);
        //= https://www.rfc-editor.org/rfc/rfc9002#section-7.3.2
        //# On entering a recovery period, a sender MUST set the slow start
        //# threshold to half the value of the congestion window when loss is
        //# detected.
        self.ssthresh = self.window * LOSS_REDUCTION_FACTOR.0 / LOSS_REDUCTION_FACTOR.1;
        //= https://www.rfc-editor.org/rfc/rfc9002#section-7.3.2
        //# The congestion window MUST be set to the reduced value of
        //# the slow start threshold before exiting the recovery period.
        self.window = self.ssthresh.max(self.minimum());
        self.bytes_acked = 0;
    }

    fn on_persistent_congestion(&mut self, _now: Instant) {
        self.window = self.minimum();
        self.recovery_start = None;
        self.bytes_acked = 0;
    }

    //= https://www.rfc-editor.org/rfc/rfc9002#section-7.2
    //# If the maximum datagram size changes during the connection, the
    //# initial congestion window SHOULD be recalculated with the new size.
    fn set_max_datagram_size(&mut self, max_datagram_size: u16) {
        self.mds = max_datagram_size;
        if self.fresh {
            self.window =
                self.initial_override.unwrap_or_else(|| initial_window(max_datagram_size));
        }
        self.window = self.window.max(self.minimum());
    }

    fn max_datagram_size(&self) -> u16 {
        self.mds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MDS: u64 = 1200;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Acknowledges one window's worth of full-sized packets sent at `sent`, one by one.
    fn ack_window(r: &mut NewReno, now: Instant, sent: Instant, rtt: &RttEstimator) {
        let packets = r.window() / MDS;
        for _ in 0..packets {
            r.on_ack(now, sent, MDS, false, rtt);
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc9002#section-7.3.1
    //= type=test
    //# While a sender is in slow start, the congestion window increases by
    //# the number of bytes acknowledged when each acknowledgment is
    //# processed.
    #[test]
    fn slow_start_doubles_per_rtt() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let rtt = RttEstimator::default();
        let mut r = NewReno::new(&Config::default());
        assert_eq!(r.window(), 12_000);
        for round in 1..=5u64 {
            let sent = t0 + ms(100 * (round - 1));
            ack_window(&mut r, sent + ms(100), sent, &rtt);
            assert_eq!(r.window(), 12_000 << round, "round {round}");
        }
        assert!(r.in_slow_start());
    }

    //= https://www.rfc-editor.org/rfc/rfc9002#section-7.3.2
    //= type=test
    //# On entering a recovery period, a sender MUST set the slow start
    //# threshold to half the value of the congestion window when loss is
    //# detected.
    #[test]
    fn halves_once_per_recovery_period() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let rtt = RttEstimator::default();
        let mut r = NewReno::new(&Config::default());
        ack_window(&mut r, t0 + ms(100), t0, &rtt);
        assert_eq!(r.window(), 24_000);
        // Loss of a packet sent at 150 ms, detected at 300 ms.
        r.on_congestion_event(t0 + ms(300), t0 + ms(150));
        assert_eq!((r.window(), r.ssthresh()), (12_000, 12_000));
        // More losses of packets sent before the recovery started: no further reduction.
        r.on_congestion_event(t0 + ms(310), t0 + ms(200));
        r.on_congestion_event(t0 + ms(320), t0 + ms(300));
        assert_eq!(r.window(), 12_000);
        // Acknowledgments of packets sent before recovery do not grow the window.
        r.on_ack(t0 + ms(330), t0 + ms(299), MDS, false, &rtt);
        assert_eq!(r.window(), 12_000);
        // A loss of a packet sent after the recovery started is a new event.
        r.on_congestion_event(t0 + ms(500), t0 + ms(301));
        assert_eq!((r.window(), r.ssthresh()), (6_000, 6_000));
        // Never below the minimum window.
        for i in 0..5 {
            r.on_congestion_event(t0 + ms(600 + 100 * i), t0 + ms(550 + 100 * i));
        }
        assert_eq!(r.window(), 2 * MDS);
    }

    //= https://www.rfc-editor.org/rfc/rfc9002#section-7.3.3
    //= type=test
    //# A sender in congestion avoidance uses an Additive Increase
    //# Multiplicative Decrease (AIMD) approach that MUST limit the increase
    //# to the congestion window to at most one maximum datagram size for
    //# each congestion window that is acknowledged.
    #[test]
    fn congestion_avoidance_one_mds_per_window() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let rtt = RttEstimator::default();
        let mut r = NewReno::new(&Config::default());
        r.on_congestion_event(t0, t0);
        assert_eq!(r.window(), 6_000);
        let sent = t0 + ms(1);
        // 4 packets (4800 bytes) of a 6000-byte window: no increase yet.
        for _ in 0..4 {
            r.on_ack(t0 + ms(100), sent, MDS, false, &rtt);
        }
        assert_eq!(r.window(), 6_000);
        // The 5th completes a window: +1 MDS, exactly once.
        r.on_ack(t0 + ms(100), sent, MDS, false, &rtt);
        assert_eq!(r.window(), 7_200);
        // Ten more windows' worth: +1 MDS per window, no more.
        for _ in 0..10 {
            ack_window(&mut r, t0 + ms(200), sent, &rtt);
        }
        assert_eq!(r.window(), 7_200 + 10 * MDS);
        assert!(!r.in_slow_start());
    }

    //= https://www.rfc-editor.org/rfc/rfc9002#section-7.8
    //= type=test
    //# When this occurs, the congestion window SHOULD NOT be increased in
    //# either slow start or congestion avoidance.
    #[test]
    fn app_limited_and_persistent_congestion() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let rtt = RttEstimator::default();
        let mut r = NewReno::new(&Config::default());
        for _ in 0..10 {
            r.on_ack(t0 + ms(100), t0, MDS, true, &rtt);
        }
        assert_eq!(r.window(), 12_000);
        r.on_congestion_event(t0 + ms(200), t0 + ms(150));
        r.on_persistent_congestion(t0 + ms(200));
        assert_eq!(r.window(), 2 * MDS);
        assert_eq!(r.ssthresh(), 6_000);
        assert!(r.in_slow_start(), "persistent congestion re-enters slow start");
        // The recovery period was cleared: packets sent earlier grow the window again.
        r.on_ack(t0 + ms(300), t0 + ms(100), MDS, false, &rtt);
        assert_eq!(r.window(), 3 * MDS);
    }

    #[test]
    fn datagram_size_changes() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut r = NewReno::new(&Config::default());
        r.set_max_datagram_size(1500);
        assert_eq!(r.window(), 14_720, "still the initial window: recomputed");
        r.on_congestion_event(t0, t0);
        r.on_persistent_congestion(t0);
        assert_eq!(r.window(), 3000);
        r.set_max_datagram_size(9000);
        assert_eq!(r.window(), 18_000, "raised to the new minimum window");
        assert_eq!(r.max_datagram_size(), 9000);
    }
}
