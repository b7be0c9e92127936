//! Client-initiated connection migration (RFC 9000 §9) and the server's preferred address
//! (§9.6), on top of the connection's [`Path`].
//!
//! A migration replaces the connection's path at once: packets go to the new 4-tuple with a
//! connection ID of the peer's not used before, and a PATH_CHALLENGE validates the new path.
//! The old path (its connection ID, congestion controller and RTT estimator) is kept aside
//! until the PATH_RESPONSE comes back, when the old connection ID is retired. If no response
//! comes within three PTOs (computed with the initial RTT when larger), the connection falls
//! back to the old path and retires the ID it tried. Congestion control and RTT start from
//! initial values on the new path unless only our port changed.
//!
//! A server offers a preferred address with a connection ID of sequence number 1 issued at
//! creation (routed like any other of its IDs). Once the handshake is confirmed a client
//! probes it first: PATH_CHALLENGE in a padded probing packet to the preferred address with
//! that ID, resent each PTO, while its data stays on the original path. A PATH_RESPONSE moves
//! the connection there (the old ID retired, congestion control and RTT restarted unless only
//! the port differs); no response within the validation timeout leaves it where it was, with
//! the preferred address's ID retired.

use std::net::SocketAddr;

/// Size of a preferred-address probe datagram (RFC 9000 §8.2.1's minimum).
const MIN_PROBE_SIZE: usize = 1200;
use std::time::{Duration, Instant};

use super::path::Path;
use super::timers::Timer;
use super::Connection;
use crate::cid::{ConnectionId, ResetToken};
use crate::congestion::Controller;
use crate::crypto::Side;
use crate::error::Error;
use crate::frame::NewConnectionId;
use crate::recovery::{RttEstimator, SpaceId};
use crate::transport_params::PreferredAddress;
use crate::varint::VarInt;

/// Why a connection cannot migrate now ([`Connection::migrate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    /// Only a client initiates migration.
    #[error("only a client can migrate a connection")]
    NotClient,
    /// The handshake is not confirmed yet (RFC 9000 §9).
    #[error("the handshake is not confirmed yet")]
    HandshakeNotConfirmed,
    /// The connection is closing or closed.
    #[error("the connection is closed")]
    Closed,
    /// The peer sent disable_active_migration.
    #[error("the peer disabled active migration")]
    DisabledByPeer,
    /// The peer gave no connection ID we have not used yet.
    #[error("the peer gave no spare connection ID")]
    NoSpareCid,
    /// A migration is still being validated.
    #[error("a migration is already being validated")]
    InProgress,
}

/// The path a migration left, kept until the new one is validated or given up.
pub(super) struct Fallback {
    path: Path,
    /// The peer's connection ID used on the old path.
    old_seq: u64,
    /// The peer's connection ID tried on the new path.
    new_seq: u64,
    /// The old path's congestion controller and RTT estimator, when the new path got fresh
    /// ones.
    recovery: Option<(Box<dyn Controller>, RttEstimator)>,
}

impl std::fmt::Debug for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fallback")
            .field("path", &self.path)
            .field("old_seq", &self.old_seq)
            .field("new_seq", &self.new_seq)
            .finish_non_exhaustive()
    }
}

/// Client: the server's preferred address, probed before the connection moves there.
#[derive(Debug)]
pub(super) struct Probe {
    /// The path to the preferred address (its PATH_CHALLENGE data set).
    path: Path,
    /// The peer's connection ID for it (sequence number 1).
    seq: u64,
    /// When the PATH_CHALLENGE is (re)sent.
    next_send: Instant,
    /// Probes sent.
    sent: u32,
}

/// Migration state of a connection.
#[derive(Debug, Default)]
pub(super) struct Migration {
    /// The path left by a migration being validated.
    pub(super) fallback: Option<Box<Fallback>>,
    /// Client: the preferred address being probed.
    pub(super) probe: Option<Box<Probe>>,
    /// When the validation in progress (fallback or probe) is given up.
    deadline: Option<Instant>,
    /// Client: the server's preferred address, to move to once the handshake is confirmed.
    pub(super) preferred: Option<SocketAddr>,
    /// Client: we use the server's preferred address (disable_active_migration no longer
    /// applies, RFC 9000 §18.2).
    pub(super) on_preferred: bool,
    /// Server: we advertised a preferred address, so the address datagrams arrive on is part
    /// of the path (transmits carry it as their source).
    pub(super) track_local: bool,
}

