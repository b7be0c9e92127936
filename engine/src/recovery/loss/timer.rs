//! The loss detection timer: time-threshold loss, PTO, anti-deadlock PTO (RFC 9002 App. A.8).

use std::time::Instant;

use super::{LossDetector, MAX_PTO_EXPONENT};
use crate::recovery::SpaceId;

impl<T> LossDetector<T> {
    /// GetLossTimeAndSpace: the earliest time-threshold loss timer.
    pub(super) fn loss_time_and_space(&self) -> Option<(Instant, SpaceId)> {
        SpaceId::ALL
            .iter()
            .filter_map(|&s| self.spaces[s.index()].loss_time.map(|t| (t, s)))
            .min_by_key(|&(t, _)| t)
    }

    /// GetPtoTimeAndSpace (RFC 9002 Appendix A.8).
    pub(super) fn pto_time_and_space(&self, now: Instant) -> Option<(Instant, SpaceId)> {
        let backoff = 1u32 << self.pto_count.min(MAX_PTO_EXPONENT);
        let duration = self.rtt.pto_base().saturating_mul(backoff);
        if !self.any_ack_eliciting_in_flight() {
            // Anti-deadlock PTO, from now.
            let space = if self.has_handshake_keys { SpaceId::Handshake } else { SpaceId::Initial };
            return now.checked_add(duration).map(|t| (t, space));
        }
        let mut best: Option<(Instant, SpaceId)> = None;
        for space in SpaceId::ALL {
            let sp = &self.spaces[space.index()];
            if sp.sent.ack_eliciting_in_flight() == 0 {
                continue;
            }
            let mut d = duration;
            if space == SpaceId::Data {
                //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.1
                //# An endpoint MUST NOT set its PTO timer for the Application Data
                //# packet number space until the handshake is confirmed.
                if !self.handshake_confirmed {
                    break;
                }
                d = d.saturating_add(self.config.max_ack_delay.saturating_mul(backoff));
            }
            let Some(t) = sp.last_ack_eliciting.and_then(|l| l.checked_add(d)) else {
                continue;
            };
            //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.1
            //# When ack-eliciting packets in multiple packet number spaces are in
            //# flight, the timer MUST be set to the earlier value of the Initial and
            //# Handshake packet number spaces.
            if best.is_none_or(|(b, _)| t < b) {
                best = Some((t, space));
            }
        }
        best
    }

    /// SetLossDetectionTimer (RFC 9002 Appendix A.8).
    pub(super) fn set_timer(&mut self, now: Instant) {
        self.timer_due = None;
        self.timer = self.compute_timer(now);
    }

    /// Applies a re-arm deferred by `on_packet_sent` before the state it depends on changes.
    pub(super) fn settle_timer(&mut self) {
        if let Some(at) = self.timer_due.take() {
            self.timer = self.compute_timer(at);
        }
    }

    /// What SetLossDetectionTimer at `now` sets the timer to.
    pub(super) fn compute_timer(&self, now: Instant) -> Option<Instant> {
        //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.1
        //# The PTO timer MUST NOT be set if a timer is set for time threshold
        //# loss detection; see Section 6.1.2.
        if let Some((t, _)) = self.loss_time_and_space() {
            return Some(t);
        }
        if self.amplification_limited {
            return None;
        }
        //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.2.1
        //# That is,
        //# the client MUST set the PTO timer if the client has not received an
        //# acknowledgment for any of its Handshake packets and the handshake is
        //# not confirmed (see Section 4.1.2 of [QUIC-TLS]), even if there are no
        //# packets in flight.
        if !self.any_ack_eliciting_in_flight() && self.peer_completed_address_validation() {
            return None;
        }
        self.pto_time_and_space(now).map(|(t, _)| t)
    }
}
