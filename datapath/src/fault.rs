//! Real-time fault injection: [`FaultQueue`] wraps any [`Queue`] and sends its datagrams
//! through the simulated network's link model (loss, burst loss, reordering, duplication,
//! corruption, delay, jitter, rate) on the wall clock.
//!
//! The engine's workers read the real clock, so they cannot drive a [`crate::sim::SimQueue`]
//! whose time only moves when a harness says so. A `FaultQueue` keeps the real queue (UDP on
//! loopback, io_uring, ...) and puts the same seeded [`LinkConfig`] pipeline as the simulated
//! network in front of its transmit side: each datagram the engine sends (each GSO segment
//! separately) enters the link at the current instant; the ones that survive wait in a delay
//! line until their arrival instant, then go out through the inner queue. Received datagrams
//! are copied into the wrapper's own buffers (GRO trains split into datagrams), so every buffer
//! the engine holds comes from the wrapper's two pools, whose use [`FaultHandle`] reports: at
//! rest (the queue's last wait) and after everything was dropped (leaks).

// A datapath wrapper that models a link in real time: it reads the wall clock.
#![allow(clippy::disallowed_methods)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::buffer::{BufferPool, PoolTracker};
use crate::sim::{Link, LinkConfig, LinkStats, SimError, DEFAULT_POOL_BUFFERS};
use crate::{
    Capabilities, Ecn, Queue, QueueStats, RxBatch, RxMeta, TxBatch, TxBuffer, TxMeta, Waker,
};

/// Most datagrams waiting in the delay line; a datagram arriving at a full line is dropped and
/// counted ([`FaultHandle::delay_line_drops`]), as a router's full buffer would.
pub const MAX_HELD: usize = 8192;

/// Receive batch of the inner queue.
const INNER_RX_BATCH: usize = 32;

/// Spare payload vectors kept for reuse.
const SPARE_VECS: usize = 1024;

/// A datagram in the delay line.
#[derive(Debug)]
struct Held {
    at: Instant,
    order: u64,
    dst: SocketAddr,
    src_ip: Option<IpAddr>,
    ecn: Ecn,
    data: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(o.at, o.order))
    }
}

/// What a [`FaultQueue`] publishes for other threads.
#[derive(Debug)]
struct Shared {
    link: Mutex<LinkStats>,
    held: AtomicUsize,
    delay_line_drops: AtomicU64,
    idle_outstanding: AtomicUsize,
    waits: AtomicU64,
    stalled: AtomicBool,
    stalled_sends: AtomicU64,
    trackers: [PoolTracker; 2],
}

/// A cheap, thread-safe view of a [`FaultQueue`] (which moves into a worker thread).
#[derive(Clone, Debug)]
pub struct FaultHandle {
    shared: Arc<Shared>,
}

impl FaultHandle {
    /// What the link did to the datagrams sent so far (as of the last transmit).
    pub fn link_stats(&self) -> LinkStats {
        *self.shared.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Datagrams waiting in the delay line.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::Relaxed)
    }

    /// Datagrams dropped because the delay line was full ([`MAX_HELD`]).
    pub fn delay_line_drops(&self) -> u64 {
        self.shared.delay_line_drops.load(Ordering::Relaxed)
    }

    /// Buffers the user of the queue held (lent by `alloc_tx` or `recv` and not yet handed
    /// back) when it last called [`Queue::wait`] / [`Queue::wait_with`], with how many waits
    /// there were; `None` before the first wait.
    pub fn idle_outstanding(&self) -> Option<(usize, u64)> {
        let waits = self.shared.waits.load(Ordering::Acquire);
        (waits > 0).then(|| (self.shared.idle_outstanding.load(Ordering::Relaxed), waits))
    }

    /// Stalls the transmit side (`true`) as a backend that never drains would: `send` takes
    /// nothing (buffers stay in the caller's batch), the delay line stops, and a wait for
    /// writability only ends by timeout, wake-up or a received datagram. `false` resumes.
    pub fn set_stalled(&self, stalled: bool) {
        self.shared.stalled.store(stalled, Ordering::Release);
    }

    /// Transmit calls that took nothing because the queue was stalled.
    pub fn stalled_sends(&self) -> u64 {
        self.shared.stalled_sends.load(Ordering::Relaxed)
    }

    /// Buffers of the queue's two pools in existence now: 0 once the queue and everything
    /// that borrowed from it were dropped (anything else is a leaked buffer).
    pub fn buffers_existing(&self) -> usize {
        self.shared.trackers.iter().map(PoolTracker::existing).sum()
    }
}

