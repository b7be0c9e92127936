//! BBR's state machine driven by hand-made rate samples: one ACK per round trip, each
//! acknowledging a round's worth of data.

use std::time::{Duration, Instant};

use super::*;
use crate::congestion::{Controller, DeliveryState};

const MDS: u64 = 1200;
const RTT: Duration = Duration::from_millis(20);
/// 10 MB/s: a 200 kB BDP at 20 ms.
const RATE: u64 = 10_000_000;

/// A controller and a path that acknowledges one round of data per call.
struct Driver {
    bbr: Bbr,
    now: Instant,
    delivered: u64,
    lost: u64,
}

impl Driver {
    fn new() -> Self {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut bbr = Bbr::new(&Config::default());
        bbr.on_packet_sent(now, MDS, 0);
        Self { bbr, now, delivered: 0, lost: 0 }
    }

    /// One round: `acked` bytes delivered at `rate` with `rtt`, `lost` bytes lost, with
    /// `in_flight` left.
    fn round(&mut self, rate: u64, acked: u64, lost: u64, rtt: Duration, in_flight: u64) {
        self.now += rtt;
        let prior = self.delivered;
        self.delivered += acked;
        self.lost += lost;
        if lost > 0 {
            let sent = DeliveryState { tx_in_flight: acked + lost, ..Default::default() };
            self.bbr.on_packet_lost(self.now, lost, &sent, self.lost);
            self.bbr.on_congestion_event(self.now, self.now - rtt);
        }
        // Keep the window in use so that the controller sees a cwnd-limited sender.
        self.bbr.on_packet_sent(self.now, MDS, self.bbr.window().saturating_sub(MDS));
        let rs = RateSample {
            delivery_rate: rate,
            is_app_limited: false,
            interval: rtt,
            delivered: acked,
            prior_delivered: prior,
            rtt,
            tx_in_flight: acked + lost,
            lost,
            newly_acked: acked,
            newly_lost: lost,
            total_delivered: self.delivered,
            bytes_in_flight: in_flight,
        };
        self.bbr.on_ack_event(self.now, &rs);
    }
}

#[test]
fn startup_fills_the_pipe_then_drains_into_probe_bw() {
    let mut d = Driver::new();
    assert_eq!(d.bbr.state(), State::Startup);
    assert!(d.bbr.in_slow_start());
    // Growing bandwidth keeps Startup going.
    for rate in [1_000_000, 2_000_000, 4_000_000, 8_000_000] {
        d.round(rate, rate / 50, 0, RTT, 400_000);
        assert_eq!(d.bbr.state(), State::Startup, "still growing at {rate}");
    }
    assert!(d.bbr.pacing_rate().unwrap() > 2 * 8_000_000, "Startup paces at 2.77x");
    // 10 MB/s is still 25% more than 8 MB/s; then three rounds without 25% growth: the pipe
    // is full, Drain starts.
    for i in 0..4 {
        assert!(!d.bbr.full_bw_reached(), "full after {i} flat rounds");
        d.round(RATE, RATE / 50, 0, RTT, 400_000);
    }
    assert!(d.bbr.full_bw_reached());
    assert_eq!(d.bbr.state(), State::Drain);
    assert_eq!(d.bbr.max_bw(), RATE);
    let drain_rate = d.bbr.pacing_rate().unwrap();
    assert!(drain_rate < RATE / 2, "Drain paces below the estimate: {drain_rate}");
    // Once inflight is down to a BDP (200 kB), ProbeBW_DOWN, then CRUISE.
    d.round(RATE, RATE / 50, 0, RTT, 190_000);
    assert!(d.bbr.state().is_probe_bw(), "{:?}", d.bbr.state());
    d.round(RATE, RATE / 50, 0, RTT, 150_000);
    assert_eq!(d.bbr.state(), State::ProbeBwCruise);
    // The window is two BDPs (cwnd gain 2) plus the ACK aggregation seen: here each ACK
    // covers a whole round (a BDP at once), the most the aggregation term adds.
    let w = d.bbr.window();
    assert!((400_000..=600_000).contains(&w), "cwnd {w}");
    assert_eq!(d.bbr.bandwidth_estimate(), Some(RATE));
}

