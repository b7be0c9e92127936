//! The perf client as handlers on the client endpoint's workers (docs/ARCHITECTURE.md
//! "Applications run where their connection lives"): each connection's stream slots — bulk
//! transfers or back-to-back requests — are driven by one [`PerfClient`] on the worker that
//! owns the connection, and each `--handshakes` slot by a chain of [`HandshakeClient`]s, one
//! per connection it makes. No thread per stream or per connection: a slot costs a few
//! dozen bytes of state. The handlers bump the slots' atomic [`StreamCounters`] (read by the
//! sampler on the main thread) and send one [`Report`] per connection start, slot end and
//! connection end to the main thread.

// A command, not the sans-IO core: it reads the wall clock for latencies and deadlines.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use peregrine_engine::api::Endpoint;
use peregrine_engine::app::{ConnCtx, ConnectionHandler};
use peregrine_engine::VarInt;
use peregrine_engine::{ConnectionError, ConnectionStats};
use peregrine_engine::{Dir, OpenError, ReadError, StreamId, WriteError, WriteId, WriteOutcome};
use rustc_hash::FxHashMap;

use super::protocol::{payload, Moved, Pacer, CHUNK, IO_TIMEOUT};
use super::rps::{self, RpsResult};
use super::sample::StreamCounters;
use super::stop::Stop;

/// How often a handler looks at the clock while it runs (Ctrl-C, its connection's counters
/// for the sampler, the no-progress timeout; the run's end has a timer of its own): every
/// 20 ms with up to 100 connections, less often with more (at most 500 ms apart), so that
/// thousands of connections do not wake their workers hundreds of thousands of times a second.
fn poll_every(connections: usize) -> Duration {
    (Duration::from_millis(20) * connections.div_ceil(100).max(1) as u32)
        .min(Duration::from_millis(500))
}

/// How often a connection whose handshake is done looks whether the run started: every
/// millisecond with up to 50 connections, at most 100 ms apart with more.
fn start_poll_every(connections: usize) -> Duration {
    (Duration::from_millis(1) * connections.div_ceil(50).max(1) as u32)
        .min(Duration::from_millis(100))
}

/// What one slot did, once it ended.
pub enum Done {
    /// A bulk transfer.
    Bulk(Moved),
    /// Requests back to back.
    Requests(RpsResult),
    /// Handshakes back to back: their latencies in microseconds.
    Handshakes(Histogram<u64>),
}

/// What the handlers tell the main thread.
pub enum Report {
    /// A connection completed its handshake (`Ok`) or could not (`Err`).
    Connected(Result<(), String>),
    /// Slot `slot` ended.
    Slot { slot: usize, result: Result<Done, String> },
    /// A connection ended (after its slots did, or instead).
    Closed,
}

/// What every handler of one run shares with the main thread.
pub struct Run {
    poll: Duration,
    start_poll: Duration,
    go: AtomicBool,
    deadline: OnceLock<Option<Instant>>,
    stop: Stop,
    pacer: Option<Arc<Pacer>>,
    reports: Mutex<Sender<Report>>,
}

impl Run {
    /// A run of `connections` connections, not started yet; `reports` receives every
    /// [`Report`].
    pub fn new(
        connections: usize,
        stop: Stop,
        pacer: Option<Arc<Pacer>>,
        reports: Sender<Report>,
    ) -> Arc<Self> {
        Arc::new(Run {
            poll: poll_every(connections),
            start_poll: start_poll_every(connections),
            go: AtomicBool::new(false),
            deadline: OnceLock::new(),
            stop,
            pacer,
            reports: Mutex::new(reports),
        })
    }

    /// Starts the slots of every connected [`PerfClient`]; the run ends at `deadline`.
    pub fn start(&self, deadline: Option<Instant>) {
        let _ = self.deadline.set(deadline);
        self.go.store(true, Ordering::Release);
    }

    fn started(&self) -> bool {
        self.go.load(Ordering::Acquire)
    }

