//! CUBIC congestion control (RFC 9438), with HyStart++ (RFC 9406) in the initial slow start.

use std::time::{Duration, Instant};

use super::hystart::{HyStart, Step};
use super::{initial_window, minimum_window, Config, Controller};
use crate::recovery::RttEstimator;

//= https://www.rfc-editor.org/rfc/rfc9438#section-5.1
//# Therefore, _C_ SHOULD be set to 0.4.
/// C, in segments per second cubed.
pub const CUBIC_C: f64 = 0.4;

//= https://www.rfc-editor.org/rfc/rfc9438#section-4.6
//# The parameter β_cubic SHOULD be set to 0.7.
/// β_cubic, the multiplicative decrease factor.
pub const CUBIC_BETA: f64 = 0.7;

/// α_cubic = 3 * (1 - β_cubic) / (1 + β_cubic), the Reno-friendly additive increase.
const CUBIC_ALPHA: f64 = 3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA);

/// The CUBIC controller. Windows are kept in bytes; RFC 9438's segment formulas are scaled by
/// max_datagram_size, and `segments_acked` is replaced by acknowledged bytes (RFC 9438 §4.1).
///
/// The growth of Figure 1 is applied per acknowledged packet in proportion to its size (so an
/// ACK covering a whole window moves the window to the target), the usual byte-counting
/// reading of "per received new ACK" for QUIC, where one ACK covers many packets.
#[derive(Clone, Debug)]
pub struct Cubic {
    mds: u16,
    window: u64,
    ssthresh: u64,
    recovery_start: Option<Instant>,
    /// W_max in bytes; 0 when undefined (never reduced, or after persistent congestion).
    w_max: f64,
    /// cwnd_prior in bytes.
    cwnd_prior: f64,
    /// K in seconds.
    k: f64,
    /// t_epoch, shifted forward over application-limited and idle periods.
    t_epoch: Option<Instant>,
    /// W_est in bytes.
    w_est: f64,
    /// Fractional bytes of growth not yet added to the window.
    growth_frac: f64,
    /// Last acknowledgment (or idle restart) time, to measure application-limited periods.
    last_ack: Option<Instant>,
    hystart: Option<HyStart>,
    initial_override: Option<u64>,
    fresh: bool,
}

impl Cubic {
    /// A controller in slow start with the configured initial window.
    pub fn new(config: &Config) -> Self {
        Self {
            mds: config.max_datagram_size(),
            window: config.initial_window(),
            ssthresh: u64::MAX,
            recovery_start: None,
            w_max: 0.0,
            cwnd_prior: 0.0,
            k: 0.0,
            t_epoch: None,
            w_est: 0.0,
            growth_frac: 0.0,
            last_ack: None,
            hystart: config.hystart().then(HyStart::default),
            initial_override: config.initial_window_override(),
            fresh: true,
        }
    }

    /// W_max in bytes (0 while undefined).
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// K in seconds for the current congestion avoidance stage.
    pub fn k(&self) -> f64 {
        self.k
    }

    /// Whether HyStart++'s Conservative Slow Start is in progress.
    pub fn in_conservative_slow_start(&self) -> bool {
        self.hystart.as_ref().is_some_and(HyStart::in_css)
    }

    fn mds_f(&self) -> f64 {
        f64::from(self.mds)
    }

    /// W_cubic(t) in bytes, `t` in seconds since t_epoch.
    //= https://www.rfc-editor.org/rfc/rfc9438#section-4.2
    //# CUBIC uses the following window increase function:
    fn w_cubic(&self, t: f64) -> f64 {
        CUBIC_C * (t - self.k).powi(3) * self.mds_f() + self.w_max
    }

    fn in_recovery(&self, time_sent: Instant) -> bool {
        self.recovery_start.is_some_and(|start| time_sent <= start)
    }

