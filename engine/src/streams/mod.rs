//! QUIC streams and flow control (RFC 9000 §2-§4): the [`Streams`] manager the connection drives.
//!
//! The manager is sans-IO and frame-agnostic. The connection feeds it decoded frame fields
//! (`on_stream`, `on_reset_stream`, `on_max_data`, ...) and acknowledgement / loss feedback,
//! and asks it for work: [`Streams::poll_control`] yields [`ControlFrame`]s and
//! [`Streams::poll_stream_data`] yields [`StreamFrame`]s picked by a priority round-robin
//! scheduler that gives each stream a quantum of bytes per turn (16 KiB by default: a short
//! response leaves whole, in a few frames, instead of one frame per round over every busy
//! stream). The application side (`open`, `write`, `read`, `reset`, `stop_sending`) and the
//! [`StreamEvent`] queue sit on top.
//!
//! Invariants kept here (DESIGN.md):
//! - every accepted write yields exactly one [`StreamEvent::WriteComplete`]: `Delivered` once
//!   all of its bytes (and FIN) are acknowledged, or `Cancelled` by a reset, STOP_SENDING, or
//!   [`Streams::cancel_all`] (connection close, idle timeout, endpoint drop);
//! - opening a stream never waits forever: a peer-initiated stream whose two directions are
//!   both finished (FIN read or reset received; our side acknowledged or reset) is freed and
//!   returns one unit of MAX_STREAMS credit, so FIN, reset or STOP_SENDING in either
//!   direction all give the credit back.

mod config;
mod events;
mod flow;
mod id;
mod incoming;
mod outgoing;
mod ranges;
mod reassembly;
mod recv;
mod scheduler;
mod send;

#[cfg(test)]
mod tests;

pub use config::{
    PeerLimits, StreamsConfig, StreamsConfigError, DEFAULT_MAX_CONCURRENT_BIDI,
    DEFAULT_MAX_CONCURRENT_UNI, DEFAULT_MAX_RECEIVE_WINDOW, DEFAULT_MAX_STREAM_RECEIVE_WINDOW,
    DEFAULT_RECEIVE_WINDOW, DEFAULT_SEND_BUFFER, DEFAULT_STREAM_RECEIVE_WINDOW,
    MAX_AUTO_SEND_BUFFER,
};
pub use events::{ControlFrame, StreamEvent, StreamFrame};
pub use flow::{RecvFlow, SendFlow};
pub use id::{Dir, Role, StreamId, MAX_STREAM_COUNT};
pub use reassembly::{Changed, Reassembly, BLOCK, BLOCK_FOOTPRINT};
pub use recv::{ReadError, RecvChunk, RecvPart, RecvState};
pub use send::{
    CancelReason, ClosedStream, Completion, SendPart, SendState, StreamChunk, WriteError, WriteId,
    WriteOutcome,
};

use std::collections::{BTreeSet, VecDeque};

use rustc_hash::FxHashMap;

use bytes::Bytes;

use crate::error::Error;
use scheduler::StreamScheduler;

/// Why a local stream could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The peer's MAX_STREAMS limit is reached; a STREAMS_BLOCKED is queued (once per limit)
    /// and [`StreamEvent::Available`] follows when the peer grants more.
    #[error("stream limit reached")]
    Blocked,
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
}

/// Both parts of one stream plus its scheduling state.
#[derive(Debug)]
struct Entry {
    send: Option<SendPart>,
    recv: Option<RecvPart>,
    priority: i32,
    queued: bool,
    conn_blocked: bool,
    /// Bytes sent in the stream's current turn of the round-robin (see
    /// [`StreamsConfig::with_send_quantum`]).
    turn: u64,
}