    /// True once the run should end: its deadline passed or it was interrupted.
    pub fn ended(&self) -> bool {
        self.stop.interrupted()
            || self.deadline.get().copied().flatten().is_some_and(|d| Instant::now() >= d)
    }

    /// The handler's next look at the clock from `now`: a poll, or the run's end if sooner.
    fn next_poll(&self, now: Instant) -> Instant {
        let next = now + self.poll;
        match self.deadline.get().copied().flatten() {
            Some(d) if d > now => next.min(d),
            _ => next,
        }
    }

    fn report(&self, r: Report) {
        // One message per connection start, slot end or connection end: not per request.
        if let Ok(tx) = self.reports.lock() {
            let _ = tx.send(r);
        }
    }
}

/// What a [`PerfClient`] slot does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// One request of `up` bytes up and `down` bytes down; the run's end stops it.
    Bulk { up: u64, down: u64 },
    /// Requests of `up` bytes up and `down` down back to back until the run ends; the one
    /// in flight then completes.
    Requests { up: u64, down: u64 },
}

/// One stream slot of a [`PerfClient`].
struct Slot {
    index: usize,
    work: Work,
    counters: Arc<StreamCounters>,
    stream: Option<StreamId>,
    /// Waiting for the peer's stream limit.
    open_blocked: bool,
    header_sent: bool,
    left: u64,
    fin_sent: bool,
    /// Bytes the pacer granted that are not written yet, and when they may leave.
    paced: Option<(u64, Instant)>,
    got: u64,
    t0: Instant,
    moved: Moved,
    latency: Option<Histogram<u64>>,
    /// Writes not completed yet (acknowledged or cancelled).
    pending: usize,
    /// No more work: the slot ends once its writes completed (so that every byte the peer
    /// acknowledged is counted).
    finishing: bool,
    done: bool,
}

/// The handler of one perf connection: drives its stream slots.
pub struct PerfClient {
    run: Arc<Run>,
    stats: Arc<Mutex<ConnectionStats>>,
    slots: Vec<Slot>,
    by_stream: FxHashMap<StreamId, usize>,
    writes: FxHashMap<(StreamId, WriteId), (usize, u64)>,
    connected: bool,
    started: bool,
    last_progress: Instant,
}

