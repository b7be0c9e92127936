//! State shared between application handles and the owner worker: per-connection and
//! per-stream waking cells, open and write slots, and the endpoint's connection accounting.
//! Nothing here is connection state: the worker copies results in, handles read them out.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::waking_cell::WakingCell;
use super::ConnError;
use crate::connection::ConnectionStats;
use crate::endpoint::ConnectionHandle;
use crate::scheduler::CloseFlag;
use crate::streams::{CancelReason, StreamId, WriteError};

/// How one write handed to a [`super::SendStream`] ended. Each write gets exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStatus {
    /// Every byte (and the FIN, if any) was acknowledged by the peer.
    Delivered,
    /// Accepted, then cancelled: reset, stop-sending, connection close, idle timeout or
    /// endpoint drop.
    Cancelled(CancelReason),
    /// Refused when it reached the connection (stream finished, reset, unknown, connection
    /// closed): nothing was queued.
    Refused(WriteError),
}

impl WriteStatus {
    /// Whether the write was accepted by the connection (delivered or cancelled later).
    pub fn was_accepted(&self) -> bool {
        !matches!(self, WriteStatus::Refused(_))
    }
}

/// Counters shared by the endpoint's workers and handles.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Writes handed to workers.
    pub writes_posted: AtomicU64,
    /// Write completions delivered (any status).
    pub completions: AtomicU64,
    /// Completions found a slot already completed (must stay 0).
    pub duplicate_completions: AtomicU64,
    /// Accepted writes that completed as delivered.
    pub delivered: AtomicU64,
    /// Accepted writes that completed as cancelled.
    pub cancelled: AtomicU64,
    /// Writes refused by the connection.
    pub refused: AtomicU64,
}

/// The one completion slot of a write, filled once by the worker.
pub(crate) type WriteSlot = WakingCell<Option<WriteStatus>>;

/// The worker's side of a write slot: completes it exactly once — explicitly, or when dropped
/// (the worker went away: cancelled with [`CancelReason::EndpointDropped`]).
pub(crate) struct Completer {
    slot: Arc<WriteSlot>,
    counters: Arc<Counters>,
    done: bool,
}

impl std::fmt::Debug for Completer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completer").field("done", &self.done).finish()
    }
}

impl Completer {
    pub(crate) fn new(slot: Arc<WriteSlot>, counters: Arc<Counters>) -> Self {
        counters.writes_posted.fetch_add(1, Ordering::Relaxed);
        Self { slot, counters, done: false }
    }

    /// Completes the write with `status` (consumes the completer: at most once by type).
    pub(crate) fn complete(mut self, status: WriteStatus) {
        self.finish(status);
    }

    fn finish(&mut self, status: WriteStatus) {
        if self.done {
            return;
        }
        self.done = true;
        let c = &self.counters;
        match status {
            WriteStatus::Delivered => c.delivered.fetch_add(1, Ordering::Relaxed),
            WriteStatus::Cancelled(_) => c.cancelled.fetch_add(1, Ordering::Relaxed),
            WriteStatus::Refused(_) => c.refused.fetch_add(1, Ordering::Relaxed),
        };
        c.completions.fetch_add(1, Ordering::Relaxed);
        let dup = self.slot.update(|s| {
            if s.is_some() {
                true
            } else {
                *s = Some(status);
                false
            }
        });
        if dup {
            c.duplicate_completions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        self.finish(WriteStatus::Cancelled(CancelReason::EndpointDropped));
    }
}

/// What a connection's handles learn from the worker.
#[derive(Debug, Default)]
pub(crate) struct ConnMail {
    /// The handshake's outcome, once known.
    pub handshake: Option<Result<(), ConnError>>,
    /// Why the connection ended, once it has.
    pub error: Option<ConnError>,
    /// The connection is gone from its worker (drained, or the worker stopped).
    pub drained: bool,
    /// Peer-opened streams not yet accepted (bidirectional, unidirectional).
    pub incoming: [VecDeque<Arc<StreamShared>>; 2],
    /// Counters as of the worker's last look.
    pub stats: ConnectionStats,
    /// The application protocol TLS negotiated (ALPN), once the handshake completed.
    pub alpn: Option<Vec<u8>>,
    /// Where 0-RTT stood when the handshake completed (accepted or rejected, if attempted).
    pub early_data: crate::connection::EarlyDataState,
    /// DATAGRAM: received payloads not yet read, at most `datagram_capacity`.
    pub datagrams: VecDeque<Bytes>,
    /// DATAGRAM: most payloads `datagrams` holds (the connection's queue size).
    pub datagram_capacity: usize,
    /// DATAGRAM: payloads dropped here (the oldest, when `datagrams` was full) or refused by
    /// the connection after the handle accepted them.
    pub datagrams_dropped: u64,
    /// DATAGRAM: whether we enabled it, and whether the peer did once its parameters are
    /// known (`Connection::datagram_support`); `None` until the worker published it.
    pub datagram_support: Option<(bool, Option<bool>)>,
    /// DATAGRAM: the largest payload the connection takes now.
    pub datagram_max: Option<usize>,
}

/// The handle value of a connection its worker has not registered yet.
const NO_HANDLE: usize = usize::MAX;

/// One connection as seen from its handles.
#[derive(Debug)]
pub(crate) struct ConnShared {
    /// The connection's handle in its worker's endpoint (its one identity), once registered.
    handle: AtomicUsize,
    /// Index of the owner worker.
    pub worker: usize,
    /// The peer's address.
    pub remote: SocketAddr,
    /// Close requested / written per space / ended (shared with the worker's endpoint).
    pub close: Arc<CloseFlag>,
    /// Results and events.
    pub mail: WakingCell<ConnMail>,
}

impl ConnShared {
    /// A connection the worker will register (a client's, before its start).
    pub(crate) fn new(worker: usize, remote: SocketAddr) -> Self {
        Self {
            handle: AtomicUsize::new(NO_HANDLE),
            worker,
            remote,
            close: Arc::new(CloseFlag::new()),
            mail: WakingCell::new(ConnMail::default()),
        }
    }

