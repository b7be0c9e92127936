//! The application side of each connection in its worker: not yet decided (a server
//! connection still in its handshake), the thread-based handles ([`HandleState`]), or a
//! [`ConnectionHandler`] called right here. The worker hands each touched connection's events
//! to it, runs handler timers, and measures the time handlers take.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::handles::HandleState;
use super::qlog::QlogFile;
use crate::app::{ConnCtx, ConnectionHandler};
use crate::connection::{Connection, ConnectionError, Event};
use crate::endpoint::ConnectionHandle;
use crate::streams::StreamEvent;

/// Who serves a connection.
#[derive(Default)]
pub(crate) enum AppKind {
    /// A server connection before its handshake completed: decided at `Connected` (or at its
    /// first stream, with early data).
    #[default]
    Pending,
    /// The thread-based handles.
    Handles(Box<HandleState>),
    /// A handler on this worker.
    Handler(Box<dyn ConnectionHandler>),
}

/// The worker's per-connection state next to the sans-IO connection.
#[derive(Default)]
pub(crate) struct AppState {
    pub kind: AppKind,
    /// The connection's qlog file, when the worker writes qlog.
    pub qlog: Option<QlogFile>,
    /// The handler's timer, as it set it.
    pub timer: Option<Instant>,
    /// The handler timer as armed in the worker's heap, and its generation.
    pub(super) armed: Option<Instant>,
    pub(super) timer_gen: u64,
    /// Counted in the endpoint's connection accounting (removal counts it out once).
    pub counted: bool,
    /// The handler was told the connection ended.
    pub(super) closed_told: bool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            AppKind::Pending => "pending",
            AppKind::Handles(_) => "handles",
            AppKind::Handler(_) => "handler",
        };
        f.debug_struct("AppState").field("kind", &kind).finish_non_exhaustive()
    }
}

impl AppState {
    /// Writes the connection's new qlog records (a no-op without qlog).
    pub(crate) fn write_qlog(&mut self, conn: &mut Connection) {
        if let Some(f) = self.qlog.as_mut() {
            if !f.write(conn) {
                self.qlog = None;
            }
        }
    }

    /// The handler's timer moved: the deadline to push into the heap, with its generation.
    pub(crate) fn timer_to_arm(&mut self) -> Option<(Instant, u64)> {
        if self.timer == self.armed {
            return None;
        }
        self.armed = self.timer;
        self.timer_gen += 1;
        self.timer.map(|t| (t, self.timer_gen))
    }

    /// Whether a heap entry of generation `generation` is the live one; disarms it if so.
    pub(crate) fn take_due(&mut self, generation: u64) -> bool {
        if self.timer_gen != generation || self.armed.is_none() {
            return false;
        }
        self.armed = None;
        self.timer = None;
        true
    }
}

/// Handler timers of one worker: a heap of (deadline, connection, generation), lazily
/// invalidated like the endpoint's.
#[derive(Debug, Default)]
pub(crate) struct AppTimers {
    heap: BinaryHeap<Reverse<(Instant, ConnectionHandle, u64)>>,
}

impl AppTimers {
    pub(crate) fn push(&mut self, at: Instant, h: ConnectionHandle, generation: u64) {
        self.heap.push(Reverse((at, h, generation)));
    }

    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(ConnectionHandle, u64)> {
        match self.heap.peek() {
            Some(Reverse((t, _, _))) if *t <= now => {
                self.heap.pop().map(|Reverse((_, h, g))| (h, g))
            }
            _ => None,
        }
    }
}

/// What one handler dispatch needs besides the connection.
pub(crate) struct Dispatch<'a> {
    pub handle: ConnectionHandle,
    pub worker: usize,
    pub now: Instant,
    pub timer: &'a mut Option<Instant>,
    pub closed_told: &'a mut bool,
}

impl AppState {
    /// Splits the state for a handler dispatch.
    pub(crate) fn handler_parts(
        &mut self,
        handle: ConnectionHandle,
        worker: usize,
        now: Instant,
    ) -> Option<(&mut Box<dyn ConnectionHandler>, Dispatch<'_>)> {
        let AppState { kind, timer, closed_told, .. } = self;
        match kind {
            AppKind::Handler(h) => Some((h, Dispatch { handle, worker, now, timer, closed_told })),
            _ => None,
        }
    }
}

/// Hands one event to a handler.
pub(crate) fn handler_event(
    h: &mut Box<dyn ConnectionHandler>,
    conn: &mut Connection,
    d: &mut Dispatch<'_>,
    ev: Event,
) {
    let mut cx = ConnCtx::new(conn, d.handle, d.worker, d.now, d.timer);
    match ev {
        Event::Connected => h.on_connected(&mut cx),
        Event::HandshakeConfirmed => h.on_handshake_confirmed(&mut cx),
        Event::Drained => {}
        Event::DatagramReceived => h.on_datagram(&mut cx),
        Event::HandshakeFailed { reason } | Event::ConnectionLost { reason } => {
            if !std::mem::replace(d.closed_told, true) {
                h.on_closed(&mut cx, &reason);
            }
        }
        Event::Stream(se) => match se {
            StreamEvent::Opened { id } => h.on_stream_opened(&mut cx, id),
            StreamEvent::Readable { id } => h.on_readable(&mut cx, id),
            StreamEvent::Writable { id } => h.on_writable(&mut cx, id),
            StreamEvent::Finished { id } => h.on_send_finished(&mut cx, id),
            StreamEvent::Reset { id, error_code } => h.on_reset(&mut cx, id, error_code),
            StreamEvent::Stopped { id, error_code } => h.on_stop_sending(&mut cx, id, error_code),
            StreamEvent::WriteComplete { id, write, outcome } => {
                h.on_write_complete(&mut cx, id, write, outcome)
            }
            StreamEvent::Available { dir } => h.on_streams_available(&mut cx, dir),
        },
    }
}

/// Tells a handler its connection ended, once, if no event did.
pub(crate) fn handler_closed(
    h: &mut Box<dyn ConnectionHandler>,
    conn: &mut Connection,
    d: &mut Dispatch<'_>,
) {
    if std::mem::replace(d.closed_told, true) {
        return;
    }
    let reason = conn.error().cloned().unwrap_or(ConnectionError::LocallyClosed { code: 0 });
    let mut cx = ConnCtx::new(conn, d.handle, d.worker, d.now, d.timer);
    h.on_closed(&mut cx, &reason);
}

/// Calls a handler's timer.
pub(crate) fn handler_timer(
    h: &mut Box<dyn ConnectionHandler>,
    conn: &mut Connection,
    d: &mut Dispatch<'_>,
) {
    let mut cx = ConnCtx::new(conn, d.handle, d.worker, d.now, d.timer);
    h.on_timer(&mut cx);
}
