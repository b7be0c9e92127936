//! Creating connections, driving TLS, installing and discarding keys, transport parameters,
//! handshake completion and confirmation, Retry and Version Negotiation (client side).

use std::net::SocketAddr;
use std::time::Instant;

use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::cids::{LocalCids, PeerCids};
use super::close::CloseState;
use super::config::{CidGenerator, ClientConfig, ServerConfig, TransportConfig, MAX_ISSUED_CIDS};
use super::events::{EndpointEvent, Event};
use super::sent::RetxPool;
use super::spaces::{
    level_of, space_of, PacketSpace, MAX_CRYPTO_BUFFER, MAX_CRYPTO_BUFFER_UNVALIDATED,
};
use super::stats::ConnectionStats;
use super::timers::{Timer, TimerTable};
use super::versions::{offers_compatible, protection_version, Restart, ServerSwitch, Versions};
use super::{ConnectError, Connection, HandshakeIds, Incoming};
use crate::cid::{ConnectionId, ResetToken};
use crate::congestion::Pacer;
use crate::crypto::{self, initial_keys, KeyChange, Side, TlsSession};
use crate::error::Error;
use crate::packet::RetryPacket;
use crate::recovery::{AckTrackerConfig, LossConfig, LossDetector, SpaceId};
use crate::streams::{Dir, Role, Streams};
use crate::transport_params::{HandshakeCids, TransportParameters};
use crate::varint::VarInt;
use crate::version;

/// Length of the random Destination Connection ID of a client's first Initial.
//= https://www.rfc-editor.org/rfc/rfc9000#section-7.2
//# When an Initial packet is sent by a client that has not previously
//# received an Initial or Retry packet from the server, the client
//# populates the Destination Connection ID field with an unpredictable
//# value.  This Destination Connection ID MUST be at least 8 bytes in
//# length.
const CLIENT_INITIAL_DCID_LEN: usize = 16;

/// Bound on `write_hs` rounds after one read (each round may hand over one key change).
const MAX_TLS_WRITE_ROUNDS: usize = 8;

/// The ACK tracker settings of a connection with `cfg`.
pub(super) fn ack_config(cfg: &TransportConfig) -> AckTrackerConfig {
    AckTrackerConfig {
        max_ack_delay: cfg.max_ack_delay,
        ack_delay_exponent: cfg.ack_delay_exponent,
        ..AckTrackerConfig::default()
    }
}

fn varint(v: u64) -> VarInt {
    VarInt::new(v).unwrap_or(VarInt::MAX)
}

/// Our transport parameters.
pub(super) fn local_params(
    cfg: &TransportConfig,
    scid: ConnectionId,
    server: Option<(ConnectionId, Option<ConnectionId>, ResetToken)>,
) -> TransportParameters {
    let s = &cfg.streams;
    let mut p = TransportParameters {
        max_idle_timeout: varint(cfg.idle_timeout.map_or(0, |t| t.as_millis() as u64)),
        initial_max_data: varint(s.receive_window()),
        initial_max_stream_data_bidi_local: varint(s.stream_receive_window()),
        initial_max_stream_data_bidi_remote: varint(s.stream_receive_window()),
        initial_max_stream_data_uni: varint(s.stream_receive_window()),
        initial_max_streams_bidi: varint(s.max_concurrent_streams(Dir::Bi)),
        initial_max_streams_uni: varint(s.max_concurrent_streams(Dir::Uni)),
        ack_delay_exponent: varint(u64::from(cfg.ack_delay_exponent)),
        max_ack_delay: varint(cfg.max_ack_delay.as_millis() as u64),
        active_connection_id_limit: varint(cfg.active_cid_limit),
        max_udp_payload_size: varint(cfg.max_recv_udp_payload),
        initial_source_connection_id: Some(scid),
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-3
        //# Endpoints advertise their support for receiving ACK_FREQUENCY and IMMEDIATE_ACK
        //# frames as described in this document by sending the following transport
        //# parameter (Section 7.2 of [QUIC-TRANSPORT]):
        min_ack_delay: cfg.ack_frequency.then(|| {
            //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-3
            //# An endpoint's min_ack_delay MUST NOT be greater than its max_ack_delay.
            let d = super::ack_frequency::DEFAULT_MIN_ACK_DELAY.min(cfg.max_ack_delay);
            varint(d.as_micros() as u64)
        }),
        //= https://www.rfc-editor.org/rfc/rfc9221#section-3
        //# Endpoints advertise their support for receiving DATAGRAM frames
        //# by including the max_datagram_frame_size transport parameter.
        max_datagram_frame_size: cfg.max_datagram_frame_size.map(varint),
        disable_active_migration: cfg.disable_active_migration,
        ..TransportParameters::default()
    };
    if let Some((odcid, retry_scid, token)) = server {
        p.original_destination_connection_id = Some(odcid);
        p.retry_source_connection_id = retry_scid;
        p.stateless_reset_token = Some(token);
    }
    p
}