#[test]
fn heavy_loss_in_startup_ends_it_and_sets_inflight_hi() {
    let mut d = Driver::new();
    d.round(1_000_000, 20_000, 0, RTT, 40_000);
    d.round(2_000_000, 40_000, 0, RTT, 80_000);
    // A round with 10% loss: seven loss events (ACKs revealing losses) in one round, in
    // recovery, loss rate above 2%.
    // The first six ACKs are for packets of the round that started with round two's ACK;
    // the seventh starts the next round, when the check runs.
    let round_start = d.delivered;
    for i in 0..7 {
        d.now += Duration::from_millis(1);
        d.lost += 1200;
        let sent = DeliveryState { tx_in_flight: 80_000, ..Default::default() };
        d.bbr.on_packet_lost(d.now, 1200, &sent, d.lost);
        d.bbr.on_congestion_event(d.now, d.now - RTT);
        let prior = if i < 6 { round_start - 20_000 } else { round_start };
        d.delivered += 1200;
        let rs = RateSample {
            delivery_rate: 4_000_000,
            is_app_limited: false,
            interval: RTT,
            delivered: 10_000,
            prior_delivered: prior,
            rtt: RTT,
            tx_in_flight: 80_000,
            lost: d.lost,
            newly_acked: 1200,
            newly_lost: 1200,
            total_delivered: d.delivered,
            bytes_in_flight: 80_000,
        };
        d.bbr.on_ack_event(d.now, &rs);
    }
    assert!(d.bbr.full_bw_reached(), "high loss ends Startup");
    assert_ne!(d.bbr.state(), State::Startup);
    assert!(d.bbr.inflight_hi() < u64::MAX, "inflight_hi is set");
}

#[test]
fn probe_rtt_after_five_seconds_without_a_lower_rtt() {
    let mut d = Driver::new();
    for _ in 0..8 {
        d.round(RATE, RATE / 50, 0, RTT, 150_000);
    }
    assert!(d.bbr.state().is_probe_bw());
    assert_eq!(d.bbr.min_rtt(), Some(RTT));
    // RTT samples a little higher than the minimum for 5 s: ProbeRTT.
    let mut entered = false;
    for _ in 0..300 {
        d.round(RATE, RATE / 50, 0, RTT + Duration::from_millis(2), 150_000);
        if d.bbr.state() == State::ProbeRtt {
            entered = true;
            break;
        }
    }
    assert!(entered, "ProbeRTT within 5 s");
    // Its window is half a BDP (100 kB) at most.
    assert!(d.bbr.window() <= 100_000, "cwnd {}", d.bbr.window());
    // With inflight down to it, 200 ms and a round later it is over.
    for _ in 0..15 {
        d.round(RATE, 50_000, 0, RTT, 40_000);
    }
    assert!(d.bbr.state().is_probe_bw(), "back to ProbeBW: {:?}", d.bbr.state());
    assert!(d.bbr.window() > 100_000, "window restored: {}", d.bbr.window());
}

#[test]
fn loss_above_two_percent_while_probing_cuts_inflight_hi() {
    let mut d = Driver::new();
    for _ in 0..8 {
        d.round(RATE, RATE / 50, 0, RTT, 150_000);
    }
    // Run until ProbeBW_UP (the Reno-coexistence bound or the 2-3 s timer).
    let mut up = false;
    for _ in 0..200 {
        d.round(RATE, RATE / 50, 0, RTT, 150_000);
        if d.bbr.state() == State::ProbeBwUp {
            up = true;
            break;
        }
    }
    assert!(up, "a bandwidth probe starts within 4 s");
    let hi_before = d.bbr.inflight_hi();
    // 5% of a 250 kB flight lost while probing: too high.
    d.round(RATE, 237_500, 12_500, RTT, 150_000);
    // The probe stops (DOWN, and at once CRUISE: inflight is below the BDP already).
    let state = d.bbr.state();
    assert!(matches!(state, State::ProbeBwDown | State::ProbeBwCruise), "{state:?}");
    let hi = d.bbr.inflight_hi();
    assert!(hi < hi_before, "inflight_hi cut: {hi} from {hi_before}");
    assert!(hi >= 140_000, "by at most beta of the BDP: {hi}");
}

#[test]
fn max_filter_spans_two_periods() {
    let mut f = MaxFilter::default();
    f.update(10, 0);
    f.update(5, 1);
    assert_eq!(f.best(), 10);
    f.update(3, 2);
    assert_eq!(f.best(), 5, "period 0 expired");
    f.update(1, 5);
    assert_eq!(f.best(), 1, "a gap forgets everything older");
}
