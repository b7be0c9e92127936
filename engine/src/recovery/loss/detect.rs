//! Declaring packets lost by packet and time threshold, and persistent congestion (RFC 9002 §6.1).

use std::time::Instant;

use peregrine_datapath::Ecn;

use super::LossDetector;
use crate::congestion::Controller;
use crate::recovery::persistent::{self, LostInfo};
use crate::recovery::sent::{SentPacket, Slot};
use crate::recovery::SpaceId;

impl<T> LossDetector<T> {
    /// DetectAndRemoveLostPackets (RFC 9002 Appendix A.10), with persistent congestion.
    pub(super) fn detect_lost(
        &mut self,
        now: Instant,
        space: SpaceId,
    ) -> (Vec<SentPacket<T>>, bool) {
        // Latest send time of an acknowledged packet in each other space.
        let others: [Option<Instant>; 3] = SpaceId::ALL.map(|s| {
            if s == space {
                None
            } else {
                self.spaces[s.index()].max_acked_time_sent
            }
        });
        let loss_delay = self.rtt.loss_delay();
        let pc_duration = persistent::duration(&self.rtt, self.config.max_ack_delay);
        let first_sample = self.rtt.first_sample_time();
        let threshold = self.config.packet_threshold;
        let sp = &mut self.spaces[space.index()];
        sp.loss_time = None;
        let Some(largest_acked) = sp.largest_acked else {
            return (Vec::new(), false);
        };
        //= https://www.rfc-editor.org/rfc/rfc9002#section-6.1.2
        //# Once a later packet within the same packet number space has been
        //# acknowledged, an endpoint SHOULD declare an earlier packet lost if it
        //# was sent a threshold amount of time in the past.
        let lost_send_time = now.checked_sub(loss_delay);
        let mut lost_pns = Vec::new();
        let mut pc = false;
        let mut last_acked = sp.sent.last_compacted_acked;
        for pn in sp.sent.held_range(0, largest_acked) {
            let p = match sp.sent.slot(pn) {
                Some(Slot::Sent(p)) => p,
                Some(Slot::Acked) => {
                    last_acked = Some(pn);
                    continue;
                }
                _ => continue,
            };
            let by_time = lost_send_time.is_some_and(|t| p.time_sent <= t);
            let by_count = largest_acked >= pn.saturating_add(threshold);
            if by_time || by_count {
                lost_pns.push(pn);
                let info = LostInfo {
                    pn,
                    time_sent: p.time_sent,
                    ack_eliciting: p.ack_eliciting,
                    acked_since_run: sp
                        .pc_run
                        .is_some_and(|r| last_acked.is_some_and(|a| a > r.last_pn)),
                };
                let others_acked_after =
                    |start: Instant| others.iter().flatten().any(|&t| t > start);
                pc |= persistent::on_lost(
                    &mut sp.pc_run,
                    info,
                    first_sample,
                    pc_duration,
                    others_acked_after,
                );
            } else {
                //= https://www.rfc-editor.org/rfc/rfc9002#section-6.1.2
                //# If packets sent prior to the largest acknowledged packet cannot yet
                //# be declared lost, then a timer SHOULD be set for the remaining time.
                let t = p.time_sent + loss_delay;
                sp.loss_time = Some(sp.loss_time.map_or(t, |l| l.min(t)));
            }
        }
        let lost = lost_pns.into_iter().filter_map(|pn| sp.sent.take(pn, false)).collect();
        (lost, pc)
    }

    /// OnPacketsLost (RFC 9002 Appendix B.8).
    pub(super) fn on_packets_lost(
        &mut self,
        now: Instant,
        lost: &[SentPacket<T>],
        persistent_congestion: bool,
        cc: &mut dyn Controller,
    ) {
        let marked = lost.iter().filter(|p| p.ecn != Ecn::NotEct).count() as u64;
        if marked > 0 {
            self.ecn.on_marked_lost(marked);
        }
        for p in lost.iter().filter(|p| p.in_flight) {
            self.delivery.on_packet_lost(u64::from(p.size));
            cc.on_packet_lost(now, u64::from(p.size), &p.delivery, self.delivery.lost());
        }
        let last_loss = lost.iter().filter(|p| p.in_flight).map(|p| p.time_sent).max();
        if let Some(sent) = last_loss {
            cc.on_congestion_event(now, sent);
        }
        if persistent_congestion {
            //= https://www.rfc-editor.org/rfc/rfc9002#section-7.6.2
            //# When persistent congestion is declared, the sender's congestion
            //# window MUST be reduced to the minimum congestion window
            //# (kMinimumWindow), similar to a TCP sender's response on an RTO
            //# [RFC5681].
            cc.on_persistent_congestion(now);
            self.rtt.on_persistent_congestion();
        }
    }
}