/// Everything a connection needs but its role-specific parts.
struct Parts {
    side: Side,
    version: u32,
    config: TransportConfig,
    tls: TlsSession,
    initial: crypto::Keys,
    cid_gen: Box<dyn CidGenerator>,
    scid: ConnectionId,
    scid_token: ResetToken,
    peer_cid: ConnectionId,
    remote: SocketAddr,
    ids: HandshakeIds,
    rng: ChaCha8Rng,
    versions: Versions,
}

impl Connection {
    /// Starts a client connection to `remote` for `server_name` (SNI and certificate name).
    /// The first [`poll_transmit`](Self::poll_transmit) yields the padded Initial.
    pub fn client(
        config: &ClientConfig,
        now: Instant,
        remote: SocketAddr,
        server_name: &str,
        cid_gen: Box<dyn CidGenerator>,
    ) -> Result<Self, ConnectError> {
        Self::client_seeded(config, now, remote, server_name, cid_gen, config.transport.rng_seed)
    }

    /// [`Connection::client`] with the random source seeded from `seed` instead of the
    /// configuration's (an endpoint gives each connection its own).
    pub fn client_seeded(
        config: &ClientConfig,
        now: Instant,
        remote: SocketAddr,
        server_name: &str,
        mut cid_gen: Box<dyn CidGenerator>,
        seed: u64,
    ) -> Result<Self, ConnectError> {
        let cv = protection_version(config.version, &config.versions)
            .ok_or(ConnectError::UnsupportedVersion(config.version))?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut d = [0u8; CLIENT_INITIAL_DCID_LEN];
        rng.fill_bytes(&mut d);
        let dcid = ConnectionId::new(&d).map_err(|_| ConnectError::InvalidCid)?;
        let (scid, scid_token) = cid_gen.generate();
        let available: Vec<u32> =
            config.versions.iter().copied().filter(|v| version::is_supported(*v)).collect();
        let versions = Versions {
            available,
            original: config.version,
            first_flight: config.version,
            restart: Some(Box::new(Restart {
                tls: config.tls.clone(),
                server_name: server_name.to_owned(),
            })),
            ..Versions::default()
        };
        let mut params = local_params(&config.transport, scid, None);
        if version::is_supported(config.version) {
            //= https://www.rfc-editor.org/rfc/rfc9369#section-4
            //# Any QUIC endpoint that supports QUIC version 2 MUST send, process, and validate
            //# the version_information transport parameter specified in [QUIC-VN] to prevent
            //# version downgrade attacks.
            params.version_information = Some(versions.info(config.version));
        }
        let params = params.to_vec();
        let tls = if offers_compatible(config.version, &versions.available) {
            TlsSession::client_compatible(&config.tls, cv, server_name, &params)?
        } else {
            TlsSession::client(&config.tls, cv, server_name, &params)?
        };
        let initial =
            initial_keys(cv, &dcid, Side::Client).map_err(|_| ConnectError::InvalidCid)?;
        let ids = HandshakeIds { original_dcid: dcid, peer_initial_scid: None, retry_scid: None };
        let mut conn = Self::assemble(Parts {
            side: Side::Client,
            version: config.version,
            config: config.transport.clone(),
            tls,
            initial,
            cid_gen,
            scid,
            scid_token,
            peer_cid: dcid,
            remote,
            ids,
            rng,
            versions,
        });
        if let Some(store) = &config.token_store {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.3
            //# When connecting to a server for
            //# which the client retains an applicable and unused token, it SHOULD
            //# include that token in the Token field of its Initial packet.
            if let Some(t) = store.take(server_name) {
                conn.token = t;
                conn.stats.new_token_used = true;
            }
            conn.token_store = Some((store.clone(), server_name.into()));
        }
        conn.drive_tls_write(now).map_err(|e| {
            ConnectError::Tls(crypto::TlsError { code: e.code, reason: e.reason, tls: None })
        })?;
        conn.start_zero_rtt().map_err(|e| {
            ConnectError::Tls(crypto::TlsError { code: e.code, reason: e.reason, tls: None })
        })?;
        conn.reset_idle_timer(now);
        conn.timers.set_opt(Timer::Handshake, conn.config.handshake_timeout.map(|t| now + t));
        conn.update_timers(now);
        Ok(conn)
    }

