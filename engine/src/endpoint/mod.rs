//! The sans-IO endpoint: one worker's [`Endpoint`], which owns its connections, and the
//! packet [`Router`] inside it (RFC 9000 §5.2, §6, §8.1, §10.3, §17.2.5): which connection a
//! datagram belongs to, and the stateless answers sent without one.
//!
//! [`Endpoint`] (`owner`) holds the router, the connections by [`ConnectionHandle`] (their
//! one identity), their timers and the send scheduler; it creates server connections for new
//! clients and client connections on request, and keeps the router's tables current from
//! each connection's endpoint events. The worker (`crate::worker`) drives it with datagrams,
//! the clock and the application's calls; tests drive it on virtual time.
//!
//! The [`Router`] owns no connection: it maps connection IDs to opaque
//! [`ConnectionHandle`]s and returns a [`DatagramEvent`] per datagram, in the manner of
//! quinn-proto's `Endpoint::handle`. Its owner keeps the table current with
//! [`Router::accept`], [`Router::connect`], [`Router::new_cid`], [`Router::retire_cid`],
//! [`Router::handshake_done`] and [`Router::remove_connection`].
//!
//! - [`cid`]: the QUIC-LB connection ID format carrying the server ID and the worker index.
//! - [`reset`]: stateless reset tokens from a static key, reset datagrams, detection, rate limit.
//! - [`token`]: Retry and NEW_TOKEN address validation tokens (AES-256-GCM, shareable key).
//! - [`fuzz`]: the router's fuzz entry point.
//! - `owner`: the [`Endpoint`]; `issuer`: the connection ID issuer each connection gets;
//!   `timers`: the endpoint's timer heap.
//! - `server`: new clients' Initials (tokens, limits, Retry); `table`: the routing table;
//!   `response`: Version Negotiation, Retry and Initial CONNECTION_CLOSE packets built
//!   without a connection.
//!
//! Lookup order for a datagram (its first packet decides): unsupported version → Version
//! Negotiation (servers, datagrams of 1200 octets or more); Version Negotiation → the client
//! connection with that DCID; a locally issued DCID → its connection; an Initial or 0-RTT
//! packet whose client-chosen DCID and address match an accepted connection → that
//! connection; a peer's stateless reset token for that address → [`DatagramEvent::StatelessReset`];
//! a DCID of another worker → [`DatagramEvent::Forward`]; a client's first Initial → address
//! validation, limits and Retry policy, then [`DatagramEvent::NewConnection`]; an unknown
//! short-header packet for one of our IDs → a stateless reset; anything else is dropped.
//!
//! Stateless responses are small and rare, so they are returned as owned `Vec<u8>`s rather than
//! written into datapath buffers.

pub mod cid;
mod config;
mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod issuer;
mod owner;
pub mod reset;
mod response;
mod server;
mod table;
mod timers;
pub mod token;

#[cfg(test)]
mod tests;

pub use cid::{CidFormat, CidFormatError};
pub use config::{
    AcceptConfig, RetryPolicy, RouterConfig, RouterConfigError, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HANDSHAKES,
};
pub use events::{
    AcceptError, Accepted, AddressValidation, Connect, ConnectionHandle, DatagramEvent, DropReason,
    IncomingClient, Response, ResponseDatagram, ResponseKind,
};
pub use owner::{Endpoint, EndpointCounters, EndpointParams, Entry, Handled, Removed, StartError};
pub use reset::{RateLimiter, ResetKey};
pub use response::ResponseError;
pub use table::TableError;
pub use token::{TokenCounters, TokenError, TokenKey, TokenLifetimes, TokenValidation, WallClock};

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use peregrine_datapath::Ecn;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::cid::{ConnectionId, ResetToken};
use crate::packet::{InvariantHeader, LongType, PartialDecode};
use table::Table;

/// Length of the Destination Connection ID a client chooses for its first Initial.
pub const CLIENT_INITIAL_DCID_LEN: usize = 16;
/// Shortest Destination Connection ID accepted in a client's first Initial (RFC 9000 §7.2).
pub const MIN_INITIAL_DCID_LEN: usize = 8;
/// Attempts at drawing a connection ID not already in the table before giving up.
const CID_ATTEMPTS: usize = 16;

