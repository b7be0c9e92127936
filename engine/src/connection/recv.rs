//! Receiving: datagram → coalesced packets → header protection off → AEAD open → frames →
//! dispatch; stateless reset detection.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use peregrine_datapath::Ecn;

use super::close::CloseState;
use super::events::ConnectionError;
use super::Connection;
use crate::cid::ConnectionId;
use crate::crypto::{KeySlot, Side};
use crate::error::{Error, TransportErrorCode};
use crate::frame::{CloseKind, Frame, Frames, PacketKind, PacketSummary, StreamDir};
use crate::packet::{Coalesced, CoalescedPacket, LongType, PlainHeader, MIN_INITIAL_DATAGRAM_SIZE};
use crate::recovery::SpaceId;
use crate::streams::{Dir, StreamId};

/// Size of the arena received stream data is copied into.
const RX_ARENA: usize = 64 * 1024;

/// What became of one packet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Authenticated and processed.
    Processed,
    /// Dropped (no keys, failed authentication, duplicate, malformed).
    Dropped,
}

impl Connection {
    /// A long header packet of another version than the connection's: an Initial of the
    /// client's version after this server moved the connection to another one, or a server's
    /// first Initial in the version it moved this client to (see the `versions` module).
    /// Anything else is dropped (RFC 9369 §4.1: Handshake and 1-RTT packets of another
    /// version are dropped).
    fn handle_other_version(
        &mut self,
        now: Instant,
        ecn: Ecn,
        p: CoalescedPacket<'_>,
        datagram_len: usize,
        version: u32,
        initial: bool,
    ) -> Outcome {
        if !initial {
            return self.drop_packet();
        }
        if self.versions.other_initial.as_ref().is_some_and(|(v, _)| *v == version) {
            let Some((v, theirs)) = self.versions.other_initial.take() else {
                return self.drop_packet();
            };
            let ours = self.spaces[0].keys.replace(theirs);
            let current = std::mem::replace(&mut self.version, v);
            let out = self.handle_packet(now, ecn, p, datagram_len);
            self.version = current;
            let theirs = std::mem::replace(&mut self.spaces[0].keys, ours);
            self.versions.other_initial = theirs.map(|k| (v, k));
            return out;
        }
        let Some(old) = self.follow_version(version) else { return self.drop_packet() };
        let out = self.handle_packet(now, ecn, p, datagram_len);
        if out == Outcome::Dropped {
            self.unfollow_version(old);
        }
        out
    }