/// Every stream of one connection, the connection-level flow control, and the stream limits.
#[derive(Debug)]
pub struct Streams {
    role: Role,
    config: StreamsConfig,
    peer: PeerLimits,
    /// Looked up several times per acknowledged STREAM frame: a hash map (the ID space a peer
    /// can fill is bounded by our stream limits). Where the order of a walk over every stream
    /// shows (events, completions), the IDs are sorted first.
    streams: FxHashMap<StreamId, Entry>,
    /// Local streams opened, per direction.
    next_local: [u64; 2],
    /// The peer's limit on streams we open.
    peer_max_streams: [u64; 2],
    open_blocked: [bool; 2],
    streams_blocked_at: [Option<u64>; 2],
    streams_blocked_pending: [bool; 2],
    /// Peer streams opened (explicitly or implicitly), per direction.
    next_remote: [u64; 2],
    /// Our limit on streams the peer opens.
    max_remote: [u64; 2],
    max_streams_pending: [bool; 2],
    conn_recv: RecvFlow,
    conn_send: SendFlow,
    scheduler: StreamScheduler,
    conn_blocked: Vec<StreamId>,
    control: BTreeSet<StreamId>,
    events: VecDeque<StreamEvent>,
    next_write: u64,
    closed: Option<CancelReason>,
    /// Every sending part's buffer limit: the configured send buffer, raised to follow the
    /// congestion window (see [`Self::set_send_buffer_floor`]).
    send_buffer: u64,
    /// Bytes ever written on any stream (the connection-level part of [`Self::send_room`]).
    written_total: u64,
    /// Streams that found no connection-level room in [`Self::send_room`].
    room_waiters: Vec<StreamId>,
}

impl Streams {
    /// The stream state of an endpoint playing `role`. The peer's limits start at zero
    /// until [`Self::set_peer_limits`].
    pub fn new(role: Role, config: StreamsConfig) -> Self {
        let max_remote =
            [config.max_concurrent_streams(Dir::Bi), config.max_concurrent_streams(Dir::Uni)];
        let send_buffer = config.send_buffer();
        Self {
            role,
            conn_recv: RecvFlow::new(config.receive_window(), config.max_receive_window()),
            conn_send: SendFlow::new(0),
            config,
            peer: PeerLimits::default(),
            streams: FxHashMap::default(),
            next_local: [0; 2],
            peer_max_streams: [0; 2],
            open_blocked: [false; 2],
            streams_blocked_at: [None; 2],
            streams_blocked_pending: [false; 2],
            next_remote: [0; 2],
            max_remote,
            max_streams_pending: [false; 2],
            scheduler: StreamScheduler::default(),
            conn_blocked: Vec::new(),
            control: BTreeSet::new(),
            events: VecDeque::new(),
            next_write: 0,
            closed: None,
            send_buffer,
            written_total: 0,
            room_waiters: Vec::new(),
        }
    }

    /// Applies the peer's transport parameters (limits only grow; may be called again,
    /// e.g. after 0-RTT with remembered values).
    pub fn set_peer_limits(&mut self, limits: PeerLimits) -> Result<(), Error> {
        limits.validate()?;
        self.peer = limits;
        if self.conn_send.on_max(limits.initial_max_data) {
            self.wake_conn_blocked();
        }
        for dir in [Dir::Bi, Dir::Uni] {
            self.raise_peer_max_streams(dir, limits.max_streams(dir));
        }
        let ids = self.sorted_ids();
        for id in ids {
            let max = self.initial_send_window(id);
            if let Some(send) = self.streams.get_mut(&id).and_then(|e| e.send.as_mut()) {
                send.flow_mut().on_max(max);
            }
            self.maybe_schedule(id);
        }
        Ok(())
    }

    /// 0-RTT was rejected (client): the limits of the handshake replace the remembered ones
    /// exactly, lower ones included (RFC 9000 §7.4.1: once the handshake completes the client
    /// uses the transport parameters established in it). Errors, changing nothing, when what
    /// was sent in 0-RTT (streams opened, connection or stream credit used) does not fit in
    /// the new limits: it could not be sent again.
    pub fn reset_peer_limits(&mut self, limits: PeerLimits) -> Result<(), Error> {
        limits.validate()?;
        let too_small = || {
            Error::new(
                crate::error::TransportErrorCode::NO_ERROR,
                "0-RTT rejected and the server's new limits are below what 0-RTT already used",
            )
        };
        if self.conn_send.used() > limits.initial_max_data {
            return Err(too_small());
        }
        for dir in [Dir::Bi, Dir::Uni] {
            if self.next_local[dir.index()] > limits.max_streams(dir) {
                return Err(too_small());
            }
        }
        let old = std::mem::replace(&mut self.peer, limits);
        for (id, e) in &self.streams {
            if let Some(send) = &e.send {
                if send.flow().used() > self.initial_send_window(*id) {
                    self.peer = old;
                    return Err(too_small());
                }
            }
        }
        self.conn_send.reset_max(limits.initial_max_data);
        for dir in [Dir::Bi, Dir::Uni] {
            self.peer_max_streams[dir.index()] = limits.max_streams(dir);
        }
        let ids = self.sorted_ids();
        for id in ids {
            let max = self.initial_send_window(id);
            if let Some(send) = self.streams.get_mut(&id).and_then(|e| e.send.as_mut()) {
                send.flow_mut().reset_max(max);
            }
            self.maybe_schedule(id);
        }
        self.wake_conn_blocked();
        Ok(())
    }

