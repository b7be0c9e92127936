//! Sending: datagrams (or GSO trains of equal-sized datagrams) written and sealed in place in
//! the caller's buffer; Initial, Handshake and 1-RTT packets coalesced; frame priority close,
//! ACK, CRYPTO, HANDSHAKE_DONE, control frames, stream data; congestion, pacing and
//! anti-amplification limits; Initial padding.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use peregrine_datapath::Ecn;

use super::close::CloseState;
use super::sent::SentFrames;
use super::timers::Timer;
use super::Connection;
use crate::coding::Writer;
use crate::congestion::PACING_BURST_PACKETS;
use crate::crypto::{Side, TAG_LEN};
use crate::error::Error;
use crate::frame::{plan_ack, write_ack, FrameType, ImmediateAck, PacketSummary, Ping};
use crate::packet::MIN_INITIAL_DATAGRAM_SIZE;
use crate::packet::{LongHeader, LongType, PacketBuilder, ShortHeader, TruncatedPn};
use crate::recovery::{SentPacket, SpaceId};

/// A packet is not started with less room than this.
const MIN_PACKET_ROOM: usize = 48;
/// Bytes kept free at the end of a packet: the AEAD tag and the header-protection sample pad.
const TRAILER: usize = TAG_LEN + 4;

/// What [`Connection::poll_transmit`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub dst: SocketAddr,
    /// Where to send it from: the local address of the connection's path when its owner
    /// gave one ([`Connection::migrate`], [`Connection::set_local_address`]).
    pub src: Option<SocketAddr>,
    /// ECN codepoint for every datagram of the transmit.
    pub ecn: Ecn,
    /// With several datagrams: each is `segment_size` bytes except possibly the last (GSO).
    pub segment_size: Option<usize>,
    /// Bytes written at the start of the output buffer.
    pub len: usize,
    /// Number of datagrams.
    pub datagrams: usize,
}

/// Bytes a frame other than STREAM may take: everything but the trailer.
pub(super) fn room(w: &Writer<'_>) -> usize {
    w.remaining().saturating_sub(TRAILER)
}

