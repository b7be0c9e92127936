//! The QUIC v1 connection state machine (RFC 9000, 9001, 9002), sans-IO and quinn-proto shaped.
//!
//! A [`Connection`] is driven by its owner (a worker, a test harness, an interop shim):
//! - [`Connection::handle_datagram`] with each datagram routed to it (decrypted in place);
//! - [`Connection::poll_transmit`] writes the next datagram, or a GSO train of equal-sized
//!   datagrams, straight into the caller's buffer (packets are sealed in place);
//! - [`Connection::poll_timeout`] / [`Connection::handle_timeout`] run the timer table;
//! - [`Connection::poll_event`] hands out [`Event`]s, [`Connection::poll_endpoint_event`] tells
//!   the CID router about new and retired connection IDs;
//! - stream calls ([`Connection::open`], [`Connection::write`], [`Connection::read`], ...)
//!   delegate to [`crate::streams::Streams`].
//!
//! `poll_transmit` needs an output buffer of at least 1200 bytes (one full datagram; a GSO
//! train needs `max_datagrams` times the datagram size). `handle_datagram` takes the datagram's
//! source address: a server follows a change of it after the handshake is confirmed (NAT
//! rebinding or client migration, RFC 9000 §9.3) and validates the new path;
//! [`Connection::handle_datagram_on`] also takes our local address, which a server that
//! offered a preferred address follows the same way.
//!
//! The path (addresses, validation, amplification budget, PMTU) is owned by `path::Path`.
//! A client migrates with [`Connection::migrate`] (new local address, new connection ID of the
//! server's, PATH_CHALLENGE validation, congestion and RTT reset unless only the port changed,
//! fallback to the old path when validation fails) and, once the handshake is confirmed,
//! probes a server's preferred address and moves there when it answers (`migration`). Not
//! implemented (yet): the spin bit; a migration of our own sends on the new path while
//! validating it (RFC 9000 §9.2 allows it), it does not probe first.
//!
//! Every entry point takes `now`; nothing reads the clock. The rules live in the submodules:
//! `handshake` (TLS, keys, transport parameters, Retry), `versions` (Version Negotiation,
//! compatible negotiation, version_information checks), `path` and `migration` (the path,
//! client migration, preferred address), `datagrams` (RFC 9221 DATAGRAM
//! frames and their bounded queues), `zero_rtt` (0-RTT in both roles), `mtud` (path MTU
//! discovery, RFC 8899 / RFC 9000 §14.3), `recv` (datagram →
//! packets → frames), `send` (packet assembly, coalescing, padding, GSO, congestion and
//! amplification limits), `close` (explicit close state), `spaces`, `cids`, `timers`.

mod ack_frequency;
mod cids;
mod close;
mod config;
mod datagrams;
mod events;
mod fill;
mod handshake;
mod loss;
mod migration;
mod mtud;
mod path;
mod qlog;
mod recv;
mod send;
mod sent;
mod spaces;
mod stats;
mod timers;
mod token_store;
mod versions;
mod zero_rtt;

#[cfg(test)]
mod tests;

pub use close::{CloseFrame, CloseState};
pub use config::{
    CidGenerator, ClientConfig, ConfigError, RandomCidGenerator, ServerConfig, TransportConfig,
    DEFAULT_ACK_DELAY_EXPONENT, DEFAULT_ACTIVE_CID_LIMIT, DEFAULT_CID_LEN,
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_INITIAL_RTT,
    DEFAULT_KEY_UPDATE_INTERVAL, DEFAULT_MAX_ACK_DELAY, DEFAULT_MAX_DATAGRAM_SIZE,
    MAX_DATAGRAM_SIZE_LIMIT, MAX_ISSUED_CIDS,
};
pub use datagrams::{DatagramError, DEFAULT_DATAGRAM_QUEUE};
pub use events::{ConnectionError, EndpointEvent, Event};
pub use migration::MigrationError;
pub use mtud::{
    MtudState, BASE_PLPMTU, BLACK_HOLE_THRESHOLD, DEFAULT_PMTUD, DEFAULT_PMTU_RAISE_INTERVAL,
    DEFAULT_PMTU_UPPER_BOUND, MAX_PROBES, PMTU_SEARCH_PRECISION,
};
pub use send::Transmit;
pub use stats::ConnectionStats;
pub use timers::Timer;
pub use token_store::{
    TokenStore, DEFAULT_TOKENS_PER_SERVER, DEFAULT_TOKEN_STORE_SERVERS, MAX_STORED_TOKEN_LEN,
};
pub use zero_rtt::EarlyDataState;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;