    /// Whether `limits` lowers any limit applied so far (a server that accepted 0-RTT must
    /// not, RFC 9000 §7.4.1).
    pub fn lowers_peer_limits(&self, limits: &PeerLimits) -> bool {
        let p = &self.peer;
        limits.initial_max_data < p.initial_max_data
            || limits.initial_max_stream_data_bidi_local < p.initial_max_stream_data_bidi_local
            || limits.initial_max_stream_data_bidi_remote < p.initial_max_stream_data_bidi_remote
            || limits.initial_max_stream_data_uni < p.initial_max_stream_data_uni
            || limits.initial_max_streams_bidi < p.initial_max_streams_bidi
            || limits.initial_max_streams_uni < p.initial_max_streams_uni
    }

    /// The peer's initial credit for a stream we send on.
    fn initial_send_window(&self, id: StreamId) -> u64 {
        match (id.dir(), id.is_local(self.role)) {
            (Dir::Uni, _) => self.peer.initial_max_stream_data_uni,
            (Dir::Bi, true) => self.peer.initial_max_stream_data_bidi_remote,
            (Dir::Bi, false) => self.peer.initial_max_stream_data_bidi_local,
        }
    }

    fn raise_peer_max_streams(&mut self, dir: Dir, max: u64) {
        let d = dir.index();
        //= https://www.rfc-editor.org/rfc/rfc9000#section-4.6
        //# MAX_STREAMS frames
        //# that do not increase the stream limit MUST be ignored.
        if max > self.peer_max_streams[d] {
            self.peer_max_streams[d] = max;
            self.streams_blocked_pending[d] = false;
            if std::mem::take(&mut self.open_blocked[d]) {
                self.events.push_back(StreamEvent::Available { dir });
            }
        }
    }

    /// The role this endpoint plays.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Our configuration (its windows and counts are what we advertise).
    pub fn config(&self) -> &StreamsConfig {
        &self.config
    }

    /// Opens a local stream of type `dir` within the peer's MAX_STREAMS limit.
    pub fn open(&mut self, dir: Dir) -> Result<StreamId, OpenError> {
        if self.closed.is_some() {
            return Err(OpenError::Closed);
        }
        let d = dir.index();
        let limit = self.peer_max_streams[d];
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.11
        //# An endpoint MUST NOT open more streams than permitted by the current
        //# stream limit set by its peer.
        let id = match StreamId::new(self.role, dir, self.next_local[d]) {
            Some(id) if self.next_local[d] < limit => id,
            _ => {
                self.open_blocked[d] = true;
                //= https://www.rfc-editor.org/rfc/rfc9000#section-4.6
                //# An endpoint that is unable to open a new stream due to the peer's
                //# limits SHOULD send a STREAMS_BLOCKED frame (Section 19.14).
                if self.streams_blocked_at[d] != Some(limit) {
                    self.streams_blocked_at[d] = Some(limit);
                    self.streams_blocked_pending[d] = true;
                }
                return Err(OpenError::Blocked);
            }
        };
        self.next_local[d] += 1;
        let entry = self.new_entry(id);
        self.streams.insert(id, entry);
        Ok(id)
    }

    fn new_entry(&self, id: StreamId) -> Entry {
        let send = id
            .can_send(self.role)
            .then(|| SendPart::new(self.initial_send_window(id), self.send_buffer));
        let recv = id.can_recv(self.role).then(|| {
            RecvPart::new(
                self.config.stream_receive_window(),
                self.config.max_stream_receive_window(),
            )
        });
        Entry { send, recv, priority: 0, queued: false, conn_blocked: false, turn: 0 }
    }

