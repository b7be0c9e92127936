//! BBR version 3 (draft-cardwell-ccwg-bbr): a model-based congestion controller. It estimates
//! the path's bottleneck bandwidth (a windowed max of delivery-rate samples, [`RateSample`])
//! and its round-trip propagation delay (a windowed min RTT), paces at a gain times the
//! bandwidth estimate, and bounds data in flight at a gain times their product (the BDP).
//!
//! The state machine: Startup (pacing gain 2.77, until the bandwidth stops growing by 25% for
//! three rounds, or loss is too high), Drain (drain the queue Startup built), ProbeBW with its
//! phases DOWN (0.9), CRUISE (1.0), REFILL (1.0) and UP (1.25) — one bandwidth probe every
//! 2-3 s or so many rounds — and ProbeRTT (every 5 s without a new min RTT, cut the window to
//! half the BDP for 200 ms and a round). Loss responses are BBRv3's: a round whose loss rate
//! exceeds 2% while probing sets `inflight_hi` (the upper bound), and any loss in a round
//! outside probing lowers `bw_lo`/`inflight_lo` (short-term bounds, multiplied by 0.7 at most
//! per round, reset at each probe).
//!
//! Code layout: this file holds the state, the per-ACK update ordering and the
//! [`Controller`] implementation; `model.rs` the estimators (rounds, max bandwidth, min RTT,
//! ACK aggregation, lower bounds), Startup/Drain/ProbeRTT and the pacing and window
//! computation; `probe_bw.rs` the ProbeBW cycle and the upper bound `inflight_hi`.
//!
//! Departures from the draft, each deliberate: windows in bytes rather than packets; ProbeBW_UP
//! also ends once a min RTT into it more than 1.25 BDP are in flight (the exit of the earlier
//! draft and of Linux's BBRv3: otherwise a window-limited probe grows `inflight_hi` until the
//! bottleneck buffer overflows); the loss
//! recovery response (packet conservation) is not applied — BBRv3's bounds already react to
//! loss, and on a path with random loss in every round conservation would keep the window at
//! the data in flight for good; samples taken during ProbeRTT are treated as
//! application-limited by BBR itself (it cannot mark the connection's sampler); and the
//! ACK-aggregation max filter is a two-bucket approximation of a 10-round window.

mod model;
mod probe_bw;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use super::{minimum_window, Config, Controller, DeliveryState, RateSample};
use crate::recovery::RttEstimator;

/// Startup pacing gain, 4 ln 2: doubles the sending rate every round.
pub const STARTUP_PACING_GAIN: f64 = 2.77;
/// Drain pacing gain, about the inverse of Startup's.
const DRAIN_PACING_GAIN: f64 = 0.35;
/// Window gain in Startup, Drain and ProbeBW.
const DEFAULT_CWND_GAIN: f64 = 2.0;
/// Window gain in ProbeBW_UP (draft-cardwell-ccwg-bbr: 2.25).
const PROBE_UP_CWND_GAIN: f64 = 2.25;
/// Loss rate over a round above which inflight is too high.
pub const LOSS_THRESH: f64 = 0.02;
/// Multiplicative decrease of the bounds on loss.
pub const BETA: f64 = 0.7;
/// Headroom left below `inflight_hi` when cruising, for other flows.
const HEADROOM: f64 = 0.15;
/// Pacing margin: pace 1% below the estimate so that no queue builds.
const PACING_MARGIN: f64 = 0.01;
/// Loss events in a Startup round (with the loss rate too high) that end Startup.
const STARTUP_FULL_LOSS_COUNT: u32 = 6;
/// Rounds without 25% bandwidth growth that fill the pipe.
const FULL_BW_ROUNDS: u32 = 3;
/// Growth that counts as bandwidth still growing.
const FULL_BW_THRESH: f64 = 1.25;
/// Length of the min RTT filter.
pub const MIN_RTT_FILTER_LEN: Duration = Duration::from_secs(10);
/// How often ProbeRTT runs without a fresh min RTT sample.
pub const PROBE_RTT_INTERVAL: Duration = Duration::from_secs(5);
/// Time spent in ProbeRTT (at least one round too).
pub const PROBE_RTT_DURATION: Duration = Duration::from_millis(200);
/// ProbeRTT's window as a fraction of the BDP.
const PROBE_RTT_CWND_GAIN: f64 = 0.5;
/// Smallest window BBR keeps, in datagrams.
const MIN_PIPE_CWND_PACKETS: u64 = 4;
/// Most rounds between bandwidth probes (Reno coexistence).
const MAX_PROBE_ROUNDS: u64 = 63;
/// Rounds the ACK aggregation filter spans (two buckets of half of it).
const EXTRA_ACKED_ROUNDS: u64 = 10;
/// Largest send quantum (offload burst), in bytes.
const MAX_SEND_QUANTUM: u64 = 64 * 1024;

