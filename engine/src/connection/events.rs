//! What a connection reports: application events, endpoint events and the typed close reasons.

use crate::cid::{ConnectionId, ResetToken};
use crate::error::{Error, TransportErrorCode};
use crate::streams::StreamEvent;

/// Something the application should learn about, from [`super::Connection::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed: the peer is authenticated, streams may be used.
    Connected,
    /// The handshake is confirmed (RFC 9001 §4.1.2): Handshake keys are gone.
    HandshakeConfirmed,
    /// The connection failed before the handshake completed.
    HandshakeFailed {
        /// Why.
        reason: ConnectionError,
    },
    /// The connection ended after the handshake completed (by either side, a timeout or a
    /// stateless reset).
    ConnectionLost {
        /// Why.
        reason: ConnectionError,
    },
    /// A stream event (see [`StreamEvent`]).
    Stream(StreamEvent),
    /// A DATAGRAM frame (RFC 9221) arrived while the receive queue was empty: read the queue
    /// with [`super::Connection::recv_datagram`] until it is empty to be told again.
    DatagramReceived,
    /// The connection finished closing or draining: it will never send again and can be
    /// dropped. Emitted exactly once.
    Drained,
}

/// Something the endpoint (the CID router) must learn about, from
/// [`super::Connection::poll_endpoint_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointEvent {
    /// Route packets for this new local connection ID here; it resets with `reset_token`.
    NewLocalCid {
        /// Sequence number.
        seq: u64,
        /// The ID.
        cid: ConnectionId,
        /// Its stateless reset token.
        reset_token: ResetToken,
    },
    /// The peer retired this local connection ID: stop routing it.
    RetiredLocalCid {
        /// Sequence number.
        seq: u64,
        /// The ID.
        cid: ConnectionId,
    },
    /// The connection is drained: forget all its IDs.
    Drained,
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The server does not speak our version (Version Negotiation without a common version).
    #[error("no common QUIC version (server offers {offered:x?})")]
    VersionMismatch {
        /// The versions the server listed (at most 16 kept).
        offered: Vec<u32>,
    },
    /// We detected a protocol error in the peer's input and closed with this transport error.
    #[error("transport error {code}: {reason}")]
    TransportError {
        /// The code we sent.
        code: TransportErrorCode,
        /// The frame type that triggered it, if any.
        frame_type: Option<u64>,
        /// Why.
        reason: String,
    },
    /// The peer closed with a transport error (CONNECTION_CLOSE 0x1c).
    #[error("peer closed with transport error {code}: {reason}")]
    PeerTransportClose {
        /// The peer's code.
        code: TransportErrorCode,
        /// The frame type the peer reported.
        frame_type: u64,
        /// The peer's reason phrase (lossily decoded).
        reason: String,
    },
    /// The peer's application closed (CONNECTION_CLOSE 0x1d).
    #[error("peer application closed with code {code}: {reason}")]
    ApplicationClosed {
        /// The application's code.
        code: u64,
        /// The reason phrase (lossily decoded).
        reason: String,
    },
    /// We closed the connection ([`super::Connection::close`]).
    #[error("closed locally with code {code}")]
    LocallyClosed {
        /// The application code we sent.
        code: u64,
    },
    /// The peer sent a stateless reset.
    #[error("stateless reset received")]
    Reset,
    /// The idle timeout expired.
    #[error("idle timeout")]
    TimedOut,
}

impl ConnectionError {
    /// The transport error we sent for a protocol error.
    pub(crate) fn from_local(err: &Error) -> Self {
        ConnectionError::TransportError {
            code: err.code,
            frame_type: err.frame_type,
            reason: err.reason.to_owned(),
        }
    }

    /// The wire error code involved, when there is one.
    pub fn code(&self) -> Option<u64> {
        match self {
            ConnectionError::TransportError { code, .. }
            | ConnectionError::PeerTransportClose { code, .. } => Some(code.0),
            ConnectionError::ApplicationClosed { code, .. }
            | ConnectionError::LocallyClosed { code } => Some(*code),
            _ => None,
        }
    }
}
