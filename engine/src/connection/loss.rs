//! ACK frames received, loss detection and PTO: feeding `recovery::LossDetector` and the
//! congestion controller, and turning acknowledged / lost packets into stream and crypto
//! feedback.

use std::time::Instant;

use super::sent::{Retx, SentFrames};
use super::Connection;
use crate::crypto::Side;
use crate::error::Error;
use crate::frame::Ack;
use crate::recovery::{AckInfo, SentPacket, SpaceId};
use crate::streams::StreamId;

/// Acknowledged STREAM data of one stream gathered across the packets of one ACK frame:
/// packets sent in order carry adjacent ranges, and one call into the stream for the run
/// does what a call per packet would (same bytes acknowledged, same completions in the
/// same order) at a fraction of the cost.
#[derive(Clone, Copy, Debug)]
struct AckedRun {
    id: StreamId,
    offset: u64,
    end: u64,
    fin: bool,
}

impl AckedRun {
    /// Extends the run with `offset..offset + len` of `id` when it is adjacent (and the run
    /// has not ended with a FIN); returns whether it did.
    fn extend(&mut self, id: StreamId, offset: u64, len: u64, fin: bool) -> bool {
        if self.id != id || self.end != offset || self.fin {
            return false;
        }
        self.end = offset.saturating_add(len);
        self.fin = fin;
        true
    }
}

/// Consecutive PTOs after which datagrams larger than 1200 bytes are suspected of being
/// dropped by the path.
const BLACK_HOLE_PTOS: u32 = 3;

impl Connection {
    /// Large datagrams seem to vanish (persistent congestion, repeated PTOs, or repeated loss
    /// of full-size packets): fall back to 1200-byte datagrams, which every QUIC path carries,
    /// and let PMTU discovery search again. Lost data is resent in the smaller packets by the
    /// normal loss recovery.
    // Black-hole detection of DPLPMTUD (RFC 8899 §4.3, RFC 9000 §14.3).
    fn on_black_hole_suspected(&mut self, now: Instant) {
        const BASE: u16 = crate::packet::MIN_INITIAL_DATAGRAM_SIZE as u16;
        if self.path.mds > BASE {
            tracing::debug!(side = ?self.side, from = self.path.mds, "black hole suspected: 1200-byte datagrams");
            self.path.mtud.on_black_hole(now);
            self.set_plpmtu(BASE);
            self.stats.mtu_fallbacks += 1;
        }
    }

