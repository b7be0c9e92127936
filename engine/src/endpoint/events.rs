//! What the router returns: the per-datagram [`DatagramEvent`] and the types it carries.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use peregrine_datapath::{Ecn, TxMeta};

use super::table::TableError;
use super::token::TokenError;
use crate::cid::{ConnectionId, ResetToken};
use crate::packet::LongType;

/// An opaque reference to a connection the caller owns. Handles are never reused by a router,
/// so a stale handle cannot reach a newer connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub usize);

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseDatagram {
    /// Where to send it (the sender of the datagram answered).
    pub destination: SocketAddr,
    /// Source address: the local address the answered datagram was sent to, when known.
    pub src_ip: Option<IpAddr>,
    /// ECN codepoint (stateless responses are Not-ECT).
    pub ecn: Ecn,
    /// The datagram.
    pub contents: Vec<u8>,
}

impl ResponseDatagram {
    pub(super) fn new(destination: SocketAddr, src_ip: Option<IpAddr>, contents: Vec<u8>) -> Self {
        Self { destination, src_ip, ecn: Ecn::NotEct, contents }
    }

    /// The datapath metadata for this datagram.
    pub fn meta(&self) -> TxMeta {
        TxMeta { dst: self.destination, src_ip: self.src_ip, ecn: self.ecn, segment_size: None }
    }
}

/// What a stateless response is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseKind {
    /// Version Negotiation listing the configured versions.
    VersionNegotiation,
    /// Retry with a fresh address validation token.
    Retry,
    /// Stateless Reset for an unknown connection ID of ours.
    StatelessReset,
    /// Initial with CONNECTION_CLOSE(CONNECTION_REFUSED): too many connections.
    Refused,
    /// Initial with CONNECTION_CLOSE(INVALID_TOKEN): a Retry token that did not validate.
    InvalidToken,
}

/// A stateless response and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// What the datagram is.
    pub kind: ResponseKind,
    /// The datagram.
    pub transmit: ResponseDatagram,
}

/// How a new client proved its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressValidation {
    /// Not validated: the anti-amplification limit applies until the handshake validates it.
    None,
    /// A Retry token: validated. The connection sends `retry_source_connection_id`.
    Retry {
        /// The Source Connection ID of the Retry (this Initial's Destination Connection ID).
        retry_src_cid: ConnectionId,
    },
    /// A NEW_TOKEN token from an earlier connection: validated.
    NewToken,
}

/// A client's first Initial for which the caller should create a server connection, then call
/// [`super::Router::accept`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingClient {
    /// When the datagram was received.
    pub received: Instant,
    /// The client's address.
    pub remote: SocketAddr,
    /// The local address the datagram was sent to, when known.
    pub local_ip: Option<IpAddr>,
    /// ECN codepoint of the datagram.
    pub ecn: Ecn,
    /// The QUIC version the client chose.
    pub version: u32,
    /// Destination Connection ID of this Initial: the Initial keys derive from it.
    pub dst_cid: ConnectionId,
    /// The client's Source Connection ID: the Destination Connection ID of every packet sent
    /// to it.
    pub src_cid: ConnectionId,
    /// Destination Connection ID of the client's very first Initial (before any Retry): the
    /// `original_destination_connection_id` transport parameter.
    pub orig_dst_cid: ConnectionId,
    /// How the address was validated.
    pub validation: AddressValidation,
    /// A token that was present but unusable and ignored (for logs and metrics).
    pub ignored_token: Option<TokenError>,
}

impl IncomingClient {
    /// True when a token validated the client's address.
    pub fn address_validated(&self) -> bool {
        self.validation != AddressValidation::None
    }
}

/// Why a datagram was dropped without a response. None of these is an error: RFC 9000 has
/// every one of them dropped silently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a parseable QUIC packet (or a stateless response could not be built for it).
    Malformed,
    /// An unsupported version at a client-only router.
    UnsupportedVersion,
    /// An unsupported version in a datagram under 1200 octets (RFC 9000 §5.2.2).
    UnsupportedVersionTooSmall,
    /// A Version Negotiation packet for no known connection.
    UnknownVersionNegotiation,
    /// A client Initial in a datagram under 1200 octets (RFC 9000 §14.1).
    InitialTooSmall,
    /// A client's first Initial with a Destination Connection ID under 8 octets.
    InitialDcidTooShort,
    /// A new client's Initial at a router without a server configuration.
    NotServer,
    /// A long-header packet other than Initial for no known connection (0-RTT before its
    /// Initial, Handshake, Retry).
    UnknownLongHeader(LongType),
    /// A short-header packet whose connection ID is not one this worker could have issued.
    UnknownConnectionId,
    /// A short-header packet for an unknown ID of ours, too small to answer with a smaller
    /// stateless reset.
    ResetTriggerTooSmall,
    /// A short-header packet for an unknown ID of ours, over the stateless reset rate limit.
    ResetRateLimited,
    /// A new client's Initial without a valid token while this router holds its most
    /// half-open connections ([`super::AcceptConfig::with_max_handshakes`]) and may not
    /// answer with a Retry.
    TooManyHandshakes,
    /// A Version Negotiation, Retry or refusal was due, over the response rate limit
    /// ([`super::RouterConfig::with_response_rate`]).
    ResponseRateLimited,
}

/// What to do with a received datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatagramEvent {
    /// It belongs to this connection: hand the datagram to it.
    Known(ConnectionHandle),
    /// A new client: create a server connection, then [`super::Router::accept`] it (or
    /// [`super::Router::refuse`] it).
    NewConnection(IncomingClient),
    /// Its Destination Connection ID belongs to the worker with this index (another worker of
    /// this host, below [`super::RouterConfig::workers`]): forward the datagram there.
    Forward(u8),
    /// It is a stateless reset from the peer of this connection: the connection enters the
    /// draining period and sends nothing more (RFC 9000 §10.3.1).
    StatelessReset(ConnectionHandle),
    /// Send this stateless response; no connection is involved.
    Response(Response),
    /// Drop it.
    Drop(DropReason),
}

/// A server connection registered by [`super::Router::accept`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The connection's handle.
    pub handle: ConnectionHandle,
    /// Its first local connection ID: the Source Connection ID of its long headers.
    pub local_cid: ConnectionId,
    /// The stateless reset token of `local_cid` (the `stateless_reset_token` parameter).
    pub reset_token: ResetToken,
}

/// A client connection registered by [`super::Router::connect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect {
    /// The connection's handle.
    pub handle: ConnectionHandle,
    /// Its first local connection ID: the Source Connection ID of its long headers.
    pub local_cid: ConnectionId,
    /// The unpredictable Destination Connection ID of its first Initial.
    pub initial_dcid: ConnectionId,
}

/// Why [`super::Router::accept`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    /// The router has no server configuration.
    #[error("router does not accept connections")]
    NotServer,
    /// The connection limit is reached.
    #[error("too many connections")]
    TooManyConnections,
    /// A connection was already accepted for this Initial (same DCID and address).
    #[error("connection already accepted")]
    AlreadyAccepted,
    /// The routing table refused an entry.
    #[error(transparent)]
    Table(#[from] TableError),
}
