//! Per-connection state in the owner worker: the sans-IO [`Connection`], its handles' shared
//! mailboxes, write completers, writes waiting for send-buffer space, opens waiting for stream
//! credit; and the worker's handling of commands, timers and connection events.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use peregrine_datapath::Queue;

use super::inbox::{Command, ConnOp};
use super::{Worker, MAX_COMMANDS_PER_ROUND};
use crate::api::shared::{Completer, ConnShared, OpenSlot, StreamShared, WriteStatus};
use crate::api::ConnError;
use crate::connection::{Connection, EndpointEvent, Event};
use crate::endpoint::ConnectionHandle;
use crate::scheduler::{CloseFlag, ConnectionSet, Interest};
use crate::streams::{
    CancelReason, Dir, OpenError, StreamEvent, StreamId, WriteError, WriteOutcome,
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
pub(crate) struct PendingWrite {
    data: Bytes,
    fin: bool,
    done: Completer,
}

/// One owned connection.
pub(crate) struct ConnState {
    pub conn: Connection,
    pub shared: Arc<ConnShared>,
    pub handle: ConnectionHandle,
    pub streams: HashMap<StreamId, Arc<StreamShared>>,
    pub writes: HashMap<u64, Completer>,
    pub blocked: HashMap<StreamId, VecDeque<PendingWrite>>,
    pub open_waiters: [VecDeque<Arc<OpenSlot>>; 2],
    pub timer_at: Option<Instant>,
    pub timer_gen: u64,
    pub dirty: bool,
    pub ended: bool,
    pub connected: bool,
    /// The handshake was confirmed and the router not told yet.
    pub confirmed: bool,
    /// The connection's qlog file, when the worker writes qlog.
    pub qlog: Option<super::qlog::QlogFile>,
    /// Scratch list for [`Self::pull`], kept to save an allocation per pull.
    chunks: Vec<Bytes>,
}

impl ConnState {
    pub(crate) fn new(conn: Connection, shared: Arc<ConnShared>, handle: ConnectionHandle) -> Self {
        Self {
            conn,
            shared,
            handle,
            streams: HashMap::new(),
            writes: HashMap::new(),
            blocked: HashMap::new(),
            open_waiters: [VecDeque::new(), VecDeque::new()],
            timer_at: None,
            timer_gen: 0,
            dirty: false,
            ended: false,
            connected: false,
            confirmed: false,
            qlog: None,
            chunks: Vec::new(),
        }
    }

    /// Appends the connection's new qlog records to its file (a no-op without qlog).
    pub(crate) fn write_qlog(&mut self) {
        if let Some(f) = self.qlog.as_mut() {
            if !f.write(&mut self.conn) {
                self.qlog = None;
            }
        }
    }

    /// The shared state of stream `id`, created (and announced to `accept` when the peer
    /// opened it) on first sight.
    fn stream(&mut self, id: StreamId) -> Arc<StreamShared> {
        if let Some(s) = self.streams.get(&id) {
            return s.clone();
        }
        let s = Arc::new(StreamShared::new(id));
        let known = self.conn.streams().send_state(id).is_some()
            || self.conn.streams().recv_state(id).is_some();
        if !known {
            // A late event for a stream the stream manager already freed: nothing to announce.
            return s;
        }
        self.streams.insert(id, s.clone());
        if !id.is_local(self.conn.streams().role()) {
            self.shared.mail.update(|m| m.incoming[id.dir().index()].push_back(s.clone()));
        }
        s
    }

    /// Pulls received data of `id` into its mailbox, up to the buffer limit.
    fn pull(&mut self, id: StreamId) {
        let s = self.stream(id);
        let have = s.mail.with(|m| m.buffered);
        let mut room = STREAM_RECV_BUFFER.saturating_sub(have);
        let mut chunks = std::mem::take(&mut self.chunks);
        let (mut fin, mut reset, mut closed) = (false, None, false);
        match self.conn.streams().read_chunks(id, &mut room, READ_CHUNK, &mut chunks) {
            Ok(f) => fin = f,
            Err(crate::streams::ReadError::Blocked) => {}
            Err(crate::streams::ReadError::Reset(code)) => reset = Some(code),
            Err(crate::streams::ReadError::Closed) => closed = true,
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
    fn write(&mut self, id: StreamId, data: Bytes, fin: bool, done: Completer) {
        if let Some(q) = self.blocked.get_mut(&id) {
            q.push_back(PendingWrite { data, fin, done });
            return;
        }
        match self.conn.write(id, data.clone(), fin) {
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
    fn retry_writes(&mut self, id: StreamId) {
        let Some(mut q) = self.blocked.remove(&id) else { return };
        while let Some(p) = q.pop_front() {
            match self.conn.write(id, p.data.clone(), p.fin) {
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
    fn serve_opens(&mut self, dir: Dir) {
        while let Some(slot) = self.open_waiters[dir.index()].pop_front() {
            if slot.with(|s| s.cancelled) {
                continue;
            }
            match self.conn.open(dir) {
                Ok(id) => self.deliver_open(slot, id),
                Err(OpenError::Blocked) => {
                    self.open_waiters[dir.index()].push_front(slot);
                    return;
                }
                Err(OpenError::Closed) => {
                    slot.update(|s| s.result = Some(Err(self.end_reason())));
                }
            }
        }
    }

    fn open(&mut self, dir: Dir, slot: Arc<OpenSlot>) {
        if !self.open_waiters[dir.index()].is_empty() {
            self.open_waiters[dir.index()].push_back(slot);
            return;
        }
        if slot.with(|s| s.cancelled) {
            return;
        }
        match self.conn.open(dir) {
            Ok(id) => self.deliver_open(slot, id),
            Err(OpenError::Blocked) => self.open_waiters[dir.index()].push_back(slot),
            Err(OpenError::Closed) => slot.update(|s| s.result = Some(Err(self.end_reason()))),
        }
    }

    fn deliver_open(&mut self, slot: Arc<OpenSlot>, id: StreamId) {
        let s = self.stream(id);
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
            let _ = self.conn.reset(id, 0);
            let _ = self.conn.stop_sending(id, 0);
            self.streams.remove(&id);
        }
    }

    /// Why the connection ended (or "closed locally" when the core kept no reason).
    fn end_reason(&self) -> ConnError {
        match self.conn.error() {
            Some(e) => ConnError::Connection(e.clone()),
            None => {
                ConnError::Connection(crate::connection::ConnectionError::LocallyClosed { code: 0 })
            }
        }
    }

    /// The connection ended: tell the handles, fail waiting opens, cancel blocked writes.
    fn on_ended(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.shared.close.mark_ended();
        let reason = self.end_reason();
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

    /// Hands out the connection's events: (drained, endpoint events, handshake completed now).
    fn drain_events(&mut self) -> (bool, Vec<EndpointEvent>, bool) {
        let mut drained = false;
        let mut connected_now = false;
        // Streams are reaped only after every queued event was handled: one packet can both
        // acknowledge our FIN (a `WriteComplete`) and carry the peer's RESET_STREAM, and the
        // stream manager frees the stream at once. Reaping on the first event would forget the
        // stream before its `Reset` event, and the reader would never learn the code.
        let mut touched = Vec::new();
        while let Some(ev) = self.conn.poll_event() {
            match ev {
                Event::Connected => {
                    connected_now = !self.connected;
                    self.connected = true;
                    let alpn = self.conn.alpn_protocol().map(<[u8]>::to_vec);
                    self.shared.mail.update(|m| {
                        m.alpn = alpn;
                        if m.handshake.is_none() {
                            m.handshake = Some(Ok(()));
                        }
                    });
                }
                Event::HandshakeConfirmed => self.confirmed = true,
                Event::HandshakeFailed { .. } | Event::ConnectionLost { .. } => self.on_ended(),
                Event::Stream(se) => touched.extend(self.on_stream_event(se)),
                Event::Drained => drained = true,
            }
        }
        for id in touched {
            self.reap(id);
        }
        if self.conn.is_closed() {
            self.on_ended();
        }
        let mut eps = Vec::new();
        while let Some(e) = self.conn.poll_endpoint_event() {
            if e == EndpointEvent::Drained {
                drained = true;
            }
            eps.push(e);
        }
        (drained || self.conn.is_drained(), eps, connected_now)
    }

    /// Forgets the shared state of `id` once the stream manager freed the stream (the
    /// handles keep their own reference to what was delivered).
    fn reap(&mut self, id: StreamId) {
        if self.streams.contains_key(&id)
            && self.conn.streams().send_state(id).is_none()
            && self.conn.streams().recv_state(id).is_none()
            && !self.blocked.contains_key(&id)
        {
            self.streams.remove(&id);
        }
    }

    /// Handles one stream event; returns the stream to consider for reaping once every queued
    /// event has been handled.
    fn on_stream_event(&mut self, ev: StreamEvent) -> Option<StreamId> {
        let id = match ev {
            StreamEvent::Opened { id }
            | StreamEvent::Readable { id }
            | StreamEvent::Writable { id }
            | StreamEvent::Finished { id }
            | StreamEvent::Reset { id, .. }
            | StreamEvent::Stopped { id, .. }
            | StreamEvent::WriteComplete { id, .. } => Some(id),
            StreamEvent::Available { .. } => None,
        };
        self.on_stream_event_inner(ev);
        id
    }

    fn on_stream_event_inner(&mut self, ev: StreamEvent) {
        match ev {
            StreamEvent::Opened { id } => {
                self.stream(id);
            }
            StreamEvent::Readable { id } => self.pull(id),
            StreamEvent::Writable { id } => self.retry_writes(id),
            StreamEvent::Finished { id } => {
                if let Some(s) = self.streams.get(&id) {
                    s.mail.update(|m| m.send_finished = true);
                }
            }
            StreamEvent::Reset { id, error_code } => {
                // The stream manager may free a stream as soon as the reset arrived (its
                // receive part counts ResetRecvd as terminal): record the code from the event.
                let s = self.stream(id);
                s.mail.update(|m| m.reset = Some(error_code));
                self.pull(id);
            }
            StreamEvent::Stopped { id, error_code } => {
                self.cancel_blocked(Some(id), CancelReason::StopSending(error_code));
                let s = self.stream(id);
                s.mail.update(|m| m.stopped = Some(error_code));
            }
            StreamEvent::WriteComplete { write, outcome, .. } => {
                if let Some(done) = self.writes.remove(&write.0) {
                    done.complete(match outcome {
                        WriteOutcome::Delivered => WriteStatus::Delivered,
                        WriteOutcome::Cancelled(r) => WriteStatus::Cancelled(r),
                    });
                }
            }
            StreamEvent::Available { dir } => self.serve_opens(dir),
        }
    }

    /// Final cleanup when the state is dropped from the worker.
    pub(crate) fn finish(&mut self, reason: Option<ConnError>) {
        if let Some(r) = reason {
            self.shared.mail.update(|m| {
                if m.error.is_none() {
                    m.error = Some(r);
                }
            });
        }
        self.on_ended();
        if let Some(f) = self.qlog.take() {
            f.finish(&mut self.conn);
        }
        let cancel = match self.conn.error() {
            Some(crate::connection::ConnectionError::TimedOut) => CancelReason::IdleTimeout,
            _ => CancelReason::ConnectionClosed,
        };
        for (_, done) in self.writes.drain() {
            done.complete(WriteStatus::Cancelled(cancel));
        }
        self.cancel_blocked(None, cancel);
        let stats = self.conn.stats();
        self.shared.mail.update(|m| {
            m.drained = true;
            m.stats = stats;
        });
    }
}

fn cancel_reason(e: &ConnError) -> CancelReason {
    match e {
        ConnError::Connection(crate::connection::ConnectionError::TimedOut) => {
            CancelReason::IdleTimeout
        }
        ConnError::EndpointStopped => CancelReason::EndpointDropped,
        _ => CancelReason::ConnectionClosed,
    }
}

/// The worker's connections by key. Keys are assigned locally (a counter), never by a peer,
/// so the fast unkeyed hasher is safe here.
#[derive(Default)]
pub(crate) struct Conns(rustc_hash::FxHashMap<u64, ConnState>);

impl Conns {
    pub(crate) fn get_mut(&mut self, key: u64) -> Option<&mut ConnState> {
        self.0.get_mut(&key)
    }
    pub(crate) fn insert(&mut self, key: u64, st: ConnState) {
        self.0.insert(key, st);
    }
    pub(crate) fn remove(&mut self, key: u64) -> Option<ConnState> {
        self.0.remove(&key)
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
    pub(crate) fn keys(&self) -> Vec<u64> {
        self.0.keys().copied().collect()
    }
    pub(crate) fn contains(&self, key: u64, generation: u64) -> bool {
        self.0.get(&key).is_some_and(|s| s.timer_gen == generation)
    }
}

impl ConnectionSet for Conns {
    fn get(&mut self, key: u64) -> Option<(&mut Connection, &CloseFlag)> {
        self.0.get_mut(&key).map(|s| (&mut s.conn, &s.shared.close))
    }
}

impl<Q: Queue> Worker<Q> {
    /// Applies up to [`MAX_COMMANDS_PER_ROUND`] commands from the inbox.
    pub(super) fn run_commands(&mut self, now: Instant) {
        for _ in 0..MAX_COMMANDS_PER_ROUND {
            let Some(cmd) = self.inbox.pop() else { break };
            self.stats.commands += 1;
            match cmd {
                Command::Connect { server_name, conn } => self.connect(now, &server_name, conn),
                Command::Datagram { remote, local_ip, ecn, mut data } => {
                    self.route(now, remote, local_ip, ecn, &mut data, false);
                }
                Command::Conn { id, op } => self.conn_op(now, id, op),
                Command::Shutdown { code, reason } => {
                    self.shutting_down = true;
                    for key in self.conns.keys() {
                        if let Some(st) = self.conns.get_mut(key) {
                            st.shared.close.request();
                            st.conn.close(now, code, &reason);
                        }
                        self.scheduler.schedule(key, Interest::Close);
                        self.mark_dirty(key);
                    }
                }
                Command::ForceDrain => {
                    for key in self.conns.keys() {
                        self.stats.forced_drains += 1;
                        self.remove_connection(key, None);
                    }
                }
                Command::Stop => {
                    self.stop = true;
                    return;
                }
            }
        }
    }

    fn conn_op(&mut self, now: Instant, id: u64, op: ConnOp) {
        let Some(st) = self.conns.get_mut(id) else {
            // Gone already: complete what needs completing. A write never reached the
            // connection: nothing was queued, so it is refused, not accepted-then-cancelled.
            match op {
                ConnOp::Write { done, .. } => {
                    done.complete(WriteStatus::Refused(WriteError::Closed))
                }
                ConnOp::Open { slot, .. } => slot.update(|s| {
                    if s.result.is_none() {
                        s.result = Some(Err(ConnError::Closed));
                    }
                }),
                _ => {}
            }
            return;
        };
        let mut why = Interest::Data;
        match op {
            ConnOp::Open { dir, slot } => st.open(dir, slot),
            ConnOp::Write { stream, data, fin, done } => st.write(stream, data, fin, done),
            ConnOp::Reset { stream, code } => {
                st.cancel_blocked(Some(stream), CancelReason::Reset(code));
                let _ = st.conn.reset(stream, code);
            }
            ConnOp::Priority { stream, priority } => {
                // A stream that is already gone has nothing left to schedule.
                let _ = st.conn.streams().set_priority(stream, priority);
            }
            ConnOp::Stop { stream, code } => {
                let _ = st.conn.stop_sending(stream, code);
                st.reap(stream);
            }
            ConnOp::ReadMore { stream } => {
                st.pull(stream);
                st.reap(stream);
            }
            ConnOp::Close { code, reason } => {
                why = Interest::Close;
                st.conn.close(now, code, &reason);
            }
        }
        self.scheduler.schedule(id, why);
        self.mark_dirty(id);
    }

    /// Runs every due timer.
    pub(super) fn run_timers(&mut self, now: Instant) {
        while let Some((_, key, generation)) = self.timers.pop_due(now) {
            let Some(st) = self.conns.get_mut(key) else { continue };
            if st.timer_gen != generation {
                continue;
            }
            st.timer_at = None;
            st.conn.handle_timeout(now);
            self.stats.timeouts += 1;
            self.scheduler.schedule(key, Interest::Probe);
            self.mark_dirty(key);
        }
        if self.timers.len() > 4 * self.conns.len() + 1024 {
            let conns = &self.conns;
            self.timers.compact(|k, g| conns.contains(k, g));
        }
    }

    /// Re-arms the timer of `key` when its deadline moved.
    pub(super) fn refresh_timer(&mut self, key: u64) {
        let Some(st) = self.conns.get_mut(key) else { return };
        st.write_qlog();
        let t = st.conn.poll_timeout();
        if t != st.timer_at {
            st.timer_at = t;
            st.timer_gen += 1;
            if let Some(t) = t {
                self.timers.push(t, key, st.timer_gen);
            }
        }
    }

    /// Hands out events of every touched connection; removes drained ones.
    pub(super) fn process_dirty(&mut self, _now: Instant) {
        let dirty = std::mem::take(&mut self.dirty);
        for key in dirty {
            let Some(st) = self.conns.get_mut(key) else { continue };
            st.dirty = false;
            let (drained, eps, connected_now) = st.drain_events();
            let handle = st.handle;
            if std::mem::take(&mut st.confirmed) {
                // No more Initial / 0-RTT routing by the client's DCID; not a handshake anymore.
                self.router.handshake_done(handle);
            }
            let stats = st.conn.stats();
            st.shared.mail.with(|m| m.stats = stats);
            if connected_now && st.conn.side() == crate::crypto::Side::Client {
                // The server's handshake connection ID is the one in use: remember its reset
                // token so a stateless reset (random DCID, unroutable) finds this connection.
                let token = st.conn.peer_params().and_then(|p| p.stateless_reset_token);
                if let Some(token) = token {
                    let _ = self.router.add_peer_reset_token(handle, st.shared.remote, token);
                }
            }
            if connected_now && st.conn.side() == crate::crypto::Side::Server {
                let shared = st.shared.clone();
                self.ctx.incoming.update(|q| {
                    // After shutdown began, accept yields nothing more.
                    if !q.closed {
                        q.queue.push_back(shared);
                    }
                });
            }
            for e in eps {
                match e {
                    EndpointEvent::NewLocalCid { cid, .. } => {
                        let _ = self.router.insert_cid(handle, cid);
                    }
                    EndpointEvent::RetiredLocalCid { cid, .. } => {
                        self.router.retire_cid(handle, &cid);
                    }
                    EndpointEvent::Drained => {}
                }
            }
            if drained {
                self.remove_connection(key, None);
                continue;
            }
            self.refresh_timer(key);
        }
    }

    /// Drops connection `key` from every table; accounts for it exactly once.
    pub(super) fn remove_connection(&mut self, key: u64, reason: Option<ConnError>) {
        let Some(mut st) = self.conns.remove(key) else { return };
        tracing::debug!(
            worker = self.index,
            conn = key,
            remote = %st.shared.remote,
            reason = ?reason,
            stats = ?st.conn.stats(),
            "connection removed"
        );
        st.finish(reason);
        self.router.remove_connection(st.handle);
        self.by_handle.remove(&st.handle);
        self.scheduler.remove(key);
        self.ctx.accounting.close();
    }
}