impl Connection {
    /// Writes the next datagram, or up to `max_datagrams` of them as a GSO train (all
    /// `segment_size` bytes but the last), at the start of `out`, sealed in place. `None`
    /// when there is nothing to send now (see [`poll_timeout`](Self::poll_timeout)).
    ///
    /// A `None` clears the connection's transmit interest ([`Connection::interests`]) until
    /// something new happens to it (a datagram, a timer, an application call).
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        out: &mut [u8],
        max_datagrams: usize,
    ) -> Option<Transmit> {
        let t = self.poll_transmit_inner(now, out, max_datagrams);
        if t.is_none() {
            self.transmit_interest = false;
        }
        t
    }

    fn poll_transmit_inner(
        &mut self,
        now: Instant,
        out: &mut [u8],
        max_datagrams: usize,
    ) -> Option<Transmit> {
        match self.close {
            CloseState::Open => {}
            CloseState::Closing { .. } => return self.poll_close(now, out),
            _ => return None,
        }
        let seg = self.max_datagram_size().min(out.len());
        if seg < MIN_INITIAL_DATAGRAM_SIZE {
            return None;
        }
        if let Some(t) = self.poll_path_probe(now, out) {
            self.update_timers(now);
            return Some(t);
        }
        if let Some(n) = self.poll_mtu_probe(now, out) {
            self.stats.datagrams_sent += 1;
            self.stats.bytes_sent += n as u64;
            self.update_timers(now);
            return Some(Transmit {
                dst: self.path.remote,
                src: self.path.local,
                ecn: Ecn::NotEct,
                segment_size: None,
                len: n,
                datagrams: 1,
            });
        }
        let ecn = self.loss.ecn_marking();
        let (mut total, mut count) = (0usize, 0usize);
        while count < max_datagrams.max(1) && total + seg <= out.len() {
            let n = self.build_datagram(now, &mut out[total..total + seg], ecn);
            if n == 0 || !self.close.is_open() {
                break;
            }
            total += n;
            count += 1;
            // GSO: only the last datagram of a train may be shorter.
            if n < seg {
                break;
            }
        }
        self.app_limited = !self.streams.wants_transmit();
        self.update_timers(now);
        if total == 0 || count == 0 {
            return None;
        }
        if self.qlog.is_some() {
            self.qlog_metrics(now);
        }
        self.stats.datagrams_sent += count as u64;
        self.stats.bytes_sent += total as u64;
        Some(Transmit {
            dst: self.path.remote,
            src: self.path.local,
            ecn,
            segment_size: (count > 1).then_some(seg),
            len: total,
            datagrams: count,
        })
    }

    /// The largest datagram we build on this path.
    pub(super) fn max_datagram_size(&self) -> usize {
        u64::from(self.path.mds).min(self.peer_max_udp_payload) as usize
    }

    /// Bytes the server may still send before the client's address is validated.
    /// The window the pacer paces over `srtt`: the congestion window, or the window
    /// equivalent to the controller's own pacing rate when it sets one (BBR).
    fn pacing_window(&self, cwnd: u64, srtt: Duration) -> u64 {
        match self.cc.pacing_rate() {
            Some(rate) => crate::congestion::Pacer::window_for_rate(rate, srtt),
            None => cwnd,
        }
    }

    fn amplification_budget(&self) -> usize {
        self.path.amplification_budget()
    }

    /// Whether the amplification budget allows any datagram (see `build_datagram`).
    pub(super) fn can_send_within_budget(&self) -> bool {
        let least =
            if self.handshake_confirmed { MIN_PACKET_ROOM } else { MIN_INITIAL_DATAGRAM_SIZE };
        self.amplification_budget() >= least
    }

    /// Whether `space` has keys to send with.
    fn can_send_in(&self, space: SpaceId) -> bool {
        match space {
            SpaceId::Data => self.one_rtt.is_some() || self.sends_zero_rtt(),
            _ => !self.spaces[space.index()].discarded && self.spaces[space.index()].keys.is_some(),
        }
    }

    /// Whether `space` has anything but an ACK to send (`allow`: congestion-controlled frames
    /// may be sent).
    fn has_other_work(&self, space: SpaceId, allow: bool) -> bool {
        let sp = &self.spaces[space.index()];
        if sp.probes > 0 || sp.ping_pending {
            return true;
        }
        if !allow {
            return false;
        }
        if sp.crypto_send.has_data() {
            return true;
        }
        space == SpaceId::Data
            && (self.handshake_done_pending
                || (self.token_out_pending && self.handshake_complete)
                || self.path.response.is_some()
                || self.path.challenge_pending
                || !self.local_cids.to_send.is_empty()
                || !self.peer_cids.to_retire.is_empty()
                || self.has_datagrams_to_send()
                || ((self.handshake_complete || self.sends_zero_rtt())
                    && self.streams.wants_transmit()))
    }

    fn has_work(&self, now: Instant, space: SpaceId, allow: bool) -> bool {
        self.can_send_in(space)
            && (self.spaces[space.index()].acks.wants_ack(now) || self.has_other_work(space, allow))
    }

    /// Builds one datagram into `buf`; returns its length (0: nothing to send).
    fn build_datagram(&mut self, now: Instant, buf: &mut [u8], ecn: Ecn) -> usize {
        let mut limit = buf.len();
        let budget = self.amplification_budget();
        if budget < limit {
            // During the handshake a datagram below 1200 bytes is useless (Initials must be
            // padded); on a new path being validated, a smaller one may carry the challenge.
            let small_ok = self.handshake_confirmed && budget >= MIN_PACKET_ROOM;
            if budget < MIN_INITIAL_DATAGRAM_SIZE && !small_ok {
                self.loss.set_amplification_limited(now, true);
                return 0;
            }
            limit = budget;
        }
        let probing = self.spaces.iter().any(|s| s.probes > 0 || s.ping_pending);
        let cwnd = self.cc.window();
        let mut allow = self.loss.bytes_in_flight() + limit as u64 <= cwnd;
        // Pacing can be turned off by configuration (`TransportConfig::with_pacing`).
        if allow && !probing && self.config.pacing {
            //= https://www.rfc-editor.org/rfc/rfc9002#section-7.7
            //# A sender SHOULD pace sending of all in-flight packets based on input
            //# from the congestion controller.
            //= https://www.rfc-editor.org/rfc/rfc9002#section-7.7
            //# Senders SHOULD limit bursts to the initial congestion window; see
            //# Section 7.2.
            // Once blocked, the sender waits for a batch's worth of credit (a full bucket of
            // PACING_BURST_PACKETS datagrams, one GSO train) rather than for the next
            // datagram: the rate is the same, but each wakeup fills a train instead of
            // releasing one datagram per timer.
            let srtt = self.loss.rtt().smoothed();
            let pace = self.pacing_window(cwnd, srtt);
            let waiting = self.timers.get(Timer::Pacing).is_some_and(|t| t > now);
            if waiting || self.pacer.release_time(now, limit as u64, pace, srtt) > now {
                allow = false;
                // Only arm the timer when something paced is waiting to go: an idle or
                // ACK-only sender is not woken by the pacer.
                let paced_work = SpaceId::ALL
                    .iter()
                    .any(|&s| self.can_send_in(s) && self.has_other_work(s, true));
                if !waiting && paced_work {
                    let batch = limit as u64 * PACING_BURST_PACKETS;
                    let at = self.pacer.batch_release_time(now, batch, pace, srtt);
                    self.timers.set(Timer::Pacing, at);
                }
            }
        }
        let mut pos = 0;
        let mut pad = false;
        let mut sent_handshake = false;
        for space in SpaceId::ALL {
            if !self.has_work(now, space, allow) {
                continue;
            }
            if limit - pos < MIN_PACKET_ROOM {
                break;
            }
            let later = SpaceId::ALL
                .iter()
                .filter(|s| s.index() > space.index())
                .any(|&s| self.has_work(now, s, allow));
            let n = self.build_packet(
                now,
                space,
                &mut buf[pos..limit],
                pos,
                !later,
                &mut pad,
                allow,
                ecn,
            );
            if let Some(n) = n {
                pos += n;
                sent_handshake |= space == SpaceId::Handshake;
            }
            if !self.close.is_open() {
                return 0;
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.9.1
        //# Thus, a client MUST discard Initial keys when it first sends a
        //# Handshake packet and a server MUST discard Initial keys when it
        //# first successfully processes a Handshake packet.
        if sent_handshake && self.side == Side::Client {
            self.discard_space(now, SpaceId::Initial);
        }
        self.path.on_sent(pos);
        pos
    }

    /// Initiates a key update when asked, due by packet count, or near the AEAD limit.
    fn maybe_update_keys(&mut self, now: Instant) {
        let Some(k) = self.one_rtt.as_mut() else { return };
        let due = self.key_update_requested
            || self.config.key_update_interval.is_some_and(|n| k.sealed_in_phase() >= n)
            || k.should_update();
        if due && k.update_permitted() && k.initiate_update().is_ok() {
            self.key_update_requested = false;
            self.stats.key_updates += 1;
            self.arm_key_discard(now);
            self.qlog_key_update(now, true);
        }
    }

    /// Schedules dropping the previous 1-RTT receive key in 3 PTO (RFC 9001 §6.5).
    pub(super) fn arm_key_discard(&mut self, now: Instant) {
        let pto = self.loss.pto_period(SpaceId::Data);
        self.timers.set(Timer::KeyDiscard, now + pto * 3);
    }

    /// Writes the header of a packet of `space` numbered `pn` at the start of `w`.
    pub(super) fn write_header(
        &self,
        w: &mut Writer<'_>,
        space: SpaceId,
        pn: u64,
    ) -> Option<PacketBuilder> {
        let tpn = TruncatedPn::encode(pn, self.loss.largest_acked(space)).ok()?;
        let dst_cid = self.peer_cids.current();
        let r = match space {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.3
            //# A 0-RTT packet uses long headers with a type value of 0x01, followed
            //# by the Length and Packet Number fields; see Section 17.2.
            SpaceId::Data if self.sends_zero_rtt() => PacketBuilder::long(
                w,
                &LongHeader {
                    ty: LongType::ZeroRtt,
                    version: self.version,
                    dst_cid,
                    src_cid: self.local_scid,
                    token: &[],
                    pn: tpn,
                    grease_quic_bit: false,
                },
            ),
            SpaceId::Data => PacketBuilder::short(
                w,
                &ShortHeader {
                    dst_cid,
                    spin: false,
                    key_phase: self.one_rtt.as_ref()?.key_phase(),
                    pn: tpn,
                    grease_quic_bit: false,
                },
            ),
            _ => {
                let initial = space == SpaceId::Initial;
                let token: &[u8] =
                    if initial && self.side == Side::Client { &self.token } else { &[] };
                PacketBuilder::long(
                    w,
                    &LongHeader {
                        ty: if initial { LongType::Initial } else { LongType::Handshake },
                        version: self.version,
                        dst_cid,
                        src_cid: self.local_scid,
                        token,
                        pn: tpn,
                        grease_quic_bit: false,
                    },
                )
            }
        };
        r.ok()
    }

    /// Seals and header-protects the finished packet `pkt` in place.
    pub(super) fn seal(
        &mut self,
        space: SpaceId,
        pn: u64,
        pkt: &mut [u8],
        header_len: usize,
        pn_offset: usize,
    ) -> Result<(), Error> {
        let fail = |e: crate::crypto::CryptoError| {
            e.connection_error().unwrap_or(Error::internal("packet protection failed"))
        };
        match space {
            SpaceId::Data if self.sends_zero_rtt() => {
                let k = self.zero_rtt_keys().ok_or(Error::internal("no 0-RTT keys"))?;
                k.packet.seal_in_place(pn, pkt, header_len).map_err(fail)?;
                k.header.protect(pkt, pn_offset).map_err(fail)
            }
            SpaceId::Data => {
                let k = self.one_rtt.as_mut().ok_or(Error::internal("no 1-RTT keys"))?;
                k.seal(pn, pkt, header_len).map_err(fail)?;
                k.local_header().protect(pkt, pn_offset).map_err(fail)
            }
            _ => {
                let k = self.spaces[space.index()]
                    .keys
                    .as_ref()
                    .ok_or(Error::internal("no keys for the space"))?;
                k.local.packet.seal_in_place(pn, pkt, header_len).map_err(fail)?;
                k.local.header.protect(pkt, pn_offset).map_err(fail)
            }
        }
    }

    /// Builds one packet of `space` at the start of `buf` (`dgram_pos`: its offset in the
    /// datagram). `last`: no later packet follows in this datagram. `pad`: the datagram
    /// carries an Initial that needs the datagram padded to 1200 bytes.
    #[allow(clippy::too_many_arguments)]
    fn build_packet(
        &mut self,
        now: Instant,
        space: SpaceId,
        buf: &mut [u8],
        dgram_pos: usize,
        last: bool,
        pad: &mut bool,
        allow: bool,
        ecn: Ecn,
    ) -> Option<usize> {
        let si = space.index();
        let allow = allow || self.spaces[si].probes > 0;
        if space == SpaceId::Data {
            self.maybe_update_keys(now);
        }
        let pn = self.spaces[si].next_pn;
        let mut w = Writer::new(buf);
        let builder = self.write_header(&mut w, space, pn)?;
        let mut items = self.retx_pool.take();
        let mut summary = PacketSummary::default();
        let mut ack_largest = None;

        // ACK: due, or riding along with other frames.
        let other = self.has_other_work(space, allow);
        let zero_rtt = space == SpaceId::Data && self.sends_zero_rtt();
        let sp = &mut self.spaces[si];
        //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.3
        //# For instance, a
        //# client cannot send an ACK frame in a 0-RTT packet, because that can
        //# only acknowledge a 1-RTT packet.
        if !zero_rtt && (sp.acks.wants_ack(now) || (sp.acks.has_new_packets() && other)) {
            if let Some(data) = sp.acks.ack_frame(now) {
                let ecn_counts = data.ecn;
                if let Ok(plan) = plan_ack(data.ranges(), data.delay, ecn_counts.as_ref(), room(&w))
                {
                    let ranges = data.ranges().take(plan.ranges);
                    if write_ack(&mut w, ranges, data.delay, ecn_counts.as_ref()).is_ok() {
                        ack_largest = Some(data.largest);
                        summary.on_frame(FrameType::ACK);
                    }
                }
            }
            if ack_largest.is_some() {
                sp.acks.on_ack_sent();
                self.stats.acks_sent += 1;
            }
        }

        if allow {
            self.write_crypto(space, &mut w, &mut items, &mut summary);
            //= https://www.rfc-editor.org/rfc/rfc9000#section-8.2.1
            //# An endpoint MUST expand datagrams that contain a PATH_CHALLENGE frame
            //# to at least the smallest allowed maximum datagram size of 1200 bytes,
            //# unless the anti-amplification limit for the path does not permit
            //# sending a datagram of this size.
            //= https://www.rfc-editor.org/rfc/rfc9000#section-8.2.2
            //# An endpoint MUST expand datagrams that contain a
            //# PATH_RESPONSE frame to at least the smallest allowed maximum
            //# datagram size of 1200 bytes.
            if space == SpaceId::Data
                && self.write_data_frames(now, &mut w, &mut items, &mut summary)
            {
                *pad = true;
            }
        }

        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-7
        //# When sending PTO packets, one can include an IMMEDIATE_ACK frame to elicit an
        //# immediate acknowledgment.
        if space == SpaceId::Data
            && self.spaces[si].probes > 0
            && self.peer_supports_ack_frequency()
            && room(&w) >= 1
            && ImmediateAck.encode(&mut w).is_ok()
        {
            summary.on_frame(FrameType::IMMEDIATE_ACK);
            self.ack_frequency.immediate_acks_sent += 1;
        }
        let sp = &mut self.spaces[si];
        if (sp.probes > 0 || sp.ping_pending) && !summary.ack_eliciting && room(&w) >= 1 {
            //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.4
            //# When a PTO timer expires, a sender MUST send at least one ack-
            //# eliciting packet in the packet number space as a probe.
            if Ping.encode(&mut w).is_ok() {
                summary.on_frame(FrameType::PING);
            }
        }
        if summary.ack_eliciting {
            sp.ping_pending = false;
            sp.probes = sp.probes.saturating_sub(1);
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-14.1
        //# Similarly, a
        //# server MUST expand the payload of all UDP datagrams carrying ack-
        //# eliciting Initial packets to at least the smallest allowed maximum
        //# datagram size of 1200 bytes.
        if space == SpaceId::Initial && (self.side == Side::Client || summary.ack_eliciting) {
            *pad = true;
        }
        if *pad && (last || room(&w) < MIN_PACKET_ROOM) {
            let before = w.len();
            let target = MIN_INITIAL_DATAGRAM_SIZE.saturating_sub(dgram_pos);
            if builder.pad_datagram_to(&mut w, target, TAG_LEN).is_ok() && w.len() > before {
                summary.on_frame(FrameType::PADDING);
            }
            *pad = false;
        }
        // A nearly full last packet is padded to the end of the datagram, so that the
        // datagram is exactly `segment_size` long and the GSO train can go on.
        if last && summary.ack_eliciting && room(&w) < MIN_PACKET_ROOM {
            let fill = w.remaining().saturating_sub(TAG_LEN);
            if fill > 0 && w.reserve(fill).map(|b| b.fill(0)).is_ok() {
                summary.on_frame(FrameType::PADDING);
            }
        }
        if builder.payload_len(&w) == 0 {
            self.retx_pool.put(items);
            return None;
        }
        let layout = match builder.finish(&mut w, TAG_LEN) {
            Ok(l) => l,
            Err(_) => {
                self.close_with_error(now, Error::internal("packet assembly failed"));
                return None;
            }
        };
        let pkt = &mut w.written_mut()[layout.range()];
        if self.qlog.is_some() {
            let payload = &pkt[layout.header_len..layout.len - layout.tag_len];
            self.qlog_packet(now, true, space, pn, layout.len, payload);
        }
        if let Err(e) = self.seal(space, pn, pkt, layout.header_len, layout.pn_offset) {
            self.close_with_error(now, e);
            return None;
        }
        let len = layout.len;
        self.spaces[si].next_pn += 1;
        if zero_rtt {
            self.on_zero_rtt_sent(pn);
        }
        let sent = SentPacket::new(
            pn,
            now,
            len as u16,
            SentFrames { space, items, ack_largest, mtu_probe: false },
        )
        .with_ack_eliciting(summary.ack_eliciting)
        .with_in_flight(summary.in_flight)
        .with_ecn(ecn);
        if let Err(e) = self.loss.on_packet_sent(space, sent, &mut *self.cc) {
            self.close_with_error(now, e);
            return None;
        }
        if summary.in_flight {
            let srtt = self.loss.rtt().smoothed();
            let pace = self.pacing_window(self.cc.window(), srtt);
            self.pacer.on_packet_sent(now, len as u64, pace, srtt);
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-10.1
        //# An endpoint also restarts its
        //# idle timer when sending an ack-eliciting packet if no other ack-
        //# eliciting packets have been sent since last receiving and processing
        //# a packet.
        if summary.ack_eliciting && self.idle_restart_on_send {
            self.idle_restart_on_send = false;
            self.reset_idle_timer(now);
        }
        self.stats.packets_sent += 1;
        Some(len)
    }

    /// While closing: one datagram with the CONNECTION_CLOSE in every space that still owes
    /// it; each space is marked written, so this returns `None` once the close went out.
    fn poll_close(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        let pending = self.close.pending_spaces();
        let frame = match &self.close {
            CloseState::Closing { frame, .. } => frame.clone(),
            _ => return None,
        };
        let limit = self.max_datagram_size().min(out.len()).min(self.amplification_budget());
        let last_space = SpaceId::ALL.iter().rev().find(|s| pending[s.index()]).copied();
        let mut pos = 0;
        let mut pad = false;
        for space in SpaceId::ALL {
            if !pending[space.index()] {
                continue;
            }
            // Written (or impossible to write) either way: the close never loops.
            self.close.mark_written(space);
            if !self.can_send_in(space) || limit.saturating_sub(pos) < MIN_PACKET_ROOM {
                continue;
            }
            if space == SpaceId::Initial && self.side == Side::Client {
                if limit < MIN_INITIAL_DATAGRAM_SIZE {
                    continue;
                }
                pad = true;
            }
            let pn = self.spaces[space.index()].next_pn;
            let mut w = Writer::new(&mut out[pos..limit]);
            let Some(builder) = self.write_header(&mut w, space, pn) else { continue };
            let f = frame.frame(space);
            let Some(f) = f.truncated_to(room(&w)) else { continue };
            if f.encode(&mut w).is_err() {
                continue;
            }
            if pad && Some(space) == last_space {
                let target = MIN_INITIAL_DATAGRAM_SIZE.saturating_sub(pos);
                let _ = builder.pad_datagram_to(&mut w, target, TAG_LEN);
            }
            let Ok(layout) = builder.finish(&mut w, TAG_LEN) else { continue };
            let pkt = &mut w.written_mut()[layout.range()];
            if self.qlog.is_some() {
                let payload = &pkt[layout.header_len..layout.len - layout.tag_len];
                self.qlog_packet(now, true, space, pn, layout.len, payload);
            }
            if self.seal(space, pn, pkt, layout.header_len, layout.pn_offset).is_err() {
                continue;
            }
            self.spaces[space.index()].next_pn += 1;
            self.stats.packets_sent += 1;
            pos += layout.len;
        }
        if pos == 0 {
            return None;
        }
        let _ = now;
        self.path.on_sent(pos);
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += pos as u64;
        Some(Transmit {
            dst: self.path.remote,
            src: self.path.local,
            ecn: Ecn::NotEct,
            segment_size: None,
            len: pos,
            datagrams: 1,
        })
    }
}