    /// Accepts a client's connection attempt that the endpoint routed here; feed the Initial
    /// datagram itself to [`handle_datagram`](Self::handle_datagram) next.
    pub fn server(
        config: &ServerConfig,
        now: Instant,
        remote: SocketAddr,
        incoming: Incoming,
        cid_gen: Box<dyn CidGenerator>,
    ) -> Result<Self, ConnectError> {
        Self::server_seeded(config, now, remote, incoming, cid_gen, config.transport.rng_seed)
    }

    /// [`Connection::server`] with the random source seeded from `seed` instead of the
    /// configuration's (an endpoint gives each connection its own).
    pub fn server_seeded(
        config: &ServerConfig,
        now: Instant,
        remote: SocketAddr,
        incoming: Incoming,
        mut cid_gen: Box<dyn CidGenerator>,
        seed: u64,
    ) -> Result<Self, ConnectError> {
        let cv = crypto::Version::from_wire(incoming.version)
            .ok_or(ConnectError::UnsupportedVersion(incoming.version))?;
        let (scid, scid_token) = cid_gen.generate();
        let odcid = incoming.retry.map_or(incoming.dst_cid, |r| r.0);
        let retry_scid = incoming.retry.map(|r| r.1);
        let mut versions = Versions {
            available: config.versions.clone(),
            first_flight: incoming.version,
            ..Versions::default()
        };
        if let Some(preferred) = config.preferred_version.filter(|p| *p != incoming.version) {
            if version::compatible(incoming.version, preferred) {
                versions.switch = Some(Box::new(ServerSwitch {
                    preferred,
                    tls: config.tls.clone(),
                    initial_dcid: incoming.dst_cid,
                    reset_token: scid_token,
                    held: Vec::new(),
                }));
            }
        }
        let mut params =
            local_params(&config.transport, scid, Some((odcid, retry_scid, scid_token)));
        params.version_information = Some(versions.info(incoming.version));
        let preferred = config.preferred_address.map(|addr| {
            let (cid, token) = cid_gen.generate();
            params.preferred_address = Some(super::migration::preferred_param(addr, cid, token));
            (cid, token)
        });
        let tls = TlsSession::server_with_limits(
            &config.tls,
            cv,
            &params.to_vec(),
            &super::zero_rtt::remembered_limits(&params),
        )?;
        let initial = initial_keys(cv, &incoming.dst_cid, Side::Server)
            .map_err(|_| ConnectError::InvalidCid)?;
        let ids = HandshakeIds {
            original_dcid: odcid,
            peer_initial_scid: Some(incoming.src_cid),
            retry_scid,
        };
        let rng = ChaCha8Rng::seed_from_u64(seed);
        let mut conn = Self::assemble(Parts {
            side: Side::Server,
            version: incoming.version,
            config: config.transport.clone(),
            tls,
            initial,
            cid_gen,
            scid,
            scid_token,
            peer_cid: incoming.src_cid,
            remote,
            ids,
            rng,
            versions,
        });
        //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1
        //# A server might wish to validate the client address before starting
        //# the cryptographic handshake.  QUIC uses a token in the Initial packet
        //# to provide address validation prior to completing the handshake.
        conn.path.validated = incoming.retry.is_some();
        conn.stats.retry = incoming.retry.is_some();
        if let Some((cid, token)) = preferred {
            conn.issue_preferred_cid(cid, token);
            conn.migration.track_local = true;
        }
        conn.reset_idle_timer(now);
        conn.timers.set_opt(Timer::Handshake, conn.config.handshake_timeout.map(|t| now + t));
        conn.update_timers(now);
        Ok(conn)
    }