/// The preferred_address parameter for `addr` (the other family's address left empty).
pub(super) fn preferred_param(
    addr: SocketAddr,
    connection_id: ConnectionId,
    stateless_reset_token: ResetToken,
) -> PreferredAddress {
    let (ipv4, ipv6) = match addr {
        SocketAddr::V4(a) => (Some(a), None),
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => (Some(std::net::SocketAddrV4::new(v4, a.port())), None),
            None => (None, Some(a)),
        },
    };
    PreferredAddress { ipv4, ipv6, connection_id, stateless_reset_token }
}

impl Connection {
    /// Server: registers the preferred address's connection ID as our ID of sequence number
    /// 1, routed to this connection like the others; it travels in the transport parameter,
    /// not in a NEW_CONNECTION_ID frame.
    pub(super) fn issue_preferred_cid(&mut self, cid: ConnectionId, token: ResetToken) {
        let c = self.local_cids.issue(cid, token);
        self.local_cids.to_send.retain(|&s| s != c.seq);
        self.endpoint_events.push_back(super::EndpointEvent::NewLocalCid {
            seq: c.seq,
            cid: c.cid,
            reset_token: c.token,
        });
    }

    /// Our address on the path in use, as the owner told it ([`Connection::migrate`],
    /// [`Connection::set_local_address`]); `None` when never told.
    pub fn local_address(&self) -> Option<SocketAddr> {
        self.path.local
    }

    /// Tells the connection its local address without migrating (the owner's socket address,
    /// so that a later [`Connection::migrate`] knows whether only the port changes).
    pub fn set_local_address(&mut self, local: SocketAddr) {
        self.path.local = Some(local);
    }

    /// Whether a migration's new path is still being validated.
    pub fn is_migrating(&self) -> bool {
        self.migration.fallback.is_some() || self.migration.probe.is_some()
    }

    /// Client: the owner now sends from `local` (a new port or address): the connection moves
    /// to that path with a new connection ID of the server's, validates it with
    /// PATH_CHALLENGE, and falls back to the old path if validation fails (RFC 9000 §9.2).
    /// Every later [`Transmit`](super::Transmit) carries `local` as its source until then.
    pub fn migrate(&mut self, now: Instant, local: SocketAddr) -> Result<(), MigrationError> {
        self.check_migration()?;
        let seq = self.peer_cids.spare(&[]).ok_or(MigrationError::NoSpareCid)?;
        self.move_to_path(now, Some(local), self.path.remote, seq);
        Ok(())
    }

    /// Whether [`Connection::migrate`] would move the connection now (the same checks, no
    /// change): the owner asks before it rebinds its socket.
    pub fn check_migration(&self) -> Result<(), MigrationError> {
        self.can_migrate()?;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
        //# An endpoint that receives this transport
        //# parameter MUST NOT use a new local address when sending to the
        //# address that the peer used during the handshake.  This transport
        //# parameter does not prohibit connection migration after a client
        //# has acted on a preferred_address transport parameter.
        if self.peer_params.as_ref().is_some_and(|p| p.disable_active_migration)
            && !self.migration.on_preferred
        {
            return Err(MigrationError::DisabledByPeer);
        }
        self.peer_cids.spare(&[]).map(|_| ()).ok_or(MigrationError::NoSpareCid)
    }