    /// Processes one datagram from `remote` (decrypting it in place in `data`).
    pub fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, ecn: Ecn, data: &mut [u8]) {
        self.handle_datagram_on(now, None, remote, ecn, data);
    }

    /// [`handle_datagram`](Self::handle_datagram) for a datagram that arrived on our address
    /// `local` (when the owner knows it): a server whose client moves to its preferred
    /// address follows the change of `local` as it follows one of `remote`, and its
    /// transmits then carry the new `local` as their source.
    pub fn handle_datagram_on(
        &mut self,
        now: Instant,
        local: Option<SocketAddr>,
        remote: SocketAddr,
        ecn: Ecn,
        data: &mut [u8],
    ) {
        self.transmit_interest = true;
        if matches!(self.close, CloseState::Draining { .. } | CloseState::Drained) {
            return;
        }
        // Only a server that offered a preferred address tells its addresses apart.
        let local = local.filter(|_| self.migration.track_local);
        if self.path.local.is_none() {
            self.path.local = local;
        }
        let local_changed = local.is_some() && local != self.path.local;
        let new_path = self.side == Side::Server && (remote != self.path.remote || local_changed);
        if new_path && !self.handshake_confirmed {
            // RFC 9000 §9: endpoints keep a stable address for the duration of the handshake
            // and MUST NOT migrate before it is confirmed: drop what arrives from elsewhere.
            self.stats.packets_dropped += 1;
            return;
        }
        self.migration_candidate = false;
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += data.len() as u64;
        if self.side == Side::Server && !new_path {
            self.path.on_received(data.len());
            self.loss.set_amplification_limited(now, false);
        }
        let mut tail = [0u8; 16];
        let len = data.len();
        if len >= 16 {
            tail.copy_from_slice(&data[len - 16..]);
        }
        let mut any = false;
        let cid_len = self.cid_gen.cid_len();
        for item in Coalesced::new(data, cid_len, false) {
            let packet = match item {
                Ok(p) => p,
                Err(_) => {
                    self.stats.packets_dropped += 1;
                    continue;
                }
            };
            if self.handle_packet(now, ecn, packet, len) == Outcome::Processed {
                any = true;
            }
            if matches!(self.close, CloseState::Draining { .. } | CloseState::Drained) {
                break;
            }
        }
        if new_path && self.migration_candidate && self.close.is_open() {
            self.on_peer_address_change(now, local, remote, len);
        }
        if !any && len >= 21 && self.close != CloseState::Drained {
            let mut probe = [0u8; 21];
            probe[5..].copy_from_slice(&tail);
            //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.1
            //# If the last 16 bytes of the datagram are identical in value to
            //# a stateless reset token, the endpoint MUST enter the draining
            //# period and not send any further packets on this connection.
            if self.peer_cids.is_stateless_reset(&probe) {
                self.qlog_closed(now, crate::qlog::CloseTrigger::StatelessReset);
                self.report_lost(ConnectionError::Reset);
                self.start_draining(now);
            }
        }
        self.update_timers(now);
    }

    fn handle_packet(
        &mut self,
        now: Instant,
        ecn: Ecn,
        p: CoalescedPacket<'_>,
        datagram_len: usize,
    ) -> Outcome {
        let (space, kind, dcid, scid, pn_offset, has_token) = match p.header.header() {
            PlainHeader::VersionNegotiation { .. } => {
                self.on_version_negotiation(now, p.bytes);
                return Outcome::Dropped;
            }
            PlainHeader::Retry { .. } => {
                self.on_retry(now, p.bytes);
                return Outcome::Dropped;
            }
            PlainHeader::Long { ty, version, dst_cid, src_cid, token, pn_offset } => {
                if *version != self.version {
                    let (v, initial) = (*version, *ty == LongType::Initial);
                    return self.handle_other_version(now, ecn, p, datagram_len, v, initial);
                }
                let (space, kind) = match ty {
                    LongType::Initial => (SpaceId::Initial, PacketKind::Initial),
                    LongType::Handshake => (SpaceId::Handshake, PacketKind::Handshake),
                    //= https://www.rfc-editor.org/rfc/rfc9000#section-12.3
                    //# Application data space:  All 0-RTT (Section 17.2.3) and 1-RTT
                    //# (Section 17.3.1) packets are in this space.
                    // Only a server that accepted 0-RTT has the keys (see `zero_rtt`).
                    LongType::ZeroRtt if self.side == Side::Server => {
                        (SpaceId::Data, PacketKind::ZeroRtt)
                    }
                    _ => return self.drop_packet(),
                };
                (space, kind, *dst_cid, Some(*src_cid), *pn_offset, !token.is_empty())
            }
            PlainHeader::Short { dst_cid, pn_offset, .. } => {
                (SpaceId::Data, PacketKind::OneRtt, *dst_cid, None, *pn_offset, false)
            }
        };
        //= https://www.rfc-editor.org/rfc/rfc9000#section-14.1
        //# A server MUST discard an Initial packet that is carried in a UDP
        //# datagram with a payload that is smaller than the smallest allowed
        //# maximum datagram size of 1200 bytes.
        if space == SpaceId::Initial
            && self.side == Side::Server
            && datagram_len < MIN_INITIAL_DATAGRAM_SIZE
        {
            return self.drop_packet();
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.2
        //# Initial packets sent by the server MUST set the Token Length field
        //# to 0; clients that receive an Initial packet with a non-zero Token
        //# Length field MUST either discard the packet or generate a
        //# connection error of type PROTOCOL_VIOLATION.
        if has_token && self.side == Side::Client {
            return self.drop_packet();
        }
        let zero_rtt = kind == PacketKind::ZeroRtt;
        // 0-RTT packets carry the DCID of the client's Initial (routed by the endpoint).
        if space == SpaceId::Data && !zero_rtt && !self.local_cids.contains(&dcid) {
            return self.drop_packet();
        }
        let bytes = p.bytes;
        let si = space.index();
        // Remove header protection.
        let hp = match space {
            SpaceId::Data if zero_rtt => self.zero_rtt_keys().map(|k| &k.header),
            SpaceId::Data => self.one_rtt.as_ref().map(|k| k.remote_header()),
            _ => self.spaces[si].keys.as_ref().map(|k| &k.remote.header),
        };
        let Some(hp) = hp else { return self.drop_packet() };
        if hp.unprotect(bytes, pn_offset).is_err() {
            return self.drop_packet();
        }
        let Ok(hdr) = p.header.finish(bytes) else { return self.drop_packet() };
        let Some(pn) = hdr.packet_number(self.spaces[si].acks.largest_received()) else {
            return self.drop_packet();
        };
        let opened = match space {
            SpaceId::Data if zero_rtt => {
                let Some(k) = self.zero_rtt_keys() else { return self.drop_packet() };
                k.packet.open_in_place(pn, bytes, hdr.header_len).map(|len| (len, None))
            }
            SpaceId::Data => {
                let Some(k) = self.one_rtt.as_mut() else { return self.drop_packet() };
                k.open(hdr.key_phase, pn, bytes, hdr.header_len).map(|o| (o.len, Some(o.slot)))
            }
            _ => {
                let Some(k) = self.spaces[si].keys.as_ref() else { return self.drop_packet() };
                k.remote.packet.open_in_place(pn, bytes, hdr.header_len).map(|len| (len, None))
            }
        };
        let (len, slot) = match opened {
            Ok(o) => o,
            Err(e) => {
                if let Some(err) = e.connection_error() {
                    self.close_with_error(now, err);
                }
                return self.drop_packet();
            }
        };
        if slot == Some(KeySlot::Next) {
            self.stats.key_updates += 1;
            self.arm_key_discard(now);
            self.qlog_key_update(now, false);
        }
        if let Err(e) = hdr.check_reserved_bits() {
            self.close_with_error(now, e);
            return Outcome::Processed;
        }
        if self.spaces[si].acks.is_duplicate(pn) {
            return self.drop_packet();
        }
        self.stats.packets_received += 1;
        if !self.close.is_open() {
            // Closing: answer with the close (rate-limited), process nothing.
            self.close.on_packet_received();
            return Outcome::Processed;
        }
        self.on_authenticated(now, space, scid);
        match kind {
            PacketKind::ZeroRtt => self.early.packets += 1,
            PacketKind::OneRtt => self.on_one_rtt_received(now),
            _ => {}
        }
        if space == SpaceId::Handshake {
            self.versions.other_initial = None;
        }
        let payload = &bytes[hdr.header_len..hdr.header_len + len];
        if self.qlog.is_some() {
            self.qlog_packet(now, false, space, pn, bytes.len(), payload);
        }
        let mut summary = PacketSummary::default();
        for frame in Frames::for_packet(payload, kind) {
            let r = match frame {
                Ok(f) => {
                    summary.on_frame(f.frame_type());
                    let ty = f.frame_type().0;
                    self.on_frame(now, space, f, &dcid).map_err(|e| {
                        if e.frame_type.is_none() {
                            e.with_frame_type(ty)
                        } else {
                            e
                        }
                    })
                }
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                self.close_with_error(now, e);
                return Outcome::Processed;
            }
            if !self.close.is_open() {
                return Outcome::Processed;
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-12.4
        //# An endpoint MUST treat receipt of a packet containing no frames as a
        //# connection error of type PROTOCOL_VIOLATION.
        if summary.frames == 0 {
            self.close_with_error(now, Error::protocol_violation("packet without frames"));
            return Outcome::Processed;
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-9.3
        //# An endpoint only changes the address to which it sends packets in
        //# response to the highest-numbered non-probing packet.
        if space == SpaceId::Data
            && summary.non_probing
            && self.spaces[si].acks.largest_received().is_none_or(|l| pn > l)
        {
            self.migration_candidate = true;
        }
        if !self.spaces[si].discarded {
            self.spaces[si].acks.on_packet_received(now, pn, summary.ack_eliciting, ecn);
            self.stats.ack_eliciting_received += u64::from(summary.ack_eliciting);
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-10.1
        //# An endpoint restarts its idle timer when a packet from its peer is
        //# received and processed successfully.
        self.reset_idle_timer(now);
        self.idle_restart_on_send = true;
        Outcome::Processed
    }

    /// An owned copy of received stream data, carved out of a shared arena so that the
    /// steady state costs about two allocations per arena (64 KiB), not one per frame.
    fn rx_copy(&mut self, data: &[u8]) -> Bytes {
        if self.rx_arena.capacity() - self.rx_arena.len() < data.len() {
            self.rx_arena = bytes::BytesMut::with_capacity(RX_ARENA.max(data.len()));
        }
        self.rx_arena.extend_from_slice(data);
        self.rx_arena.split().freeze()
    }

    fn drop_packet(&mut self) -> Outcome {
        self.stats.packets_dropped += 1;
        Outcome::Dropped
    }

    /// First-packet bookkeeping after a packet authenticated.
    fn on_authenticated(&mut self, now: Instant, space: SpaceId, scid: Option<ConnectionId>) {
        if self.side == Side::Client && !self.received_valid {
            if let (Some(scid), SpaceId::Initial | SpaceId::Handshake) = (scid, space) {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-7.2
                //# Upon first receiving an Initial or Retry packet from the server, the
                //# client uses the Source Connection ID supplied by the server as the
                //# Destination Connection ID for subsequent packets, including any
                //# 0-RTT packets.
                self.peer_cids.set_initial(scid);
                self.ids.peer_initial_scid = Some(scid);
            }
        }
        self.received_valid = true;
        if self.side == Side::Server && space == SpaceId::Handshake {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1
            //# In particular, receipt of a packet protected with Handshake keys
            //# confirms that the peer successfully processed an Initial packet.
            self.path.validated = true;
            //= https://www.rfc-editor.org/rfc/rfc9001#section-4.9.1
            //# a server MUST discard Initial keys when it first successfully
            //# processes a Handshake packet.
            self.discard_space(now, SpaceId::Initial);
        }
    }

    /// Dispatches one frame of a packet of `space` sent to `dcid`.
    pub(super) fn on_frame(
        &mut self,
        now: Instant,
        space: SpaceId,
        frame: Frame<'_>,
        dcid: &ConnectionId,
    ) -> Result<(), Error> {
        match frame {
            Frame::Padding(_) | Frame::Ping(_) => {}
            Frame::Ack(ack) => self.on_ack_frame(now, space, &ack)?,
            Frame::Crypto(c) => self.on_crypto(now, space, c.offset.into_inner(), c.data)?,
            Frame::NewToken(t) => {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-19.7
                //# A server MUST treat receipt
                //# of a NEW_TOKEN frame as a connection error of type
                //# PROTOCOL_VIOLATION.
                if self.side == Side::Server {
                    return Err(Error::protocol_violation("NEW_TOKEN from a client"));
                }
                self.stats.new_tokens_received += 1;
                //= https://www.rfc-editor.org/rfc/rfc9000#section-19.7
                //# Clients are responsible for discarding
                //# duplicate values, which might be used to link connection attempts;
                //# see Section 8.1.3.
                // (A resend of the last token is dropped here; the store drops one it holds.)
                if self.new_token.as_deref() != Some(t.token) {
                    if let Some((store, name)) = &self.token_store {
                        store.insert(name, t.token);
                    }
                    self.new_token = Some(t.token.to_vec());
                }
            }
            Frame::Stream(s) => {
                let id = stream_id(s.stream_id.into_inner())?;
                let data = self.rx_copy(s.data);
                self.streams.on_stream(id, s.offset.into_inner(), data, s.fin)?;
            }
            Frame::ResetStream(f) => {
                let id = stream_id(f.stream_id.into_inner())?;
                self.streams.on_reset_stream(
                    id,
                    f.error_code.into_inner(),
                    f.final_size.into_inner(),
                )?;
            }
            Frame::StopSending(f) => {
                let id = stream_id(f.stream_id.into_inner())?;
                self.streams.on_stop_sending(id, f.error_code.into_inner())?;
            }
            Frame::MaxData(f) => self.streams.on_max_data(f.max_data.into_inner()),
            Frame::MaxStreamData(f) => {
                let id = stream_id(f.stream_id.into_inner())?;
                self.streams.on_max_stream_data(id, f.max_data.into_inner())?;
            }
            Frame::MaxStreams(f) => {
                self.streams.on_max_streams(dir(f.dir), f.max_streams.into_inner())?;
            }
            Frame::DataBlocked(f) => self.streams.on_data_blocked(f.limit.into_inner()),
            Frame::StreamDataBlocked(f) => {
                let id = stream_id(f.stream_id.into_inner())?;
                self.streams.on_stream_data_blocked(id, f.limit.into_inner())?;
            }
            Frame::StreamsBlocked(f) => {
                self.streams.on_streams_blocked(dir(f.dir), f.limit.into_inner())?;
            }
            Frame::NewConnectionId(f) => {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-19.15
                //# An endpoint that is sending packets with a zero-length Destination
                //# Connection ID MUST treat receipt of a NEW_CONNECTION_ID frame as a
                //# connection error of type PROTOCOL_VIOLATION.
                if self.peer_cids.current().is_empty() {
                    return Err(Error::protocol_violation("NEW_CONNECTION_ID with empty CIDs"));
                }
                self.peer_cids.on_new_cid(&f)?;
            }
            Frame::RetireConnectionId(f) => {
                if let Some(c) = self.local_cids.retire(f.sequence.into_inner(), dcid)? {
                    self.endpoint_events.push_back(super::EndpointEvent::RetiredLocalCid {
                        seq: c.seq,
                        cid: c.cid,
                    });
                    self.issue_cids();
                }
            }
            Frame::PathChallenge(f) => {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-8.2.2
                //# On receiving a PATH_CHALLENGE frame, an endpoint MUST respond by
                //# echoing the data contained in the PATH_CHALLENGE frame in a
                //# PATH_RESPONSE frame.
                self.path.response = Some(f.data);
            }
            Frame::PathResponse(f) => {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-8.2.3
                //# Path validation succeeds when a PATH_RESPONSE frame is received that
                //# contains the data that was sent in a previous PATH_CHALLENGE frame.
                if self.path.on_path_response(f.data) {
                    self.on_path_validated();
                } else {
                    self.on_probe_response(f.data);
                }
            }
            Frame::ConnectionClose(c) => self.on_peer_close(now, &c),
            Frame::HandshakeDone(_) => {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-19.20
                //# A server MUST
                //# treat receipt of a HANDSHAKE_DONE frame as a connection error of type
                //# PROTOCOL_VIOLATION.
                if self.side == Side::Server {
                    return Err(Error::protocol_violation("HANDSHAKE_DONE from a client"));
                }
                //= https://www.rfc-editor.org/rfc/rfc9001#section-4.1.2
                //# At the client, the handshake is
                //# considered confirmed when a HANDSHAKE_DONE frame is received.
                self.confirm_handshake(now);
            }
            Frame::AckFrequency(f) => self.on_ack_frequency(&f)?,
            Frame::ImmediateAck(_) => self.on_immediate_ack(now)?,
            Frame::Datagram(d) => self.on_datagram_frame(&d)?,
        }
        Ok(())
    }

    /// The client's address changed (NAT rebinding or migration) and a non-probing packet
    /// with a new largest packet number came from the new address: send there from now on,
    /// within the anti-amplification limit until a PATH_CHALLENGE round trip validates it.
    fn on_peer_address_change(
        &mut self,
        now: Instant,
        local: Option<SocketAddr>,
        remote: SocketAddr,
        datagram_len: usize,
    ) {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-9.3
        //# After changing the address to which it sends non-probing packets, an
        //# endpoint can abandon any path validation for other addresses.
        let port_only = remote.ip() == self.path.remote.ip();
        tracing::debug!(from = %self.path.remote, to = %remote, ?local, "peer address changed");
        self.path.remote = remote;
        if local.is_some() {
            self.path.local = local;
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-9.5
        //# Similarly, an endpoint MUST NOT reuse a connection ID when sending to
        //# more than one destination address.
        // With a spare ID of the client's we take it (retiring the old one); without one we
        // keep the current ID, as a NAT rebinding allows.
        if let Some(seq) = self.peer_cids.spare(&[]) {
            let old = self.peer_cids.current_seq();
            self.peer_cids.use_seq(seq);
            self.peer_cids.retire_seq(old);
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-9.3
        //# Receiving a packet from a new peer address containing a non-probing
        //# frame indicates that the peer has migrated to that address.
        //= https://www.rfc-editor.org/rfc/rfc9000#section-9.3
        //# If the recipient permits the migration, it MUST send subsequent
        //# packets to the new peer address and MUST initiate path validation
        //# (Section 8.2) to verify the peer's ownership of the address if
        //# validation is not already underway.
        let mut data = [0u8; 8];
        rand::RngCore::fill_bytes(&mut self.rng, &mut data);
        self.path.start_challenge(data);
        //= https://www.rfc-editor.org/rfc/rfc9000#section-9.3.1
        //# Until a peer's address is deemed valid, an endpoint limits the amount
        //# of data it sends to that address; see Section 8.
        self.path.unvalidate(datagram_len);
        //= https://www.rfc-editor.org/rfc/rfc9000#section-9.4
        //# On confirming a peer's ownership of its new address, an endpoint
        //# MUST immediately reset the congestion controller and round-trip time
        //# estimator for the new path to initial values (see Appendices A.3 and
        //# B.3 of [QUIC-RECOVERY]) unless the only change in the peer's address
        //# is its port number.
        // Done now rather than on validation: the new path's data is limited by the
        // amplification budget until then.
        if !port_only {
            self.cc = self.fresh_controller();
            let initial = crate::recovery::RttEstimator::new(self.loss.initial_rtt());
            self.loss.replace_rtt(initial);
        }
        let _ = now;
    }

    /// CONNECTION_CLOSE from the peer: report and drain.
    fn on_peer_close(&mut self, now: Instant, c: &crate::frame::ConnectionClose<'_>) {
        let reason = String::from_utf8_lossy(c.reason).into_owned();
        let err = match c.kind {
            CloseKind::Transport { frame_type } => ConnectionError::PeerTransportClose {
                code: TransportErrorCode(c.error_code.into_inner()),
                frame_type: frame_type.into_inner(),
                reason,
            },
            CloseKind::Application => {
                ConnectionError::ApplicationClosed { code: c.error_code.into_inner(), reason }
            }
        };
        if self.qlog.is_some() {
            let trigger = crate::qlog::CloseTrigger::Frame {
                owner: crate::qlog::Owner::Remote,
                application: c.kind == CloseKind::Application,
                code: c.error_code.into_inner(),
                reason: String::from_utf8_lossy(c.reason).into_owned(),
            };
            self.qlog_closed(now, trigger);
        }
        self.report_lost(err);
        //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.2
        //# The draining state is entered once an endpoint receives a
        //# CONNECTION_CLOSE frame, which indicates that its peer is closing or
        //# draining.
        self.start_draining(now);
    }
}

/// A stream ID from the wire (the varint decoder already bounds it to 2^62-1).
fn stream_id(v: u64) -> Result<StreamId, Error> {
    StreamId::from_u64(v).ok_or(Error::frame_encoding("stream ID out of range"))
}

fn dir(d: StreamDir) -> Dir {
    match d {
        StreamDir::Bidi => Dir::Bi,
        StreamDir::Uni => Dir::Uni,
    }
}