    fn assemble(p: Parts) -> Self {
        let cfg = p.config;
        let acks = ack_config(&cfg);
        let mut spaces = [
            PacketSpace::new(SpaceId::Initial, acks),
            PacketSpace::new(SpaceId::Handshake, acks),
            PacketSpace::new(SpaceId::Data, acks),
        ];
        spaces[0].keys = Some(p.initial);
        let loss = LossDetector::new(LossConfig {
            is_server: p.side == Side::Server,
            initial_rtt: cfg.initial_rtt,
            ecn: cfg.ecn,
            ..LossConfig::default()
        });
        let cc_cfg = cfg.congestion_config();
        let role = if p.side == Side::Client { Role::Client } else { Role::Server };
        let mut endpoint_events = std::collections::VecDeque::new();
        endpoint_events.push_back(EndpointEvent::NewLocalCid {
            seq: 0,
            cid: p.scid,
            reset_token: p.scid_token,
        });
        Self {
            transmit_interest: true,
            side: p.side,
            version: p.version,
            tls: p.tls,
            spaces,
            one_rtt: None,
            loss,
            cc: cfg.congestion.build(&cc_cfg),
            pacer: Pacer::new(cfg.max_datagram_size),
            streams: Streams::new(role, cfg.streams.clone()),
            timers: TimerTable::default(),
            close: CloseState::Open,
            cid_gen: p.cid_gen,
            local_scid: p.scid,
            local_cids: LocalCids::with_initial(p.scid, p.scid_token),
            peer_cids: PeerCids::new(p.peer_cid, cfg.active_cid_limit),
            path: super::path::Path::new(p.remote, p.side == Side::Client, &cfg),
            migration: Default::default(),
            ids: p.ids,
            token: Vec::new(),
            new_token: None,
            token_store: None,
            token_out: None,
            token_out_pending: false,
            peer_params: None,
            received_valid: false,
            retry_received: false,
            handshake_complete: false,
            handshake_confirmed: false,
            handshake_done_pending: false,
            idle_timeout: cfg.idle_timeout,
            key_update_requested: false,
            idle_restart_on_send: false,
            migration_candidate: false,
            events: std::collections::VecDeque::new(),
            endpoint_events,
            error: None,
            drained_emitted: false,
            stats: ConnectionStats::default(),
            retx_pool: RetxPool::default(),
            ack_scratch: Default::default(),
            rx_arena: bytes::BytesMut::new(),
            crypto_scratch: Vec::new(),
            tls_detail: None,
            peer_ack_delay_exponent: crate::transport_params::DEFAULT_ACK_DELAY_EXPONENT as u8,
            peer_max_udp_payload: crate::transport_params::DEFAULT_MAX_UDP_PAYLOAD_SIZE,
            ack_frequency: Default::default(),
            app_limited: false,
            rng: p.rng,
            versions: p.versions,
            datagrams: Default::default(),
            early: Default::default(),
            qlog: None,
            config: cfg,
        }
    }