/// The states of BBR (ProbeBW split into its phases).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Exponential search for the bandwidth.
    Startup,
    /// Draining the queue Startup built.
    Drain,
    /// ProbeBW_DOWN: pacing below the estimate to drain any queue.
    ProbeBwDown,
    /// ProbeBW_CRUISE: pacing at the estimate, with headroom below `inflight_hi`.
    ProbeBwCruise,
    /// ProbeBW_REFILL: one round at the estimate with the short-term bounds lifted.
    ProbeBwRefill,
    /// ProbeBW_UP: pacing above the estimate to find more bandwidth.
    ProbeBwUp,
    /// Window cut to find the propagation delay.
    ProbeRtt,
}

impl State {
    /// A ProbeBW phase.
    pub fn is_probe_bw(self) -> bool {
        matches!(
            self,
            State::ProbeBwDown | State::ProbeBwCruise | State::ProbeBwRefill | State::ProbeBwUp
        )
    }
}

/// Where the ACKs stand relative to a bandwidth probe (BBR.ack_phase).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AckPhase {
    Init,
    ProbeStarting,
    ProbeFeedback,
    ProbeStopping,
    Refilling,
}

/// A max over the current and the previous period (BBR's 2-cycle bandwidth filter, and the
/// bucketed ACK aggregation filter).
#[derive(Clone, Copy, Debug, Default)]
struct MaxFilter {
    period: u64,
    current: u64,
    previous: u64,
}

impl MaxFilter {
    fn update(&mut self, value: u64, period: u64) {
        if period != self.period {
            self.previous = if period == self.period + 1 { self.current } else { 0 };
            self.current = 0;
            self.period = period;
        }
        self.current = self.current.max(value);
    }

    fn best(&self) -> u64 {
        self.current.max(self.previous)
    }
}

/// "Infinity" for the bounds.
const INF: u64 = u64::MAX;

/// The BBRv3 controller. See the module documentation.
#[derive(Clone, Debug)]
pub struct Bbr {
    mds: u16,
    initial_cwnd: u64,
    cwnd: u64,
    state: State,
    pacing_gain: f64,
    cwnd_gain: f64,
    /// Bytes per second; 0 until the first RTT sample.
    pacing_rate: u64,
    send_quantum: u64,
    // Round counting.
    next_round_delivered: u64,
    round_start: bool,
    round_count: u64,
    // Bandwidth model, bytes per second.
    max_bw_filter: MaxFilter,
    max_bw: u64,
    bw: u64,
    bw_lo: u64,
    bw_latest: u64,
    cycle_count: u64,
    // Inflight model, bytes.
    inflight_hi: u64,
    inflight_lo: u64,
    inflight_latest: u64,
    max_inflight: u64,
    extra_acked_filter: MaxFilter,
    extra_acked: u64,
    extra_acked_interval_start: Option<Instant>,
    extra_acked_delivered: u64,
    // Min RTT.
    min_rtt: Option<Duration>,
    min_rtt_stamp: Option<Instant>,
    probe_rtt_min_delay: Option<Duration>,
    probe_rtt_min_stamp: Option<Instant>,
    probe_rtt_expired: bool,
    probe_rtt_done_stamp: Option<Instant>,
    probe_rtt_round_done: bool,
    prior_cwnd: u64,
    idle_restart: bool,
    // Startup.
    full_bw: u64,
    full_bw_count: u32,
    full_bw_now: bool,
    full_bw_reached: bool,
    // Congestion signals.
    loss_round_delivered: u64,
    loss_round_start: bool,
    loss_in_round: bool,
    loss_events_in_round: u32,
    // ProbeBW.
    cycle_stamp: Option<Instant>,
    /// When ProbeBW_UP started.
    up_stamp: Option<Instant>,
    ack_phase: AckPhase,
    bw_probe_wait: Duration,
    rounds_since_bw_probe: u64,
    probe_up_cnt: u64,
    bw_probe_up_acks: u64,
    bw_probe_up_rounds: u32,
    bw_probe_samples: bool,
    // Connection facts.
    in_recovery: bool,
    recovery_start: Option<Instant>,
    /// Delivered count up to which samples are treated as application-limited (ProbeRTT).
    app_limited_until: u64,
    delivered: u64,
    bytes_in_flight: u64,
    /// The window was (nearly) full at some send of this round / of the last round.
    cwnd_limited_in_round: bool,
    is_cwnd_limited: bool,
    sent_any: bool,
    rng: u64,
}

