//! The application side of a connection served by the thread-based handles
//! (`api::Connection` and its streams): their shared waking cells, write completers, writes
//! waiting for send-buffer space, opens waiting for stream credit. The worker applies the
//! handles' commands here and turns the connection's events into waking cell updates.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::connection::{Connection, ConnectionError, Event};
use crate::handoff::shared::{Completer, ConnShared, OpenSlot, StreamShared, WriteStatus};
use crate::handoff::{ConnError, ConnOp, MigrateError};
use crate::streams::{
    CancelReason, Dir, OpenError, ReadError, StreamEvent, StreamId, WriteError, WriteOutcome,
};

/// Most received bytes a stream buffers for the application before the worker stops pulling
/// (the connection's flow control then holds the peer back).
pub(crate) const STREAM_RECV_BUFFER: usize = 1 << 20;
/// A paused stream resumes pulling when the application's buffer falls below this.
pub(crate) const STREAM_RESUME_BELOW: usize = STREAM_RECV_BUFFER / 2;
/// Largest piece pulled from a stream at once.
const READ_CHUNK: usize = 64 * 1024;

/// A write waiting for send-buffer space.
#[derive(Debug)]
struct PendingWrite {
    data: Bytes,
    fin: bool,
    done: Completer,
}

/// The handles' side of one connection.
#[derive(Debug)]
pub(crate) struct HandleState {
    pub shared: Arc<ConnShared>,
    streams: HashMap<StreamId, Arc<StreamShared>>,
    writes: HashMap<u64, Completer>,
    blocked: HashMap<StreamId, VecDeque<PendingWrite>>,
    open_waiters: [VecDeque<Arc<OpenSlot>>; 2],
    ended: bool,
    /// Scratch list for [`Self::pull`], kept to save an allocation per pull.
    chunks: Vec<Bytes>,
    /// Streams touched by the events being handed out (reaped after the last one).
    touched: Vec<StreamId>,
}