use crate::cid::ConnectionId;
use crate::congestion::{Controller, Pacer};
use crate::crypto::{OneRttKeys, Side, TlsError, TlsSession};
use crate::error::Error;
use crate::recovery::{AckOutcome, LossDetector, SpaceId};
use crate::streams::{
    CancelReason, ClosedStream, Dir, OpenError, ReadError, StreamId, Streams, WriteError, WriteId,
};
use crate::transport_params::TransportParameters;
use crate::varint::VarInt;
use cids::{LocalCids, PeerCids};
use sent::{RetxPool, SentFrames};
use spaces::PacketSpace;
use timers::TimerTable;

/// What a connection wants from its owner (see [`Connection::interests`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interests {
    /// Poll [`Connection::poll_transmit`]: something happened since it last found nothing to
    /// send (a datagram, a timer, an application call). Cleared by a `poll_transmit` that
    /// returns `None`.
    pub transmit: bool,
    /// Call [`Connection::handle_timeout`] at this time.
    pub timeout: Option<Instant>,
    /// The connection is closing, draining or drained, or has ended with an error.
    pub closed: bool,
    /// Nothing is left to do: remove the connection.
    pub drained: bool,
}

/// Why a connection could not be created.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ConnectError {
    /// The QUIC version is not one this endpoint speaks.
    #[error("unsupported QUIC version {0:#010x}")]
    UnsupportedVersion(u32),
    /// TLS could not start (bad server name, configuration).
    #[error("TLS setup failed: {0}")]
    Tls(#[from] TlsError),
    /// A connection ID had the wrong length or Initial keys could not be derived.
    #[error("invalid connection ID")]
    InvalidCid,
}

/// What the endpoint learned from a client's first Initial, for [`Connection::server`].
#[derive(Clone, Copy, Debug)]
pub struct Incoming {
    /// Destination Connection ID of the client's Initial (after a Retry: the ID the server chose
    /// in the Retry).
    pub dst_cid: ConnectionId,
    /// Source Connection ID of the client's Initial.
    pub src_cid: ConnectionId,
    /// The QUIC version of the Initial.
    pub version: u32,
    /// After a Retry whose token validated: the DCID of the client's very first Initial (the
    /// original_destination_connection_id) and the SCID of our Retry.
    pub retry: Option<(ConnectionId, ConnectionId)>,
}

/// The connection IDs seen during the handshake, checked against the peer's transport
/// parameters (RFC 9000 §7.3).
#[derive(Clone, Copy, Debug)]
struct HandshakeIds {
    /// The client's first DCID (client: chosen at random; server: from [`Incoming`]).
    original_dcid: ConnectionId,
    /// The peer's SCID from its first Initial.
    peer_initial_scid: Option<ConnectionId>,
    /// The Retry's SCID, when a Retry happened.
    retry_scid: Option<ConnectionId>,
}