    /// A connection registered as `handle`, sharing `close` with the endpoint.
    pub(crate) fn registered(
        handle: ConnectionHandle,
        worker: usize,
        remote: SocketAddr,
        close: Arc<CloseFlag>,
    ) -> Self {
        Self {
            handle: AtomicUsize::new(handle.0),
            worker,
            remote,
            close,
            mail: WakingCell::new(ConnMail::default()),
        }
    }

    /// The connection's handle, once its worker registered it. Commands reach the worker
    /// after the start that registers it (one FIFO inbox), so the worker always finds it.
    pub(crate) fn handle(&self) -> Option<ConnectionHandle> {
        match self.handle.load(Ordering::Acquire) {
            NO_HANDLE => None,
            h => Some(ConnectionHandle(h)),
        }
    }

    /// Records the handle the worker registered the connection under.
    pub(crate) fn set_handle(&self, h: ConnectionHandle) {
        self.handle.store(h.0, Ordering::Release);
    }

    /// The connection could not start (or never will): tell every waiter.
    pub(crate) fn fail_start(&self, e: ConnError) {
        self.close.mark_ended();
        self.mail.update(|m| {
            m.handshake = Some(Err(e.clone()));
            m.error = Some(e);
            m.drained = true;
        });
    }
}

/// What a stream's handles learn from the worker.
#[derive(Debug, Default)]
pub(crate) struct StreamMail {
    /// Received in-order data not yet read by the application.
    pub chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    pub buffered: usize,
    /// The end of the stream was reached (after `chunks`).
    pub fin: bool,
    /// The peer reset its sending part with this code.
    pub reset: Option<u64>,
    /// The stream (or its connection) is gone: nothing more will arrive.
    pub closed: Option<ConnError>,
    /// The worker stopped pulling data because `buffered` reached the limit.
    pub paused: bool,
    /// The peer asked us to stop sending, with this code.
    pub stopped: Option<u64>,
    /// Everything we sent, and the FIN, was acknowledged.
    pub send_finished: bool,
}

/// One stream as seen from its handles.
#[derive(Debug)]
pub(crate) struct StreamShared {
    /// The stream.
    pub id: StreamId,
    /// Data and state.
    pub mail: WakingCell<StreamMail>,
}

impl StreamShared {
    pub(crate) fn new(id: StreamId) -> Self {
        Self { id, mail: WakingCell::new(StreamMail::default()) }
    }
}

/// Result of an open request.
pub(crate) type OpenResult = Result<Arc<StreamShared>, ConnError>;

/// An open request's slot: the worker fills it, or the waiting handle cancels it.
#[derive(Debug, Default)]
pub(crate) struct OpenState {
    pub result: Option<OpenResult>,
    pub cancelled: bool,
}

/// See [`OpenState`].
pub(crate) type OpenSlot = WakingCell<OpenState>;