/// A [`Queue`] whose transmitted datagrams go through a seeded simulated link in real time
/// before reaching the inner queue (see the module documentation).
#[derive(Debug)]
pub struct FaultQueue<Q: Queue> {
    inner: Q,
    caps: Capabilities,
    link: Link,
    tx_pool: BufferPool,
    rx_pool: BufferPool,
    inner_rx: RxBatch,
    inner_tx: TxBatch,
    held: BinaryHeap<Reverse<Held>>,
    pending_rx: VecDeque<(RxMeta, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
    next_order: u64,
    stats: QueueStats,
    shared: Arc<Shared>,
}

impl<Q: Queue> FaultQueue<Q> {
    /// Wraps `inner`: its transmit side goes through a link modelled by `link` (validated),
    /// with randomness from `seed` (the same seed gives the same fate to the same sequence of
    /// datagrams). The blackholes of `link` are in wall-clock instants.
    pub fn new(inner: Q, link: LinkConfig, seed: u64) -> Result<Self, SimError> {
        link.validate()?;
        let mut caps = inner.capabilities().clone();
        // Received trains are split into single datagrams before the engine sees them.
        caps.gro = false;
        let tx_pool = BufferPool::new(inner.max_tx_buffer(), DEFAULT_POOL_BUFFERS);
        let rx_pool = BufferPool::new(caps.max_udp_payload.max(1), DEFAULT_POOL_BUFFERS);
        let shared = Arc::new(Shared {
            link: Mutex::new(LinkStats::default()),
            held: AtomicUsize::new(0),
            delay_line_drops: AtomicU64::new(0),
            idle_outstanding: AtomicUsize::new(0),
            waits: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            stalled_sends: AtomicU64::new(0),
            trackers: [tx_pool.tracker(), rx_pool.tracker()],
        });
        let stream = u64::from(inner.local_addr().port());
        Ok(Self {
            inner,
            caps,
            link: Link::new(link, true, seed, stream),
            tx_pool,
            rx_pool,
            inner_rx: RxBatch::new(INNER_RX_BATCH),
            inner_tx: TxBatch::new(),
            held: BinaryHeap::new(),
            pending_rx: VecDeque::new(),
            spare: Vec::new(),
            next_order: 0,
            stats: QueueStats::default(),
            shared,
        })
    }

    /// A handle for other threads: link counters and buffer accounting.
    pub fn handle(&self) -> FaultHandle {
        FaultHandle { shared: Arc::clone(&self.shared) }
    }

    /// The wrapped queue.
    pub fn inner(&self) -> &Q {
        &self.inner
    }

    fn vec_from(&mut self, data: &[u8]) -> Vec<u8> {
        let mut v = self.spare.pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(data);
        v
    }

    fn recycle(&mut self, v: Vec<u8>) {
        if self.spare.len() < SPARE_VECS {
            self.spare.push(v);
        }
    }

    fn hold(&mut self, h: Held) {
        if self.held.len() >= MAX_HELD {
            self.shared.delay_line_drops.fetch_add(1, Ordering::Relaxed);
            self.recycle(h.data);
            return;
        }
        self.held.push(Reverse(h));
    }

    /// One datagram enters the link at `now`.
    fn enter_link(&mut self, now: Instant, meta: &TxMeta, payload: &[u8]) {
        self.stats.tx_datagrams += 1;
        self.stats.tx_bytes += payload.len() as u64;
        let mut data = self.vec_from(payload);
        match self.link.transmit(now, &mut data, meta.ecn, meta.dst.is_ipv6()) {
            Err(_) => self.recycle(data),
            Ok(a) => {
                let order = self.next_order;
                self.next_order += 2;
                if a.duplicated {
                    let copy = self.vec_from(&data);
                    let dup = Held { order: order + 1, data: copy, ..held(a.at, order, meta) };
                    self.hold(dup);
                }
                self.hold(Held { data, ..held(a.at, order, meta) });
            }
        }
    }

    fn stalled(&self) -> bool {
        self.shared.stalled.load(Ordering::Acquire)
    }

    /// Moves every datagram whose arrival instant has come to the inner queue and transmits.
    fn release(&mut self, now: Instant) -> io::Result<()> {
        if self.stalled() {
            return Ok(());
        }
        while self.held.peek().is_some_and(|Reverse(h)| h.at <= now) {
            let Some(mut buf) = self.inner.alloc_tx() else { break };
            let Some(Reverse(h)) = self.held.pop() else { break };
            if buf.extend_from_slice(&h.data) {
                buf.meta = TxMeta { dst: h.dst, src_ip: h.src_ip, ecn: h.ecn, segment_size: None };
                self.inner_tx.push(buf);
            } else {
                self.stats.tx_errors += 1;
            }
            self.recycle(h.data);
        }
        self.shared.held.store(self.held.len(), Ordering::Relaxed);
        if self.inner_tx.is_empty() {
            return Ok(());
        }
        let r = self.inner.send(&mut self.inner_tx);
        if r.is_err() {
            // As the worker does: a queue error drops what could not go (recovery resends).
            self.inner_tx.drain().for_each(drop);
        }
        r.map(|_| ())
    }