/// One QUIC connection, client or server. See the module documentation for the driving loop.
pub struct Connection {
    side: Side,
    version: u32,
    config: TransportConfig,
    tls: TlsSession,
    spaces: [PacketSpace; 3],
    one_rtt: Option<Box<OneRttKeys>>,
    loss: LossDetector<SentFrames>,
    cc: Box<dyn Controller>,
    pacer: Pacer,
    streams: Streams,
    timers: TimerTable,
    close: CloseState,
    cid_gen: Box<dyn CidGenerator>,
    /// Our connection ID of sequence number 0 (the handshake's SCID).
    local_scid: ConnectionId,
    local_cids: LocalCids,
    peer_cids: PeerCids,
    /// The path in use: addresses, validation, amplification budget, PMTU.
    path: path::Path,
    /// A migration in progress and the server's preferred address (see `migration`).
    migration: migration::Migration,
    ids: HandshakeIds,
    /// Client: the token to put in Initial packets (from the token store, then from a Retry).
    token: Vec<u8>,
    /// Client: the last NEW_TOKEN received for future connections.
    new_token: Option<Vec<u8>>,
    /// Client: where received NEW_TOKEN tokens go, and the server name they are for.
    token_store: Option<(Arc<TokenStore>, Box<str>)>,
    /// Server: the NEW_TOKEN token given to the client, until acknowledged, and whether the
    /// frame still has to be (re)sent.
    token_out: Option<Vec<u8>>,
    token_out_pending: bool,
    peer_params: Option<TransportParameters>,
    /// Client: a packet from the server was authenticated (Retry / VN no longer accepted).
    received_valid: bool,
    retry_received: bool,
    handshake_complete: bool,
    handshake_confirmed: bool,
    handshake_done_pending: bool,
    /// Effective idle timeout once parameters are known (ours until then).
    idle_timeout: Option<Duration>,
    key_update_requested: bool,
    /// The next ack-eliciting packet sent restarts the idle timer (RFC 9000 §10.1).
    idle_restart_on_send: bool,
    /// A non-probing 1-RTT packet with a new largest packet number was processed in the
    /// datagram being handled (the condition for following a peer address change).
    migration_candidate: bool,
    events: VecDeque<Event>,
    endpoint_events: VecDeque<EndpointEvent>,
    error: Option<ConnectionError>,
    drained_emitted: bool,
    stats: ConnectionStats,
    retx_pool: RetxPool,
    ack_scratch: AckOutcome<SentFrames>,
    rx_arena: bytes::BytesMut,
    crypto_scratch: Vec<u8>,
    /// What TLS said about the last handshake failure (e.g. which names the peer's
    /// certificate is valid for): added to the local error, never sent to the peer.
    tls_detail: Option<String>,
    peer_ack_delay_exponent: u8,
    peer_max_udp_payload: u64,
    /// ACK_FREQUENCY / IMMEDIATE_ACK state, both directions.
    ack_frequency: ack_frequency::AckFrequencyState,
    app_limited: bool,
    rng: ChaCha8Rng,
    /// qlog event buffer; `None` (the default) records nothing.
    qlog: Option<Box<crate::qlog::Qlog>>,
    /// Versions offered and negotiated (see the `versions` module).
    versions: versions::Versions,
    /// DATAGRAM queues (see the `datagrams` module).
    datagrams: datagrams::Datagrams,
    /// Something happened since `poll_transmit` last found nothing to send (see
    /// [`Connection::interests`]).
    transmit_interest: bool,
    /// 0-RTT keys and state (see the `zero_rtt` module).
    early: zero_rtt::EarlyData,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.side)
            .field("remote", &self.path.remote)
            .field("handshake_complete", &self.handshake_complete)
            .field("handshake_confirmed", &self.handshake_confirmed)
            .field("close", &self.close)
            .finish_non_exhaustive()
    }
}

impl Connection {
    // ---- driving -----------------------------------------------------------------------

