//! Round-trip time estimation: latest, min, smoothed RTT and rttvar (RFC 9002 §5).

use std::time::{Duration, Instant};

//= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.2
//# When no previous RTT is available, the initial RTT
//# SHOULD be set to 333 milliseconds.
/// The RTT assumed before any sample (kInitialRtt).
pub const INITIAL_RTT: Duration = Duration::from_millis(333);

//= https://www.rfc-editor.org/rfc/rfc9002#section-6.1.2
//# The RECOMMENDED value of the timer granularity
//# (kGranularity) is 1 millisecond.
/// Timer granularity (kGranularity).
pub const GRANULARITY: Duration = Duration::from_millis(1);

/// The RTT estimator of one path (RFC 9002 §5).
///
/// Before the first sample `smoothed = initial`, `rttvar = initial / 2`, `min = latest = 0`.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    latest: Duration,
    min: Duration,
    smoothed: Duration,
    var: Duration,
    first_sample: Option<Instant>,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new(INITIAL_RTT)
    }
}

impl RttEstimator {
    /// A fresh estimator assuming `initial_rtt` (use [`INITIAL_RTT`] unless a previous
    /// connection's smoothed RTT is known).
    //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.2
    //# Resumed connections over the same network MAY use the previous
    //# connection's final smoothed RTT value as the resumed connection's
    //# initial RTT.
    pub fn new(initial_rtt: Duration) -> Self {
        Self {
            latest: Duration::ZERO,
            min: Duration::ZERO,
            smoothed: initial_rtt,
            var: initial_rtt / 2,
            first_sample: None,
        }
    }

    /// Feeds one RTT sample: `latest_rtt` is `ack_time - send_time_of_largest_acked`, `ack_delay`
    /// the peer-reported delay (already decoded), `max_ack_delay` the peer's transport parameter.
    /// `now` is recorded as the time of the first sample.
    pub fn update(
        &mut self,
        now: Instant,
        latest_rtt: Duration,
        ack_delay: Duration,
        max_ack_delay: Duration,
        handshake_confirmed: bool,
    ) {
        self.latest = latest_rtt;
        if self.first_sample.is_none() {
            //= https://www.rfc-editor.org/rfc/rfc9002#section-5.2
            //# min_rtt MUST be set to the latest_rtt on the first RTT sample.
            self.min = latest_rtt;
            self.smoothed = latest_rtt;
            self.var = latest_rtt / 2;
            self.first_sample = Some(now);
            return;
        }
        //= https://www.rfc-editor.org/rfc/rfc9002#section-5.2
        //# min_rtt MUST be set to the lesser of min_rtt and latest_rtt
        //# (Section 5.1) on all other samples.
        self.min = self.min.min(latest_rtt);

        //= https://www.rfc-editor.org/rfc/rfc9002#section-5.3
        //# *  SHOULD ignore the peer's max_ack_delay until the handshake is
        //# confirmed;
        //= https://www.rfc-editor.org/rfc/rfc9002#section-5.3
        //# *  MUST use the lesser of the acknowledgment delay and the peer's
        //# max_ack_delay after the handshake is confirmed; and
        let ack_delay = if handshake_confirmed { ack_delay.min(max_ack_delay) } else { ack_delay };

        //= https://www.rfc-editor.org/rfc/rfc9002#section-5.3
        //# *  MUST NOT subtract the acknowledgment delay from the RTT sample if
        //# the resulting value is smaller than the min_rtt.
        let adjusted = match self.min.checked_add(ack_delay) {
            Some(floor) if latest_rtt >= floor => latest_rtt - ack_delay,
            _ => latest_rtt,
        };

        // Appendix A.7 order: rttvar uses the smoothed RTT before this sample.
        let var_sample = self.smoothed.abs_diff(adjusted);
        self.var = weighted(self.var, 3, var_sample, 1, 4);
        self.smoothed = weighted(self.smoothed, 7, adjusted, 1, 8);
    }

    /// The most recent sample (zero before the first).
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// The minimum sample seen, not adjusted for ack delay (zero before the first).
    pub fn min(&self) -> Duration {
        self.min
    }

    /// The smoothed RTT.
    pub fn smoothed(&self) -> Duration {
        self.smoothed
    }

    /// The RTT variation (rttvar).
    pub fn var(&self) -> Duration {
        self.var
    }

    /// When the first sample was taken, if any.
    pub fn first_sample_time(&self) -> Option<Instant> {
        self.first_sample
    }

    /// Whether at least one sample was taken.
    pub fn has_sample(&self) -> bool {
        self.first_sample.is_some()
    }

    /// `smoothed_rtt + max(4 * rttvar, kGranularity)`: the PTO period without max_ack_delay and
    /// backoff.
    //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.1
    //# The PTO period MUST be at least kGranularity to avoid the timer
    //# expiring immediately.
    pub fn pto_base(&self) -> Duration {
        self.smoothed.saturating_add(self.var.saturating_mul(4).max(GRANULARITY))
    }

    /// The time threshold for loss: `max(9/8 * max(smoothed_rtt, latest_rtt), kGranularity)`.
    //= https://www.rfc-editor.org/rfc/rfc9002#section-6.1.2
    //# To avoid declaring
    //# packets as lost too early, this time threshold MUST be set to at
    //# least the local timer granularity, as indicated by the kGranularity
    //# constant.
    //= https://www.rfc-editor.org/rfc/rfc9002#section-6.1.2
    //# The RECOMMENDED time threshold (kTimeThreshold), expressed as an RTT
    //# multiplier, is 9/8.
    pub fn loss_delay(&self) -> Duration {
        let base = self.smoothed.max(self.latest);
        weighted(base, 9, Duration::ZERO, 0, 8).max(GRANULARITY)
    }

