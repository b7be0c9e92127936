//! BBR's estimators (rounds, max bandwidth, min RTT, ACK aggregation, the short-term lower
//! bounds), Startup, Drain and ProbeRTT, and the pacing rate and window they produce
//! (draft-cardwell-ccwg-bbr §4.3-4.6, §5.3, §5.5-5.6).

use std::time::Instant;

use super::{
    AckPhase, Bbr, State, BETA, DEFAULT_CWND_GAIN, DRAIN_PACING_GAIN, EXTRA_ACKED_ROUNDS,
    FULL_BW_ROUNDS, FULL_BW_THRESH, HEADROOM, INF, MAX_SEND_QUANTUM, MIN_RTT_FILTER_LEN,
    PACING_MARGIN, PROBE_RTT_CWND_GAIN, PROBE_RTT_DURATION, PROBE_RTT_INTERVAL,
    STARTUP_FULL_LOSS_COUNT, STARTUP_PACING_GAIN,
};
use crate::congestion::RateSample;

/// `v * gain`, rounded down, saturating.
pub(super) fn scale(v: u64, gain: f64) -> u64 {
    let r = v as f64 * gain;
    if r >= u64::MAX as f64 {
        u64::MAX
    } else {
        r as u64
    }
}

impl Bbr {
    pub(super) fn enter_startup(&mut self) {
        self.state = State::Startup;
        self.pacing_gain = STARTUP_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    fn enter_drain(&mut self) {
        self.state = State::Drain;
        self.pacing_gain = DRAIN_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    /// BBRStartRound: the round ends when what is delivered now has been delivered.
    pub(super) fn start_round(&mut self) {
        self.next_round_delivered = self.delivered;
    }

    /// BBRUpdateRound.
    fn update_round(&mut self, rs: &RateSample) {
        if rs.prior_delivered >= self.next_round_delivered {
            self.start_round();
            self.round_count += 1;
            self.rounds_since_bw_probe += 1;
            self.round_start = true;
            self.is_cwnd_limited = self.cwnd_limited_in_round;
            self.cwnd_limited_in_round = false;
        } else {
            self.round_start = false;
        }
    }

    /// Whether the sender was limited by the window in this or the last round.
    pub(super) fn cwnd_limited(&self) -> bool {
        self.is_cwnd_limited || self.cwnd_limited_in_round
    }

    /// BBRUpdateMaxBw.
    fn update_max_bw(&mut self, rs: &RateSample) {
        self.update_round(rs);
        if rs.delivery_rate > 0 && (rs.delivery_rate >= self.max_bw || !rs.is_app_limited) {
            self.max_bw_filter.update(rs.delivery_rate, self.cycle_count);
            self.max_bw = self.max_bw_filter.best();
        }
    }

    /// BBRAdvanceMaxBwFilter: a new ProbeBW cycle for the 2-cycle max filter.
    pub(super) fn advance_max_bw_filter(&mut self) {
        self.cycle_count += 1;
    }

    /// BBRUpdateLatestDeliverySignals.
    pub(super) fn update_latest_delivery_signals(&mut self, rs: &RateSample) {
        self.loss_round_start = false;
        self.bw_latest = self.bw_latest.max(rs.delivery_rate);
        self.inflight_latest = self.inflight_latest.max(rs.delivered);
        if rs.prior_delivered >= self.loss_round_delivered {
            self.loss_round_delivered = self.delivered;
            self.loss_round_start = true;
        }
    }

    /// BBRAdvanceLatestDeliverySignals.
    pub(super) fn advance_latest_delivery_signals(&mut self, rs: &RateSample) {
        if self.loss_round_start {
            self.bw_latest = rs.delivery_rate;
            self.inflight_latest = rs.delivered;
        }
    }

    /// BBRResetCongestionSignals.
    pub(super) fn reset_congestion_signals(&mut self) {
        self.loss_in_round = false;
        self.bw_latest = 0;
        self.inflight_latest = 0;
    }

    /// BBRUpdateCongestionSignals.
    pub(super) fn update_congestion_signals(&mut self, rs: &RateSample) {
        self.update_max_bw(rs);
        if rs.newly_lost > 0 {
            self.loss_in_round = true;
        }
        if !self.loss_round_start {
            return;
        }
        self.adapt_lower_bounds_from_congestion();
        self.loss_in_round = false;
    }

    fn is_probing_bw(&self) -> bool {
        matches!(self.state, State::Startup | State::ProbeBwRefill | State::ProbeBwUp)
    }

    /// BBRAdaptLowerBoundsFromCongestion: a round with loss outside probing lowers `bw_lo`
    /// and `inflight_lo` to what was delivered, by at most `BETA`.
    fn adapt_lower_bounds_from_congestion(&mut self) {
        if self.is_probing_bw() || !self.loss_in_round {
            return;
        }
        if self.bw_lo == INF {
            self.bw_lo = self.max_bw;
        }
        if self.inflight_lo == INF {
            self.inflight_lo = self.cwnd;
        }
        self.bw_lo = self.bw_latest.max(scale(self.bw_lo, BETA));
        self.inflight_lo = self.inflight_latest.max(scale(self.inflight_lo, BETA));
    }

    /// BBRResetLowerBounds.
    pub(super) fn reset_lower_bounds(&mut self) {
        self.bw_lo = INF;
        self.inflight_lo = INF;
    }

    /// BBRBoundBWForModel.
    pub(super) fn bound_bw_for_model(&mut self) {
        self.bw = self.max_bw.min(self.bw_lo);
    }

    /// BBRUpdateACKAggregation: how far deliveries ran ahead of the bandwidth estimate.
    pub(super) fn update_ack_aggregation(&mut self, now: Instant, rs: &RateSample) {
        let start = *self.extra_acked_interval_start.get_or_insert(now);
        let interval = now.saturating_duration_since(start);
        let mut expected = scale(self.bw, interval.as_secs_f64());
        if self.extra_acked_delivered <= expected {
            self.extra_acked_delivered = 0;
            self.extra_acked_interval_start = Some(now);
            expected = 0;
        }
        self.extra_acked_delivered += rs.newly_acked;
        let extra = (self.extra_acked_delivered - expected).min(self.cwnd);
        let bucket = self.round_count / (EXTRA_ACKED_ROUNDS / 2);
        self.extra_acked_filter.update(extra, bucket);
        self.extra_acked = self.extra_acked_filter.best();
    }

    /// BBRCheckStartupHighLoss: Startup ends when a round in recovery saw too many loss
    /// events at a loss rate above the threshold.
    pub(super) fn check_startup_high_loss(&mut self, rs: &RateSample) {
        if self.full_bw_reached || self.state != State::Startup {
            return;
        }
        if rs.newly_lost > 0 {
            self.loss_events_in_round = self.loss_events_in_round.saturating_add(1);
        }
        if self.loss_round_start
            && self.in_recovery
            && self.loss_events_in_round >= STARTUP_FULL_LOSS_COUNT
            && Self::is_inflight_too_high(rs.lost, rs.tx_in_flight)
        {
            self.full_bw_reached = true;
            self.inflight_hi = self.bdp_multiple(self.max_bw, 1.0).max(self.inflight_latest);
            return;
        }
        if self.loss_round_start {
            self.loss_events_in_round = 0;
        }
    }

    /// BBRResetFullBW.
    pub(super) fn reset_full_bw(&mut self) {
        self.full_bw = 0;
        self.full_bw_count = 0;
        self.full_bw_now = false;
    }

    /// BBRCheckFullBWReached: three rounds without 25% growth.
    pub(super) fn check_full_bw_reached(&mut self, rs: &RateSample) {
        if self.full_bw_now || rs.is_app_limited || rs.delivery_rate == 0 {
            return;
        }
        if rs.delivery_rate as f64 >= self.full_bw as f64 * FULL_BW_THRESH {
            self.reset_full_bw();
            self.full_bw = rs.delivery_rate;
            return;
        }
        if !self.round_start {
            return;
        }
        self.full_bw_count += 1;
        self.full_bw_now = self.full_bw_count >= FULL_BW_ROUNDS;
        if self.full_bw_now {
            self.full_bw_reached = true;
        }
    }

    /// BBRCheckStartupDone.
    pub(super) fn check_startup_done(&mut self) {
        if self.state == State::Startup && self.full_bw_reached {
            self.enter_drain();
        }
    }

    /// BBRCheckDrain: ProbeBW once the queue is gone.
    pub(super) fn check_drain(&mut self, now: Instant) {
        if self.state == State::Drain && self.bytes_in_flight <= self.inflight(self.bw, 1.0) {
            self.enter_probe_bw(now);
        }
    }

    /// BBRUpdateMinRTT.
    pub(super) fn update_min_rtt(&mut self, now: Instant, rs: &RateSample) {
        self.probe_rtt_expired =
            self.probe_rtt_min_stamp.is_some_and(|s| now > s + PROBE_RTT_INTERVAL);
        if !rs.rtt.is_zero()
            && (self.probe_rtt_min_delay.is_none_or(|d| rs.rtt < d) || self.probe_rtt_expired)
        {
            self.probe_rtt_min_delay = Some(rs.rtt);
            self.probe_rtt_min_stamp = Some(now);
        }
        let min_rtt_expired = self.min_rtt_stamp.is_some_and(|s| now > s + MIN_RTT_FILTER_LEN);
        let lower = match (self.probe_rtt_min_delay, self.min_rtt) {
            (Some(p), Some(m)) => p < m,
            (Some(_), None) => true,
            _ => false,
        };
        if lower || min_rtt_expired {
            self.min_rtt = self.probe_rtt_min_delay;
            self.min_rtt_stamp = self.probe_rtt_min_stamp;
        }
    }

    /// BBRCheckProbeRTT.
    pub(super) fn check_probe_rtt(&mut self, now: Instant, rs: &RateSample) {
        if self.state != State::ProbeRtt && self.probe_rtt_expired && !self.idle_restart {
            self.state = State::ProbeRtt;
            self.pacing_gain = 1.0;
            self.cwnd_gain = PROBE_RTT_CWND_GAIN;
            self.save_cwnd();
            self.probe_rtt_done_stamp = None;
            self.ack_phase = AckPhase::ProbeStopping;
            self.start_round();
        }
        if self.state == State::ProbeRtt {
            self.handle_probe_rtt(now);
        }
        if rs.delivered > 0 {
            self.idle_restart = false;
        }
    }

    /// BBRHandleProbeRTT.
    fn handle_probe_rtt(&mut self, now: Instant) {
        // Samples of the cut window say nothing of the bandwidth: MarkConnectionAppLimited.
        self.app_limited_until = (self.delivered + self.bytes_in_flight).max(1);
        if self.probe_rtt_done_stamp.is_none() && self.bytes_in_flight <= self.probe_rtt_cwnd() {
            self.probe_rtt_done_stamp = Some(now + PROBE_RTT_DURATION);
            self.probe_rtt_round_done = false;
            self.start_round();
        } else if self.probe_rtt_done_stamp.is_some() {
            if self.round_start {
                self.probe_rtt_round_done = true;
            }
            if self.probe_rtt_round_done {
                self.check_probe_rtt_done(now);
            }
        }
    }

    /// BBRCheckProbeRTTDone.
    pub(super) fn check_probe_rtt_done(&mut self, now: Instant) {
        if self.probe_rtt_done_stamp.is_some_and(|d| now > d) {
            self.probe_rtt_min_stamp = Some(now);
            self.restore_cwnd();
            self.reset_lower_bounds();
            if self.full_bw_reached {
                self.start_probe_bw_down(now);
                self.start_probe_bw_cruise();
            } else {
                self.enter_startup();
            }
        }
    }

    /// BBRProbeRTTCwnd.
    fn probe_rtt_cwnd(&self) -> u64 {
        self.bdp_multiple(self.bw, PROBE_RTT_CWND_GAIN).max(self.min_pipe_cwnd())
    }

    /// BBRSaveCwnd.
    pub(super) fn save_cwnd(&mut self) {
        self.prior_cwnd = if !self.in_recovery && self.state != State::ProbeRtt {
            self.cwnd
        } else {
            self.prior_cwnd.max(self.cwnd)
        };
    }

    fn restore_cwnd(&mut self) {
        self.cwnd = self.cwnd.max(self.prior_cwnd);
    }

    /// BBRHandleRestartFromIdle: the first send after the pipe emptied.
    pub(super) fn handle_restart_from_idle(&mut self, now: Instant) {
        self.idle_restart = true;
        self.extra_acked_interval_start = Some(now);
        if self.state.is_probe_bw() {
            self.set_pacing_rate_with_gain(1.0);
        } else if self.state == State::ProbeRtt {
            self.check_probe_rtt_done(now);
        }
    }

    /// The estimated BDP, `bw * min_rtt` (the initial window until an RTT is known).
    pub(super) fn bdp(&self, bw: u64) -> u64 {
        match self.min_rtt {
            Some(rtt) => scale(bw, rtt.as_secs_f64()),
            None => self.initial_cwnd,
        }
    }

    /// BBRBDPMultiple.
    pub(super) fn bdp_multiple(&self, bw: u64, gain: f64) -> u64 {
        match self.min_rtt {
            Some(_) => scale(self.bdp(bw), gain),
            None => self.initial_cwnd,
        }
    }

    /// BBRQuantizationBudget: room for the offload bursts and the minimum pipe.
    fn quantization_budget(&self, inflight: u64) -> u64 {
        let inflight = inflight.max(3 * self.send_quantum).max(self.min_pipe_cwnd());
        if self.state == State::ProbeBwUp {
            inflight + 2 * self.mds64()
        } else {
            inflight
        }
    }

    /// BBRInflight: `gain` BDPs of `bw`, with the quantization budget.
    pub(super) fn inflight(&self, bw: u64, gain: f64) -> u64 {
        self.quantization_budget(self.bdp_multiple(bw, gain))
    }

    /// BBRTargetInflight.
    pub(super) fn target_inflight(&self) -> u64 {
        self.bdp(self.bw).min(self.cwnd)
    }

    /// BBRInflightWithHeadroom: `inflight_hi` minus 15% for other flows.
    pub(super) fn inflight_with_headroom(&self) -> u64 {
        if self.inflight_hi == INF {
            return INF;
        }
        let headroom = self.mds64().max(scale(self.inflight_hi, HEADROOM));
        self.inflight_hi.saturating_sub(headroom).max(self.min_pipe_cwnd())
    }

    /// BBRSetPacingRateWithGain.
    pub(super) fn set_pacing_rate_with_gain(&mut self, gain: f64) {
        let rate = scale(self.bw, gain * (1.0 - PACING_MARGIN));
        if rate > 0 && (self.full_bw_reached || rate > self.pacing_rate) {
            self.pacing_rate = rate;
        }
    }

    pub(super) fn set_pacing_rate(&mut self) {
        self.set_pacing_rate_with_gain(self.pacing_gain);
    }

    /// BBRSetSendQuantum: a millisecond at the pacing rate, 2 datagrams to 64 KiB.
    pub(super) fn set_send_quantum(&mut self) {
        let q = self.pacing_rate / 1000;
        self.send_quantum = q.clamp(2 * self.mds64(), MAX_SEND_QUANTUM.max(2 * self.mds64()));
    }

    /// BBRSetCwnd (without the recovery modulation: see the module documentation).
    pub(super) fn set_cwnd(&mut self, rs: &RateSample) {
        let inflight = self.bdp_multiple(self.bw, self.cwnd_gain).saturating_add(self.extra_acked);
        self.max_inflight = self.quantization_budget(inflight);
        if self.full_bw_reached {
            self.cwnd = (self.cwnd + rs.newly_acked).min(self.max_inflight);
        } else if self.cwnd < self.max_inflight || self.delivered < self.initial_cwnd {
            self.cwnd += rs.newly_acked;
        }
        self.cwnd = self.cwnd.max(self.min_pipe_cwnd());
        if self.state == State::ProbeRtt {
            self.cwnd = self.cwnd.min(self.probe_rtt_cwnd());
        }
        // BBRBoundCwndForModel.
        let cap = if self.state.is_probe_bw() && self.state != State::ProbeBwCruise {
            self.inflight_hi
        } else if matches!(self.state, State::ProbeRtt | State::ProbeBwCruise) {
            self.inflight_with_headroom()
        } else {
            INF
        };
        let cap = cap.min(self.inflight_lo).max(self.min_pipe_cwnd());
        self.cwnd = self.cwnd.min(cap);
    }
}