impl HandleState {
    pub(crate) fn new(shared: Arc<ConnShared>) -> Self {
        Self {
            shared,
            streams: HashMap::new(),
            writes: HashMap::new(),
            blocked: HashMap::new(),
            open_waiters: [VecDeque::new(), VecDeque::new()],
            ended: false,
            chunks: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// The shared state of stream `id`, created (and announced to `accept` when the peer
    /// opened it) on first sight.
    fn stream(&mut self, conn: &mut Connection, id: StreamId) -> Arc<StreamShared> {
        if let Some(s) = self.streams.get(&id) {
            return s.clone();
        }
        let s = Arc::new(StreamShared::new(id));
        let known =
            conn.streams().send_state(id).is_some() || conn.streams().recv_state(id).is_some();
        if !known {
            // A late event for a stream the stream manager already freed: nothing to announce.
            return s;
        }
        self.streams.insert(id, s.clone());
        if !id.is_local(conn.streams().role()) {
            self.shared.mail.update(|m| m.incoming[id.dir().index()].push_back(s.clone()));
        }
        s
    }

    /// Pulls received data of `id` into its waking cell, up to the buffer limit.
    fn pull(&mut self, conn: &mut Connection, id: StreamId) {
        let s = self.stream(conn, id);
        let have = s.mail.with(|m| m.buffered);
        let mut room = STREAM_RECV_BUFFER.saturating_sub(have);
        let mut chunks = std::mem::take(&mut self.chunks);
        let (mut fin, mut reset, mut closed) = (false, None, false);
        match conn.streams().read_chunks(id, &mut room, READ_CHUNK, &mut chunks) {
            Ok(f) => fin = f,
            Err(ReadError::Blocked) => {}
            Err(ReadError::Reset(code)) => reset = Some(code),
            Err(ReadError::Closed) => closed = true,
        }
        // Paused: out of room with the end of the stream not reached.
        let paused = room == 0 && !fin;
        s.mail.update(|m| {
            for c in chunks.drain(..) {
                m.buffered += c.len();
                m.chunks.push_back(c);
            }
            m.fin |= fin;
            if reset.is_some() {
                m.reset = reset;
            }
            if closed && !m.fin && m.reset.is_none() && m.closed.is_none() {
                m.closed = Some(ConnError::StreamClosed);
            }
            m.paused = paused;
        });
        self.chunks = chunks;
    }

    /// Tries a write now, or queues it behind earlier blocked writes of the stream.
    fn write(
        &mut self,
        conn: &mut Connection,
        id: StreamId,
        data: Bytes,
        fin: bool,
        done: Completer,
    ) {
        if let Some(q) = self.blocked.get_mut(&id) {
            q.push_back(PendingWrite { data, fin, done });
            return;
        }
        match conn.write(id, data.clone(), fin) {
            Ok(w) => {
                self.writes.insert(w.0, done);
            }
            Err(WriteError::Blocked) => {
                self.blocked.entry(id).or_default().push_back(PendingWrite { data, fin, done });
            }
            Err(e) => done.complete(WriteStatus::Refused(e)),
        }
    }

    /// Retries the blocked writes of `id` in order.
    fn retry_writes(&mut self, conn: &mut Connection, id: StreamId) {
        let Some(mut q) = self.blocked.remove(&id) else { return };
        while let Some(p) = q.pop_front() {
            match conn.write(id, p.data.clone(), p.fin) {
                Ok(w) => {
                    self.writes.insert(w.0, p.done);
                }
                Err(WriteError::Blocked) => {
                    q.push_front(p);
                    self.blocked.insert(id, q);
                    return;
                }
                Err(e) => p.done.complete(WriteStatus::Refused(e)),
            }
        }
    }

    /// Cancels the blocked writes of `id` (or of every stream) with `reason`.
    fn cancel_blocked(&mut self, id: Option<StreamId>, reason: CancelReason) {
        let qs: Vec<VecDeque<PendingWrite>> = match id {
            Some(id) => self.blocked.remove(&id).into_iter().collect(),
            None => self.blocked.drain().map(|(_, q)| q).collect(),
        };
        for q in qs {
            for p in q {
                p.done.complete(WriteStatus::Cancelled(reason));
            }
        }
    }

    /// Serves waiting opens of `dir` while credit lasts.
    fn serve_opens(&mut self, conn: &mut Connection, dir: Dir) {
        while let Some(slot) = self.open_waiters[dir.index()].pop_front() {
            if slot.with(|s| s.cancelled) {
                continue;
            }
            match conn.open(dir) {
                Ok(id) => self.deliver_open(conn, slot, id),
                Err(OpenError::Blocked) => {
                    self.open_waiters[dir.index()].push_front(slot);
                    return;
                }
                Err(OpenError::Closed) => {
                    slot.update(|s| s.result = Some(Err(end_reason(conn))));
                }
            }
        }
    }

    fn open(&mut self, conn: &mut Connection, dir: Dir, slot: Arc<OpenSlot>) {
        if !self.open_waiters[dir.index()].is_empty() {
            self.open_waiters[dir.index()].push_back(slot);
            return;
        }
        if slot.with(|s| s.cancelled) {
            return;
        }
        match conn.open(dir) {
            Ok(id) => self.deliver_open(conn, slot, id),
            Err(OpenError::Blocked) => self.open_waiters[dir.index()].push_back(slot),
            Err(OpenError::Closed) => slot.update(|s| s.result = Some(Err(end_reason(conn)))),
        }
    }

    fn deliver_open(&mut self, conn: &mut Connection, slot: Arc<OpenSlot>, id: StreamId) {
        let s = self.stream(conn, id);
        let taken = slot.update(|st| {
            if st.cancelled {
                false
            } else {
                st.result = Some(Ok(s.clone()));
                true
            }
        });
        if !taken {
            // The opener gave up while we opened: end the stream at once.
            let _ = conn.reset(id, 0);
            let _ = conn.stop_sending(id, 0);
            self.streams.remove(&id);
        }
    }

    /// The connection ended: tell the handles, fail waiting opens, cancel blocked writes.
    fn on_ended(&mut self, conn: &Connection) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.shared.close.mark_ended();
        let reason = end_reason(conn);
        for d in [Dir::Bi, Dir::Uni] {
            for slot in self.open_waiters[d.index()].drain(..) {
                slot.update(|s| s.result = Some(Err(reason.clone())));
            }
        }
        self.cancel_blocked(None, cancel_reason(&reason));
        for s in self.streams.values() {
            s.mail.update(|m| {
                if m.closed.is_none() {
                    m.closed = Some(reason.clone());
                }
            });
        }
        let r = reason.clone();
        self.shared.mail.update(|m| {
            if m.handshake.is_none() {
                m.handshake = Some(Err(r.clone()));
            }
            if m.error.is_none() {
                m.error = Some(r);
            }
        });
    }

    /// Hands one connection event to the handles.
    pub(crate) fn on_event(&mut self, conn: &mut Connection, ev: Event) {
        match ev {
            Event::Connected => {
                let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
                let early_data = conn.early_data_state();
                self.shared.mail.update(|m| {
                    publish_datagram_state(m, conn);
                    m.alpn = alpn;
                    m.early_data = early_data;
                    if m.handshake.is_none() {
                        m.handshake = Some(Ok(()));
                    }
                });
            }
            Event::HandshakeConfirmed | Event::Drained => {}
            Event::DatagramReceived => self.pull_datagrams(conn),
            Event::HandshakeFailed { .. } | Event::ConnectionLost { .. } => self.on_ended(conn),
            Event::Stream(se) => {
                if let Some(id) = self.on_stream_event(conn, se) {
                    self.touched.push(id);
                }
            }
        }
    }

    /// After the events of one turn: streams are reaped only after every queued event was
    /// handled — one packet can both acknowledge our FIN (a `WriteComplete`) and carry the
    /// peer's RESET_STREAM, and the stream manager frees the stream at once; reaping on the
    /// first event would forget the stream before its `Reset` event, and the reader would
    /// never learn the code. Then the counters are published.
    pub(crate) fn after_events(&mut self, conn: &mut Connection) {
        for id in std::mem::take(&mut self.touched) {
            self.reap(conn, id);
        }
        if conn.is_closed() {
            self.on_ended(conn);
        }
        let stats = conn.stats();
        self.shared.mail.with(|m| {
            m.stats = stats;
            publish_datagram_state(m, conn);
        });
    }

    /// Moves the connection's received datagrams into the mailbox (bounded like the
    /// connection's queue: the oldest unread is dropped and counted) and wakes readers.
    fn pull_datagrams(&mut self, conn: &mut Connection) {
        let cap = conn.datagram_queue_capacity();
        self.shared.mail.update(|m| {
            while let Some(d) = conn.recv_datagram() {
                if m.datagrams.len() >= cap {
                    m.datagrams.pop_front();
                    m.datagrams_dropped += 1;
                }
                m.datagrams.push_back(d);
            }
        });
    }

    /// Forgets the shared state of `id` once the stream manager freed the stream (the
    /// handles keep their own reference to what was delivered).
    fn reap(&mut self, conn: &mut Connection, id: StreamId) {
        if self.streams.contains_key(&id)
            && conn.streams().send_state(id).is_none()
            && conn.streams().recv_state(id).is_none()
            && !self.blocked.contains_key(&id)
        {
            self.streams.remove(&id);
        }
    }

    /// Handles one stream event; returns the stream to consider for reaping once every queued
    /// event has been handled.
    fn on_stream_event(&mut self, conn: &mut Connection, ev: StreamEvent) -> Option<StreamId> {
        match ev {
            StreamEvent::Opened { id } => {
                self.stream(conn, id);
                Some(id)
            }
            StreamEvent::Readable { id } => {
                self.pull(conn, id);
                Some(id)
            }
            StreamEvent::Writable { id } => {
                self.retry_writes(conn, id);
                Some(id)
            }
            StreamEvent::Finished { id } => {
                if let Some(s) = self.streams.get(&id) {
                    s.mail.update(|m| m.send_finished = true);
                }
                Some(id)
            }
            StreamEvent::Reset { id, error_code } => {
                // The stream manager may free a stream as soon as the reset arrived (its
                // receive part counts ResetRecvd as terminal): record the code from the event.
                let s = self.stream(conn, id);
                s.mail.update(|m| m.reset = Some(error_code));
                self.pull(conn, id);
                Some(id)
            }
            StreamEvent::Stopped { id, error_code } => {
                self.cancel_blocked(Some(id), CancelReason::StopSending(error_code));
                let s = self.stream(conn, id);
                s.mail.update(|m| m.stopped = Some(error_code));
                Some(id)
            }
            StreamEvent::WriteComplete { id, write, outcome } => {
                if let Some(done) = self.writes.remove(&write.0) {
                    done.complete(match outcome {
                        WriteOutcome::Delivered => WriteStatus::Delivered,
                        WriteOutcome::Cancelled(r) => WriteStatus::Cancelled(r),
                    });
                }
                Some(id)
            }
            StreamEvent::Available { dir } => {
                self.serve_opens(conn, dir);
                None
            }
        }
    }

    /// Applies one command of the handles.
    pub(crate) fn apply(&mut self, conn: &mut Connection, now: Instant, op: ConnOp) {
        match op {
            ConnOp::Open { dir, slot } => self.open(conn, dir, slot),
            ConnOp::Write { stream, data, fin, done } => self.write(conn, stream, data, fin, done),
            ConnOp::Reset { stream, code } => {
                self.cancel_blocked(Some(stream), CancelReason::Reset(code));
                let _ = conn.reset(stream, code);
            }
            ConnOp::Priority { stream, priority } => {
                // A stream that is already gone has nothing left to schedule.
                let _ = conn.streams().set_priority(stream, priority);
            }
            ConnOp::Stop { stream, code } => {
                let _ = conn.stop_sending(stream, code);
                self.reap(conn, stream);
            }
            ConnOp::ReadMore { stream } => {
                self.pull(conn, stream);
                self.reap(conn, stream);
            }
            ConnOp::Datagram { data } => {
                if conn.send_datagram(data).is_err() {
                    // Checked by the handle; the path shrank or the connection closed since.
                    self.shared.mail.with(|m| m.datagrams_dropped += 1);
                }
            }
            ConnOp::Close { code, reason } => conn.close(now, code, &reason),
            // The worker applies it (it owns the socket); never routed here.
            op @ ConnOp::Migrate { .. } => refuse_op(op),
        }
    }

    /// Final cleanup when the connection leaves its worker: every write completes, every
    /// waiter learns the end.
    pub(crate) fn finish(&mut self, conn: &mut Connection, reason: Option<ConnError>) {
        if let Some(r) = reason {
            self.shared.mail.update(|m| {
                if m.error.is_none() {
                    m.error = Some(r);
                }
            });
        }
        self.on_ended(conn);
        let cancel = match conn.error() {
            Some(ConnectionError::TimedOut) => CancelReason::IdleTimeout,
            _ => CancelReason::ConnectionClosed,
        };
        for (_, done) in self.writes.drain() {
            done.complete(WriteStatus::Cancelled(cancel));
        }
        self.cancel_blocked(None, cancel);
        let stats = conn.stats();
        self.shared.mail.update(|m| {
            m.drained = true;
            m.stats = stats;
        });
    }
}

/// Completes what an operation for a connection that is gone promised. A write never reached
/// the connection: nothing was queued, so it is refused, not accepted-then-cancelled.
pub(crate) fn refuse_op(op: ConnOp) {
    match op {
        ConnOp::Write { done, .. } => done.complete(WriteStatus::Refused(WriteError::Closed)),
        ConnOp::Open { slot, .. } => slot.update(|s| {
            if s.result.is_none() {
                s.result = Some(Err(ConnError::Closed));
            }
        }),
        ConnOp::Migrate { reply, .. } => reply.update(|r| *r = Some(Err(MigrateError::Closed))),
        _ => {}
    }
}

/// Copies what a handle needs to check a datagram before posting it.
pub(crate) fn publish_datagram_state(m: &mut crate::handoff::shared::ConnMail, conn: &Connection) {
    m.datagram_support = Some(conn.datagram_support());
    m.datagram_max = conn.max_datagram_payload();
    m.datagram_capacity = conn.datagram_queue_capacity();
}

/// Why the connection ended (or "closed locally" when the core kept no reason).
fn end_reason(conn: &Connection) -> ConnError {
    match conn.error() {
        Some(e) => ConnError::Connection(e.clone()),
        None => ConnError::Connection(ConnectionError::LocallyClosed { code: 0 }),
    }
}

fn cancel_reason(e: &ConnError) -> CancelReason {
    match e {
        ConnError::Connection(ConnectionError::TimedOut) => CancelReason::IdleTimeout,
        ConnError::EndpointStopped => CancelReason::EndpointDropped,
        _ => CancelReason::ConnectionClosed,
    }
}