    /// The earliest time [`handle_timeout`](Self::handle_timeout) must run; `None` when the
    /// connection is drained.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.close == CloseState::Drained {
            return None;
        }
        self.timers.next()
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.transmit_interest = true;
        if self.close == CloseState::Drained {
            return;
        }
        if self.timers.is_expired(Timer::Close, now) {
            self.set_drained();
            return;
        }
        if self.timers.is_expired(Timer::Handshake, now) && !self.handshake_complete {
            // Silently, as for the idle timeout: a half-open connection costs nothing more.
            if self.close.is_open() {
                self.qlog_closed(now, crate::qlog::CloseTrigger::IdleTimeout);
                self.report_lost(ConnectionError::TimedOut);
                self.streams.cancel_all(CancelReason::IdleTimeout);
            }
            self.set_drained();
            return;
        }
        if self.timers.is_expired(Timer::Idle, now) {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-10.1
            //# If a max_idle_timeout is specified by either endpoint in its
            //# transport parameters (Section 18.2), the connection is silently
            //# closed and its state is discarded when it remains idle for longer
            //# than the minimum of the max_idle_timeout value advertised by both
            //# endpoints.
            if self.close.is_open() {
                self.qlog_closed(now, crate::qlog::CloseTrigger::IdleTimeout);
                self.report_lost(ConnectionError::TimedOut);
                self.streams.cancel_all(CancelReason::IdleTimeout);
            }
            self.set_drained();
            return;
        }
        if self.timers.is_expired(Timer::KeyDiscard, now) {
            self.timers.stop(Timer::KeyDiscard);
            if let Some(k) = self.one_rtt.as_mut() {
                k.discard_previous();
            }
        }
        if self.timers.is_expired(Timer::PathValidation, now) {
            self.on_path_timer(now);
        }
        if self.timers.is_expired(Timer::ZeroRttDiscard, now) {
            self.discard_zero_rtt_keys();
        }
        if self.timers.is_expired(Timer::Pacing, now) {
            self.timers.stop(Timer::Pacing);
        }
        if self.close.is_open() && self.loss.timer().is_some_and(|t| t <= now) {
            self.on_loss_timeout(now);
        }
        self.update_timers(now);
    }

    /// What the connection wants from its owner now (s2n-quic's `ConnectionInterests`): to
    /// be polled for transmission, woken at a time, removed. The owner reads this after every
    /// step that touched the connection instead of guessing from the call it made.
    pub fn interests(&self) -> Interests {
        Interests {
            transmit: self.transmit_interest && self.close != CloseState::Drained,
            timeout: self.poll_timeout(),
            closed: !self.close.is_open() || self.error.is_some(),
            drained: self.close == CloseState::Drained,
        }
    }

    /// The next application event.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        self.streams.poll_event().map(Event::Stream)
    }

    /// The next event for the endpoint's connection-ID router.
    pub fn poll_endpoint_event(&mut self) -> Option<EndpointEvent> {
        self.endpoint_events.pop_front()
    }

    // ---- state -------------------------------------------------------------------------

    /// Client or server.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.path.remote
    }

    /// The QUIC version the connection sends in: the client's first one until negotiation
    /// moves it (Version Negotiation, or a server's compatible negotiation), then the
    /// negotiated one.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Whether the TLS handshake completed.
    pub fn is_handshake_complete(&self) -> bool {
        self.handshake_complete
    }

    /// Whether the handshake is confirmed (RFC 9001 §4.1.2).
    pub fn is_handshake_confirmed(&self) -> bool {
        self.handshake_confirmed
    }

    /// Whether the connection is closing, draining or drained.
    pub fn is_closed(&self) -> bool {
        !self.close.is_open()
    }

    /// Whether the connection is drained: it never sends again and may be dropped.
    pub fn is_drained(&self) -> bool {
        self.close == CloseState::Drained
    }

    /// The close state (explicit, per DESIGN.md): open, closing (with the spaces that still owe
    /// a CONNECTION_CLOSE), draining or drained.
    pub fn close_state(&self) -> &CloseState {
        &self.close
    }

    /// Per packet number space (Initial, Handshake, Data): whether a CONNECTION_CLOSE still
    /// has to be written there. All false once the close was emitted everywhere it is owed.
    pub fn close_pending_spaces(&self) -> [bool; 3] {
        self.close.pending_spaces()
    }

    /// Why the connection ended, once it has.
    pub fn error(&self) -> Option<&ConnectionError> {
        self.error.as_ref()
    }

    /// The negotiated ALPN protocol.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.tls.alpn_protocol()
    }

    /// Whether TLS resumed an earlier session.
    pub fn is_resumed(&self) -> bool {
        self.tls.is_resumed()
    }

    /// The peer's transport parameters, once received and validated.
    pub fn peer_params(&self) -> Option<&TransportParameters> {
        self.peer_params.as_ref()
    }

    /// Which packet number spaces still hold keys (Initial, Handshake, Data).
    pub fn spaces_with_keys(&self) -> [bool; 3] {
        [self.spaces[0].keys.is_some(), self.spaces[1].keys.is_some(), self.one_rtt.is_some()]
    }

    /// The 1-RTT key generation in use (0 before any key update; `None` without 1-RTT keys).
    pub fn key_generation(&self) -> Option<u64> {
        self.one_rtt.as_ref().map(|k| k.generation())
    }

    /// The effective idle timeout: the smaller advertised value, never below 3 PTO.
    pub fn idle_timeout(&self) -> Option<Duration> {
        let pto = self.loss.pto_period(SpaceId::Data);
        self.idle_timeout.map(|t| t.max(pto * 3))
    }

    /// Our connection ID of sequence number 0.
    pub fn local_cid(&self) -> ConnectionId {
        self.local_cids_first()
    }

    /// The connection ID we send to.
    pub fn remote_cid(&self) -> ConnectionId {
        self.peer_cids.current()
    }

    /// The last NEW_TOKEN token the server gave us (client); it is also in the
    /// configuration's [`TokenStore`], for the next connection's Initial.
    pub fn new_token(&self) -> Option<&[u8]> {
        self.new_token.as_deref()
    }

    /// Server: sends `token` to the client in a NEW_TOKEN frame once the handshake is
    /// confirmed (resent until acknowledged). The endpoint mints it
    /// ([`crate::endpoint::Router::new_token`]). Ignored on a client, for an empty token, or
    /// when a token is already queued or was sent.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.3
    //# The server uses the NEW_TOKEN frame (Section 19.7) to provide the
    //# client with an address validation token that can be used to validate
    //# future connections.
    pub fn queue_new_token(&mut self, token: Vec<u8>) {
        if self.side != Side::Server || token.is_empty() || self.stats.new_tokens_sent > 0 {
            return;
        }
        self.token_out = Some(token);
        self.token_out_pending = true;
        self.stats.new_tokens_sent = 1;
        self.transmit_interest = true;
    }

    /// Server: the endpoint validated the client's address with a NEW_TOKEN token before
    /// creating the connection: no anti-amplification limit applies (RFC 9000 §8). Call it
    /// before the first datagram.
    pub fn set_address_validated_by_token(&mut self) {
        if self.side == Side::Server {
            self.path.validated = true;
            self.stats.new_token_used = true;
        }
    }

    /// Whether the peer's address is validated (server: by a token, a Handshake packet or a
    /// path validation; a client always considers the server's validated).
    pub fn is_address_validated(&self) -> bool {
        self.path.validated
    }

    /// Where path MTU discovery of the path stands.
    pub fn mtud_state(&self) -> MtudState {
        self.path.mtud.state()
    }

    /// Where ECN validation of the path stands (RFC 9000 §13.4.2).
    pub fn ecn_state(&self) -> crate::recovery::EcnState {
        self.loss.ecn_state()
    }

    /// Memory held for out-of-order CRYPTO data of all spaces, in bytes (bounded by
    /// 16 KiB of offsets per space before the client's address is validated).
    pub fn crypto_reassembly_footprint(&self) -> usize {
        self.spaces.iter().map(|s| s.crypto_recv.footprint()).sum()
    }

    /// Memory held for received stream data not yet read, all streams together, in bytes
    /// (out-of-order data in blocks: at most about the flow-control windows advertised).
    pub fn stream_reassembly_footprint(&self) -> usize {
        self.streams.recv_footprint()
    }

    /// The path's congestion controller, read-only (its window, state and, for BBR, its
    /// bandwidth estimate and pacing rate).
    pub fn congestion_controller(&self) -> &dyn Controller {
        &*self.cc
    }

    /// Counters and current congestion / RTT state.
    pub fn stats(&self) -> ConnectionStats {
        let mut s = self.stats;
        s.cwnd = self.cc.window();
        s.congestion = self.cc.name();
        s.version = self.version;
        s.zero_rtt_packets = self.early.packets;
        s.bytes_in_flight = self.loss.bytes_in_flight();
        s.smoothed_rtt = self.loss.rtt().smoothed();
        s.min_rtt = self.loss.rtt().min();
        s.pmtu = self.max_datagram_size() as u64;
        s.pmtu_probes_sent = self.path.mtud.probes_sent;
        s.path_validating = self.is_migrating();
        s.pmtu_probes_lost = self.path.mtud.probes_lost;
        s.ack_frequency_sent = self.ack_frequency.frames_sent;
        s.ack_frequency_received = self.ack_frequency.frames_applied;
        s.immediate_acks_sent = self.ack_frequency.immediate_acks_sent;
        s.immediate_acks_received = self.ack_frequency.immediate_acks_received;
        s
    }

    // ---- application commands ----------------------------------------------------------

    /// Opens a stream (see [`Streams::open`]).
    pub fn open(&mut self, dir: Dir) -> Result<StreamId, OpenError> {
        self.transmit_interest = true;
        self.streams.open(dir)
    }

    /// Writes on a stream; one `WriteComplete` event follows per accepted write.
    pub fn write(&mut self, id: StreamId, data: Bytes, fin: bool) -> Result<WriteId, WriteError> {
        self.transmit_interest = true;
        self.streams.write(id, data, fin)
    }

    /// Finishes a stream (FIN without data).
    pub fn finish(&mut self, id: StreamId) -> Result<WriteId, WriteError> {
        self.transmit_interest = true;
        self.streams.finish(id)
    }

    /// Reads in-order data: `(bytes, fin)`.
    pub fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<(usize, bool), ReadError> {
        self.transmit_interest = true;
        self.streams.read(id, buf)
    }

    /// Resets the sending part of a stream.
    pub fn reset(&mut self, id: StreamId, code: u64) -> Result<(), ClosedStream> {
        self.transmit_interest = true;
        self.streams.reset(id, code)
    }

    /// Asks the peer to stop sending on a stream.
    pub fn stop_sending(&mut self, id: StreamId, code: u64) -> Result<(), ClosedStream> {
        self.transmit_interest = true;
        self.streams.stop_sending(id, code)
    }

    /// The stream manager, for calls not mirrored here.
    pub fn streams(&mut self) -> &mut Streams {
        self.transmit_interest = true;
        &mut self.streams
    }

    /// Sends a PING in the application space (or the highest space with keys).
    pub fn ping(&mut self) {
        self.transmit_interest = true;
        let space = self.highest_send_space();
        self.spaces[space.index()].ping_pending = true;
    }

    /// Asks for a key update at the next 1-RTT packet (once RFC 9001 §6.1 permits it).
    pub fn initiate_key_update(&mut self) {
        self.transmit_interest = true;
        self.key_update_requested = true;
    }

    /// Closes the connection with an application error code (CONNECTION_CLOSE 0x1d; in
    /// Initial/Handshake packets a 0x1c APPLICATION_ERROR). The close is written once in every
    /// space that has keys; then the connection is closing. Idempotent.
    pub fn close(&mut self, now: Instant, code: VarInt, reason: &[u8]) {
        self.transmit_interest = true;
        if !self.close.is_open() {
            return;
        }
        let reason = reason[..reason.len().min(close::MAX_REASON_LEN)].to_vec();
        self.error = Some(ConnectionError::LocallyClosed { code: code.into_inner() });
        self.start_closing(now, CloseFrame::Application { code, reason });
    }

    // ---- internals shared by the submodules --------------------------------------------

    fn local_cids_first(&self) -> ConnectionId {
        self.local_scid
    }

    /// The highest space we can send in.
    fn highest_send_space(&self) -> SpaceId {
        if self.one_rtt.is_some() {
            SpaceId::Data
        } else if self.spaces[1].keys.is_some() {
            SpaceId::Handshake
        } else {
            SpaceId::Initial
        }
    }

    /// Closes because of a protocol error in the peer's input (CONNECTION_CLOSE 0x1c).
    fn close_with_error(&mut self, now: Instant, err: Error) {
        if !self.close.is_open() {
            return;
        }
        tracing::debug!(side = ?self.side, %err, "closing on protocol error");
        let mut reason = ConnectionError::from_local(&err);
        if let (ConnectionError::TransportError { reason: r, .. }, Some(d)) =
            (&mut reason, self.tls_detail.take())
        {
            *r = format!("{r}: {d}");
        }
        self.report_lost(reason);
        self.start_closing(
            now,
            CloseFrame::Transport {
                code: err.code,
                frame_type: err.frame_type,
                reason: err.reason.as_bytes().to_vec(),
            },
        );
    }

    /// Enters the closing state: the close is owed in every space with send keys.
    fn start_closing(&mut self, now: Instant, frame: CloseFrame) {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.3
        //# When sending a CONNECTION_CLOSE frame, the goal is to ensure that
        //# the peer will process the frame.  Generally, this means sending the frame in a
        //# packet with the highest level of packet protection to avoid the
        //# packet being discarded.
        //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.3
        //# Under these circumstances, a
        //# server SHOULD send a CONNECTION_CLOSE frame in both Handshake and
        //# Initial packets to ensure that at least one of them is processable by
        //# the client.
        let spaces = self.spaces_with_keys();
        //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2
        //# The closing and draining connection states exist to ensure that
        //# connections close cleanly and that delayed or reordered packets are
        //# properly discarded.  These states SHOULD persist for at least three
        //# times the current PTO interval as defined in [QUIC-RECOVERY].
        let deadline = now + self.loss.pto_period(SpaceId::Data) * 3;
        self.qlog_local_close(now, &frame);
        self.close = CloseState::closing(frame, spaces, deadline);
        self.streams.cancel_all(CancelReason::ConnectionClosed);
        self.timers.clear();
        self.timers.set(Timer::Close, deadline);
    }

    /// Enters the draining state (peer closed, or stateless reset).
    fn start_draining(&mut self, now: Instant) {
        //= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.2
        //# While otherwise identical to the closing state, an endpoint in the
        //# draining state MUST NOT send any packets.
        let deadline = now + self.loss.pto_period(SpaceId::Data) * 3;
        self.close = CloseState::Draining { deadline };
        self.streams.cancel_all(CancelReason::ConnectionClosed);
        self.timers.clear();
        self.timers.set(Timer::Close, deadline);
    }

    fn set_drained(&mut self) {
        self.close = CloseState::Drained;
        self.timers.clear();
        self.streams.cancel_all(CancelReason::ConnectionClosed);
        if !self.drained_emitted {
            self.drained_emitted = true;
            self.events.push_back(Event::Drained);
            self.endpoint_events.push_back(EndpointEvent::Drained);
        }
    }

    /// Reports the end of the connection to the application (once).
    fn report_lost(&mut self, reason: ConnectionError) {
        if self.error.is_some() {
            return;
        }
        self.error = Some(reason.clone());
        if self.handshake_complete {
            self.events.push_back(Event::ConnectionLost { reason });
        } else {
            self.events.push_back(Event::HandshakeFailed { reason });
        }
    }

    /// The idle period: the effective timeout, at least 3 PTO.
    fn idle_period(&self) -> Option<Duration> {
        self.idle_timeout()
    }

    /// Re-arms the timers mirrored from other components.
    fn update_timers(&mut self, _now: Instant) {
        match self.close {
            CloseState::Open => {}
            _ => return,
        }
        self.timers.set_opt(Timer::LossDetection, self.loss.timer());
        let ack =
            self.spaces.iter().filter(|s| !s.discarded).filter_map(|s| s.acks.ack_deadline()).min();
        // A server out of amplification budget cannot send the ACK: a deadline left in the
        // past would wake it again and again at the same instant. The next datagram from the
        // client brings credit (and transmit interest).
        let ack = ack.filter(|_| self.can_send_within_budget());
        self.timers.set_opt(Timer::AckDelay, ack);
    }

    /// Restarts the idle timer.
    fn reset_idle_timer(&mut self, now: Instant) {
        match self.idle_period() {
            Some(p) => self.timers.set(Timer::Idle, now + p),
            None => self.timers.stop(Timer::Idle),
        }
    }
}
