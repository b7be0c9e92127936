//! [`ConnCtx`]: what a handler can do with its connection, on the worker thread that owns it.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::SEND_SLACK;
use crate::connection::{Connection, ConnectionError, ConnectionStats, DatagramError};
use crate::crypto::Side;
use crate::endpoint::ConnectionHandle;
use crate::streams::{
    ClosedStream, Dir, OpenError, ReadError, RecvChunk, StreamId, WriteError, WriteId,
};
use crate::varint::VarInt;

/// The connection a handler (or a [`super::Service`] deciding on one) is called for: its
/// streams, its close, its timer. Borrowed for the length of one call.
pub struct ConnCtx<'a> {
    conn: &'a mut Connection,
    handle: ConnectionHandle,
    worker: usize,
    now: Instant,
    timer: &'a mut Option<Instant>,
}

impl std::fmt::Debug for ConnCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnCtx")
            .field("handle", &self.handle)
            .field("worker", &self.worker)
            .field("remote", &self.conn.remote_address())
            .finish_non_exhaustive()
    }
}

impl<'a> ConnCtx<'a> {
    pub(crate) fn new(
        conn: &'a mut Connection,
        handle: ConnectionHandle,
        worker: usize,
        now: Instant,
        timer: &'a mut Option<Instant>,
    ) -> Self {
        Self { conn, handle, worker, now, timer }
    }

    /// The time of the worker's turn (virtual time in simulations): use it, never the clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The connection's handle in its worker (unique on that worker, never reused).
    pub fn handle(&self) -> ConnectionHandle {
        self.handle
    }

    /// The index of the worker running this call.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Client or server.
    pub fn side(&self) -> Side {
        self.conn.side()
    }

    /// The peer's address.
    pub fn remote(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// The application protocol negotiated with ALPN, once the handshake got that far.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Where 0-RTT stands ([`crate::connection::EarlyDataState`]): a server handler sees
    /// `Accepted` when the client's first streams came in 0-RTT (before `on_connected`).
    pub fn early_data_state(&self) -> crate::connection::EarlyDataState {
        self.conn.early_data_state()
    }

    /// The connection's counters.
    pub fn stats(&self) -> ConnectionStats {
        self.conn.stats()
    }

    /// Why the connection ended, once it has.
    pub fn error(&self) -> Option<&ConnectionError> {
        self.conn.error()
    }

    /// Whether the connection is closing, draining or gone.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// Opens a stream; `Blocked` when the peer's stream limit is reached
    /// ([`super::ConnectionHandler::on_streams_available`] follows when it grows).
    pub fn open(&mut self, dir: Dir) -> Result<StreamId, OpenError> {
        self.conn.open(dir)
    }

    /// Copies in-order data of stream `id` into `buf`: `(bytes, fin)`. `Blocked` when nothing
    /// is there yet.
    pub fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<(usize, bool), ReadError> {
        self.conn.read(id, buf)
    }

    /// Takes the next in-order piece of stream `id` (at most `max` bytes) without copying.
    pub fn read_chunk(&mut self, id: StreamId, max: usize) -> Result<RecvChunk, ReadError> {
        self.conn.streams().read_chunk(id, max)
    }

    /// Bytes stream `id` takes now: within its send buffer, and no more than [`SEND_SLACK`]
    /// past what the peer may receive on the stream and on the connection. At 0,
    /// [`super::ConnectionHandler::on_writable`] follows when there is room.
    pub fn send_room(&mut self, id: StreamId) -> u64 {
        self.conn.streams().send_room(id, SEND_SLACK)
    }

    /// Writes `data` (and the FIN when `fin`) on stream `id`, zero-copy. Exactly one
    /// [`super::ConnectionHandler::on_write_complete`] follows an accepted write. Writing more
    /// than [`Self::send_room`] is accepted up to the send buffer (`Blocked` beyond), but then
    /// the data waits here, not in the network.
    pub fn write(&mut self, id: StreamId, data: Bytes, fin: bool) -> Result<WriteId, WriteError> {
        self.conn.write(id, data, fin)
    }

    /// Ends stream `id` (FIN).
    pub fn finish(&mut self, id: StreamId) -> Result<WriteId, WriteError> {
        self.conn.finish(id)
    }

    /// Abandons the sending part of stream `id` (RESET_STREAM with `code`).
    pub fn reset(&mut self, id: StreamId, code: u64) -> Result<(), ClosedStream> {
        self.conn.reset(id, code)
    }

    /// Asks the peer to stop sending on stream `id` (STOP_SENDING with `code`).
    pub fn stop_sending(&mut self, id: StreamId, code: u64) -> Result<(), ClosedStream> {
        self.conn.stop_sending(id, code)
    }

    /// Sets the send priority of stream `id` (higher first; equal ones share round-robin).
    pub fn set_priority(&mut self, id: StreamId, priority: i32) -> Result<(), ClosedStream> {
        self.conn.streams().set_priority(id, priority)
    }

    /// Queues `data` for a DATAGRAM frame (RFC 9221): unreliable, never retransmitted.
    /// Refused with a typed error when we or the peer did not enable DATAGRAM frames, or when
    /// `data` is larger than [`Self::max_datagram_payload`]. The send queue holds
    /// `TransportConfig::with_datagrams`'s `queue` datagrams; when full, the oldest queued one
    /// is dropped and counted (`datagram_frames_dropped`).
    pub fn send_datagram(&mut self, data: Bytes) -> Result<(), DatagramError> {
        self.conn.send_datagram(data)
    }

    /// The oldest received datagram not read yet (see
    /// [`super::ConnectionHandler::on_datagram`]).
    pub fn recv_datagram(&mut self) -> Option<Bytes> {
        self.conn.recv_datagram()
    }

    /// The largest payload [`Self::send_datagram`] takes now; `None` before the peer's
    /// transport parameters are known or when DATAGRAM was not enabled on both sides.
    pub fn max_datagram_payload(&self) -> Option<usize> {
        self.conn.max_datagram_payload()
    }

    /// Datagrams queued for sending and not yet in a packet.
    pub fn datagrams_queued(&self) -> usize {
        self.conn.datagrams_queued()
    }

    /// Closes the connection with an application error code and reason. Idempotent.
    pub fn close(&mut self, code: VarInt, reason: &[u8]) {
        let now = self.now;
        self.conn.close(now, code, reason);
    }

    /// Calls [`super::ConnectionHandler::on_timer`] at `at` (`None` cancels). One timer per
    /// connection; a handler with several deadlines keeps the earliest here.
    pub fn set_timer(&mut self, at: Option<Instant>) {
        *self.timer = at;
    }

    /// The handler's timer, if set.
    pub fn timer(&self) -> Option<Instant> {
        *self.timer
    }
}