    /// Send-buffer auto-tuning: every stream may buffer at least `floor` unacknowledged
    /// bytes (the connection passes twice its congestion window, as Linux sizes a TCP
    /// socket's send buffer), never less than the configured
    /// [`StreamsConfig::send_buffer`] and never more than [`MAX_AUTO_SEND_BUFFER`] above it.
    /// A buffer smaller than the window caps a stream below what the path carries: the
    /// sender runs dry while acknowledgments are in flight. The limit moves in powers of two
    /// (grows at once, shrinks only to a quarter) so streams are revisited rarely; writes
    /// blocked under a smaller limit become [`StreamEvent::Writable`].
    pub fn set_send_buffer_floor(&mut self, floor: u64) {
        let base = self.config.send_buffer();
        let want = floor.min(MAX_AUTO_SEND_BUFFER).max(base);
        let grow = want > self.send_buffer;
        let shrink = want.saturating_mul(4) <= self.send_buffer;
        if !grow && !shrink {
            return;
        }
        self.send_buffer = if want == base {
            base
        } else {
            want.checked_next_power_of_two().unwrap_or(want).min(MAX_AUTO_SEND_BUFFER).max(base)
        };
        let limit = self.send_buffer;
        let mut freed = Vec::new();
        for (id, e) in self.streams.iter_mut() {
            if e.send.as_mut().is_some_and(|s| s.set_buffer_limit(limit)) {
                freed.push(*id);
            }
        }
        freed.sort_unstable();
        for id in freed {
            self.after_send_change(id);
        }
    }

    /// The current per-stream send buffer limit (see [`Self::set_send_buffer_floor`]).
    pub fn send_buffer(&self) -> u64 {
        self.send_buffer
    }

    /// Bytes the application may write on `id` now (see [`SendPart::room`]): within the
    /// send buffer, and no more than `slack` bytes past the peer's credit for the stream and
    /// for the connection (MAX_DATA, counted over every byte written on any stream). A
    /// server that writes only this much holds, per connection, at most the peer's credit
    /// plus `slack` per stream, however large the response. At 0 a
    /// [`StreamEvent::Writable`] follows when the room grows.
    pub fn send_room(&mut self, id: StreamId, slack: u64) -> u64 {
        if self.closed.is_some() {
            return 0;
        }
        let conn_room =
            self.conn_send.max().saturating_add(slack).saturating_sub(self.written_total);
        let Some(send) = self.streams.get_mut(&id).and_then(|e| e.send.as_mut()) else {
            return 0;
        };
        let room = send.room(slack);
        if room > 0 && conn_room == 0 {
            if !self.room_waiters.contains(&id) {
                self.room_waiters.push(id);
            }
            return 0;
        }
        room.min(conn_room)
    }

    /// MAX_DATA grew: streams that found no connection-level room may write again.
    fn wake_room_waiters(&mut self) {
        for id in std::mem::take(&mut self.room_waiters) {
            if self.streams.get(&id).and_then(|e| e.send.as_ref()).is_some() {
                self.events.push_back(StreamEvent::Writable { id });
            }
        }
    }

    /// Writes `data` (and FIN when `fin`) on `id`. On success the returned [`WriteId`] gets
    /// exactly one [`StreamEvent::WriteComplete`]; a refused write gets none.
    pub fn write(&mut self, id: StreamId, data: Bytes, fin: bool) -> Result<WriteId, WriteError> {
        if self.closed.is_some() {
            return Err(WriteError::Closed);
        }
        let send = self
            .streams
            .get_mut(&id)
            .and_then(|e| e.send.as_mut())
            .ok_or(WriteError::UnknownStream)?;
        let write = WriteId(self.next_write);
        let len = data.len() as u64;
        send.write(write, data, fin)?;
        self.next_write += 1;
        self.written_total += len;
        self.maybe_schedule(id);
        Ok(write)
    }

    /// Ends the sending part of `id` (a FIN with no data); completes like any write.
    pub fn finish(&mut self, id: StreamId) -> Result<WriteId, WriteError> {
        self.write(id, Bytes::new(), true)
    }

    /// Abandons the sending part of `id` with `error_code`: unfinished writes are cancelled
    /// and RESET_STREAM is queued.
    pub fn reset(&mut self, id: StreamId, error_code: u64) -> Result<(), ClosedStream> {
        let send = self.streams.get_mut(&id).and_then(|e| e.send.as_mut()).ok_or(ClosedStream)?;
        send.reset(error_code)?;
        self.control.insert(id);
        self.after_send_change(id);
        Ok(())
    }

    /// Copies in-order data of `id` into `buf`: `(bytes, fin)`.
    pub fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<(usize, bool), ReadError> {
        let recv = self.recv_mut(id)?;
        let r = recv.read(buf);
        self.after_read(id);
        r
    }