impl Bbr {
    /// A controller in Startup with the configured initial window.
    pub fn new(config: &Config) -> Self {
        let cwnd = config.initial_window();
        let mut b = Self {
            mds: config.max_datagram_size(),
            initial_cwnd: cwnd,
            cwnd,
            state: State::Startup,
            pacing_gain: STARTUP_PACING_GAIN,
            cwnd_gain: DEFAULT_CWND_GAIN,
            pacing_rate: 0,
            send_quantum: 2 * u64::from(config.max_datagram_size()),
            next_round_delivered: 0,
            round_start: false,
            round_count: 0,
            max_bw_filter: MaxFilter::default(),
            max_bw: 0,
            bw: 0,
            bw_lo: INF,
            bw_latest: 0,
            cycle_count: 0,
            inflight_hi: INF,
            inflight_lo: INF,
            inflight_latest: 0,
            max_inflight: cwnd,
            extra_acked_filter: MaxFilter::default(),
            extra_acked: 0,
            extra_acked_interval_start: None,
            extra_acked_delivered: 0,
            min_rtt: None,
            min_rtt_stamp: None,
            probe_rtt_min_delay: None,
            probe_rtt_min_stamp: None,
            probe_rtt_expired: false,
            probe_rtt_done_stamp: None,
            probe_rtt_round_done: false,
            prior_cwnd: 0,
            idle_restart: false,
            full_bw: 0,
            full_bw_count: 0,
            full_bw_now: false,
            full_bw_reached: false,
            loss_round_delivered: 0,
            loss_round_start: false,
            loss_in_round: false,
            loss_events_in_round: 0,
            cycle_stamp: None,
            up_stamp: None,
            ack_phase: AckPhase::Init,
            bw_probe_wait: Duration::ZERO,
            rounds_since_bw_probe: 0,
            probe_up_cnt: INF,
            bw_probe_up_acks: 0,
            bw_probe_up_rounds: 0,
            bw_probe_samples: false,
            in_recovery: false,
            recovery_start: None,
            app_limited_until: 0,
            delivered: 0,
            bytes_in_flight: 0,
            cwnd_limited_in_round: false,
            is_cwnd_limited: false,
            sent_any: false,
            rng: 0x9e37_79b9_7f4a_7c15,
        };
        b.enter_startup();
        b
    }

    /// The current state (ProbeBW phases apart).
    pub fn state(&self) -> State {
        self.state
    }

    /// The bandwidth estimate used by the model, `min(max_bw, bw_lo)`, in bytes per second.
    pub fn bw(&self) -> u64 {
        self.bw
    }

    /// The windowed max bandwidth, in bytes per second.
    pub fn max_bw(&self) -> u64 {
        self.max_bw
    }

    /// The windowed min RTT, once sampled.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// `inflight_hi`, the long-term bound on data in flight (`u64::MAX` while unset).
    pub fn inflight_hi(&self) -> u64 {
        self.inflight_hi
    }

    /// Whether Startup found the pipe full.
    pub fn full_bw_reached(&self) -> bool {
        self.full_bw_reached
    }

    /// Rounds (packet-timed round trips) counted so far.
    pub fn round_count(&self) -> u64 {
        self.round_count
    }

    fn mds64(&self) -> u64 {
        u64::from(self.mds)
    }

    fn min_pipe_cwnd(&self) -> u64 {
        MIN_PIPE_CWND_PACKETS * self.mds64()
    }