    /// CRYPTO data received in `space`: reassemble, feed TLS, collect its output and keys.
    pub(super) fn on_crypto(
        &mut self,
        now: Instant,
        space: SpaceId,
        offset: u64,
        data: &[u8],
    ) -> Result<(), Error> {
        let mut buf = std::mem::take(&mut self.crypto_scratch);
        buf.clear();
        let limit = if self.side == Side::Server && !self.path.validated {
            MAX_CRYPTO_BUFFER_UNVALIDATED
        } else {
            MAX_CRYPTO_BUFFER
        };
        let sp = &mut self.spaces[space.index()];
        //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.3
        //# To speed up handshake completion under these conditions, an endpoint MAY, for a
        //# limited number of times per connection, send a packet containing unacknowledged
        //# CRYPTO data earlier than the PTO expiry, subject to the address validation limits
        //# in Section 8.1 of [QUIC-TRANSPORT].
        if self.side == Side::Server
            && space == SpaceId::Initial
            && sp.crypto_recv.is_duplicate(offset, data.len())
            && sp.crypto_send.resend_early()
        {
            self.transmit_interest = true;
        }
        let mut r = sp.crypto_recv.on_frame(offset, data, limit, &mut buf);
        if r.is_ok() && !buf.is_empty() && space == SpaceId::Initial {
            r = self.hold_client_hello(&mut buf);
        }
        if r.is_ok() && !buf.is_empty() {
            r = self.tls.read_hs(level_of(space), &buf).map_err(|e| {
                self.tls_detail = e.tls.as_ref().map(ToString::to_string);
                e.to_error()
            });
        }
        self.crypto_scratch = buf;
        r?;
        self.accept_zero_rtt();
        self.drive_tls_write(now)?;
        self.check_handshake_progress(now)
    }

    /// Collects what TLS has to send and the keys it hands over.
    pub(super) fn drive_tls_write(&mut self, now: Instant) -> Result<(), Error> {
        for _ in 0..MAX_TLS_WRITE_ROUNDS {
            let mut buf = std::mem::take(&mut self.crypto_scratch);
            buf.clear();
            let w = self.tls.write_hs(&mut buf);
            let w = match w {
                Ok(w) => w,
                Err(e) => {
                    self.crypto_scratch = buf;
                    return Err(e.to_error());
                }
            };
            if !buf.is_empty() {
                self.spaces[space_of(w.level).index()].crypto_send.push(&buf);
            }
            self.crypto_scratch = buf;
            match w.keys {
                None => return Ok(()),
                Some(KeyChange::Handshake(keys)) => {
                    self.spaces[SpaceId::Handshake.index()].keys = Some(keys);
                    self.loss.on_handshake_keys(now);
                }
                Some(KeyChange::OneRtt(keys)) => {
                    self.one_rtt = Some(keys);
                    self.on_one_rtt_keys();
                }
            }
        }
        Ok(())
    }

