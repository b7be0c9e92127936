//! Datagram Packetization Layer PMTU Discovery (DPLPMTUD, RFC 8899 as applied to QUIC by
//! RFC 9000 §14.3): probing the path with PING + PADDING packets of growing size, from the
//! 1200-byte base up to an upper bound, and falling back to the base when full-size packets
//! vanish (black-hole detection, RFC 8899 §4.3).
//!
//! [`Mtud`] is the per-path state machine; it never sends itself. The connection asks it for a
//! probe size ([`Mtud::probe_size`]), builds the probe ([`Connection::build_mtu_probe`]) and
//! reports the probe's fate (acknowledged, lost, or no verdict within a timeout). The search
//! climbs the UDP payloads of the link MTUs paths commonly have ([`COMMON_LINK_MTUS`]: Ethernet
//! 1500, jumbo 9000 and 9216, loopback 65536) up to the upper bound, which is probed last
//! when it lies between them; when a probe at or below the Ethernet size fails, it binary-searches
//! between the largest acknowledged size and the failed one (tunnels, PPPoE, 1280-byte links).
//! A failed jumbo-sized probe ends the search at the size below it: a path is rarely between
//! the common sizes, and bisecting a 1472..8972 gap would cost a dozen lost probes on every
//! Ethernet path.
//!
//! Timers are not armed in the timer table: the probe timeout and the raise timer are checked
//! whenever the connection sends, so an idle connection does not wake up to probe.

use std::time::{Duration, Instant};

use peregrine_datapath::Ecn;

use super::sent::SentFrames;
use super::Connection;
use crate::coding::Writer;
use crate::crypto::TAG_LEN;
use crate::frame::{FrameType, ImmediateAck, PacketSummary, Ping};
use crate::recovery::{SentPacket, SpaceId};

/// The base PLPMTU: QUIC's smallest maximum datagram size, which every path carries.
//= https://www.rfc-editor.org/rfc/rfc9000#section-14.3
//# Endpoints SHOULD set the initial value of BASE_PLPMTU (Section 5.1 of
//# [DPLPMTUD]) to be consistent with QUIC's smallest allowed maximum
//# datagram size.
pub const BASE_PLPMTU: u16 = 1200;
/// Whether DPLPMTUD runs by default: QUIC endpoints probe from the 1200-byte base up to the
/// path MTU (RFC 9000 §14.3) rather than stay at 1200 bytes on every path.
//= https://www.rfc-editor.org/rfc/rfc9000#section-14.2
//# An endpoint SHOULD use DPLPMTUD (Section 14.3) or PMTUD (Section 14.2.1)
//# to determine whether the path to a destination will support a desired
//# maximum datagram size without fragmentation.
pub const DEFAULT_PMTUD: bool = true;
/// Probes of one size before the size is taken as too large (RFC 8899 §5.1.2 MAX_PROBES).
pub const MAX_PROBES: u8 = 3;
/// Default interval after which a completed search is run again (RFC 8899 §5.1.1
/// PMTU_RAISE_TIMER, 600 s).
pub const DEFAULT_PMTU_RAISE_INTERVAL: Duration = Duration::from_secs(600);
/// Default upper bound of the search: the largest UDP payload QUIC allows (65527). The
/// datapath (`TransportConfig::fit_datapath`) and the peer's max_udp_payload_size lower it, and
/// the search finds what the path carries.
pub const DEFAULT_PMTU_UPPER_BOUND: u16 = 65527;
/// Link MTUs the search climbs: Ethernet, jumbo frames (9000 and 9216) and Linux loopback.
pub const COMMON_LINK_MTUS: [u32; 4] = [1500, 9000, 9216, 65536];
/// IPv4 + UDP header bytes.
const IPV4_UDP_OVERHEAD: u32 = 28;
/// IPv6 + UDP header bytes.
const IPV6_UDP_OVERHEAD: u32 = 48;
/// Probes at or below this size that fail are followed by a binary search below them.
const BISECT_LIMIT: u16 = 1500;
/// The largest link MTU probed toward a peer whose max_udp_payload_size is the protocol's
/// default (65527, which it also means when it sends none): jumbo frames, not loopback's 64 KiB.
/// Such a peer never said what it takes, and a receiver that reads 64 KiB datagrams into a
/// default socket buffer drops most of a burst (s2n-quic's perf client on loopback: 0.13
/// Gbit/s with 65507-byte datagrams, 2.5 with 8972). A peer that states a larger limit (as
/// Peregrine does, from its datapath) is probed up to it.
pub const UNSTATED_PEER_LINK_MTU: u32 = 9216;
/// The search completes once the largest working and smallest failed size are this close.
pub const PMTU_SEARCH_PRECISION: u16 = 16;
/// Lost packets larger than the base, all sent after the last acknowledged one, that make
/// the connection suspect a black hole.
pub const BLACK_HOLE_THRESHOLD: u32 = 3;
/// A probe with no verdict after this many PTOs counts as lost.
const PROBE_TIMEOUT_PTOS: u32 = 3;