    fn can_migrate(&self) -> Result<(), MigrationError> {
        if self.side != Side::Client {
            return Err(MigrationError::NotClient);
        }
        if !self.close.is_open() || self.error.is_some() {
            return Err(MigrationError::Closed);
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-9
        //# An endpoint MUST NOT initiate connection migration before the
        //# handshake is confirmed, as defined in Section 4.1.2 of [QUIC-TLS].
        if !self.handshake_confirmed {
            return Err(MigrationError::HandshakeNotConfirmed);
        }
        if self.is_migrating() {
            return Err(MigrationError::InProgress);
        }
        Ok(())
    }

    /// Client: the handshake is confirmed: move to the server's preferred address if it gave
    /// one (with its connection ID of sequence number 1).
    pub(super) fn maybe_use_preferred_address(&mut self, now: Instant) {
        let Some(addr) = self.migration.preferred.take() else { return };
        if self.can_migrate().is_err() || addr == self.path.remote || !self.peer_cids.has_seq(1) {
            return;
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-9.6.2
        //# A client that migrates to a preferred address MUST validate the
        //# address it chooses before migrating; see Section 21.5.3.
        //= https://www.rfc-editor.org/rfc/rfc9000#section-9.6.1
        //# Once the handshake is confirmed, the client SHOULD select one of the
        //# two addresses provided by the server and initiate path validation
        //# (see Section 8.2).
        let mut path = Path::new(addr, true, &self.config);
        path.local = self.path.local;
        let mut data = [0u8; 8];
        rand::RngCore::fill_bytes(&mut self.rng, &mut data);
        path.start_challenge(data);
        self.migration.probe = Some(Box::new(Probe { path, seq: 1, next_send: now, sent: 0 }));
        self.migration.deadline = Some(now + self.path_validation_timeout());
        self.arm_path_timer();
        self.stats.migrations += 1;
        self.transmit_interest = true;
    }

    /// Arms the path timer: the validation deadline, or the next probe before it.
    fn arm_path_timer(&mut self) {
        let probe = self.migration.probe.as_ref().map(|p| p.next_send);
        let at = match (self.migration.deadline, probe) {
            (Some(d), Some(p)) => Some(d.min(p)),
            (d, p) => d.or(p),
        };
        self.timers.set_opt(Timer::PathValidation, at);
    }

    /// The path timer fired: give up a validation past its deadline, or let the next probe go.
    pub(super) fn on_path_timer(&mut self, now: Instant) {
        if self.migration.deadline.is_some_and(|d| d <= now) {
            self.on_path_validation_timeout();
            return;
        }
        self.transmit_interest = true;
        self.arm_path_timer();
    }

    /// Client: writes the preferred address's probe into `out` when one is due: a 1-RTT
    /// packet to its connection ID with PATH_CHALLENGE, padded to 1200 bytes. Returns the
    /// transmit (to the preferred address).
    pub(super) fn poll_path_probe(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Option<super::Transmit> {
        let probe = self.migration.probe.as_ref()?;
        if probe.next_send > now || self.one_rtt.is_none() || out.len() < MIN_PROBE_SIZE {
            return None;
        }
        let (seq, remote, local, data) =
            (probe.seq, probe.path.remote, probe.path.local, probe.path.challenge?);
        let current = self.peer_cids.current_seq();
        if !self.peer_cids.use_seq(seq) {
            return None;
        }
        let n = self.build_path_probe(now, &mut out[..MIN_PROBE_SIZE], data);
        self.peer_cids.use_seq(current);
        let n = n?;
        let pto = self.loss.pto_period(SpaceId::Data);
        if let Some(p) = self.migration.probe.as_mut() {
            p.sent += 1;
            // Each resend waits twice as long (RFC 9000 §9.4: no more aggressive than a PTO).
            p.next_send = now + pto * 2u32.saturating_pow(p.sent.min(8) - 1);
        }
        self.arm_path_timer();
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += n as u64;
        Some(super::Transmit {
            dst: remote,
            src: local,
            ecn: peregrine_datapath::Ecn::NotEct,
            segment_size: None,
            len: n,
            datagrams: 1,
        })
    }

    /// A 1-RTT packet of PATH_CHALLENGE + PADDING filling `buf`, to the connection ID in use.
    fn build_path_probe(&mut self, now: Instant, buf: &mut [u8], data: [u8; 8]) -> Option<usize> {
        use crate::coding::Writer;
        use crate::frame::{FrameType, PacketSummary, PathChallenge};
        let space = SpaceId::Data;
        let pn = self.spaces[space.index()].next_pn;
        let mut w = Writer::new(buf);
        let builder = self.write_header(&mut w, space, pn)?;
        let mut summary = PacketSummary::default();
        PathChallenge { data }.encode(&mut w).ok()?;
        summary.on_frame(FrameType::PATH_CHALLENGE);
        //= https://www.rfc-editor.org/rfc/rfc9000#section-8.2.1
        //# An endpoint MUST expand datagrams that contain a PATH_CHALLENGE frame
        //# to at least the smallest allowed maximum datagram size of 1200 bytes,
        //# unless the anti-amplification limit for the path does not permit
        //# sending a datagram of this size.
        let fill = w.remaining().saturating_sub(crate::crypto::TAG_LEN);
        w.reserve(fill).ok()?.fill(0);
        summary.on_frame(FrameType::PADDING);
        let layout = builder.finish(&mut w, crate::crypto::TAG_LEN).ok()?;
        let pkt = &mut w.written_mut()[layout.range()];
        if self.qlog.is_some() {
            let payload = &pkt[layout.header_len..layout.len - layout.tag_len];
            self.qlog_packet(now, true, space, pn, layout.len, payload);
        }
        if let Err(e) = self.seal(space, pn, pkt, layout.header_len, layout.pn_offset) {
            self.close_with_error(now, e);
            return None;
        }
        self.spaces[space.index()].next_pn += 1;
        let items = self.retx_pool.take();
        let payload = super::sent::SentFrames { space, items, ack_largest: None, mtu_probe: false };
        // Not in flight: the probe's loss says nothing about the path in use.
        let sent = crate::recovery::SentPacket::new(pn, now, layout.len as u16, payload)
            .with_ack_eliciting(true)
            .with_in_flight(false)
            .with_ecn(peregrine_datapath::Ecn::NotEct);
        if let Err(e) = self.loss.on_packet_sent(space, sent, &mut *self.cc) {
            self.close_with_error(now, e);
            return None;
        }
        self.stats.packets_sent += 1;
        Some(layout.len)
    }

    /// A PATH_RESPONSE answered the preferred address's probe: move there.
    pub(super) fn on_probe_response(&mut self, data: [u8; 8]) -> bool {
        let Some(p) = self.migration.probe.as_ref() else { return false };
        if p.path.challenge != Some(data) {
            return false;
        }
        let Some(p) = self.migration.probe.take() else { return false };
        let Probe { mut path, seq, .. } = *p;
        path.on_path_response(data);
        let old_seq = self.peer_cids.current_seq();
        if !self.peer_cids.use_seq(seq) {
            return false;
        }
        self.peer_cids.retire_seq(old_seq);
        let port_only = path.remote.ip() == self.path.remote.ip();
        tracing::debug!(from = %self.path.remote, to = %path.remote, "moving to the preferred address");
        self.path = path;
        if !port_only {
            self.cc = self.fresh_controller();
            self.loss.replace_rtt(RttEstimator::new(self.loss.initial_rtt()));
        }
        self.restart_pmtud();
        self.migration.deadline = None;
        self.timers.stop(Timer::PathValidation);
        self.migration.on_preferred = true;
        self.stats.paths_validated += 1;
        self.transmit_interest = true;
        true
    }

    /// Client: the server's preferred_address transport parameter: its connection ID becomes
    /// the peer's ID of sequence number 1, and the address of our family is where we move
    /// once the handshake is confirmed (unless the configuration says not to).
    pub(super) fn on_preferred_address(&mut self, pa: &PreferredAddress) -> Result<(), Error> {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-5.1.1
        //# If the preferred_address transport
        //# parameter is sent, the sequence number of the supplied connection ID
        //# is 1.
        let f = NewConnectionId {
            sequence: VarInt::from_u32(1),
            retire_prior_to: VarInt::from_u32(0),
            id: pa.connection_id,
            reset_token: pa.stateless_reset_token,
        };
        self.peer_cids.on_new_cid(&f)?;
        if !self.config.use_preferred_address {
            return Ok(());
        }
        // Our path's family; an IPv4 preferred address for a client on a dual-stack socket
        // that reached the server over an IPv4-mapped address is mapped the same way.
        self.migration.preferred = if self.path.is_ipv6() {
            pa.ipv6.map(SocketAddr::V6)
        } else {
            pa.ipv4.map(|v4| match self.path.remote {
                SocketAddr::V6(_) => {
                    SocketAddr::new(std::net::IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
                }
                SocketAddr::V4(_) => SocketAddr::V4(v4),
            })
        };
        Ok(())
    }

    /// Switches to the path (`local`, `remote`) with the peer's connection ID `seq`, keeping
    /// the old path aside, and starts validating the new one.
    fn move_to_path(
        &mut self,
        now: Instant,
        local: Option<SocketAddr>,
        remote: SocketAddr,
        seq: u64,
    ) {
        let old_seq = self.peer_cids.current_seq();
        if !self.peer_cids.use_seq(seq) {
            return;
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-9.4
        //# On confirming a peer's ownership of its new address, an endpoint
        //# MUST immediately reset the congestion controller and round-trip time
        //# estimator for the new path to initial values (see Appendices A.3 and
        //# B.3 of [QUIC-RECOVERY]) unless the only change in the peer's address
        //# is its port number.
        // The client applies the same rule to its own change of address: the new path has
        // its own bottleneck and delay unless only our port changed.
        let port_only = remote == self.path.remote
            && matches!((local, self.path.local), (Some(a), Some(b)) if a.ip() == b.ip());
        //= https://www.rfc-editor.org/rfc/rfc9000#section-9.2
        //# To establish reachability on the new path, an endpoint initiates path
        //# validation (Section 8.2) on the new path.
        let mut path = Path::new(remote, true, &self.config);
        path.local = local;
        let mut data = [0u8; 8];
        rand::RngCore::fill_bytes(&mut self.rng, &mut data);
        path.start_challenge(data);
        let old = std::mem::replace(&mut self.path, path);
        let recovery = (!port_only).then(|| {
            let fresh = self.fresh_controller();
            let old_cc = std::mem::replace(&mut self.cc, fresh);
            let old_rtt = self.loss.replace_rtt(RttEstimator::new(self.loss.initial_rtt()));
            (old_cc, old_rtt)
        });
        tracing::debug!(
            from = %old.remote, to = %remote, local = ?local, port_only, "migrating"
        );
        self.migration.fallback =
            Some(Box::new(Fallback { path: old, old_seq, new_seq: seq, recovery }));
        self.restart_pmtud();
        self.migration.deadline = Some(now + self.path_validation_timeout());
        self.arm_path_timer();
        self.stats.migrations += 1;
        self.transmit_interest = true;
    }

    /// A congestion controller at initial values for the current datagram size.
    pub(super) fn fresh_controller(&self) -> Box<dyn Controller> {
        let cfg = self.config.congestion_config();
        let mut cc = self.config.congestion.build(&cfg);
        cc.set_max_datagram_size(self.path.mds);
        cc
    }

    /// PMTU discovery starts over on a new path, from the base size.
    fn restart_pmtud(&mut self) {
        let ipv6 = self.path.is_ipv6();
        self.path.mtud.start(self.peer_max_udp_payload, ipv6);
        let mds = self.path.mtud.current();
        self.path.mds = 0;
        self.set_plpmtu(mds);
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-8.2.4
    //# Endpoints SHOULD abandon path validation based on a timer.  When
    //# setting this timer, implementations are cautioned that the new path
    //# could have a longer round-trip time than the original.  A value of
    //# three times the larger of the current PTO or the PTO for the new path
    //# (using kInitialRtt, as defined in [QUIC-RECOVERY]) is RECOMMENDED.
    fn path_validation_timeout(&self) -> Duration {
        let current = self
            .migration
            .fallback
            .as_ref()
            .and_then(|f| f.recovery.as_ref())
            .map(|(_, rtt)| rtt.smoothed() + (rtt.var() * 4).max(crate::recovery::GRANULARITY))
            .unwrap_or(Duration::ZERO);
        let initial = self.loss.initial_rtt() * 3;
        let pto = self.loss.pto_period(SpaceId::Data).max(current).max(initial);
        pto * 3
    }

    /// A PATH_RESPONSE validated the path in use: the migration is complete; the old path's
    /// connection ID is retired.
    pub(super) fn on_path_validated(&mut self) {
        let Some(f) = self.migration.fallback.take() else { return };
        self.migration.deadline = None;
        self.timers.stop(Timer::PathValidation);
        //= https://www.rfc-editor.org/rfc/rfc9000#section-9.5
        //# An endpoint MUST NOT reuse a connection ID when sending from more
        //# than one local address -- for example, when initiating connection
        //# migration as described in Section 9.2 or when probing a new network
        //# path as described in Section 9.1.
        self.peer_cids.retire_seq(f.old_seq);
        self.stats.paths_validated += 1;
        tracing::debug!(remote = %self.path.remote, local = ?self.path.local, "path validated");
    }

    /// The new path was not validated in time: go back to the old one, retiring the
    /// connection ID tried on the new one.
    pub(super) fn on_path_validation_timeout(&mut self) {
        self.timers.stop(Timer::PathValidation);
        self.migration.deadline = None;
        if let Some(p) = self.migration.probe.take() {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-9.6.1
            //# If path
            //# validation fails, the client MUST continue sending all future packets
            //# to the server's original IP address.
            tracing::debug!(preferred = %p.path.remote, "preferred address not validated");
            self.peer_cids.retire_seq(p.seq);
            self.stats.path_validations_failed += 1;
            return;
        }
        let Some(f) = self.migration.fallback.take() else { return };
        let f = *f;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-8.2.4
        //# When an endpoint abandons path validation, it determines that the
        //# path is unusable.  This does not necessarily imply a failure of the
        //# connection -- endpoints can continue sending packets over other paths
        //# as appropriate.
        tracing::debug!(from = %self.path.remote, back_to = %f.path.remote, "path validation failed");
        self.path = f.path;
        self.peer_cids.use_seq(f.old_seq);
        self.peer_cids.retire_seq(f.new_seq);
        if let Some((cc, rtt)) = f.recovery {
            self.cc = cc;
            self.loss.replace_rtt(rtt);
        }
        self.cc.set_max_datagram_size(self.path.mds);
        self.pacer.set_max_datagram_size(self.path.mds);
        self.stats.path_validations_failed += 1;
        self.transmit_interest = true;
    }
}
