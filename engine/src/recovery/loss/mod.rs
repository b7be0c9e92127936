//! Sender-side loss detection of a path, all three spaces (RFC 9002 §6-7, Appendix A).

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use peregrine_datapath::Ecn;

mod detect;
mod timer;
mod types;

pub use types::{AckInfo, AckOutcome, LossConfig, Probe, TimeoutOutcome};

use super::ecn::{AckEcn, Counts, EcnState, EcnValidator};
use super::persistent::Run;
use super::rtt::RttEstimator;
use super::sent::{SentLedger, SentPacket};
use super::SpaceId;
use crate::congestion::{Controller, DeliveryRate};
use crate::error::Error;

//= https://www.rfc-editor.org/rfc/rfc9002#section-6.1.1
//# The RECOMMENDED initial value for the packet reordering threshold
//# (kPacketThreshold) is 3, based on best practices for TCP loss
//# detection [RFC5681] [RFC6675].
/// kPacketThreshold: a packet is lost once a packet this many numbers later is acknowledged.
pub const PACKET_THRESHOLD: u64 = 3;

/// Cap on the PTO backoff exponent (2^16 * PTO is far beyond any idle timeout).
const MAX_PTO_EXPONENT: u32 = 16;

/// Probes sent when a PTO fires with data in flight.
//= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.4
//# An endpoint
//# MAY send up to two full-sized datagrams containing ack-eliciting
//# packets to avoid an expensive consecutive PTO expiration due to a
//# single lost datagram or to transmit data from multiple packet number
//# spaces.
const PTO_PROBES: u8 = 2;

#[derive(Debug)]
struct Space<T> {
    sent: SentLedger<T>,
    largest_acked: Option<u64>,
    loss_time: Option<Instant>,
    last_ack_eliciting: Option<Instant>,
    /// ECN counts of the last ACK frame that validated.
    ecn_last: Counts,
    /// Packets sent with each ECN codepoint.
    ecn_sent: Counts,
    pc_run: Option<Run>,
    /// Latest send time of any packet of this space acknowledged.
    max_acked_time_sent: Option<Instant>,
    discarded: bool,
}

impl<T> Space<T> {
    fn new() -> Self {
        Self {
            sent: SentLedger::new(),
            largest_acked: None,
            loss_time: None,
            last_ack_eliciting: None,
            ecn_last: Counts::default(),
            ecn_sent: Counts::default(),
            pc_run: None,
            max_acked_time_sent: None,
            discarded: false,
        }
    }
}

/// Loss detection and recovery for one path (RFC 9002 Appendix A), generic over the payload
/// `T` recorded with each sent packet.
#[derive(Debug)]
pub struct LossDetector<T> {
    config: LossConfig,
    spaces: [Space<T>; 3],
    rtt: RttEstimator,
    pto_count: u32,
    ecn: EcnValidator,
    handshake_confirmed: bool,
    has_handshake_keys: bool,
    handshake_ack_received: bool,
    amplification_limited: bool,
    timer: Option<Instant>,
    /// A re-arm of [`timer`](Self::timer) due since a packet was sent at this time: sending
    /// only records it; [`timer`](Self::timer) computes the value on each read without
    /// storing it, and any other change stores it first (the value is the same as re-arming
    /// after every packet, at one computation per read instead of one per packet).
    timer_due: Option<Instant>,
    /// The most bytes in flight after any send since the last ACK was processed: how much of
    /// the congestion window the sender actually used (see [`Self::window_used`]).
    peak_in_flight: u64,
    /// Delivery-rate sampling for the controller ([`Controller::on_ack_event`]).
    delivery: DeliveryRate,
}

