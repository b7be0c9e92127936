//! HyStart++ (RFC 9406): leave the initial slow start on a sustained RTT rise, via CSS.

use std::time::{Duration, Instant};

//= https://www.rfc-editor.org/rfc/rfc9406#section-4.3
//# It is RECOMMENDED that a HyStart++ implementation use the following
//# constants:
/// MIN_RTT_THRESH.
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
/// MAX_RTT_THRESH.
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
/// MIN_RTT_DIVISOR.
const MIN_RTT_DIVISOR: u32 = 8;
/// N_RTT_SAMPLE.
const N_RTT_SAMPLE: u32 = 8;
/// CSS_GROWTH_DIVISOR.
pub(crate) const CSS_GROWTH_DIVISOR: u64 = 4;
/// CSS_ROUNDS.
const CSS_ROUNDS: u32 = 5;
// L = infinity: Peregrine paces, so slow start growth per ACK is not capped.

/// What slow start should do with an acknowledgment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Grow by the acknowledged bytes divided by this.
    Grow(u64),
    /// Leave slow start: set ssthresh to the window and enter congestion avoidance.
    Exit,
}

/// HyStart++ state for one connection's initial slow start.
#[derive(Clone, Debug, Default)]
pub(crate) struct HyStart {
    /// Packets sent at or after this time belong to the next round.
    round_start: Option<Instant>,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
    /// Time of the last ACK counted, so several packets acknowledged together count once.
    last_sample_at: Option<Instant>,
    /// Set while in Conservative Slow Start.
    css_baseline: Option<Duration>,
    css_rounds: u32,
}

impl HyStart {
    /// Whether Conservative Slow Start is in progress.
    pub(crate) fn in_css(&self) -> bool {
        self.css_baseline.is_some()
    }

    /// One acknowledged packet (sent at `time_sent`) in slow start, with the RTT estimator's
    /// latest sample (`None` before the first).
    pub(crate) fn on_ack(
        &mut self,
        now: Instant,
        time_sent: Instant,
        latest: Option<Duration>,
    ) -> Step {
        if self.round_start.is_none_or(|r| time_sent >= r) {
            self.last_round_min = self.current_round_min.take();
            self.samples = 0;
            self.round_start = Some(now);
            if self.in_css() {
                self.css_rounds += 1;
                if self.css_rounds >= CSS_ROUNDS {
                    return Step::Exit;
                }
            }
        }
        if let Some(rtt) = latest.filter(|_| self.last_sample_at != Some(now)) {
            self.last_sample_at = Some(now);
            self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
            self.samples += 1;
        }
        let (Some(current), true) = (self.current_round_min, self.samples >= N_RTT_SAMPLE) else {
            return self.growth();
        };
        match (self.css_baseline, self.last_round_min) {
            (None, Some(last)) => {
                let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if current >= last + thresh {
                    self.css_baseline = Some(current);
                    self.css_rounds = 0;
                }
            }
            // The RTT rise was spurious: resume slow start.
            (Some(baseline), _) if current < baseline => self.css_baseline = None,
            _ => {}
        }
        self.growth()
    }

    fn growth(&self) -> Step {
        Step::Grow(if self.in_css() { CSS_GROWTH_DIVISOR } else { 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Round `idx` (rounds are 100 ms apart): `acks` ACKs 1 ms apart, each acknowledging
    /// `per_ack` packets sent 50 ms before the round began (so after the previous round
    /// began), all with RTT sample `rtt`. Returns the last step (stopping at an exit).
    fn round(
        h: &mut HyStart,
        t0: Instant,
        idx: u64,
        acks: u64,
        per_ack: u64,
        rtt: Duration,
    ) -> Step {
        let start = t0 + ms(100 * (idx + 1));
        let mut step = Step::Grow(1);
        for i in 0..acks {
            for _ in 0..per_ack {
                step = h.on_ack(start + ms(i), start - ms(50), Some(rtt));
                if step == Step::Exit {
                    return step;
                }
            }
        }
        step
    }

    #[test]
    fn rtt_rise_enters_css_then_exits_after_five_rounds() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut h = HyStart::default();
        // Two rounds at 100 ms establish the baseline.
        assert_eq!(round(&mut h, t0, 0, 10, 1, ms(100)), Step::Grow(1));
        assert_eq!(round(&mut h, t0, 1, 10, 1, ms(100)), Step::Grow(1));
        // Threshold: clamp(100 / 8, 4, 16) = 12.5 ms. 112 ms is not enough...
        assert_eq!(round(&mut h, t0, 2, 10, 1, ms(112)), Step::Grow(1));
        assert!(!h.in_css());
        // ...but 126 >= 112 + clamp(112 / 8) = 126 is.
        assert_eq!(round(&mut h, t0, 3, 10, 1, ms(126)), Step::Grow(CSS_GROWTH_DIVISOR));
        assert!(h.in_css());
        // The entry round counts: four more round boundaries stay in CSS...
        for idx in 4..8 {
            let step = round(&mut h, t0, idx, 10, 1, ms(126));
            assert_eq!(step, Step::Grow(CSS_GROWTH_DIVISOR), "round {idx}");
        }
        // ...and the fifth ends CSS_ROUNDS.
        assert_eq!(round(&mut h, t0, 8, 1, 1, ms(126)), Step::Exit);
    }

    #[test]
    fn too_few_samples_or_spurious_rise() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut h = HyStart::default();
        round(&mut h, t0, 0, 10, 1, ms(50));
        // Seven samples of a big rise: below N_RTT_SAMPLE, no decision.
        assert_eq!(round(&mut h, t0, 1, 7, 1, ms(90)), Step::Grow(1));
        assert!(!h.in_css());
        round(&mut h, t0, 2, 10, 1, ms(50));
        round(&mut h, t0, 3, 10, 1, ms(80));
        assert!(h.in_css(), "80 >= 50 + 6.25");
        // A round whose minimum falls below the CSS baseline resumes slow start.
        assert_eq!(round(&mut h, t0, 4, 10, 1, ms(60)), Step::Grow(1));
        assert!(!h.in_css());
    }

    #[test]
    fn packets_acked_together_count_as_one_sample() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut h = HyStart::default();
        round(&mut h, t0, 0, 10, 1, ms(100));
        // 20 packets in 2 ACKs: only two samples, so no CSS despite the rise.
        round(&mut h, t0, 1, 2, 10, ms(200));
        assert!(!h.in_css());
        // The same rise over 8 ACKs is detected.
        round(&mut h, t0, 2, 8, 1, ms(300));
        assert!(h.in_css());
    }
}