    /// Starts a congestion avoidance stage at `now`.
    //= https://www.rfc-editor.org/rfc/rfc9438#section-4.3
    //# _W_est_ is set equal to _cwnd_epoch_ at the start of the congestion
    //# avoidance stage.
    fn start_epoch(&mut self, now: Instant) {
        let cwnd_epoch = self.window as f64;
        self.t_epoch = Some(now);
        self.w_est = cwnd_epoch;
        self.growth_frac = 0.0;
        //= https://www.rfc-editor.org/rfc/rfc9438#section-4.8
        //# During the first congestion avoidance stage after a timeout, CUBIC
        //# increases its congestion window size using Figure 1, where _t_ is the
        //# elapsed time since the beginning of the current congestion avoidance
        //# stage, _K_ is set to 0, and _W_max_ is set to the congestion window
        //# size at the beginning of the current congestion avoidance stage.
        if self.w_max <= cwnd_epoch {
            self.w_max = cwnd_epoch;
            self.k = 0.0;
        } else {
            // K = cubic_root((W_max - cwnd_epoch) / C), windows in segments.
            self.k = ((self.w_max - cwnd_epoch) / self.mds_f() / CUBIC_C).cbrt();
        }
    }

    fn congestion_avoidance(&mut self, now: Instant, bytes: u64, rtt: &RttEstimator) {
        let t_epoch = match self.t_epoch {
            Some(t) => t,
            None => {
                self.start_epoch(now);
                now
            }
        };
        let t = now.saturating_duration_since(t_epoch).as_secs_f64();
        let window = self.window as f64;
        //= https://www.rfc-editor.org/rfc/rfc9438#section-4.2
        //# Upon receiving a new ACK during congestion avoidance, CUBIC computes
        //# the _target_ congestion window size after the next _RTT_ using
        //# Figure 1 as follows, where _RTT_ is the smoothed round-trip time.
        let target = self.w_cubic(t + rtt.smoothed().as_secs_f64()).clamp(window, 1.5 * window);

        //= https://www.rfc-editor.org/rfc/rfc9438#section-4.3
        //# Once _W_est_ has grown to reach the _cwnd_ at the time of most
        //# recently setting _ssthresh_ -- that is, _W_est_ >= _cwnd_prior_ --
        //# the sender SHOULD set α__cubic_ to 1 to ensure that it can achieve
        //# the same congestion window increment rate as Reno, which uses AIMD(1,
        //# 0.5).
        let alpha = if self.w_est >= self.cwnd_prior { 1.0 } else { CUBIC_ALPHA };
        // W_est += α * segments_acked / cwnd, in bytes.
        self.w_est += alpha * bytes as f64 * self.mds_f() / window;

        //= https://www.rfc-editor.org/rfc/rfc9438#section-4.3
        //# If so, CUBIC is in the
        //# Reno-friendly region and _cwnd_ SHOULD be set to _W_est_ at each
        //# reception of a new ACK.
        if self.w_cubic(t) < self.w_est {
            self.window = self.window.max(self.w_est as u64);
            self.growth_frac = 0.0;
            return;
        }
        //= https://www.rfc-editor.org/rfc/rfc9438#section-4.4
        //# In this region, _cwnd_ MUST be incremented by (target - cwnd)/cwnd
        //# for each received new ACK, where _target_ is calculated as described
        //# in Section 4.2.
        //= https://www.rfc-editor.org/rfc/rfc9438#section-4.5
        //# In this region, _cwnd_ MUST be incremented by (target - cwnd)/cwnd
        //# for each received new ACK, where _target_ is calculated as described
        //# in Section 4.2.
        self.growth_frac += (target - window) * bytes as f64 / window;
        let whole = self.growth_frac.floor();
        self.growth_frac -= whole;
        self.window = self.window.saturating_add(whole as u64);
    }
}