    /// An ACK frame received in `space`.
    pub(super) fn on_ack_frame(
        &mut self,
        now: Instant,
        space: SpaceId,
        ack: &Ack<'_>,
    ) -> Result<(), Error> {
        let info = AckInfo::from_frame(ack, self.peer_ack_delay_exponent);
        // Reused across ACKs: no allocation per ACK in the steady state.
        let mut out = std::mem::take(&mut self.ack_scratch);
        let app_limited = self.app_limited;
        if let Err(e) =
            self.loss.on_ack_received_into(now, space, info, app_limited, &mut *self.cc, &mut out)
        {
            self.ack_scratch = out;
            return Err(e);
        }
        // The window may have moved: streams may buffer twice of it (send-buffer auto-tuning).
        self.streams.set_send_buffer_floor(self.cc.window().saturating_mul(2));
        if space == SpaceId::Data {
            if let Some(k) = self.one_rtt.as_mut() {
                k.on_packet_acked(ack.largest());
            }
            //= https://www.rfc-editor.org/rfc/rfc9001#section-4.1.2
            //# Additionally, a client MAY consider the handshake to be confirmed
            //# when it receives an acknowledgment for a 1-RTT packet.
            // An acknowledgment of 0-RTT packets only does not count: it can arrive with the
            // server's Handshake flight, before the client sent its Finished.
            let one_rtt_acked = out.acked.iter().any(|p| !self.is_zero_rtt_pn(p.pn));
            if self.side == Side::Client && self.handshake_complete && one_rtt_acked {
                self.confirm_handshake(now);
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-14.4
        //# Loss of a QUIC packet that is carried in a PMTU probe is therefore not a
        //# reliable indication of congestion and SHOULD NOT trigger a congestion
        //# control reaction; see Item 7 in Section 3 of [DPLPMTUD].
        if out.lost.iter().any(|p| !p.payload.mtu_probe) {
            self.stats.congestion_events += 1;
        }
        if out.ce_increase > 0 {
            self.stats.congestion_events += 1;
        }
        if out.persistent_congestion {
            self.stats.persistent_congestion += 1;
            self.on_black_hole_suspected(now);
        }
        let mut run = None;
        for p in out.acked.drain(..) {
            self.on_packet_acked(space, p, &mut run);
        }
        self.flush_acked_run(&mut run);
        let mut black_hole = false;
        for p in out.lost.drain(..) {
            self.qlog_lost(now, space, p.pn, None);
            black_hole |= self.on_packet_lost(space, p);
        }
        if black_hole {
            self.on_black_hole_suspected(now);
        }
        self.ack_scratch = out;
        self.qlog_metrics(now);
        Ok(())
    }

    /// The loss detection timer fired.
    pub(super) fn on_loss_timeout(&mut self, now: Instant) {
        let out = self.loss.on_timeout(now, &mut *self.cc);
        if out.lost.iter().any(|p| !p.payload.mtu_probe) {
            self.stats.congestion_events += 1;
        }
        if out.persistent_congestion {
            self.stats.persistent_congestion += 1;
        }
        let mut black_hole = false;
        for p in out.lost {
            let space = p.payload.space;
            self.qlog_lost(now, space, p.pn, Some("time_threshold"));
            black_hole |= self.on_packet_lost(space, p);
        }
        if black_hole || out.persistent_congestion || self.loss.pto_count() >= BLACK_HOLE_PTOS {
            self.on_black_hole_suspected(now);
        }
        if let Some(probe) = out.probe {
            self.stats.pto_count += 1;
            let sp = &mut self.spaces[probe.space.index()];
            if sp.discarded {
                return;
            }
            //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.4
            //# When there is no data to send, the sender SHOULD send
            //# a PING or other ack-eliciting frame in a single packet, rearming the
            //# PTO timer.
            sp.probes = sp.probes.max(probe.packets);
            //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.4
            //# Previously sent data MAY be sent if no new data can be
            //# sent.
            if probe.space != SpaceId::Data && !sp.crypto_send.is_empty() {
                sp.crypto_send.resend_all();
            }
            if probe.anti_deadlock {
                //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.2.1
                //# That is, the
                //# client MUST set the PTO timer if the client has not received an
                //# acknowledgment for any of its Handshake packets and the handshake is
                //# not confirmed (see Section 4.1.2 of [QUIC-TLS]), even if there are no
                //# packets in flight.
                sp.ping_pending = true;
            }
        }
    }

    /// Passes the gathered run of acknowledged stream data to its stream.
    fn flush_acked_run(&mut self, run: &mut Option<AckedRun>) {
        if let Some(r) = run.take() {
            self.streams.on_stream_data_acked(r.id, r.offset, r.end - r.offset, r.fin);
        }
    }

    /// A packet of `space` was acknowledged: release what it carried. Its STREAM data joins
    /// `run` when adjacent to it; the caller flushes the run after the last packet.
    fn on_packet_acked(
        &mut self,
        space: SpaceId,
        p: SentPacket<SentFrames>,
        run: &mut Option<AckedRun>,
    ) {
        if space == SpaceId::Data {
            if p.payload.mtu_probe {
                if let Some(size) = self.path.mtud.on_probe_acked(p.pn) {
                    self.set_plpmtu(size);
                }
            } else {
                self.path.mtud.on_packet_acked(p.size, p.time_sent);
            }
        }
        let SentFrames { items, ack_largest, .. } = p.payload;
        if let Some(l) = ack_largest {
            self.spaces[space.index()].acks.on_ack_frame_acked(l);
        }
        for item in &items {
            match *item {
                Retx::Stream { id, offset, len, fin } => {
                    if !run.as_mut().is_some_and(|r| r.extend(id, offset, len, fin)) {
                        self.flush_acked_run(run);
                        let end = offset.saturating_add(len);
                        *run = Some(AckedRun { id, offset, end, fin });
                    }
                }
                Retx::Control(c) => {
                    // Stream state changes stay in packet order.
                    self.flush_acked_run(run);
                    self.streams.on_control_acked(&c)
                }
                // Delivered: the token need not be kept for a resend.
                Retx::NewToken => self.token_out = None,
                Retx::Crypto { .. }
                | Retx::HandshakeDone
                | Retx::NewCid(_)
                | Retx::RetireCid(_)
                | Retx::PathChallenge(_)
                | Retx::AckFrequency(_) => {}
            }
        }
        self.retx_pool.put(items);
    }

    /// A packet of `space` was declared lost: queue what it carried again. Returns whether the
    /// loss completes a suspected black hole.
    fn on_packet_lost(&mut self, space: SpaceId, p: SentPacket<SentFrames>) -> bool {
        // A lost PMTU probe is counted in `pmtu_probes_lost` only: it carried no data and its
        // loss says the size is too large, not that the path lost a packet.
        self.stats.packets_lost += u64::from(!p.payload.mtu_probe);
        let mut black_hole = false;
        if space == SpaceId::Data {
            if p.payload.mtu_probe {
                self.path.mtud.on_probe_lost(p.pn);
            } else {
                black_hole = self.path.mtud.on_packet_lost(p.size, p.time_sent);
            }
        }
        self.requeue_packet(space, p);
        black_hole
    }

    /// Queues again what a packet of `space` carried (lost, or a 0-RTT packet the server
    /// rejected or a Retry made moot).
    pub(super) fn requeue_packet(&mut self, space: SpaceId, p: SentPacket<SentFrames>) {
        let items = p.payload.items;
        for item in &items {
            match *item {
                Retx::Stream { id, offset, len, fin } => {
                    self.stats.stream_bytes_retransmitted += len;
                    self.streams.on_stream_data_lost(id, offset, len, fin);
                }
                Retx::Control(c) => self.streams.on_control_lost(&c),
                Retx::Crypto { offset, len } => {
                    let sp = &mut self.spaces[space.index()];
                    if !sp.discarded {
                        sp.crypto_send.on_lost(offset, len);
                    }
                }
                Retx::HandshakeDone => self.handshake_done_pending = true,
                //= https://www.rfc-editor.org/rfc/rfc9000#section-13.3
                //# NEW_TOKEN frames are retransmitted if the packet containing them
                //# is lost.
                Retx::NewToken => self.token_out_pending = self.token_out.is_some(),
                Retx::NewCid(seq) => {
                    if self.local_cids.frame(seq).is_some()
                        && !self.local_cids.to_send.contains(&seq)
                    {
                        self.local_cids.to_send.push(seq);
                    }
                }
                Retx::RetireCid(seq) => {
                    if !self.peer_cids.to_retire.contains(&seq) {
                        self.peer_cids.to_retire.push(seq);
                    }
                }
                Retx::AckFrequency(seq) => self.on_ack_frequency_lost(seq),
                Retx::PathChallenge(data) => {
                    self.path.on_challenge_lost(data);
                }
            }
        }
        self.retx_pool.put(items);
    }
}

#[cfg(test)]
mod tests {
    use super::AckedRun;
    use crate::streams::{Dir, Role, StreamId};

    fn sid(i: u64) -> StreamId {
        StreamId::new(Role::Server, Dir::Uni, i).unwrap()
    }

    #[test]
    fn acked_run_joins_adjacent_ranges_of_one_stream_only() {
        let mut r = AckedRun { id: sid(0), offset: 0, end: 1000, fin: false };
        assert!(r.extend(sid(0), 1000, 500, false));
        assert_eq!((r.offset, r.end), (0, 1500));
        // A gap, an overlap (a retransmission), another stream: not joined.
        assert!(!r.extend(sid(0), 1600, 10, false));
        assert!(!r.extend(sid(0), 1000, 10, false));
        assert!(!r.extend(sid(1), 1500, 10, false));
        // The FIN ends the run.
        assert!(r.extend(sid(0), 1500, 0, true));
        assert!(r.fin);
        assert!(!r.extend(sid(0), 1500, 0, false));
        assert_eq!((r.offset, r.end), (0, 1500));
    }
}