impl PerfClient {
    /// The handler of one connection: its slots are `(global index, work, counters)`;
    /// its transport counters are published to `stats` while it runs.
    pub fn new(
        run: Arc<Run>,
        stats: Arc<Mutex<ConnectionStats>>,
        slots: Vec<(usize, Work, Arc<StreamCounters>)>,
    ) -> Result<Self, String> {
        let now = Instant::now();
        let slots = slots
            .into_iter()
            .map(|(index, work, counters)| {
                let latency = match work {
                    Work::Requests { .. } => Some(rps::histogram()?),
                    Work::Bulk { .. } => None,
                };
                Ok(Slot {
                    index,
                    work,
                    counters,
                    stream: None,
                    open_blocked: false,
                    header_sent: false,
                    left: 0,
                    fin_sent: false,
                    paced: None,
                    got: 0,
                    t0: now,
                    moved: Moved::default(),
                    latency,
                    pending: 0,
                    finishing: false,
                    done: false,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            run,
            stats,
            slots,
            by_stream: FxHashMap::default(),
            writes: FxHashMap::default(),
            connected: false,
            started: false,
            last_progress: now,
        })
    }

    fn publish(&self, cx: &ConnCtx<'_>) {
        if let Ok(mut s) = self.stats.lock() {
            *s = cx.stats();
        }
    }

    fn start(&mut self, cx: &mut ConnCtx<'_>) {
        self.started = true;
        self.last_progress = Instant::now();
        for i in 0..self.slots.len() {
            self.begin(cx, i);
        }
        cx.set_timer(Some(self.run.next_poll(cx.now())));
    }

    /// Opens slot `i`'s next stream and sends what it may.
    fn begin(&mut self, cx: &mut ConnCtx<'_>, i: usize) {
        let s = &mut self.slots[i];
        if s.done {
            return;
        }
        if s.finishing {
            return;
        }
        if matches!(s.work, Work::Requests { .. }) && self.run.ended() {
            s.finishing = true;
            return self.try_end(cx, i);
        }
        let id = match cx.open(Dir::Bi) {
            Ok(id) => id,
            Err(OpenError::Blocked) => {
                s.open_blocked = true;
                return;
            }
            Err(e) => return self.end_slot(cx, i, Err(e.to_string())),
        };
        let (Work::Bulk { up, .. } | Work::Requests { up, .. }) = s.work;
        s.open_blocked = false;
        s.stream = Some(id);
        s.header_sent = false;
        s.fin_sent = false;
        s.left = up;
        s.got = 0;
        s.t0 = Instant::now();
        self.by_stream.insert(id, i);
        self.send(cx, i);
    }

    /// Writes slot `i`'s header, upload and FIN as far as the stream's room and the pacer
    /// allow (`on_writable` or the timer continues).
    fn send(&mut self, cx: &mut ConnCtx<'_>, i: usize) {
        let pacer = self.run.pacer.clone();
        let s = &mut self.slots[i];
        let Some(id) = s.stream else { return };
        if s.fin_sent || s.done {
            return;
        }
        if !s.header_sent {
            let (Work::Bulk { down, .. } | Work::Requests { down, .. }) = s.work;
            // The 8-byte size is protocol, not payload: not counted.
            match cx.write(id, Bytes::copy_from_slice(&down.to_be_bytes()), false) {
                Ok(w) => {
                    s.header_sent = true;
                    s.pending += 1;
                    self.writes.insert((id, w), (i, 0));
                }
                Err(WriteError::Blocked) => return,
                Err(e) => return self.end_slot(cx, i, Err(e.to_string())),
            }
        }
        if s.finishing {
            s.left = 0;
            s.paced = None;
        }
        let p = payload();
        let chunk = pacer.as_deref().map_or(CHUNK, Pacer::chunk) as u64;
        while s.left > 0 {
            let room = cx.send_room(id);
            if room == 0 {
                return; // on_writable follows
            }
            let k = match pacer.as_deref() {
                Some(pacer) => {
                    // A paced grant is written whole: the pacer already counted it.
                    let (k, due) = match s.paced {
                        Some(g) => g,
                        None => {
                            let k = s.left.min(chunk);
                            *s.paced.insert((k, pacer.reserve(k)))
                        }
                    };
                    if due > Instant::now() {
                        cx.set_timer(Some(cx.timer().map_or(due, |t| t.min(due))));
                        return;
                    }
                    k
                }
                None => s.left.min(room).min(CHUNK as u64),
            };
            match cx.write(id, p.slice(..k as usize), false) {
                Ok(w) => {
                    s.paced = None;
                    s.left -= k;
                    s.moved.up += k;
                    s.pending += 1;
                    self.writes.insert((id, w), (i, k));
                }
                Err(WriteError::Blocked) => return,
                Err(e) => return self.end_slot(cx, i, Err(e.to_string())),
            }
        }
        match cx.finish(id) {
            Ok(w) => {
                s.fin_sent = true;
                s.pending += 1;
                self.writes.insert((id, w), (i, 0));
            }
            Err(WriteError::Blocked) => {}
            Err(e) => self.end_slot(cx, i, Err(e.to_string())),
        }
    }

    /// Ends slot `i` if it has no more work and every write of it completed.
    fn try_end(&mut self, cx: &mut ConnCtx<'_>, i: usize) {
        let s = &self.slots[i];
        if s.finishing && s.pending == 0 && !s.done {
            self.end_slot(cx, i, Ok(()));
        }
    }

    /// The run ended: bulk slot `i` stops its upload (FIN after what was written) and its
    /// download (STOP_SENDING); what moved so far counts.
    fn cut(&mut self, cx: &mut ConnCtx<'_>, i: usize) {
        let s = &mut self.slots[i];
        if s.finishing || s.done {
            return;
        }
        s.finishing = true;
        if let Some(id) = s.stream {
            if !s.moved.complete {
                let _ = cx.stop_sending(id, 0);
            }
        }
        self.send(cx, i);
        self.try_end(cx, i);
    }

    /// Slot `i`'s response ended with its FIN.
    fn response_done(&mut self, cx: &mut ConnCtx<'_>, i: usize) {
        let s = &mut self.slots[i];
        if let Some(id) = s.stream.take() {
            self.by_stream.remove(&id);
        }
        match s.work {
            Work::Bulk { .. } => {
                s.moved.complete = true;
                s.finishing = true;
                self.try_end(cx, i);
            }
            Work::Requests { down, .. } => {
                if s.got != down {
                    let e = format!("response of {} bytes, expected {down}", s.got);
                    return self.end_slot(cx, i, Err(e));
                }
                let us = (s.t0.elapsed().as_micros() as u64).clamp(1, 100_000_000);
                if let Some(h) = s.latency.as_mut() {
                    if let Err(e) = h.record(us) {
                        return self.end_slot(cx, i, Err(e.to_string()));
                    }
                }
                s.counters.add_request();
                self.begin(cx, i);
            }
        }
    }

    /// Ends slot `i` (once) and reports it; closes the connection after its last slot.
    fn end_slot(&mut self, cx: &mut ConnCtx<'_>, i: usize, result: Result<(), String>) {
        let s = &mut self.slots[i];
        if s.done {
            return;
        }
        s.done = true;
        if let Some(id) = s.stream.take() {
            self.by_stream.remove(&id);
            if result.is_err() {
                let _ = cx.stop_sending(id, 0);
                let _ = cx.reset(id, 0);
            }
        }
        let result = result.and_then(|()| match s.work {
            Work::Bulk { .. } => Ok(Done::Bulk(s.moved)),
            Work::Requests { .. } => Ok(Done::Requests(RpsResult {
                latency_us: s.latency.take().ok_or("latency recorded twice")?,
            })),
        });
        self.run.report(Report::Slot { slot: s.index, result });
        if self.slots.iter().all(|s| s.done) {
            self.publish(cx);
            cx.close(VarInt::from_u32(0), b"done");
        }
    }

    /// Checks the run's end and the no-progress timeout, and resumes paced slots.
    fn poll(&mut self, cx: &mut ConnCtx<'_>) {
        self.publish(cx);
        let ended = self.run.ended();
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.done {
                continue;
            }
            match s.work {
                Work::Bulk { .. } if ended => self.cut(cx, i),
                // A request in flight when the run ends is finished (its latency is real).
                Work::Requests { .. } if ended && s.stream.is_none() => {
                    self.slots[i].finishing = true;
                    self.try_end(cx, i);
                }
                _ if s.paced.is_some() => self.send(cx, i),
                _ => {}
            }
        }
        let active = self.slots.iter().any(|s| !s.done);
        if active && self.last_progress.elapsed() > IO_TIMEOUT {
            let t = crate::config::format_duration(IO_TIMEOUT);
            for i in 0..self.slots.len() {
                self.end_slot(cx, i, Err(format!("no progress within {t}")));
            }
        }
        if self.slots.iter().any(|s| !s.done) {
            let next = self.run.next_poll(cx.now());
            cx.set_timer(Some(cx.timer().map_or(next, |t| t.min(next)).max(cx.now())));
        }
    }
}

impl ConnectionHandler for PerfClient {
    fn on_connected(&mut self, cx: &mut ConnCtx<'_>) {
        self.connected = true;
        self.publish(cx);
        self.run.report(Report::Connected(Ok(())));
        if self.run.started() {
            self.start(cx);
        } else {
            cx.set_timer(Some(cx.now() + self.run.start_poll));
        }
    }