impl Controller for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    fn on_packet_sent(&mut self, now: Instant, _bytes: u64, bytes_in_flight: u64) {
        // Restarting after idle: the idle period is not part of t (RFC 9438 §5.8).
        if bytes_in_flight == 0 {
            if let (Some(epoch), Some(last)) = (self.t_epoch, self.last_ack) {
                self.t_epoch = Some(epoch + now.saturating_duration_since(last));
                self.last_ack = Some(now);
            }
        }
    }

    fn on_ack(
        &mut self,
        now: Instant,
        time_sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.fresh = false;
        let since_last = self.last_ack.map_or(Duration::ZERO, |l| now.saturating_duration_since(l));
        self.last_ack = Some(now);
        if self.in_recovery(time_sent) {
            return;
        }
        //= https://www.rfc-editor.org/rfc/rfc9438#section-4.2
        //# The elapsed time _t_ in Figure 1 MUST NOT include periods during
        //# which _cwnd_ has not been updated due to application-limited behavior
        //# (see Section 5.8).
        //= https://www.rfc-editor.org/rfc/rfc9438#section-4.6
        //# Implementations
        //# that use _cwnd_ MUST use other measures to prevent _cwnd_ from
        //# growing when the volume of bytes in flight is smaller than
        //# _cwnd_.
        if app_limited {
            if let Some(epoch) = self.t_epoch {
                self.t_epoch = Some(epoch + since_last);
            }
            return;
        }
        if self.window < self.ssthresh {
            let latest = rtt.has_sample().then(|| rtt.latest());
            let step = match self.hystart.as_mut() {
                Some(h) => h.on_ack(now, time_sent, latest),
                None => Step::Grow(1),
            };
            match step {
                Step::Grow(divisor) => self.window = self.window.saturating_add(bytes / divisor),
                //= https://www.rfc-editor.org/rfc/rfc9438#section-4.10
                //# In this special case, CUBIC sets _cwnd_prior = cwnd_ and switches to
                //# congestion avoidance.
                Step::Exit => {
                    self.hystart = None;
                    self.ssthresh = self.window;
                    self.cwnd_prior = self.window as f64;
                    self.w_max = 0.0;
                    self.t_epoch = None;
                }
            }
            return;
        }
        self.congestion_avoidance(now, bytes, rtt);
    }

    fn on_congestion_event(&mut self, now: Instant, time_sent: Instant) {
        self.fresh = false;
        if self.in_recovery(time_sent) {
            return;
        }
        self.recovery_start = Some(now);
        // HyStart++ runs in the initial slow start only.
        self.hystart = None;
        let cwnd = self.window as f64;
        //= https://www.rfc-editor.org/rfc/rfc9438#section-4.7
        //# To speed up this
        //# bandwidth release by existing flows, the following fast convergence
        //# mechanism SHOULD be implemented.
        self.w_max = if cwnd < self.w_max { cwnd * (1.0 + CUBIC_BETA) / 2.0 } else { cwnd };
        self.cwnd_prior = cwnd;
        self.ssthresh = ((cwnd * CUBIC_BETA).round() as u64).max(minimum_window(self.mds));
        self.window = self.ssthresh;
        self.t_epoch = None;
        self.growth_frac = 0.0;
    }

    fn on_persistent_congestion(&mut self, _now: Instant) {
        self.window = minimum_window(self.mds);
        self.recovery_start = None;
        self.w_max = 0.0;
        self.t_epoch = None;
        self.growth_frac = 0.0;
    }

    fn set_max_datagram_size(&mut self, max_datagram_size: u16) {
        self.mds = max_datagram_size;
        if self.fresh {
            self.window =
                self.initial_override.unwrap_or_else(|| initial_window(max_datagram_size));
        }
        self.window = self.window.max(minimum_window(max_datagram_size));
        // K depends on the segment size: recompute it at the next acknowledgment.
        self.t_epoch = None;
    }

    fn max_datagram_size(&self) -> u16 {
        self.mds
    }
}

#[cfg(test)]
#[path = "tests/cubic.rs"]
mod tests;