impl<T> LossDetector<T> {
    /// A detector with nothing sent.
    pub fn new(config: LossConfig) -> Self {
        let config = LossConfig {
            packet_threshold: config.packet_threshold.max(PACKET_THRESHOLD),
            ..config
        };
        Self {
            config,
            spaces: [Space::new(), Space::new(), Space::new()],
            rtt: RttEstimator::new(config.initial_rtt),
            pto_count: 0,
            ecn: EcnValidator::new(config.ecn),
            handshake_confirmed: false,
            has_handshake_keys: false,
            handshake_ack_received: false,
            amplification_limited: false,
            timer: None,
            timer_due: None,
            peak_in_flight: 0,
            delivery: DeliveryRate::new(),
        }
    }

    /// Whether the sender used enough of a congestion window of `window` bytes since the last
    /// ACK for that window to grow: bytes in flight reached half of it. A window the sender
    /// does not fill — because the application, flow control, the send buffer or the CPU
    /// cannot keep up — must not grow on acknowledgments (RFC 9002 §7.8): it would grow
    /// without bound while nothing tests it, the pacer (which paces at a multiple of
    /// `window / srtt`) would stop pacing, and the first real burst would overrun the path.
    /// Half, as Linux TCP judges slow start (`tcp_is_cwnd_limited`), because a window is only
    /// ever filled in bursts between ACKs, and in slow start an ACK may arrive before it is.
    pub fn window_used(&self, window: u64) -> bool {
        self.peak_in_flight.saturating_mul(2) >= window
    }