    /// Takes in-order pieces of `id` into `out` as repeated [`read_chunk`](Self::read_chunk)
    /// calls of at most `max_chunk` bytes would, while `room` (decreased by what is taken)
    /// lasts; the stream's bookkeeping (credit release, MAX_STREAM_DATA, freeing) runs once.
    /// Returns whether the end of the stream was reached; `Ok(false)` when nothing more is
    /// available now or `room` ran out. Errors as [`read_chunk`](Self::read_chunk), except
    /// that `Blocked` is `Ok(false)`.
    pub fn read_chunks(
        &mut self,
        id: StreamId,
        room: &mut usize,
        max_chunk: usize,
        out: &mut Vec<Bytes>,
    ) -> Result<bool, ReadError> {
        if *room == 0 {
            return Ok(false);
        }
        let recv = self.recv_mut(id)?;
        let mut result = Ok(false);
        while *room > 0 {
            match recv.read_chunk((*room).min(max_chunk)) {
                Ok(c) => {
                    *room = room.saturating_sub(c.data.len());
                    if c.fin {
                        out.extend((!c.data.is_empty()).then_some(c.data));
                        result = Ok(true);
                        break;
                    }
                    if c.data.is_empty() {
                        break;
                    }
                    out.push(c.data);
                }
                Err(ReadError::Blocked) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.after_read(id);
        result
    }

    /// Takes the next in-order piece of `id` (at most `max` bytes) without copying.
    pub fn read_chunk(&mut self, id: StreamId, max: usize) -> Result<RecvChunk, ReadError> {
        let recv = self.recv_mut(id)?;
        let r = recv.read_chunk(max);
        self.after_read(id);
        r
    }

    fn recv_mut(&mut self, id: StreamId) -> Result<&mut RecvPart, ReadError> {
        if self.closed.is_some() {
            return Err(ReadError::Closed);
        }
        self.streams.get_mut(&id).and_then(|e| e.recv.as_mut()).ok_or(ReadError::Closed)
    }

    fn after_read(&mut self, id: StreamId) {
        let Some(recv) = self.streams.get_mut(&id).and_then(|e| e.recv.as_mut()) else { return };
        self.conn_recv.on_consumed(recv.take_released());
        if recv.max_stream_data_due() {
            self.control.insert(id);
        }
        self.maybe_free(id);
    }

    /// Stops reading `id` with `error_code`: buffered data is dropped and STOP_SENDING is
    /// queued while the peer may still be sending.
    pub fn stop_sending(&mut self, id: StreamId, error_code: u64) -> Result<(), ClosedStream> {
        if self.closed.is_some() {
            return Err(ClosedStream);
        }
        let recv = self.streams.get_mut(&id).and_then(|e| e.recv.as_mut()).ok_or(ClosedStream)?;
        recv.stop(error_code)?;
        self.control.insert(id);
        self.after_read(id);
        Ok(())
    }

    /// Sets the send priority of `id` (higher is served first; default 0).
    pub fn set_priority(&mut self, id: StreamId, priority: i32) -> Result<(), ClosedStream> {
        let e = self.streams.get_mut(&id).ok_or(ClosedStream)?;
        let old = std::mem::replace(&mut e.priority, priority);
        if e.queued && old != priority && self.scheduler.remove(id, old) {
            self.scheduler.push_back(id, priority);
        }
        Ok(())
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }

    /// Cancels every unfinished write with `reason` and drops all streams: the connection
    /// closed, timed out, or the endpoint is going away. Idempotent.
    pub fn cancel_all(&mut self, reason: CancelReason) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(reason);
        let ids = self.sorted_ids();
        for id in ids {
            if let Some(send) = self.streams.get_mut(&id).and_then(|e| e.send.as_mut()) {
                send.cancel_all(reason);
                self.drain_completions(id);
            }
        }
        self.streams.clear();
        self.scheduler = StreamScheduler::default();
        self.conn_blocked.clear();
        self.control.clear();
    }

    /// Whether [`Self::cancel_all`] ran.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// The state of the sending part of `id`, while the stream is tracked.
    pub fn send_state(&self, id: StreamId) -> Option<SendState> {
        self.streams.get(&id)?.send.as_ref().map(|s| s.state())
    }

    /// The state of the receiving part of `id`, while the stream is tracked.
    pub fn recv_state(&self, id: StreamId) -> Option<RecvState> {
        self.streams.get(&id)?.recv.as_ref().map(|r| r.state())
    }

    /// Number of streams currently tracked (open, or waiting for acknowledgements).
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether no stream is tracked.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Our current limit on peer streams of type `dir` (the last MAX_STREAMS value).
    pub fn max_remote_streams(&self, dir: Dir) -> u64 {
        self.max_remote[dir.index()]
    }

    /// The peer's current limit on streams of type `dir` that we open.
    pub fn max_local_streams(&self, dir: Dir) -> u64 {
        self.peer_max_streams[dir.index()]
    }

    /// Memory held by the receiving parts of every stream for data not yet read, in bytes
    /// ([`RecvPart::footprint`]): buffered in-order pieces and out-of-order blocks.
    pub fn recv_footprint(&self) -> usize {
        self.streams.values().filter_map(|e| e.recv.as_ref()).map(RecvPart::footprint).sum()
    }

    /// Connection-level receive credit.
    pub fn conn_recv(&self) -> &RecvFlow {
        &self.conn_recv
    }

    /// Connection-level send credit.
    pub fn conn_send(&self) -> &SendFlow {
        &self.conn_send
    }

    /// Moves completions of `id` into the event queue.
    fn drain_completions(&mut self, id: StreamId) {
        let Some(send) = self.streams.get_mut(&id).and_then(|e| e.send.as_mut()) else { return };
        while let Some(c) = send.poll_completion() {
            self.events.push_back(StreamEvent::WriteComplete {
                id,
                write: c.write,
                outcome: c.outcome,
            });
        }
    }

    /// After any change to a sending part: events, scheduling, freeing.
    fn after_send_change(&mut self, id: StreamId) {
        self.drain_completions(id);
        if let Some(send) = self.streams.get_mut(&id).and_then(|e| e.send.as_mut()) {
            if send.take_writable() {
                self.events.push_back(StreamEvent::Writable { id });
            }
            if send.reset_pending() {
                self.control.insert(id);
            }
        }
        self.maybe_schedule(id);
        self.maybe_free(id);
    }

    /// Puts `id` in the scheduler if it can send, or records why it cannot.
    fn maybe_schedule(&mut self, id: StreamId) {
        let avail = self.conn_send.available();
        let Some(e) = self.streams.get_mut(&id) else { return };
        let Some(send) = e.send.as_mut() else { return };
        if send.wants_send(avail) {
            if !e.queued {
                e.queued = true;
                e.turn = 0;
                self.scheduler.push_back(id, e.priority);
            }
        } else if avail == 0 && send.blocked_by_connection() {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-19.12
            //# A sender SHOULD send a DATA_BLOCKED frame (type=0x14) when it wishes
            //# to send data but is unable to do so due to connection-level flow
            //# control; see Section 4.
            self.conn_send.on_blocked();
            if !e.conn_blocked {
                e.conn_blocked = true;
                self.conn_blocked.push(id);
            }
        }
        send.note_blocked();
        if send.flow().blocked_pending() {
            self.control.insert(id);
        }
    }

    /// Re-examines streams that waited for connection credit.
    fn wake_conn_blocked(&mut self) {
        for id in std::mem::take(&mut self.conn_blocked) {
            if let Some(e) = self.streams.get_mut(&id) {
                e.conn_blocked = false;
            }
            self.maybe_schedule(id);
        }
    }

    /// Frees `id` once both parts are terminal and nothing is left to send for it; a freed
    /// peer-initiated stream gives the peer one more stream of its type.
    /// Every stream's ID, in ascending order (walks whose order shows in events).
    fn sorted_ids(&self) -> Vec<StreamId> {
        let mut ids: Vec<StreamId> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    fn maybe_free(&mut self, id: StreamId) {
        let Some(e) = self.streams.get(&id) else { return };
        let send_done = e.send.as_ref().is_none_or(|s| s.is_terminal());
        let recv_done = e.recv.as_ref().is_none_or(|r| r.is_terminal() && !r.stop_pending());
        if !(send_done && recv_done) {
            return;
        }
        self.streams.remove(&id);
        self.control.remove(&id);
        if !id.is_local(self.role) {
            let d = id.dir().index();
            //= https://www.rfc-editor.org/rfc/rfc9000#section-4.6
            //# Implementations might choose
            //# to increase limits as streams are closed, to keep the number of
            //# streams available to peers roughly consistent.
            if self.max_remote[d] < MAX_STREAM_COUNT {
                self.max_remote[d] += 1;
                self.max_streams_pending[d] = true;
            }
        }
    }
}