    /// A pseudo-random number (xorshift), stirred with `salt` so that flows differ.
    fn random(&mut self, salt: u64) -> u64 {
        let mut x = self.rng ^ salt.wrapping_mul(0x2545_f491_4f6c_dd1d);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// BBRUpdateOnACK with the ACK's rate sample.
    fn update_on_ack(&mut self, now: Instant, rs: &RateSample) {
        let mut rs = *rs;
        if rs.prior_delivered < self.app_limited_until {
            rs.is_app_limited = true;
        }
        self.delivered = rs.total_delivered;
        self.bytes_in_flight = rs.bytes_in_flight;
        // Model and state.
        self.update_latest_delivery_signals(&rs);
        self.update_congestion_signals(&rs);
        self.update_ack_aggregation(now, &rs);
        self.check_startup_high_loss(&rs);
        self.check_full_bw_reached(&rs);
        self.check_startup_done();
        self.check_drain(now);
        self.update_probe_bw_cycle_phase(now, &rs);
        self.update_min_rtt(now, &rs);
        self.check_probe_rtt(now, &rs);
        self.advance_latest_delivery_signals(&rs);
        self.bound_bw_for_model();
        // Control parameters.
        self.set_pacing_rate();
        self.set_send_quantum();
        self.set_cwnd(&rs);
    }
}

impl Controller for Bbr {
    fn name(&self) -> &'static str {
        "bbr"
    }

    fn window(&self) -> u64 {
        self.cwnd
    }

    fn ssthresh(&self) -> u64 {
        if self.full_bw_reached {
            self.cwnd
        } else {
            u64::MAX
        }
    }

    fn in_slow_start(&self) -> bool {
        self.state == State::Startup
    }

    fn on_packet_sent(&mut self, now: Instant, bytes: u64, bytes_in_flight: u64) {
        if bytes_in_flight == 0 && self.sent_any {
            self.handle_restart_from_idle(now);
        }
        self.sent_any = true;
        self.bytes_in_flight = bytes_in_flight + bytes;
        if self.bytes_in_flight + self.mds64() >= self.cwnd {
            self.cwnd_limited_in_round = true;
        }
    }

    fn on_ack(
        &mut self,
        now: Instant,
        time_sent: Instant,
        _bytes: u64,
        _app_limited: bool,
        rtt: &RttEstimator,
    ) {
        if self.in_recovery && self.recovery_start.is_some_and(|r| time_sent > r) {
            self.in_recovery = false;
        }
        if self.pacing_rate == 0 && rtt.has_sample() {
            // BBRInitPacingRate, once an RTT is known.
            let srtt = rtt.smoothed().max(Duration::from_millis(1));
            let nominal = self.initial_cwnd as f64 / srtt.as_secs_f64();
            self.pacing_rate = (STARTUP_PACING_GAIN * nominal) as u64;
        }
        let _ = now;
    }

    fn on_ack_event(&mut self, now: Instant, sample: &RateSample) {
        self.update_on_ack(now, sample);
    }

    fn on_packet_lost(&mut self, now: Instant, bytes: u64, sent: &DeliveryState, lost_total: u64) {
        self.loss_in_round = true;
        self.handle_lost_packet(now, bytes, sent, lost_total);
    }

    fn on_congestion_event(&mut self, now: Instant, time_sent: Instant) {
        if self.recovery_start.is_none_or(|r| time_sent > r) {
            self.in_recovery = true;
            self.recovery_start = Some(now);
        }
    }

    fn on_persistent_congestion(&mut self, now: Instant) {
        //= https://www.rfc-editor.org/rfc/rfc9002#section-7.6.2
        //# When persistent congestion is declared, the sender's congestion
        //# window MUST be reduced to the minimum congestion window
        //# (kMinimumWindow), similar to a TCP sender's response on an RTO
        //# [RFC5681].
        self.save_cwnd();
        self.cwnd = minimum_window(self.mds);
        self.recovery_start = Some(now);
        self.in_recovery = true;
    }

    fn set_max_datagram_size(&mut self, max_datagram_size: u16) {
        self.mds = max_datagram_size;
        self.cwnd = self.cwnd.max(self.min_pipe_cwnd());
    }

    fn max_datagram_size(&self) -> u16 {
        self.mds
    }

    fn pacing_rate(&self) -> Option<u64> {
        (self.pacing_rate > 0).then_some(self.pacing_rate)
    }

    fn bandwidth_estimate(&self) -> Option<u64> {
        (self.max_bw > 0).then_some(self.max_bw)
    }
}