/// One worker's packet router. See the module documentation.
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    table: Table,
    clock: WallClock,
    rng: ChaCha20Rng,
    reset_limiter: RateLimiter,
    /// Version Negotiation, Retry and refusals.
    response_limiter: RateLimiter,
    next_handle: usize,
    tokens: TokenCounters,
}

impl Router {
    /// A router for `config`. `now` and `unix_secs` are the caller's two clocks read together:
    /// token issue times and expiry are computed as `unix_secs + (later_now - now)`.
    pub fn new(config: RouterConfig, now: Instant, unix_secs: u64) -> Self {
        let rng = ChaCha20Rng::from_seed(config.rng_seed);
        let reset_limiter = RateLimiter::new(config.reset_burst, config.reset_per_second);
        let response_limiter = RateLimiter::new(config.response_burst, config.responses_per_second);
        Self {
            config,
            table: Table::default(),
            clock: WallClock::new(now, unix_secs),
            rng,
            reset_limiter,
            response_limiter,
            next_handle: 0,
            tokens: TokenCounters::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Classifies one received datagram: see [`DatagramEvent`]. `remote` sent it to
    /// `local_ip` (when the datapath knows it) with ECN codepoint `ecn`.
    pub fn handle(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Ecn,
        datagram: &[u8],
    ) -> DatagramEvent {
        let cid_len = self.config.cid_format.len();
        let inv = match InvariantHeader::parse(datagram, cid_len) {
            Ok(inv) => inv,
            Err(_) => return self.unassociated(remote, datagram, DropReason::Malformed),
        };
        if let InvariantHeader::Long { version, dst_cid, .. } = inv {
            if version == 0 {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-6.1
                //# An endpoint MUST NOT send a Version Negotiation packet
                //# in response to receiving a Version Negotiation packet.
                return match self.table.get_cid(dst_cid) {
                    Some(h) => DatagramEvent::Known(h),
                    None => DatagramEvent::Drop(DropReason::UnknownVersionNegotiation),
                };
            }
            if !self.config.versions.contains(&version) {
                return self.version_negotiation(now, remote, local_ip, &inv, datagram.len());
            }
        }
        let grease = self.config.grease_quic_bit;
        let Ok((packet, _)) = PartialDecode::new(datagram, cid_len, grease) else {
            return self.unassociated(remote, datagram, DropReason::Malformed);
        };
        let dcid = *packet.dst_cid();
        //= https://www.rfc-editor.org/rfc/rfc9000#section-5.2
        //# If
        //# the packet has a non-zero-length Destination Connection ID
        //# corresponding to an existing connection, QUIC processes that packet
        //# accordingly.
        if let Some(h) = self.table.get_cid(&dcid) {
            return DatagramEvent::Known(h);
        }
        let ty = packet.long_type();
        if matches!(ty, Some(LongType::Initial | LongType::ZeroRtt)) {
            if let Some(h) = self.table.get_initial(&dcid, remote) {
                return DatagramEvent::Known(h);
            }
        }
        if let Some(h) = self.table.match_reset(remote, datagram) {
            return DatagramEvent::StatelessReset(h);
        }
        // A client-chosen DCID may decode to any index: forward only to workers that exist (the
        // owner sees the same decode, so all of that client's packets meet there). Where the
        // queue follows the 4-tuple, a new client's packets all meet on the queue they arrive
        // on instead, and stay there (`with_local_initials`).
        let local_new =
            self.config.local_initials && matches!(ty, Some(LongType::Initial | LongType::ZeroRtt));
        match self.config.cid_format.decode_worker(&dcid) {
            Some(w)
                if w != self.config.worker
                    && usize::from(w) < self.config.workers
                    && !local_new =>
            {
                return DatagramEvent::Forward(w)
            }
            _ => {}
        }
        match ty {
            None => self.stateless_reset(now, remote, local_ip, &dcid, datagram.len()),
            Some(LongType::Initial) => {
                self.new_initial(now, remote, local_ip, ecn, &packet, datagram)
            }
            //= https://www.rfc-editor.org/rfc/rfc9000#section-5.2.2
            //# Clients are not able to send Handshake packets prior to
            //# receiving a server response, so servers SHOULD ignore any such
            //# packets.
            //= https://www.rfc-editor.org/rfc/rfc9000#section-5.2.2
            //# Servers MUST drop incoming packets under all other circumstances.
            Some(t) => DatagramEvent::Drop(DropReason::UnknownLongHeader(t)),
        }
    }

    /// A datagram no connection claims: a stateless reset for one of ours, or a drop.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.1
    //# However, the comparison MUST be performed
    //# when the first packet in an incoming datagram either cannot be
    //# associated with a connection or cannot be decrypted.
    fn unassociated(
        &self,
        remote: SocketAddr,
        datagram: &[u8],
        reason: DropReason,
    ) -> DatagramEvent {
        match self.table.match_reset(remote, datagram) {
            Some(h) => DatagramEvent::StatelessReset(h),
            None => DatagramEvent::Drop(reason),
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3
    //# An
    //# endpoint MAY send a Stateless Reset in response to receiving a packet
    //# that it cannot associate with an active connection.
    fn stateless_reset(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        dcid: &ConnectionId,
        trigger_len: usize,
    ) -> DatagramEvent {
        // Only for IDs this server and worker could have issued: a misrouted packet for another
        // server sharing the reset key must not reset that server's connection (§21.11).
        if self.config.cid_format.decode_worker(dcid) != Some(self.config.worker) {
            return DatagramEvent::Drop(DropReason::UnknownConnectionId);
        }
        if trigger_len <= reset::MIN_STATELESS_RESET_LEN {
            return DatagramEvent::Drop(DropReason::ResetTriggerTooSmall);
        }
        if !self.reset_limiter.try_acquire(now) {
            return DatagramEvent::Drop(DropReason::ResetRateLimited);
        }
        let token = self.config.reset_key.token(dcid);
        match reset::stateless_reset(&token, trigger_len, &mut self.rng) {
            Some(bytes) => respond(ResponseKind::StatelessReset, remote, local_ip, bytes),
            None => DatagramEvent::Drop(DropReason::ResetTriggerTooSmall),
        }
    }

    /// Registers a new client connection: its first local connection ID (its Source
    /// Connection ID) and the random Destination Connection ID of its first Initial.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-7.2
    //# When an Initial packet is sent by a client that has not previously
    //# received an Initial or Retry packet from the server, the client
    //# populates the Destination Connection ID field with an unpredictable
    //# value.
    pub fn connect(&mut self) -> Result<Connect, TableError> {
        let local_cid = self.fresh_cid(None)?;
        let mut dcid = [0u8; CLIENT_INITIAL_DCID_LEN];
        self.rng.fill_bytes(&mut dcid);
        let initial_dcid = ConnectionId::new(&dcid).unwrap_or(ConnectionId::EMPTY);
        let handle = self.alloc_handle();
        self.table.insert_connection(handle, true);
        self.table.insert_cid(handle, local_cid)?;
        Ok(Connect { handle, local_cid, initial_dcid })
    }

    /// Issues another connection ID for `handle` (for a NEW_CONNECTION_ID frame), with its
    /// stateless reset token.
    pub fn new_cid(
        &mut self,
        handle: ConnectionHandle,
    ) -> Result<(ConnectionId, ResetToken), TableError> {
        if !self.table.contains(handle) {
            return Err(TableError::UnknownConnection);
        }
        let cid = self.fresh_cid(None)?;
        self.table.insert_cid(handle, cid)?;
        Ok((cid, self.config.reset_key.token(&cid)))
    }

    /// Routes `cid` (issued by other means) to `handle`.
    pub fn insert_cid(
        &mut self,
        handle: ConnectionHandle,
        cid: ConnectionId,
    ) -> Result<(), TableError> {
        self.table.insert_cid(handle, cid)
    }

    /// Stops routing `cid` (the peer retired it); false when it did not route to `handle`.
    pub fn retire_cid(&mut self, handle: ConnectionHandle, cid: &ConnectionId) -> bool {
        self.table.retire_cid(handle, cid)
    }

    /// The handshake of `handle` is confirmed: it no longer counts toward
    /// [`RetryPolicy::AboveHandshakes`], and the client's original DCID stops routing (no more
    /// Initial or 0-RTT packets). Idempotent.
    pub fn handshake_done(&mut self, handle: ConnectionHandle) {
        self.table.handshake_done(handle);
        self.table.remove_initial(handle);
    }

    /// Remembers a stateless reset token the peer of `handle` issued for a connection ID in
    /// use on the path to `remote`. Register only tokens of IDs in use: RFC 9000 §10.3.1 forbids
    /// checking those of unused or retired IDs.
    pub fn add_peer_reset_token(
        &mut self,
        handle: ConnectionHandle,
        remote: SocketAddr,
        token: ResetToken,
    ) -> Result<(), TableError> {
        self.table.add_peer_reset(handle, remote, token)
    }

    /// Forgets a peer reset token of `handle` (its connection ID was retired).
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.1
    //# An endpoint MUST NOT check for any stateless reset tokens associated
    //# with connection IDs it has not used or for connection IDs that have
    //# been retired.
    pub fn remove_peer_reset_token(&mut self, handle: ConnectionHandle, token: &ResetToken) {
        self.table.remove_peer_reset(handle, token);
    }

    /// The connection whose peer sent `datagram` as a stateless reset from `remote`, for a
    /// connection that could not decrypt a datagram routed to it.
    pub fn match_stateless_reset(
        &self,
        remote: SocketAddr,
        datagram: &[u8],
    ) -> Option<ConnectionHandle> {
        self.table.match_reset(remote, datagram)
    }

    /// Removes `handle` and every route to it. Idempotent: false when it was already gone.
    pub fn remove_connection(&mut self, handle: ConnectionHandle) -> bool {
        self.table.remove(handle)
    }

    /// The stateless reset token of a local connection ID (for the `stateless_reset_token`
    /// transport parameter and NEW_CONNECTION_ID frames).
    pub fn reset_token(&self, cid: &ConnectionId) -> ResetToken {
        self.config.reset_key.token(cid)
    }

    /// A token for a NEW_TOKEN frame to the client at `ip`, sealed with the server's token key
    /// (so every worker, and every server sharing the key, validates it); `None` unless this
    /// router is a server.
    pub fn new_token(&mut self, now: Instant, ip: IpAddr) -> Option<Vec<u8>> {
        let server = self.config.server.as_ref()?;
        Some(server.token_key.seal_new_token(&mut self.rng, ip, self.clock.unix_secs(now)))
    }

    /// What became of new clients' tokens, and the Retries sent.
    pub fn token_counters(&self) -> TokenCounters {
        self.tokens
    }

    /// Local connection IDs routing to `handle`.
    pub fn local_cids(&self, handle: ConnectionHandle) -> &[ConnectionId] {
        self.table.cids_of(handle)
    }

    /// Registered connections.
    pub fn connection_count(&self) -> usize {
        self.table.connections()
    }

    /// Connections whose handshake is not yet done.
    pub fn handshake_count(&self) -> usize {
        self.table.handshakes()
    }

    /// Local connection IDs routed.
    pub fn cid_count(&self) -> usize {
        self.table.cids()
    }

    /// Client-chosen (DCID, address) pairs routed.
    pub fn initial_cid_count(&self) -> usize {
        self.table.initial_cids()
    }

    /// Peer stateless reset tokens remembered.
    pub fn peer_reset_token_count(&self) -> usize {
        self.table.peer_reset_tokens()
    }

    fn alloc_handle(&mut self) -> ConnectionHandle {
        let h = ConnectionHandle(self.next_handle);
        self.next_handle += 1;
        h
    }

    /// A connection ID of our format not in the table and not equal to `avoid`.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.2
    //# This method for
    //# choosing the stateless reset token means that the combination of
    //# connection ID and static key MUST NOT be used for another connection.
    fn fresh_cid(&mut self, avoid: Option<&ConnectionId>) -> Result<ConnectionId, TableError> {
        for _ in 0..CID_ATTEMPTS {
            let cid = self.config.cid_format.generate(self.config.worker, &mut self.rng);
            if !self.table.contains_cid(&cid) && avoid != Some(&cid) {
                return Ok(cid);
            }
        }
        Err(TableError::CidInUse)
    }
}

fn respond(
    kind: ResponseKind,
    remote: SocketAddr,
    local_ip: Option<IpAddr>,
    bytes: Vec<u8>,
) -> DatagramEvent {
    DatagramEvent::Response(Response {
        kind,
        transmit: ResponseDatagram::new(remote, local_ip, bytes),
    })
}