    fn on_readable(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {
        let cut = |i: usize| self.slots[i].finishing && !self.slots[i].moved.complete;
        let Some(&i) = self.by_stream.get(&id).filter(|&&i| !cut(i)) else {
            // A stream this client gave up (or a server-opened one): drop what came.
            while let Ok(c) = cx.read_chunk(id, usize::MAX) {
                if c.fin || c.data.is_empty() {
                    break;
                }
            }
            return;
        };
        loop {
            match cx.read_chunk(id, usize::MAX) {
                Ok(c) => {
                    let n = c.data.len() as u64;
                    if n > 0 {
                        let s = &mut self.slots[i];
                        s.counters.add_received(n);
                        s.moved.down += n;
                        s.got += n;
                        self.last_progress = Instant::now();
                    }
                    if c.fin {
                        return self.response_done(cx, i);
                    }
                    if n == 0 {
                        return;
                    }
                }
                Err(ReadError::Blocked) => return,
                Err(e) => return self.end_slot(cx, i, Err(e.to_string())),
            }
        }
    }

    fn on_writable(&mut self, cx: &mut ConnCtx<'_>, id: StreamId) {
        if let Some(&i) = self.by_stream.get(&id) {
            self.send(cx, i);
        }
    }

    fn on_write_complete(
        &mut self,
        cx: &mut ConnCtx<'_>,
        id: StreamId,
        write: WriteId,
        outcome: WriteOutcome,
    ) {
        let Some((i, n)) = self.writes.remove(&(id, write)) else { return };
        let s = &mut self.slots[i];
        s.pending = s.pending.saturating_sub(1);
        match outcome {
            WriteOutcome::Delivered => {
                if n > 0 {
                    s.counters.add_sent(n);
                }
                self.last_progress = Instant::now();
            }
            // A slot that ended or stopped cancelled its own writes; anything else is an error.
            WriteOutcome::Cancelled(reason) if !s.finishing && !s.done => {
                let e = format!("write ended as Cancelled({reason:?})");
                return self.end_slot(cx, i, Err(e));
            }
            WriteOutcome::Cancelled(_) => {}
        }
        self.try_end(cx, i);
    }

    fn on_reset(&mut self, cx: &mut ConnCtx<'_>, id: StreamId, code: u64) {
        // A reset that answers our STOP_SENDING at the end of the run is expected.
        if let Some(&i) = self.by_stream.get(&id).filter(|&&i| !self.slots[i].finishing) {
            self.end_slot(cx, i, Err(format!("the server reset the stream (code {code})")));
        }
    }

    fn on_stop_sending(&mut self, cx: &mut ConnCtx<'_>, id: StreamId, code: u64) {
        if let Some(&i) = self.by_stream.get(&id) {
            let e = format!("the server stopped the stream (code {code})");
            self.end_slot(cx, i, Err(e));
        }
    }

    fn on_streams_available(&mut self, cx: &mut ConnCtx<'_>, dir: Dir) {
        if dir != Dir::Bi {
            return;
        }
        for i in 0..self.slots.len() {
            if self.slots[i].open_blocked {
                self.begin(cx, i);
            }
        }
    }

    fn on_timer(&mut self, cx: &mut ConnCtx<'_>) {
        if !self.started {
            if self.run.started() {
                self.start(cx);
            } else {
                cx.set_timer(Some(cx.now() + self.run.start_poll));
            }
            return;
        }
        self.poll(cx);
    }

    fn on_closed(&mut self, cx: &mut ConnCtx<'_>, error: &ConnectionError) {
        self.publish(cx);
        if !self.connected {
            let result = Err(error.to_string());
            self.run.report(Report::Connected(result));
        }
        for i in 0..self.slots.len() {
            self.end_slot(cx, i, Err(format!("connection closed: {error}")));
        }
        self.run.report(Report::Closed);
    }

    fn on_start_failed(&mut self, reason: &str) {
        let result = Err(reason.to_owned());
        self.run.report(Report::Connected(result));
        self.run.report(Report::Closed);
    }
}

/// One `--handshakes` slot: connects, completes the handshake, records its latency, closes,
/// and starts the slot's next connection from the worker (a chain of handlers), until the
/// run ends.
pub struct HandshakeClient {
    slot: usize,
    run: Arc<Run>,
    ep: Arc<Endpoint>,
    addr: SocketAddr,
    name: Arc<str>,
    counters: Arc<StreamCounters>,
    latency: Option<Histogram<u64>>,
    t0: Instant,
    connected: bool,
}

impl HandshakeClient {
    /// Starts slot `slot`'s first connection to `addr` (`name` authenticated) on `ep`.
    pub fn start(
        slot: usize,
        run: Arc<Run>,
        ep: Arc<Endpoint>,
        addr: SocketAddr,
        name: Arc<str>,
        counters: Arc<StreamCounters>,
    ) -> Result<(), String> {
        let h = HandshakeClient {
            slot,
            run,
            ep,
            addr,
            name,
            counters,
            latency: Some(rps::histogram()?),
            t0: Instant::now(),
            connected: false,
        };
        h.connect()
    }