    /// Copies what the inner queue received into `pending_rx`, one entry per datagram.
    fn pull_inner(&mut self) -> io::Result<usize> {
        if self.inner.recv(&mut self.inner_rx)? == 0 {
            return Ok(0);
        }
        let mut count = 0;
        let mut spare = std::mem::take(&mut self.spare);
        for d in self.inner_rx.iter() {
            for seg in d.segments() {
                let mut v = spare.pop().unwrap_or_default();
                v.clear();
                v.extend_from_slice(seg);
                self.pending_rx.push_back((RxMeta { segment_size: seg.len(), ..d.meta }, v));
                count += 1;
            }
        }
        self.spare = spare;
        Ok(count)
    }

    /// The wait timeout shortened to the next release from the delay line (when the inner
    /// queue can take it), or `None` when there is something to do right away.
    fn wait_plan(&mut self, timeout: Option<Duration>) -> Option<Option<Duration>> {
        self.shared
            .idle_outstanding
            .store(self.tx_pool.outstanding() + self.rx_pool.outstanding(), Ordering::Relaxed);
        self.shared.waits.fetch_add(1, Ordering::Release);
        if !self.pending_rx.is_empty() {
            return None;
        }
        if self.stalled() {
            return Some(timeout); // Nothing will drain: only a timeout or a wake ends it.
        }
        if !self.inner_tx.is_empty() {
            return Some(timeout); // Waiting for the inner queue to become writable.
        }
        match self.held.peek() {
            Some(Reverse(h)) => {
                let d = h.at.saturating_duration_since(Instant::now());
                if d.is_zero() {
                    return None;
                }
                Some(Some(timeout.map_or(d, |t| t.min(d))))
            }
            None => Some(timeout),
        }
    }
}

impl<Q: Queue> FaultQueue<Q> {
    /// Whether a wait should end when the inner queue can take more: never while stalled.
    fn wants_writable(&self, writable: bool) -> bool {
        !self.stalled() && (writable || !self.inner_tx.is_empty())
    }
}

fn held(at: Instant, order: u64, meta: &TxMeta) -> Held {
    Held { at, order, dst: meta.dst, src_ip: meta.src_ip, ecn: meta.ecn, data: Vec::new() }
}

impl<Q: Queue> Queue for FaultQueue<Q> {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    fn alloc_tx(&mut self) -> Option<TxBuffer> {
        self.tx_pool.take_tx()
    }

    fn max_tx_buffer(&self) -> usize {
        self.tx_pool.buf_size()
    }

    fn send(&mut self, batch: &mut TxBatch) -> io::Result<usize> {
        if batch.is_empty() {
            return Ok(0);
        }
        self.stats.tx_calls += 1;
        if self.stalled() {
            self.shared.stalled_sends.fetch_add(1, Ordering::Relaxed);
            return Ok(0);
        }
        let now = Instant::now();
        let mut n = 0;
        while let Some(buf) = batch.items.pop_front() {
            n += 1;
            let seg = match buf.meta.segment_size {
                Some(s) if s > 0 => s,
                _ => buf.len().max(1),
            };
            let meta = buf.meta;
            if buf.is_empty() {
                self.enter_link(now, &meta, &[]);
            }
            for payload in buf.data().chunks(seg) {
                self.enter_link(now, &meta, payload);
            }
            self.tx_pool.put(buf.buf);
        }
        *self.shared.link.lock().unwrap_or_else(|e| e.into_inner()) = self.link.stats;
        self.release(now)?;
        Ok(n)
    }

    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        batch.recycle_into(&mut self.rx_pool);
        self.stats.rx_calls += 1;
        if self.release(Instant::now()).is_err() {
            self.stats.tx_errors += 1;
        }
        while batch.items.len() < batch.capacity {
            if self.pending_rx.is_empty() && self.pull_inner()? == 0 {
                break;
            }
            let Some((meta, data)) = self.pending_rx.pop_front() else { break };
            let Some(mut rx) = self.rx_pool.take_rx(meta) else {
                self.pending_rx.push_front((meta, data));
                break;
            };
            if data.len() > rx.buf.len() {
                self.stats.rx_dropped += 1;
                self.rx_pool.put(rx.buf);
            } else {
                rx.buf[..data.len()].copy_from_slice(&data);
                rx.len = data.len();
                self.stats.rx_datagrams += 1;
                self.stats.rx_bytes += data.len() as u64;
                batch.items.push(rx);
            }
            self.recycle(data);
        }
        Ok(batch.items.len())
    }

    fn wait(&mut self, timeout: Option<Duration>, writable: bool) -> io::Result<()> {
        match self.wait_plan(timeout) {
            None => Ok(()),
            Some(t) => self.inner.wait(t, self.wants_writable(writable)),
        }
    }

    fn wait_with(
        &mut self,
        timeout: Option<Duration>,
        writable: bool,
        waker: &Waker,
    ) -> io::Result<()> {
        match self.wait_plan(timeout) {
            None => Ok(()),
            Some(t) => self.inner.wait_with(t, self.wants_writable(writable), waker),
        }
    }

    fn stats(&self) -> QueueStats {
        self.stats
    }
}

#[cfg(test)]
mod tests;