/// Where the search of a path stands (RFC 8899 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtudState {
    /// Discovery is switched off: the configured datagram size is used as is.
    Disabled,
    /// Using the base size; the search has not started (the handshake is not confirmed yet).
    Base,
    /// Probing sizes between the current PLPMTU and the upper bound.
    Searching,
    /// The search finished; it runs again when the raise timer expires.
    SearchComplete,
    /// Even the base size seems not to get through; stay at the base.
    Error,
}

/// One path's DPLPMTUD state machine.
#[derive(Debug)]
pub struct Mtud {
    state: MtudState,
    /// The PLPMTU: the datagram size in use.
    current: u16,
    /// The search's upper bound (configured bound; lowered to the peer's limit).
    upper: u16,
    /// Smallest size known (or assumed) to fail, exclusive bound of the search.
    failed: u16,
    /// Size being probed and how many probes of it were lost.
    probe: u16,
    probe_losses: u8,
    /// The probe in flight: packet number, size, when sent.
    in_flight: Option<(u64, u16, Instant)>,
    raise_interval: Duration,
    raise_at: Option<Instant>,
    /// Send time of the latest acknowledged packet larger than the base.
    last_large_acked: Option<Instant>,
    /// Large packets lost since then.
    large_losses: u32,
    /// Probes sent.
    pub probes_sent: u64,
    /// Probes lost (or timed out).
    pub probes_lost: u64,
    /// IP + UDP header bytes of the path (28 for IPv4, 48 for IPv6).
    overhead: u32,
}

impl Mtud {
    /// A state machine starting at `initial` (the configured datagram size), searching up to
    /// `upper` when `enabled`.
    pub fn new(enabled: bool, initial: u16, upper: u16, raise_interval: Duration) -> Self {
        let upper = upper.max(initial);
        Self {
            state: if enabled { MtudState::Base } else { MtudState::Disabled },
            current: initial,
            upper,
            failed: upper.saturating_add(1),
            probe: 0,
            probe_losses: 0,
            in_flight: None,
            raise_interval,
            raise_at: None,
            last_large_acked: None,
            large_losses: 0,
            probes_sent: 0,
            probes_lost: 0,
            overhead: IPV4_UDP_OVERHEAD,
        }
    }

