//! What application handles and worker threads hand each other: the commands handles post to
//! a worker's inbox, the waking cells the worker fills for them, write completions, and the
//! connection error handles see. Shared by `api` (the handles) and `worker` (the owner
//! threads) so that neither depends on the other's internals.
//!
//! Files: `waking_cell` ([`WakingCell`]: a locked value plus the wakers of those waiting on it),
//! `shared` (per-connection and per-stream cell contents, open and write slots, endpoint
//! counters).

pub(crate) mod shared;
pub(crate) mod waking_cell;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use peregrine_datapath::Ecn;

use crate::app::ConnectionHandler;
use crate::connection::ConnectionError;
use crate::streams::{Dir, StreamId};
use crate::varint::VarInt;
use shared::{Completer, ConnShared, OpenSlot};
pub(crate) use waking_cell::WakingCell;

/// Why a connection-level operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// The connection ended (closed by either side, timed out, reset, handshake failure).
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The endpoint was dropped: its workers stopped.
    #[error("endpoint stopped")]
    EndpointStopped,
    /// The endpoint is shutting down and takes no new connections.
    #[error("endpoint is shutting down")]
    ShuttingDown,
    /// The endpoint has no client configuration.
    #[error("endpoint has no client configuration")]
    NotClient,
    /// The connection could not be set up (configuration, TLS, connection ID table).
    #[error("connection setup failed: {0}")]
    Setup(String),
    /// The connection is gone from its worker.
    #[error("connection closed")]
    Closed,
    /// The stream is closed (fully read, stopped, or unknown).
    #[error("stream closed")]
    StreamClosed,
    /// The operation's timeout passed.
    #[error("timed out")]
    TimedOut,
}

/// Why [`crate::api::Connection::migrate`] did not move the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MigrateError {
    /// The connection refused (not confirmed yet, the peer disabled active migration, no
    /// spare connection ID of the peer's, a migration already being validated, closed).
    #[error(transparent)]
    Refused(#[from] crate::connection::MigrationError),
    /// Other connections share the worker's socket: moving it would move them too.
    #[error("other connections share the socket")]
    SharedSocket,
    /// The new socket could not be bound (or the datapath cannot rebind).
    #[error("rebinding the socket: {0}")]
    Rebind(String),
    /// The connection is gone from its worker, or the endpoint stopped.
    #[error("connection closed")]
    Closed,
    /// The worker did not answer in time.
    #[error("timed out")]
    TimedOut,
}

/// Where a worker puts the outcome of a migration (`None` until it did).
pub(crate) type MigrateReply = Arc<WakingCell<Option<Result<SocketAddr, MigrateError>>>>;

/// An operation on one connection, from its handles.
#[derive(Debug)]
pub(crate) enum ConnOp {
    /// Open a stream (waits for stream credit in the worker; the slot may be cancelled).
    Open { dir: Dir, slot: Arc<OpenSlot> },
    /// Write (and maybe FIN); exactly one completion through `done`.
    Write { stream: StreamId, data: Bytes, fin: bool, done: Completer },
    /// Reset the sending part.
    Reset { stream: StreamId, code: u64 },
    /// STOP_SENDING on the receiving part.
    Stop { stream: StreamId, code: u64 },
    /// Change the send priority of a stream (higher is served first).
    Priority { stream: StreamId, priority: i32 },
    /// The application read below the buffer limit: pull more data.
    ReadMore { stream: StreamId },
    /// Queue a DATAGRAM frame (checked by the handle; refused late only if the path
    /// shrank or the connection closed, then dropped and counted).
    Datagram { data: Bytes },
    /// Close the connection.
    Close { code: VarInt, reason: Vec<u8> },
    /// Move the worker's socket to `local` and migrate the connection there.
    Migrate { local: SocketAddr, reply: MigrateReply },
}

/// A client connection whose application is a handler running on the worker.
pub(crate) type HandlerBox = Box<dyn ConnectionHandler + Send>;

/// A command for a worker.
pub(crate) enum Command {
    /// Start a client connection served by handles.
    Connect { server_name: String, conn: Arc<ConnShared> },
    /// Start a client connection served by a handler on the worker; `conn` carries the
    /// outcome of the start and the close flag.
    ConnectWith { server_name: String, conn: Arc<ConnShared>, handler: HandlerBox },
    /// A datagram another worker received for one of our connections.
    Datagram { remote: SocketAddr, local_ip: Option<IpAddr>, ecn: Ecn, data: Vec<u8> },
    /// An operation on a connection of this worker.
    Conn { conn: Arc<ConnShared>, op: ConnOp },
    /// Graceful shutdown: close every connection and refuse new ones.
    Shutdown { code: VarInt, reason: Vec<u8> },
    /// Forget every remaining connection now (the shutdown deadline passed).
    ForceDrain,
    /// Exit the thread (endpoint dropped).
    Stop,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Connect { server_name, .. } => write!(f, "Connect({server_name})"),
            Command::ConnectWith { server_name, .. } => write!(f, "ConnectWith({server_name})"),
            Command::Datagram { remote, data, .. } => {
                write!(f, "Datagram({remote}, {} bytes)", data.len())
            }
            Command::Conn { conn, op } => write!(f, "Conn({:?}, {op:?})", conn.handle()),
            Command::Shutdown { .. } => f.write_str("Shutdown"),
            Command::ForceDrain => f.write_str("ForceDrain"),
            Command::Stop => f.write_str("Stop"),
        }
    }
}

/// Completes whatever a command promised, for a command that will never reach a worker.
pub(crate) fn abandon(cmd: Command) {
    match cmd {
        Command::Connect { conn, .. } | Command::ConnectWith { conn, .. } => {
            conn.fail_start(ConnError::EndpointStopped);
        }
        Command::Conn { op: ConnOp::Open { slot, .. }, .. } => {
            slot.update(|s| s.result = Some(Err(ConnError::EndpointStopped)));
        }
        Command::Conn { op: ConnOp::Migrate { reply, .. }, .. } => {
            reply.update(|r| *r = Some(Err(MigrateError::Closed)));
        }
        // A write's completer completes as "endpoint dropped" when dropped here.
        other => drop(other),
    }
}