    /// Reads the peer's transport parameters when TLS has them, and completes the handshake.
    fn check_handshake_progress(&mut self, now: Instant) -> Result<(), Error> {
        // A resuming client's TLS reports the parameters remembered with the session ticket
        // until the server's new ones arrive, so the client reads them only once the
        // handshake is complete (they are authenticated by then); a server reads the
        // client's as soon as the ClientHello is in.
        let ready = self.side == Side::Server || !self.tls.is_handshaking();
        if ready && self.peer_params.is_none() && self.tls.peer_transport_parameters().is_some() {
            self.on_peer_params(now)?;
        }
        if !self.handshake_complete && !self.tls.is_handshaking() {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-7.3
            //# An endpoint MUST treat the absence of the
            //# initial_source_connection_id transport parameter from either endpoint
            //# or the absence of the original_destination_connection_id transport
            //# parameter from the server as a connection error of type
            //# TRANSPORT_PARAMETER_ERROR.
            if self.peer_params.is_none() {
                return Err(Error::transport_parameter("no transport parameters from the peer"));
            }
            self.handshake_complete = true;
            self.timers.stop(Timer::Handshake);
            self.events.push_back(Event::Connected);
            if self.side == Side::Server {
                //= https://www.rfc-editor.org/rfc/rfc9001#section-4.1.2
                //# The server MUST send a HANDSHAKE_DONE
                //# frame as soon as the handshake is complete.
                self.handshake_done_pending = true;
                //= https://www.rfc-editor.org/rfc/rfc9001#section-4.1.2
                //# the TLS handshake is considered confirmed at the
                //# server when the handshake completes.
                self.confirm_handshake(now);
            }
        }
        Ok(())
    }

