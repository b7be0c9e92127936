//! BBR's ProbeBW cycle (DOWN, CRUISE, REFILL, UP) and its upper bound `inflight_hi`, raised
//! while probing and cut when a round's loss rate is too high (draft-cardwell-ccwg-bbr §5.3.3,
//! §5.5.10).

use std::time::{Duration, Instant};

use super::model::scale;
use super::{
    AckPhase, Bbr, State, BETA, DEFAULT_CWND_GAIN, INF, LOSS_THRESH, MAX_PROBE_ROUNDS,
    PROBE_UP_CWND_GAIN,
};
use crate::congestion::{DeliveryState, RateSample};

/// Pacing gains of the ProbeBW phases.
const DOWN_PACING_GAIN: f64 = 0.9;
const UP_PACING_GAIN: f64 = 1.25;

impl Bbr {
    /// BBREnterProbeBW.
    pub(super) fn enter_probe_bw(&mut self, now: Instant) {
        self.cwnd_gain = DEFAULT_CWND_GAIN;
        self.start_probe_bw_down(now);
    }

    /// BBRStartProbeBW_DOWN.
    pub(super) fn start_probe_bw_down(&mut self, now: Instant) {
        self.reset_congestion_signals();
        self.probe_up_cnt = INF;
        self.pick_probe_wait();
        self.cycle_stamp = Some(now);
        self.ack_phase = AckPhase::ProbeStopping;
        self.start_round();
        self.state = State::ProbeBwDown;
        self.pacing_gain = DOWN_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    /// BBRStartProbeBW_CRUISE.
    pub(super) fn start_probe_bw_cruise(&mut self) {
        self.state = State::ProbeBwCruise;
        self.pacing_gain = 1.0;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    /// BBRStartProbeBW_REFILL.
    fn start_probe_bw_refill(&mut self) {
        self.reset_lower_bounds();
        self.bw_probe_up_rounds = 0;
        self.bw_probe_up_acks = 0;
        self.ack_phase = AckPhase::Refilling;
        self.start_round();
        self.state = State::ProbeBwRefill;
        self.pacing_gain = 1.0;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    /// BBRStartProbeBW_UP.
    fn start_probe_bw_up(&mut self, now: Instant, rs: &RateSample) {
        self.ack_phase = AckPhase::ProbeStarting;
        self.start_round();
        self.reset_full_bw();
        self.full_bw = rs.delivery_rate;
        self.state = State::ProbeBwUp;
        self.up_stamp = Some(now);
        self.pacing_gain = UP_PACING_GAIN;
        self.cwnd_gain = PROBE_UP_CWND_GAIN;
        self.raise_inflight_hi_slope();
    }

    /// BBRUpdateProbeBWCyclePhase.
    pub(super) fn update_probe_bw_cycle_phase(&mut self, now: Instant, rs: &RateSample) {
        if !self.full_bw_reached {
            return;
        }
        self.adapt_upper_bounds(now, rs);
        let state = self.state;
        match state {
            State::ProbeBwDown => {
                if self.is_time_to_probe_bw(now) {
                    return;
                }
                if self.is_time_to_cruise() {
                    self.start_probe_bw_cruise();
                }
            }
            State::ProbeBwCruise => {
                self.is_time_to_probe_bw(now);
            }
            // After one round of REFILL, start UP.
            State::ProbeBwRefill if self.round_start => {
                self.bw_probe_samples = true;
                self.start_probe_bw_up(now, rs);
            }
            State::ProbeBwUp if self.is_queuing(now) || self.is_time_to_go_down(rs) => {
                self.start_probe_bw_down(now);
            }
            _ => {}
        }
    }

    /// BBRIsTimeToCruise: the queue of the probe drained (inflight at most a BDP).
    fn is_time_to_cruise(&self) -> bool {
        if self.bytes_in_flight > self.inflight_with_headroom() {
            return false;
        }
        self.bytes_in_flight <= self.inflight(self.max_bw, 1.0)
    }

    /// The probe built a queue: a min RTT into UP, more than 1.25 BDP in flight
    /// (draft-cardwell-iccrg-bbr-congestion-control-02's exit from ProbeBW_UP, kept by Linux's
    /// BBRv3). Without it, a sender whose window is `inflight_hi` raises `inflight_hi` with
    /// every round of UP and only a full buffer's losses end the probe.
    fn is_queuing(&self, now: Instant) -> bool {
        let elapsed = match (self.up_stamp, self.min_rtt) {
            (Some(s), Some(rtt)) => now > s + rtt,
            _ => false,
        };
        elapsed && self.bytes_in_flight > self.inflight(self.max_bw, UP_PACING_GAIN)
    }

    /// BBRIsTimeToGoDown: UP found the bandwidth (three rounds without growth).
    fn is_time_to_go_down(&mut self, rs: &RateSample) -> bool {
        if self.cwnd_limited() && self.cwnd >= self.inflight_hi {
            // The bandwidth is limited by inflight_hi: keep probing.
            self.reset_full_bw();
            self.full_bw = rs.delivery_rate;
        } else if self.full_bw_now {
            return true;
        }
        false
    }

    /// BBRIsTimeToProbeBW: the randomized wait (2-3 s) or the Reno-coexistence rounds passed.
    fn is_time_to_probe_bw(&mut self, now: Instant) -> bool {
        let elapsed = self.cycle_stamp.is_some_and(|s| now > s + self.bw_probe_wait);
        if elapsed || self.is_reno_coexistence_probe_time() {
            self.start_probe_bw_refill();
            return true;
        }
        false
    }

    /// BBRPickProbeWait.
    fn pick_probe_wait(&mut self) {
        let salt = self.delivered ^ self.min_rtt.map_or(0, |r| r.as_nanos() as u64);
        let r = self.random(salt);
        self.rounds_since_bw_probe = r & 1;
        self.bw_probe_wait = Duration::from_secs(2) + Duration::from_micros((r >> 1) % 1_000_000);
    }

    /// BBRIsRenoCoexistenceProbeTime: probe at least as often as Reno would fill the BDP.
    fn is_reno_coexistence_probe_time(&self) -> bool {
        let reno_rounds = self.target_inflight() / self.mds64();
        self.rounds_since_bw_probe >= reno_rounds.min(MAX_PROBE_ROUNDS)
    }

    /// BBRRaiseInflightHiSlope: inflight_hi grows 1, 2, 4... datagrams per round of UP.
    fn raise_inflight_hi_slope(&mut self) {
        let growth = 1u64 << self.bw_probe_up_rounds.min(30);
        self.bw_probe_up_rounds = (self.bw_probe_up_rounds + 1).min(30);
        self.probe_up_cnt = (self.cwnd / growth).max(1);
    }

    /// BBRProbeInflightHiUpward.
    fn probe_inflight_hi_upward(&mut self, rs: &RateSample) {
        if !self.cwnd_limited() || self.cwnd < self.inflight_hi {
            return;
        }
        self.bw_probe_up_acks += rs.newly_acked;
        if self.bw_probe_up_acks >= self.probe_up_cnt {
            let delta = self.bw_probe_up_acks / self.probe_up_cnt;
            self.bw_probe_up_acks -= delta * self.probe_up_cnt;
            self.inflight_hi = self.inflight_hi.saturating_add(delta * self.mds64());
        }
        if self.round_start {
            self.raise_inflight_hi_slope();
        }
    }

    /// BBRAdaptUpperBounds.
    fn adapt_upper_bounds(&mut self, now: Instant, rs: &RateSample) {
        if self.ack_phase == AckPhase::ProbeStarting && self.round_start {
            // Samples of the probe's own packets start arriving.
            self.ack_phase = AckPhase::ProbeFeedback;
        }
        if self.ack_phase == AckPhase::ProbeStopping && self.round_start {
            // The last samples of the probe arrived: a new cycle for the max filter.
            self.bw_probe_samples = false;
            self.ack_phase = AckPhase::Init;
            if self.state.is_probe_bw() && !rs.is_app_limited {
                self.advance_max_bw_filter();
            }
        }
        if self.check_inflight_too_high(now, rs) {
            return;
        }
        if self.inflight_hi == INF {
            return;
        }
        if rs.tx_in_flight > self.inflight_hi {
            self.inflight_hi = rs.tx_in_flight;
        }
        if self.state == State::ProbeBwUp {
            self.probe_inflight_hi_upward(rs);
        }
    }

    /// IsInflightTooHigh: more than `LOSS_THRESH` of what was in flight was lost.
    pub(super) fn is_inflight_too_high(lost: u64, tx_in_flight: u64) -> bool {
        lost as f64 > tx_in_flight as f64 * LOSS_THRESH
    }

    /// BBRCheckInflightTooHigh.
    fn check_inflight_too_high(&mut self, now: Instant, rs: &RateSample) -> bool {
        if Self::is_inflight_too_high(rs.lost, rs.tx_in_flight) {
            if self.bw_probe_samples {
                self.handle_inflight_too_high(now, rs.is_app_limited, rs.tx_in_flight);
            }
            return true;
        }
        false
    }

    /// BBRHandleInflightTooHigh: the probe found the loss limit.
    fn handle_inflight_too_high(&mut self, now: Instant, app_limited: bool, tx_in_flight: u64) {
        self.bw_probe_samples = false;
        if !app_limited {
            self.inflight_hi = tx_in_flight.max(scale(self.target_inflight(), BETA));
        }
        if self.state == State::ProbeBwUp {
            self.start_probe_bw_down(now);
        }
    }

    /// BBRHandleLostPacket: while probing, each loss checks the probe's loss rate at once.
    pub(super) fn handle_lost_packet(
        &mut self,
        now: Instant,
        bytes: u64,
        sent: &DeliveryState,
        lost_total: u64,
    ) {
        if !self.bw_probe_samples {
            return;
        }
        let lost = lost_total.saturating_sub(sent.lost);
        if Self::is_inflight_too_high(lost, sent.tx_in_flight) {
            let tx = Self::inflight_hi_from_lost_packet(sent.tx_in_flight, lost, bytes);
            self.handle_inflight_too_high(now, sent.is_app_limited, tx);
        }
    }

    /// BBRInflightHiFromLostPacket: the inflight at which the loss rate crossed the threshold.
    fn inflight_hi_from_lost_packet(tx_in_flight: u64, lost: u64, size: u64) -> u64 {
        let inflight_prev = tx_in_flight.saturating_sub(size) as f64;
        let lost_prev = lost.saturating_sub(size) as f64;
        let lost_prefix = (LOSS_THRESH * inflight_prev - lost_prev) / (1.0 - LOSS_THRESH);
        (inflight_prev + lost_prefix).max(0.0) as u64
    }
}