    /// Records a sent packet (sent at `packet.time_sent`) and re-arms the timer. Packet numbers
    /// must grow within a space; gaps are remembered as skipped numbers, and an ACK for one of
    /// them is a PROTOCOL_VIOLATION.
    pub fn on_packet_sent(
        &mut self,
        space: SpaceId,
        mut packet: SentPacket<T>,
        cc: &mut dyn Controller,
    ) -> Result<(), Error> {
        let now = packet.time_sent;
        let (in_flight, ack_eliciting, size, ecn) =
            (packet.in_flight, packet.ack_eliciting, packet.size, packet.ecn);
        let before = self.bytes_in_flight();
        if in_flight {
            packet.delivery = self.delivery.on_packet_sent(now, u64::from(size), before);
        }
        let sp = &mut self.spaces[space.index()];
        if sp.discarded {
            return Err(Error::internal("packet sent in a discarded packet number space"));
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-12.3
        //# A QUIC endpoint MUST NOT reuse a packet number within the same packet
        //# number space in one connection.
        sp.sent.push(packet).map_err(|_| Error::internal("packet number reused"))?;
        sp.ecn_sent.add(ecn);
        let (rtt, max_ack_delay) = (&self.rtt, self.config.max_ack_delay);
        self.ecn.on_packet_sent(now, ecn, || pto_period(rtt, max_ack_delay, space));
        if in_flight {
            if ack_eliciting {
                sp.last_ack_eliciting = Some(now);
            }
            self.peak_in_flight = self.peak_in_flight.max(before + u64::from(size));
            cc.on_packet_sent(now, u64::from(size), before);
            //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.1
            //# A sender SHOULD restart its PTO timer every time an ack-eliciting
            //# packet is sent or acknowledged, or when Initial or Handshake keys are
            //# discarded (Section 4.9 of [QUIC-TLS]).
            // Re-armed lazily: see `timer_due`.
            self.timer_due = Some(now);
        }
        Ok(())
    }

    /// Processes an ACK frame received in `space` (RFC 9002 Appendix A.7). `app_limited`: the
    /// connection was not filling the congestion window. On error (an acknowledgment of a
    /// packet never sent) the connection must close; the detector's state is then undefined.
    pub fn on_ack_received<R>(
        &mut self,
        now: Instant,
        space: SpaceId,
        ack: AckInfo<R>,
        app_limited: bool,
        cc: &mut dyn Controller,
    ) -> Result<AckOutcome<T>, Error>
    where
        R: IntoIterator<Item = RangeInclusive<u64>>,
    {
        let mut out = AckOutcome::default();
        self.on_ack_received_into(now, space, ack, app_limited, cc, &mut out)?;
        Ok(out)
    }

    /// [`on_ack_received`](Self::on_ack_received) into a caller-kept `out`, which is cleared
    /// first: reusing it across ACKs keeps the acknowledged-packet vector's capacity, so the
    /// steady state allocates nothing per ACK. `out` is only meaningful on `Ok`.
    pub fn on_ack_received_into<R>(
        &mut self,
        now: Instant,
        space: SpaceId,
        ack: AckInfo<R>,
        app_limited: bool,
        cc: &mut dyn Controller,
        out: &mut AckOutcome<T>,
    ) -> Result<(), Error>
    where
        R: IntoIterator<Item = RangeInclusive<u64>>,
    {
        self.settle_timer();
        out.acked.clear();
        out.lost.clear();
        out.persistent_congestion = false;
        out.rtt_sample = false;
        out.ce_increase = 0;
        let si = space.index();
        if self.spaces[si].discarded {
            return Ok(());
        }
        self.delivery.on_ack_start();
        if app_limited {
            self.delivery.on_app_limited(self.bytes_in_flight());
        }
        let sp = &mut self.spaces[si];
        //= https://www.rfc-editor.org/rfc/rfc9000#section-13.1
        //# An endpoint SHOULD treat receipt of an acknowledgment for a packet it
        //# did not send as a connection error of type PROTOCOL_VIOLATION, if it
        //# is able to detect the condition.
        if sp.sent.largest_sent().is_none_or(|l| ack.largest > l) {
            return Err(Error::protocol_violation("ACK of a packet never sent"));
        }
        let largest_increased = sp.largest_acked.is_none_or(|l| ack.largest > l);
        sp.largest_acked = Some(sp.largest_acked.map_or(ack.largest, |l| l.max(ack.largest)));
        let first_handshake_ack = space == SpaceId::Handshake && !self.handshake_ack_received;
        self.handshake_ack_received |= space == SpaceId::Handshake;

        let mut newly_ecn = Counts::default();
        for r in ack.ranges {
            let (lo, hi) = (*r.start(), *r.end());
            if lo > hi || hi > ack.largest {
                return Err(Error::frame_encoding("ACK range outside Largest Acknowledged"));
            }
            //= https://www.rfc-editor.org/rfc/rfc9000#section-21.4
            //# An endpoint MAY skip packet numbers when sending
            //# packets to detect this behavior.
            if sp.sent.skipped_in(lo, hi) {
                return Err(Error::protocol_violation("ACK of a skipped packet number"));
            }
            for pn in sp.sent.held_range(lo, hi) {
                if let Some(p) = sp.sent.take(pn, true) {
                    newly_ecn.add(p.ecn);
                    out.acked.push(p);
                }
            }
        }
        if out.acked.is_empty() {
            if first_handshake_ack {
                self.set_timer(now);
            }
            return Ok(());
        }
        out.acked.sort_unstable_by_key(|p| p.pn);
        let (largest_newly_pn, largest_newly_sent) =
            out.acked.last().map(|p| (p.pn, p.time_sent)).unwrap_or((ack.largest, now));
        let acked_sent_max = out.acked.iter().map(|p| p.time_sent).max();
        sp.max_acked_time_sent = sp.max_acked_time_sent.max(acked_sent_max);

        //= https://www.rfc-editor.org/rfc/rfc9002#section-5.1
        //# To avoid generating multiple RTT samples for a single packet, an ACK
        //# frame SHOULD NOT be used to update RTT estimates if it does not newly
        //# acknowledge the largest acknowledged packet.
        //= https://www.rfc-editor.org/rfc/rfc9002#section-5.1
        //# An RTT sample MUST NOT be generated on receiving an ACK frame that
        //# does not newly acknowledge at least one ack-eliciting packet.
        if largest_newly_pn == ack.largest && out.acked.iter().any(|p| p.ack_eliciting) {
            //= https://www.rfc-editor.org/rfc/rfc9002#section-5.3
            //# *  MAY ignore the acknowledgment delay for Initial packets, since
            //# these acknowledgments are not delayed by the peer (Section 13.2.1
            //# of [QUIC-TRANSPORT]);
            let ack_delay = if space == SpaceId::Initial { Duration::ZERO } else { ack.ack_delay };
            let latest = now.saturating_duration_since(largest_newly_sent);
            let (mad, confirmed) = (self.config.max_ack_delay, self.handshake_confirmed);
            self.rtt.update(now, latest, ack_delay, mad, confirmed);
            out.rtt_sample = true;
        }

        let sp = &mut self.spaces[si];
        out.ce_increase = self.ecn.on_ack(AckEcn {
            newly_acked: newly_ecn,
            reported: ack.ecn.map(Counts::from),
            largest_increased,
            sent_total: sp.ecn_sent,
            last: &mut sp.ecn_last,
        });
        //= https://www.rfc-editor.org/rfc/rfc9002#section-7.3.1
        //# The sender MUST exit slow start and enter a recovery period when a
        //# packet is lost or when the ECN-CE count reported by its peer
        //# increases.
        if out.ce_increase > 0 {
            cc.on_congestion_event(now, largest_newly_sent);
        }

        let (lost, pc) = self.detect_lost(now, space);
        self.on_packets_lost(now, &lost, pc, cc);
        out.lost.extend(lost);
        out.persistent_congestion = pc;

        //= https://www.rfc-editor.org/rfc/rfc9002#section-7.8
        //# When bytes in flight is smaller than the congestion window and
        //# sending is not pacing limited, the congestion window is
        //# underutilized.
        // Pacing is judged through bytes in flight too: a sender held back only by the pacer
        // still has at least half the window in flight whenever the window is the limit.
        let app_limited = app_limited || !self.window_used(cc.window());
        for p in out.acked.iter().filter(|p| p.in_flight) {
            self.delivery.on_packet_acked(now, p.time_sent, u64::from(p.size), &p.delivery);
            cc.on_ack(now, p.time_sent, u64::from(p.size), app_limited, &self.rtt);
        }
        self.peak_in_flight = self.bytes_in_flight();
        if let Some(sample) = self.delivery.sample(now, self.rtt.min(), self.peak_in_flight) {
            cc.on_ack_event(now, &sample);
        }

        //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.1
        //# The PTO backoff factor is reset when an acknowledgment is received,
        //# except in the following case.
        if self.peer_completed_address_validation() {
            self.pto_count = 0;
        }
        self.set_timer(now);
        self.spaces[si].sent.compact();
        Ok(())
    }

    /// Runs the loss detection timer if it expired at `now` (RFC 9002 Appendix A.9). Does
    /// nothing before [`timer`](Self::timer).
    pub fn on_timeout(&mut self, now: Instant, cc: &mut dyn Controller) -> TimeoutOutcome<T> {
        self.settle_timer();
        let mut out = TimeoutOutcome::default();
        if self.timer.is_none_or(|t| t > now) {
            return out;
        }
        if let Some((_, space)) = self.loss_time_and_space() {
            let (lost, pc) = self.detect_lost(now, space);
            self.on_packets_lost(now, &lost, pc, cc);
            out.lost = lost;
            out.persistent_congestion = pc;
            self.spaces[space.index()].sent.compact();
            self.set_timer(now);
            return out;
        }
        if !self.any_ack_eliciting_in_flight() {
            if self.peer_completed_address_validation() {
                self.set_timer(now);
                return out;
            }
            //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.2.1
            //# When the PTO fires, the client MUST send a
            //# Handshake packet if it has Handshake keys, otherwise it MUST send an
            //# Initial packet in a UDP datagram with a payload of at least 1200
            //# bytes.
            let space = if self.has_handshake_keys { SpaceId::Handshake } else { SpaceId::Initial };
            out.probe = Some(Probe { space, packets: 1, anti_deadlock: true });
        } else if let Some((_, space)) = self.pto_time_and_space(now) {
            //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.4
            //# When a PTO timer expires, a sender MUST send at least one ack-
            //# eliciting packet in the packet number space as a probe.
            out.probe = Some(Probe { space, packets: PTO_PROBES, anti_deadlock: false });
        }
        //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.1
        //# When a PTO timer expires, the PTO backoff MUST be increased,
        //# resulting in the PTO period being set to twice its current value.
        self.pto_count = self.pto_count.saturating_add(1);
        self.set_timer(now);
        out
    }

    /// Drops every packet of `space` whose keys were discarded, removing them from bytes in
    /// flight without a congestion signal, and resets the timers. Returns the packets.
    //= https://www.rfc-editor.org/rfc/rfc9002#section-6.4
    //# The sender MUST discard all recovery state
    //# associated with those packets and MUST remove them from the count of
    //# bytes in flight.
    //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.2
    //# When
    //# Initial or Handshake keys are discarded, the PTO and loss detection
    //# timers MUST be reset, because discarding keys indicates forward
    //# progress and the loss detection timer might have been set for a now-
    //# discarded packet number space.
    pub fn discard_space(&mut self, now: Instant, space: SpaceId) -> Vec<SentPacket<T>> {
        self.settle_timer();
        let dropped = self.drain_where(now, space, |_| true);
        let sp = &mut self.spaces[space.index()];
        sp.discarded = true;
        sp.loss_time = None;
        sp.last_ack_eliciting = None;
        sp.pc_run = None;
        self.pto_count = 0;
        self.set_timer(now);
        dropped
    }

    /// Removes the outstanding packets of `space` for which `pred` holds (for example 0-RTT
    /// packets when 0-RTT is rejected), from bytes in flight too, without a congestion signal.
    pub fn drain_where(
        &mut self,
        now: Instant,
        space: SpaceId,
        pred: impl FnMut(&SentPacket<T>) -> bool,
    ) -> Vec<SentPacket<T>> {
        self.settle_timer();
        let dropped = self.spaces[space.index()].sent.drain_where(pred);
        let marked = dropped.iter().filter(|p| p.ecn != Ecn::NotEct).count() as u64;
        self.ecn.on_marked_lost(marked);
        self.set_timer(now);
        dropped
    }

    /// A Retry was received (RFC 9002 §6.3): every sent packet is returned for resending and
    /// the loss recovery state and timers are reset. Packet numbers keep growing.
    pub fn on_retry(&mut self) -> Vec<SentPacket<T>> {
        let mut all = Vec::new();
        for space in SpaceId::ALL {
            all.extend(self.spaces[space.index()].sent.drain_where(|_| true));
            let sp = &mut self.spaces[space.index()];
            sp.largest_acked = None;
            sp.loss_time = None;
            sp.last_ack_eliciting = None;
            sp.pc_run = None;
        }
        self.pto_count = 0;
        self.timer = None;
        self.timer_due = None;
        all
    }

    /// The handshake is confirmed (RFC 9001 §4.1.2): max_ack_delay applies, the application
    /// data PTO may be armed.
    pub fn on_handshake_confirmed(&mut self, now: Instant) {
        self.settle_timer();
        self.handshake_confirmed = true;
        self.set_timer(now);
    }

    /// Handshake keys are available (the anti-deadlock probe becomes a Handshake packet).
    pub fn on_handshake_keys(&mut self, now: Instant) {
        self.settle_timer();
        self.has_handshake_keys = true;
        self.set_timer(now);
    }

    /// A server records whether it is blocked by the anti-amplification limit. When a received
    /// datagram lifts the limit the timer is re-armed; if [`timer`](Self::timer) is then in the
    /// past, call [`on_timeout`](Self::on_timeout) right away (RFC 9002 Appendix A.6).
    //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.2.1
    //# If
    //# no additional data can be sent, the server's PTO timer MUST NOT be
    //# armed until datagrams have been received from the client because
    //# packets sent on PTO count against the anti-amplification limit.
    pub fn set_amplification_limited(&mut self, now: Instant, limited: bool) {
        self.settle_timer();
        self.amplification_limited = limited && self.config.is_server;
        self.set_timer(now);
    }

    /// The peer's max_ack_delay (from its transport parameters; 25 ms until known).
    pub fn peer_max_ack_delay(&self) -> Duration {
        self.config.max_ack_delay
    }

    /// Sets the peer's max_ack_delay (from its transport parameters).
    pub fn set_peer_max_ack_delay(&mut self, now: Instant, max_ack_delay: Duration) {
        self.settle_timer();
        self.config.max_ack_delay = max_ack_delay;
        self.set_timer(now);
    }

    /// When [`on_timeout`](Self::on_timeout) must run next.
    pub fn timer(&self) -> Option<Instant> {
        match self.timer_due {
            Some(at) => self.compute_timer(at),
            None => self.timer,
        }
    }

    /// The RTT estimator.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Replaces the RTT estimator (a new path starts from the initial RTT, RFC 9000 §9.4; a
    /// path fallen back to gets its own back) and returns the one in use.
    pub fn replace_rtt(&mut self, rtt: RttEstimator) -> RttEstimator {
        std::mem::replace(&mut self.rtt, rtt)
    }

    /// The initial RTT this detector was configured with.
    pub fn initial_rtt(&self) -> Duration {
        self.config.initial_rtt
    }

    /// Bytes of in-flight packets, all spaces.
    pub fn bytes_in_flight(&self) -> u64 {
        self.spaces.iter().map(|s| s.sent.bytes_in_flight()).sum()
    }

    /// Consecutive PTO expirations without an acknowledgment.
    pub fn pto_count(&self) -> u32 {
        self.pto_count
    }

    /// The PTO period for `space` without backoff (the idle and closing timeouts use it).
    pub fn pto_period(&self, space: SpaceId) -> Duration {
        //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.1
        //# When the PTO is armed for Initial or Handshake packet number spaces,
        //# the max_ack_delay in the PTO period computation is set to 0, since
        //# the peer is expected to not delay these packets intentionally; see
        //# Section 13.2.1 of [QUIC-TRANSPORT].
        pto_period(&self.rtt, self.config.max_ack_delay, space)
    }

    /// The ECN codepoint to send the next packet with.
    pub fn ecn_marking(&self) -> Ecn {
        self.ecn.marking()
    }

    /// Where ECN validation stands.
    pub fn ecn_state(&self) -> EcnState {
        self.ecn.state()
    }

    /// The largest packet number the peer acknowledged in `space`.
    pub fn largest_acked(&self, space: SpaceId) -> Option<u64> {
        self.spaces[space.index()].largest_acked
    }

    /// The largest packet number sent in `space`.
    pub fn largest_sent(&self, space: SpaceId) -> Option<u64> {
        self.spaces[space.index()].sent.largest_sent()
    }

    /// Whether `space` has ack-eliciting packets in flight.
    pub fn has_ack_eliciting_in_flight(&self, space: SpaceId) -> bool {
        self.spaces[space.index()].sent.ack_eliciting_in_flight() > 0
    }

    /// The outstanding packet `pn` of `space`.
    pub fn sent_packet(&self, space: SpaceId, pn: u64) -> Option<&SentPacket<T>> {
        self.spaces[space.index()].sent.get(pn)
    }

    /// Whether the peer is known to have validated our address (always true for a server).
    pub fn peer_completed_address_validation(&self) -> bool {
        self.config.is_server || self.handshake_ack_received || self.handshake_confirmed
    }

    fn any_ack_eliciting_in_flight(&self) -> bool {
        self.spaces.iter().any(|s| s.sent.ack_eliciting_in_flight() > 0)
    }
}

/// [`LossDetector::pto_period`] from its parts (for borrows disjoint from the detector).
fn pto_period(rtt: &RttEstimator, max_ack_delay: Duration, space: SpaceId) -> Duration {
    let mad = if space == SpaceId::Data { max_ack_delay } else { Duration::ZERO };
    rtt.pto_base().saturating_add(mad)
}

#[cfg(test)]
mod tests;
