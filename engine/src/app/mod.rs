//! Applications that run on the worker that owns their connection (DESIGN.md "Threads: one
//! owner per connection"; docs/ARCHITECTURE.md "Applications").
//!
//! A [`Service`] is created once per worker, on that worker's thread, by a
//! [`ServiceFactory`]. When a connection the worker accepted completes its handshake, the
//! worker asks the service for a [`ConnectionHandler`]; from then on every event of that
//! connection (streams opened, readable, writable, reset, stopped, writes completed, the
//! handler's own timer, the end) is a method call on the handler, on the worker thread, with a
//! [`ConnCtx`] that reads and writes the sans-IO connection directly: no thread hop, no lock,
//! no allocation per request. A client connection can be served the same way
//! (`api::Endpoint::connect_with`).
//!
//! Handlers must not block: a handler that runs long stalls every connection of its worker.
//! The worker measures the time it spends in each connection's handlers per turn and reports
//! a turn over [`crate::worker::WorkerConfig::slow_handler`] (a counter in the worker stats and
//! a warning with the handler's time); see [`crate::worker::WorkerStats::slow_handlers`].
//!
//! Flow control reaches the application: [`ConnCtx::send_room`] says how much a stream may take
//! now (within its send buffer, and at most [`SEND_SLACK`] bytes beyond what the peer may
//! receive), and [`ConnectionHandler::on_writable`] follows when that grows. A handler that
//! writes no more than that holds, per connection, the peer's credit plus a small constant,
//! whatever the size of what it serves.

mod ctx;

pub use ctx::ConnCtx;

use std::sync::Arc;

use crate::connection::ConnectionError;
use crate::streams::{Dir, StreamId, WriteId, WriteOutcome};

/// How far past the peer's flow-control credit [`ConnCtx::send_room`] lets a stream's queued
/// data go (per stream, and for the connection): enough to have the next packet's worth ready
/// when a MAX_STREAM_DATA arrives, small enough that a peer granting nothing pins little.
pub const SEND_SLACK: u64 = 64 * 1024;

/// Which worker a [`Service`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// The worker's index.
    pub index: usize,
    /// Workers of the endpoint.
    pub workers: usize,
}

/// Creates one [`Service`] per worker, on the worker's thread (so the service itself need not
/// be `Send`).
pub type ServiceFactory = Arc<dyn Fn(WorkerInfo) -> Box<dyn Service> + Send + Sync>;

/// One worker's share of an application: it hands out a handler for each connection the
/// worker accepts. Per-worker state (caches, buffers, counters) lives here or is shared with
/// the handlers through `Rc`: everything runs on one thread.
pub trait Service: 'static {
    /// A connection accepted by this worker completed its handshake: its handler, or `None`
    /// to hand the connection to `api::Endpoint::accept` instead (the thread-based handles).
    /// `cx` may already be used (to open streams, close the connection, read the ALPN).
    fn on_connection(&mut self, cx: &mut ConnCtx<'_>) -> Option<Box<dyn ConnectionHandler>>;
}

/// The application side of one connection, called by the worker that owns it. Every method
/// has a default that does nothing. Stream notifications are edge-triggered: after
/// [`on_readable`](Self::on_readable), read until the read says `Blocked` (or the stream
/// ends) to be told again; after [`ConnCtx::send_room`] returned 0, or a write returned
/// `Blocked`, [`on_writable`](Self::on_writable) follows once there is room.
#[allow(unused_variables)]
pub trait ConnectionHandler: 'static {
    /// The handshake completed (for a server connection, the handler was just created for
    /// it: this is its first call).
    fn on_connected(&mut self, cx: &mut ConnCtx<'_>) {}
    /// The handshake is confirmed (RFC 9001 §4.1.2): for a client, the server's
    /// HANDSHAKE_DONE arrived, so the server has everything of the client's handshake; a
    /// client that connects only to close again closes here, not in
    /// [`on_connected`](Self::on_connected), or the server may never see its Finished. A
    /// server connection is confirmed by its handshake's completion itself.
    fn on_handshake_confirmed(&mut self, cx: &mut ConnCtx<'_>) {}
    /// The peer opened stream `id` (data may follow in [`on_readable`](Self::on_readable)).
    fn on_stream_opened(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {}
    /// Data or the end of stream `id` can be read.
    fn on_readable(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {}
    /// Stream `id` has room for more data (see [`ConnCtx::send_room`]).
    fn on_writable(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {}
    /// Everything written on stream `id`, and its FIN, was acknowledged.
    fn on_send_finished(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {}
    /// The peer reset its sending part of stream `id`.
    fn on_reset(&mut self, cx: &mut ConnCtx<'_>, id: StreamId, code: u64) {}
    /// The peer asked us to stop sending on stream `id` (our sending part was reset).
    fn on_stop_sending(&mut self, cx: &mut ConnCtx<'_>, id: StreamId, code: u64) {}
    /// A write ended (delivered or cancelled): exactly once per accepted write.
    fn on_write_complete(
        &mut self,
        cx: &mut ConnCtx<'_>,
        id: StreamId,
        write: WriteId,
        outcome: WriteOutcome,
    ) {
    }
    /// The peer raised its stream limit after an open of type `dir` was refused.
    fn on_streams_available(&mut self, cx: &mut ConnCtx<'_>, dir: Dir) {}
    /// A DATAGRAM frame (RFC 9221) arrived while the connection's receive queue was empty:
    /// read them with [`ConnCtx::recv_datagram`] until `None` to be told again. Unread
    /// datagrams wait in a queue of `TransportConfig::with_datagrams`'s `queue` entries; when
    /// it is full the oldest is dropped and counted (`datagram_frames_dropped`).
    fn on_datagram(&mut self, cx: &mut ConnCtx<'_>) {}
    /// The time set with [`ConnCtx::set_timer`] came.
    fn on_timer(&mut self, cx: &mut ConnCtx<'_>) {}
    /// The connection ended (called once; the handler is dropped when the connection is
    /// removed). `error` says why.
    fn on_closed(&mut self, cx: &mut ConnCtx<'_>, error: &ConnectionError) {}
    /// A client connection started with `api::Endpoint::connect_with` could not start (no
    /// client configuration, shutting down, setup failure): no other method will be called.
    fn on_start_failed(&mut self, reason: &str) {}
}