    /// Resets min_rtt to the latest sample; called when persistent congestion is established.
    //= https://www.rfc-editor.org/rfc/rfc9002#section-5.2
    //# Endpoints SHOULD set the min_rtt to the newest RTT sample after
    //# persistent congestion is established.
    pub fn on_persistent_congestion(&mut self) {
        if self.has_sample() {
            self.min = self.latest;
        }
    }
}

/// `(a * wa + b * wb) / div`, in nanoseconds, saturating.
fn weighted(a: Duration, wa: u128, b: Duration, wb: u128, div: u128) -> Duration {
    let n = (a.as_nanos() * wa + b.as_nanos() * wb) / div;
    let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (n % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn initial_values() {
        let r = RttEstimator::default();
        assert_eq!(r.smoothed(), ms(333));
        assert_eq!(r.var(), Duration::from_micros(166_500));
        assert_eq!(r.min(), Duration::ZERO);
        assert!(!r.has_sample());
        // PTO base = 333 + 4 * 166.5 = 999 ms ("handshakes starting with a PTO of 1 second").
        assert_eq!(r.pto_base(), ms(999));
    }

    //= https://www.rfc-editor.org/rfc/rfc9002#section-5.2
    //= type=test
    //# min_rtt MUST be set to the latest_rtt on the first RTT sample.
    #[test]
    fn first_sample_resets_estimator() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut r = RttEstimator::default();
        // The ack delay is ignored on the first sample.
        r.update(t0, ms(100), ms(30), ms(25), true);
        assert_eq!(r.latest(), ms(100));
        assert_eq!(r.min(), ms(100));
        assert_eq!(r.smoothed(), ms(100));
        assert_eq!(r.var(), ms(50));
        assert_eq!(r.first_sample_time(), Some(t0));
        assert_eq!(r.pto_base(), ms(300));
        assert_eq!(r.loss_delay(), Duration::from_micros(112_500));
    }

    //= https://www.rfc-editor.org/rfc/rfc9002#section-5.3
    //= type=test
    //# *  MUST use the lesser of the acknowledgment delay and the peer's
    //# max_ack_delay after the handshake is confirmed; and
    #[test]
    fn ewma_exact_values() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut r = RttEstimator::default();
        r.update(t0, ms(100), ms(0), ms(25), true);
        // Sample 2: latest 180, ack_delay 40 capped to 25 -> adjusted 155.
        // rttvar = 3/4 * 50 + 1/4 * |100 - 155| = 37.5 + 13.75 = 51.25
        // smoothed = 7/8 * 100 + 1/8 * 155 = 87.5 + 19.375 = 106.875
        r.update(t0 + ms(200), ms(180), ms(40), ms(25), true);
        assert_eq!(r.var(), Duration::from_micros(51_250));
        assert_eq!(r.smoothed(), Duration::from_micros(106_875));
        assert_eq!(r.min(), ms(100));
        // Sample 3: latest 90 < min + delay (90 + 10): delay not subtracted; min drops to 90.
        // rttvar = 3/4 * 51.25 + 1/4 * |106.875 - 90| = 38.4375 + 4.21875 = 42.65625
        // smoothed = 7/8 * 106.875 + 1/8 * 90 = 93.515625 + 11.25 = 104.765625
        r.update(t0 + ms(300), ms(90), ms(10), ms(25), true);
        assert_eq!(r.min(), ms(90));
        assert_eq!(r.var(), Duration::from_nanos(42_656_250));
        assert_eq!(r.smoothed(), Duration::from_nanos(104_765_625));
        assert_eq!(r.latest(), ms(90));
    }

    //= https://www.rfc-editor.org/rfc/rfc9002#section-5.3
    //= type=test
    //# *  SHOULD ignore the peer's max_ack_delay until the handshake is
    //# confirmed;
    #[test]
    fn max_ack_delay_ignored_before_confirmation() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut r = RttEstimator::default();
        r.update(t0, ms(100), ms(0), ms(25), false);
        // ack_delay 40 is used in full: adjusted = 140 - 40 = 100.
        r.update(t0 + ms(200), ms(140), ms(40), ms(25), false);
        assert_eq!(r.smoothed(), ms(100));
        assert_eq!(r.var(), Duration::from_micros(37_500));
        // Same sample after confirmation: delay capped at 25, adjusted = 115.
        let mut c = RttEstimator::default();
        c.update(t0, ms(100), ms(0), ms(25), true);
        c.update(t0 + ms(200), ms(140), ms(40), ms(25), true);
        assert_eq!(c.smoothed(), Duration::from_micros(101_875));
    }

    //= https://www.rfc-editor.org/rfc/rfc9002#section-5.3
    //= type=test
    //# *  MUST NOT subtract the acknowledgment delay from the RTT sample if
    //# the resulting value is smaller than the min_rtt.
    #[test]
    fn ack_delay_not_subtracted_below_min_rtt() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut r = RttEstimator::default();
        r.update(t0, ms(100), ms(0), ms(25), true);
        // 110 - 20 = 90 < min 100: the raw 110 is used.
        r.update(t0 + ms(1), ms(110), ms(20), ms(25), true);
        assert_eq!(r.smoothed(), Duration::from_micros(101_250));
    }

    #[test]
    fn loss_delay_floor_and_persistent_congestion_reset() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut r = RttEstimator::default();
        r.update(t0, Duration::from_micros(400), ms(0), ms(0), true);
        // 9/8 * 0.4 ms = 0.45 ms < kGranularity.
        assert_eq!(r.loss_delay(), GRANULARITY);
        r.update(t0 + ms(1), ms(50), ms(0), ms(0), true);
        assert_eq!(r.min(), Duration::from_micros(400));
        r.on_persistent_congestion();
        assert_eq!(r.min(), ms(50));
    }
}
