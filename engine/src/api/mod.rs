//! The application API: [`Endpoint`], [`Connection`], [`SendStream`] and [`RecvStream`]
//! handles, async (runtime-agnostic `std::task::Waker` futures) and blocking.
//!
//! Handles are `Send + Sync` and never touch connection state: they post commands to the
//! owner worker's lock-free inbox and wake it; results come back through small per-connection
//! and per-stream waking cells (`crate::handoff`). Blocking calls run the same futures on a tiny
//! parking executor ([`block_on`]) with a timeout. This is the layer for applications that
//! keep their own threads; applications that run on the workers themselves use
//! [`crate::app`] (handlers), configured with [`EndpointConfig::service`] or
//! [`Endpoint::connect_with`].
//!
//! Files: `endpoint` (bind, connect, accept, shutdown, stats), `connection` (streams open and
//! accept, close), `datagram` (RFC 9221 datagrams: send, receive, size limit), `stream` (send and receive halves, write completions), `sync` (the blocking
//! executor).

mod connection;
mod datagram;
mod endpoint;
mod stream;
pub(crate) mod sync;

pub use crate::connection::DatagramError;
pub use crate::handoff::shared::WriteStatus;
pub use crate::handoff::{ConnError, MigrateError};
pub use connection::{Connecting, Connection};
pub use endpoint::{Endpoint, EndpointConfig, EndpointStats, ShutdownReport};
pub use stream::{RecvStream, SendStream, WriteCompletion};
pub use sync::{block_on, Elapsed};

/// Why a read failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvStreamError {
    /// The peer reset the stream with this application error code.
    #[error("stream reset by peer with code {0}")]
    Reset(u64),
    /// The stream or its connection closed before the end of the stream.
    #[error(transparent)]
    Closed(#[from] ConnError),
    /// `read_to_end` reached its size limit.
    #[error("stream longer than the limit")]
    TooLong,
    /// The timeout of a blocking read passed.
    #[error("timed out")]
    TimedOut,
}

/// Why `write_all` failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteAllError {
    /// One of its writes was cancelled or refused.
    #[error("write ended as {0:?}")]
    Failed(WriteStatus),
    /// The timeout of a blocking call passed.
    #[error("timed out")]
    TimedOut,
}

/// Why a graceful shutdown did not drain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShutdownError {
    /// Connections were still live at the deadline (a worker may be stuck in I/O).
    #[error("{live} connections still live at the shutdown deadline")]
    TimedOut {
        /// Live connections at the deadline.
        live: u64,
    },
}

/// Handles are shared across threads: checked at compile time.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Endpoint>();
    send_sync::<Connection>();
    send_sync::<SendStream>();
    send_sync::<RecvStream>();
    send_sync::<WriteCompletion>();
    send_sync::<Connecting>();
};