    fn connect(self) -> Result<(), String> {
        let (ep, addr, name) = (self.ep.clone(), self.addr, self.name.clone());
        ep.connect_with(addr, &name, Box::new(self))
            .map_err(|e| format!("connecting to {addr}: {e}"))
    }

    fn finish(&mut self, result: Result<(), String>) {
        // The histogram goes with the report: a slot reports once.
        let latency = self.latency.take();
        let result = result
            .and_then(|()| latency.map(Done::Handshakes).ok_or_else(|| "reported twice".into()));
        self.run.report(Report::Slot { slot: self.slot, result });
    }
}

impl ConnectionHandler for HandshakeClient {
    fn on_connected(&mut self, _cx: &mut ConnCtx<'_>) {
        self.connected = true;
        let us = (self.t0.elapsed().as_micros() as u64).clamp(1, 100_000_000);
        if let Some(Err(e)) = self.latency.as_mut().map(|h| h.record(us)) {
            return self.finish(Err(e.to_string()));
        }
        self.counters.add_request();
    }

    // Closed only once confirmed: a close in the same turn as the client's Finished would
    // leave the server without it, and the server would count a failed handshake.
    fn on_handshake_confirmed(&mut self, cx: &mut ConnCtx<'_>) {
        cx.close(VarInt::from_u32(0), b"");
        if self.latency.is_none() {
            return; // already reported
        }
        if self.run.ended() {
            return self.finish(Ok(()));
        }
        let next = HandshakeClient {
            slot: self.slot,
            run: self.run.clone(),
            ep: self.ep.clone(),
            addr: self.addr,
            name: self.name.clone(),
            counters: self.counters.clone(),
            latency: self.latency.take(),
            t0: Instant::now(),
            connected: false,
        };
        let (run, slot) = (self.run.clone(), self.slot);
        if let Err(e) = next.connect() {
            run.report(Report::Slot { slot, result: Err(e) });
        }
    }

    fn on_closed(&mut self, _cx: &mut ConnCtx<'_>, error: &ConnectionError) {
        if self.latency.is_none() {
            return; // handed on to the next connection, or reported
        }
        let e = if self.connected {
            format!("connection to {} closed before it was confirmed: {error}", self.addr)
        } else {
            format!("connecting to {}: {error}", self.addr)
        };
        self.finish(Err(e));
    }

    fn on_start_failed(&mut self, reason: &str) {
        let e = format!("connecting to {}: {reason}", self.addr);
        self.finish(Err(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_look_at_the_clock_less_often_with_more_connections() {
        let ms = Duration::from_millis;
        assert_eq!(poll_every(1), ms(20));
        assert_eq!(poll_every(100), ms(20));
        assert_eq!(poll_every(101), ms(40));
        assert_eq!(poll_every(10_000), ms(500), "10,000 connections: 20,000 wakeups/s");
        assert_eq!(start_poll_every(8), ms(1));
        assert_eq!(start_poll_every(10_000), ms(100));
    }
}