    /// The UDP payload sizes of [`COMMON_LINK_MTUS`] on this path, ascending.
    fn common_sizes(&self) -> impl Iterator<Item = u16> + '_ {
        COMMON_LINK_MTUS.iter().map(move |m| {
            // IPv4's Total Length stops at 65535 bytes; IPv6's Payload Length at 65535 after
            // the 40-byte header.
            let ip_max = if self.overhead == IPV6_UDP_OVERHEAD { 65535 + 40 } else { 65535 };
            ((*m).min(ip_max) - self.overhead).min(u32::from(u16::MAX)) as u16
        })
    }

    /// The state.
    pub fn state(&self) -> MtudState {
        self.state
    }

    /// The PLPMTU in use.
    pub fn current(&self) -> u16 {
        self.current
    }

    /// The handshake is confirmed: start searching, bounded by the peer's max_udp_payload_size.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-14.3.1
    //# A QUIC sender can therefore enter the DPLPMTUD BASE state
    //# (Section 5.2 of [DPLPMTUD]) when the QUIC connection handshake has
    //# been completed.
    pub fn start(&mut self, peer_max_udp_payload: u64, ipv6: bool) {
        if self.state != MtudState::Base {
            return;
        }
        self.overhead = if ipv6 { IPV6_UDP_OVERHEAD } else { IPV4_UDP_OVERHEAD };
        // An IPv4 packet's Total Length stops at 65535 bytes, headers included.
        if !ipv6 {
            self.upper = self.upper.min((65535 - IPV4_UDP_OVERHEAD) as u16);
        }
        //= https://www.rfc-editor.org/rfc/rfc8899#section-5.3.1
        //# MAX_PLPMTU is the minimum of the local
        //# MTU and EMTU_R (when this is learned from the remote endpoint).
        self.upper = self.upper.min(peer_max_udp_payload.min(u64::from(u16::MAX)) as u16);
        if peer_max_udp_payload >= crate::transport_params::DEFAULT_MAX_UDP_PAYLOAD_SIZE {
            self.upper = self.upper.min((UNSTATED_PEER_LINK_MTU - self.overhead) as u16);
        }
        self.upper = self.upper.max(self.current.min(BASE_PLPMTU));
        self.current = self.current.min(self.upper);
        self.begin_search();
    }

    fn begin_search(&mut self) {
        self.failed = self.upper.saturating_add(1);
        self.probe_losses = 0;
        self.in_flight = None;
        self.raise_at = None;
        self.state = MtudState::Searching;
        self.next_probe();
    }

    /// Chooses the next size to probe, or completes the search.
    fn next_probe(&mut self) {
        self.probe_losses = 0;
        if self.failed.saturating_sub(self.current) <= PMTU_SEARCH_PRECISION
            || self.current >= self.upper
        {
            self.state = MtudState::SearchComplete;
            self.probe = 0;
            return;
        }
        // The next common size (or the upper bound) above the current one, while none failed;
        // after a failure at Ethernet size or below, halving the interval.
        let next = self
            .common_sizes()
            .chain([self.upper])
            .filter(|&s| s > self.current && s < self.failed && s <= self.upper)
            .min();
        self.probe = match next {
            Some(s) if self.failed > self.upper => s,
            _ if self.failed <= BISECT_LIMIT => self.current + (self.failed - self.current) / 2,
            _ => {
                self.state = MtudState::SearchComplete;
                0
            }
        };
    }

    /// Checks the probe timeout and the raise timer. `pto`: the current PTO period.
    pub fn poll(&mut self, now: Instant, pto: Duration) {
        if let Some((pn, _, sent)) = self.in_flight {
            if now >= sent + pto * PROBE_TIMEOUT_PTOS {
                self.on_probe_lost(pn);
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc8899#section-5.1.1
        //# The PMTU_RAISE_TIMER is configured to the period a sender will
        //# continue to use the current PLPMTU, after which it reenters the
        //# Search Phase.
        if self.state == MtudState::SearchComplete {
            match self.raise_at {
                None => self.raise_at = Some(now + self.raise_interval),
                Some(t) if now >= t && self.current < self.upper => self.begin_search(),
                Some(t) if now >= t => self.raise_at = Some(now + self.raise_interval),
                Some(_) => {}
            }
        }
    }

    /// The size of the probe to send now, if one is due.
    pub fn probe_size(&self) -> Option<u16> {
        (self.state == MtudState::Searching && self.in_flight.is_none() && self.probe > 0)
            .then_some(self.probe)
    }

    /// A probe of `size` bytes left as packet `pn`.
    pub fn on_probe_sent(&mut self, pn: u64, size: u16, now: Instant) {
        self.in_flight = Some((pn, size, now));
        self.probes_sent += 1;
    }

    /// Packet `pn`, a probe, was acknowledged: returns the new PLPMTU when it grew.
    pub fn on_probe_acked(&mut self, pn: u64) -> Option<u16> {
        let (p, size, sent) = self.in_flight?;
        if p != pn {
            return None;
        }
        self.in_flight = None;
        self.last_large_acked = Some(sent);
        self.large_losses = 0;
        let grew = size > self.current;
        self.current = self.current.max(size);
        if self.state == MtudState::Searching {
            self.next_probe();
        }
        grew.then_some(self.current)
    }

    /// Packet `pn`, a probe, was lost (or got no verdict in time).
    // RFC 8899 §5.1.2: after MAX_PROBES unacknowledged probes of one size, the size is
    // taken as too large and the search goes on below it.
    pub fn on_probe_lost(&mut self, pn: u64) {
        let Some((p, size, _)) = self.in_flight else { return };
        if p != pn {
            return;
        }
        self.in_flight = None;
        self.probes_lost += 1;
        if self.state != MtudState::Searching || size != self.probe {
            return;
        }
        self.probe_losses += 1;
        if self.probe_losses >= MAX_PROBES {
            self.failed = self.failed.min(size);
            self.next_probe();
        }
    }

    /// A non-probe packet of `size` bytes sent at `sent` was acknowledged.
    pub fn on_packet_acked(&mut self, size: u16, sent: Instant) {
        if size > BASE_PLPMTU && self.last_large_acked.is_none_or(|t| sent > t) {
            self.last_large_acked = Some(sent);
            self.large_losses = 0;
        }
    }

    /// A non-probe packet of `size` bytes sent at `sent` was lost: returns true when the loss
    /// completes a suspected black hole (the caller then calls [`Mtud::on_black_hole`]).
    // RFC 8899 §4.3 black-hole detection: repeated loss of packets larger than the base,
    // with none of them acknowledged, while smaller packets get through.
    pub fn on_packet_lost(&mut self, size: u16, sent: Instant) -> bool {
        // Only losses of packets sent after the last acknowledged large one count: a burst
        // dropped by a queue is followed by acknowledged large packets sent later.
        if size <= BASE_PLPMTU || self.last_large_acked.is_some_and(|t| sent <= t) {
            return false;
        }
        self.large_losses += 1;
        self.large_losses >= BLACK_HOLE_THRESHOLD && self.current > BASE_PLPMTU
    }

    /// A black hole was detected: fall back to the base size and search again.
    // RFC 8899 §5.2: on a black hole, DPLPMTUD returns to the BASE_PLPMTU and searches again.
    pub fn on_black_hole(&mut self, now: Instant) {
        self.large_losses = 0;
        self.last_large_acked = Some(now);
        if self.state == MtudState::Disabled {
            self.current = BASE_PLPMTU;
            return;
        }
        if self.current <= BASE_PLPMTU {
            // The base itself does not get through.
            self.state = MtudState::Error;
            return;
        }
        self.current = BASE_PLPMTU;
        if matches!(self.state, MtudState::Base) {
            return;
        }
        self.begin_search();
    }
}

impl Connection {
    /// Runs the PMTU state machine's timeouts and, when a probe is due and the congestion
    /// window has room for it, writes a probe datagram into `out`: returns its length.
    pub(super) fn poll_mtu_probe(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if !self.handshake_confirmed || self.one_rtt.is_none() {
            return None;
        }
        let pto = self.loss.pto_period(SpaceId::Data);
        self.path.mtud.poll(now, pto);
        let size = usize::from(self.path.mtud.probe_size()?);
        //= https://www.rfc-editor.org/rfc/rfc9000#section-14.4
        //# Endpoints could limit the content of PMTU probes to PING and PADDING
        //# frames, since packets that are larger than the current maximum
        //# datagram size are more likely to be dropped by the network.
        //= https://www.rfc-editor.org/rfc/rfc9000#section-14.4
        //# PMTU probes are ack-eliciting packets.
        if size > out.len() || (size as u64) > self.peer_max_udp_payload {
            return None;
        }
        // Sent only when the congestion window has room (RFC 8899 §4.4).
        if self.loss.bytes_in_flight() + size as u64 > self.cc.window() {
            return None;
        }
        self.build_mtu_probe(now, &mut out[..size])
    }

    /// A 1-RTT packet of PING + PADDING filling `buf` exactly.
    fn build_mtu_probe(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let space = SpaceId::Data;
        let si = space.index();
        let pn = self.spaces[si].next_pn;
        let total = buf.len();
        let mut w = Writer::new(buf);
        let builder = self.write_header(&mut w, space, pn)?;
        let mut summary = PacketSummary::default();
        Ping.encode(&mut w).ok()?;
        summary.on_frame(FrameType::PING);
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-9.3
        //# A sender MAY
        //# bundle an IMMEDIATE_ACK frame with any PMTU probes to avoid triggering such
        //# timers.
        if self.peer_supports_ack_frequency() {
            ImmediateAck.encode(&mut w).ok()?;
            summary.on_frame(FrameType::IMMEDIATE_ACK);
            self.ack_frequency.immediate_acks_sent += 1;
        }
        let fill = w.remaining().saturating_sub(TAG_LEN);
        w.reserve(fill).ok()?.fill(0);
        summary.on_frame(FrameType::PADDING);
        let layout = builder.finish(&mut w, TAG_LEN).ok()?;
        if layout.len != total {
            return None;
        }
        let pkt = &mut w.written_mut()[layout.range()];
        if self.qlog.is_some() {
            let payload = &pkt[layout.header_len..layout.len - layout.tag_len];
            self.qlog_packet(now, true, space, pn, layout.len, payload);
        }
        if let Err(e) = self.seal(space, pn, pkt, layout.header_len, layout.pn_offset) {
            self.close_with_error(now, e);
            return None;
        }
        self.spaces[si].next_pn += 1;
        let items = self.retx_pool.take();
        //= https://www.rfc-editor.org/rfc/rfc9000#section-14.4
        //# Loss of a QUIC packet that is carried in a PMTU probe is therefore not a
        //# reliable indication of congestion and SHOULD NOT trigger a congestion
        //# control reaction; see Item 7 in Section 3 of [DPLPMTUD].
        // The probe is not counted in flight, so the loss detector never hands its loss to the
        // congestion controller; the window check above stands in for the accounting.
        let payload = SentFrames { space, items, ack_largest: None, mtu_probe: true };
        let sent = SentPacket::new(pn, now, total as u16, payload)
            .with_ack_eliciting(true)
            .with_in_flight(false)
            .with_ecn(Ecn::NotEct);
        if let Err(e) = self.loss.on_packet_sent(space, sent, &mut *self.cc) {
            self.close_with_error(now, e);
            return None;
        }
        self.path.mtud.on_probe_sent(pn, total as u16, now);
        // A probe does not restart the idle timer (RFC 9000 §10.1 restarts it on ack-eliciting
        // sends): a connection whose only traffic is probes of a size the path drops is idle,
        // and times out when the application is silent, as without discovery.
        self.stats.packets_sent += 1;
        Some(total)
    }

    /// The PLPMTU changed to `size`: datagrams, the congestion controller and the pacer follow.
    pub(super) fn set_plpmtu(&mut self, size: u16) {
        if self.path.mds == size {
            return;
        }
        tracing::debug!(side = ?self.side, from = self.path.mds, to = size, "PLPMTU changed");
        self.path.mds = size;
        self.cc.set_max_datagram_size(size);
        self.pacer.set_max_datagram_size(size);
    }
}