    /// Decodes, validates and applies the peer's transport parameters.
    fn on_peer_params(&mut self, now: Instant) -> Result<(), Error> {
        let bytes = self.tls.peer_transport_parameters().unwrap_or_default().to_vec();
        let sender = match self.side {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        };
        let params = TransportParameters::decode(sender, &bytes)?;
        let seen = HandshakeCids {
            peer_initial_scid: self.ids.peer_initial_scid.unwrap_or_default(),
            original_dcid: self.ids.original_dcid,
            retry_scid: self.ids.retry_scid,
        };
        params.authenticate_cids(sender, &seen)?;
        self.check_version_information(params.version_information.as_ref())?;
        self.apply_peer_limits(now, super::zero_rtt::peer_limits(&params))?;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-10.1
        //# Each endpoint advertises a max_idle_timeout, but the effective value
        //# at an endpoint is computed as the minimum of the two advertised
        //# values (or the sole advertised value, if only one endpoint advertises
        //# a non-zero value).
        self.idle_timeout = match (self.config.idle_timeout, params.idle_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.loss.set_peer_max_ack_delay(now, params.max_ack_delay_duration());
        self.peer_ack_delay_exponent = params.ack_delay_exponent.into_inner().min(20) as u8;
        self.peer_max_udp_payload = params.max_udp_payload_size.into_inner();
        if let Some(token) = params.stateless_reset_token {
            self.peer_cids.set_initial_token(token);
        }
        if let Some(pa) = params.preferred_address {
            self.on_preferred_address(&pa)?;
        }
        self.peer_params = Some(params);
        self.qlog_peer_params(now);
        Ok(())
    }

    /// The handshake is confirmed: drop Handshake keys, allow key updates, issue CIDs.
    pub(super) fn confirm_handshake(&mut self, now: Instant) {
        if self.handshake_confirmed {
            return;
        }
        self.handshake_confirmed = true;
        //= https://www.rfc-editor.org/rfc/rfc9001#section-4.9.2
        //# An endpoint MUST discard its Handshake keys when the TLS handshake is
        //# confirmed (Section 4.1.2).
        self.discard_space(now, SpaceId::Initial);
        self.discard_space(now, SpaceId::Handshake);
        self.loss.on_handshake_confirmed(now);
        if let Some(k) = self.one_rtt.as_mut() {
            k.set_handshake_confirmed();
        }
        self.events.push_back(Event::HandshakeConfirmed);
        self.issue_cids();
        //= https://www.rfc-editor.org/rfc/rfc9000#section-14.3.1
        //# A QUIC sender can therefore enter the
        //# DPLPMTUD BASE state (Section 5.2 of [DPLPMTUD]) when the QUIC
        //# connection handshake has been completed.
        let ipv6 = self.path.is_ipv6();
        self.path.mtud.start(self.peer_max_udp_payload, ipv6);
        let mds = self.path.mtud.current();
        self.set_plpmtu(mds);
        self.maybe_use_preferred_address(now);
    }

    /// Issues connection IDs up to the peer's active_connection_id_limit (capped).
    pub(super) fn issue_cids(&mut self) {
        let limit = self
            .peer_params
            .as_ref()
            .map_or(2, |p| p.active_connection_id_limit.into_inner())
            .min(MAX_ISSUED_CIDS) as usize;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-5.1.1
        //# An endpoint MUST NOT
        //# provide more connection IDs than the peer's limit.
        while self.local_cids.active_count() < limit {
            let (cid, token) = self.cid_gen.generate();
            let c = self.local_cids.issue(cid, token);
            self.endpoint_events.push_back(EndpointEvent::NewLocalCid {
                seq: c.seq,
                cid: c.cid,
                reset_token: c.token,
            });
        }
    }

    /// Discards the keys and recovery state of `space` (RFC 9001 §4.9).
    pub(super) fn discard_space(&mut self, now: Instant, space: SpaceId) {
        let sp = &mut self.spaces[space.index()];
        if sp.discarded || space == SpaceId::Data {
            return;
        }
        sp.discard();
        for p in self.loss.discard_space(now, space) {
            self.retx_pool.put(p.payload.items);
        }
        self.close.drop_space(space);
    }

    /// A Retry packet (client).
    pub(super) fn on_retry(&mut self, now: Instant, packet: &[u8]) {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.5.2
        //# A client MUST accept and process at most one Retry packet for each
        //# connection attempt.  After the client has received and processed an
        //# Initial or Retry packet from the server, it MUST discard any
        //# subsequent Retry packets that it receives.
        if self.side != Side::Client || self.received_valid || self.retry_received {
            return;
        }
        let Some(cv) = crypto::Version::from_wire(self.version) else { return };
        //= https://www.rfc-editor.org/rfc/rfc9001#section-5.8
        //# Retry packets (see Section 17.2.5 of [QUIC-TRANSPORT]) carry a Retry
        //# Integrity Tag that provides two properties: it allows the discarding
        //# of packets that have accidentally been corrupted by the network, and
        //# only an entity that observes an Initial packet can send a valid Retry
        //# packet.
        if crypto::verify_retry_integrity(cv, &self.ids.original_dcid, packet).is_err() {
            self.stats.packets_dropped += 1;
            return;
        }
        let Ok(retry) = RetryPacket::parse(packet) else { return };
        //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.5.1
        //# A client MUST discard a Retry packet that contains a Source
        //# Connection ID field that is identical to the Destination Connection
        //# ID field of its Initial packet.
        if retry.src_cid == self.ids.original_dcid || retry.dst_cid != self.local_scid {
            return;
        }
        let Ok(keys) = initial_keys(cv, &retry.src_cid, Side::Client) else { return };
        self.retry_received = true;
        self.stats.retry = true;
        self.ids.retry_scid = Some(retry.src_cid);
        //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.5.1
        //# The client MUST use the value from the Source Connection ID
        //# field of the Retry packet in the Destination Connection ID field of
        //# subsequent packets that it sends.
        self.peer_cids.set_initial(retry.src_cid);
        //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.5.3
        //# The value of the Token field is copied to all subsequent Initial
        //# packets; see Section 8.1.2.
        self.token = retry.token.to_vec();
        self.spaces[0].keys = Some(keys);
        //= https://www.rfc-editor.org/rfc/rfc9002#section-6.3
        //# Clients that receive a Retry packet reset congestion control and loss
        //# recovery state, including resetting any pending timers.
        for p in self.loss.on_retry() {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.3
            //# A client SHOULD attempt
            //# to resend data in 0-RTT packets after it sends a new Initial packet.
            if p.payload.space == SpaceId::Data {
                self.requeue_packet(SpaceId::Data, p);
            } else {
                self.retx_pool.put(p.payload.items);
            }
        }
        self.spaces[0].crypto_send.resend_all();
        self.update_timers(now);
    }
}
