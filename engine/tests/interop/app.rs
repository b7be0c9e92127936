//! What a test's application logic needs from a peer, whatever its implementation: stream
//! operations, close, key update, and how its connection ended.

use std::time::Instant;

use crate::driver::SansIo;

/// How a connection ended, as one peer reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The other side closed with an application error (CONNECTION_CLOSE 0x1d).
    PeerApplication {
        /// Application error code.
        code: u64,
        /// Reason phrase.
        reason: Vec<u8>,
    },
    /// The other side closed with a transport error (CONNECTION_CLOSE 0x1c).
    PeerTransport {
        /// Transport error code (0x100 + alert for TLS alerts).
        code: u64,
        /// Reason phrase.
        reason: Vec<u8>,
    },
    /// This side closed because of a transport error it detected.
    LocalTransport {
        /// Transport error code it sent.
        code: u64,
    },
    /// The idle timeout expired.
    TimedOut,
    /// The server offered no version we speak (Version Negotiation).
    VersionMismatch,
    /// A stateless reset arrived.
    Reset,
    /// This side's application closed it.
    LocallyClosed,
    /// Anything else (stateless reset, version mismatch, ...), described.
    Other(String),
}

/// Why a stream operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// The other side reset the stream (RESET_STREAM) with this code.
    Reset(u64),
    /// The other side asked us to stop sending (STOP_SENDING) with this code.
    Stopped(u64),
    /// Anything else, described.
    Other(String),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Reset(c) => write!(f, "reset by peer with code {c}"),
            StreamError::Stopped(c) => write!(f, "stopped by peer with code {c}"),
            StreamError::Other(s) => f.write_str(s),
        }
    }
}

/// A peer as the application logic of a test sees it. Stream IDs are raw QUIC stream IDs.
pub trait Peer: SansIo {
    /// Which implementation this is (for messages).
    fn name(&self) -> &'static str;

    /// The handshake completed (and the connection has not ended since).
    fn is_connected(&self) -> bool;

    /// How the connection ended, once it has.
    fn ended(&self) -> Option<Ended>;

    /// The negotiated ALPN protocol.
    fn alpn(&self) -> Option<Vec<u8>>;

    /// Opens a bidirectional stream, `None` when the peer's limit forbids it now.
    fn open_bi(&mut self) -> Option<u64>;

    /// Takes the next bidirectional stream the other side opened.
    fn accept_bi(&mut self) -> Option<u64>;

    /// Opens a unidirectional stream, `None` when the peer's limit forbids it now.
    fn open_uni(&mut self) -> Option<u64>;

    /// Takes the next unidirectional stream the other side opened.
    fn accept_uni(&mut self) -> Option<u64>;

    /// Whether TLS resumed an earlier session, when the implementation tells.
    fn is_resumed(&self) -> Option<bool> {
        None
    }

    /// Whether the server accepted 0-RTT, when the implementation tells (`None` also when no
    /// 0-RTT was attempted).
    fn early_data_accepted(&self) -> Option<bool> {
        None
    }

    /// Whether what the application wrote in 0-RTT is sent again by the stack itself when the
    /// server rejects 0-RTT (Peregrine), rather than dropped for the application to write again
    /// (quinn-proto: its streams start over).
    fn resends_rejected_0rtt(&self) -> bool {
        true
    }

    /// Queues `data` on stream `id`, returning how much was accepted (flow control).
    fn write(&mut self, id: u64, data: &[u8]) -> Result<usize, StreamError>;

    /// Ends the send side of stream `id` (FIN).
    fn finish(&mut self, id: u64) -> Result<(), StreamError>;

    /// Appends what stream `id` has ready, in order, to `out`; true once the FIN was read.
    fn read(&mut self, id: u64, out: &mut Vec<u8>) -> Result<bool, StreamError>;

    /// Abandons the send side of stream `id` with `code` (RESET_STREAM).
    fn reset(&mut self, id: u64, code: u64) -> Result<(), StreamError>;

    /// Asks the other side to stop sending on stream `id` with `code` (STOP_SENDING).
    fn stop_sending(&mut self, id: u64, code: u64) -> Result<(), StreamError>;

    /// Closes the connection with an application error.
    fn close(&mut self, now: Instant, code: u64, reason: &[u8]);

    /// Starts a key update now; false when the implementation refused (e.g. one in progress).
    fn force_key_update(&mut self) -> bool;

    /// One line of the implementation's own counters (for test output).
    fn summary(&self) -> String;

    /// quinn-proto only: the frames it received from the other side, counted by type (an
    /// independent view of what the other implementation sent).
    fn quinn_frames_rx(&self) -> Option<quinn_proto::FrameStats> {
        None
    }
}
