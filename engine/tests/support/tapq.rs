//! A test [`Queue`] wrapping a loopback [`UdpQueue`]: records every transmitted datagram,
//! drops the ones a filter rejects, and can make transmit hang forever (blocked on a condition
//! only the test signals) or stall (send nothing while `wait(writable)` sleeps).

#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use peregrine_datapath::udp::{UdpConfig, UdpQueue};
use peregrine_datapath::{Capabilities, Queue, QueueStats, RxBatch, TxBatch, TxBuffer, Waker};

/// Transmit behaviour.
pub const NORMAL: u8 = 0;
/// `send` blocks until [`Tap::release`].
pub const HANG: u8 = 1;
/// `send` returns 0 and keeps everything; `wait` sleeps.
pub const STALL: u8 = 2;

/// Control and recording shared with the test.
#[derive(Default)]
pub struct Tap {
    /// Every datagram handed to `send` (each GSO segment separately), in order.
    pub sent: Mutex<Vec<Vec<u8>>>,
    /// When set, datagrams are recorded but not transmitted.
    pub drop_all: AtomicBool,
    /// Transmit only this many more datagrams, then drop (usize::MAX: unlimited).
    pub pass_budget: AtomicUsize,
    /// NORMAL, HANG or STALL.
    pub mode: AtomicU8,
    released: Mutex<bool>,
    cv: Condvar,
    /// Threads currently blocked in a hanging `send`.
    pub hanging: AtomicUsize,
}

impl Tap {
    /// A tap passing everything.
    pub fn new() -> Arc<Self> {
        let t = Arc::new(Self::default());
        t.pass_budget.store(usize::MAX, Ordering::SeqCst);
        t
    }

    /// Datagrams recorded so far.
    pub fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }

    /// Datagrams recorded from index `from`.
    pub fn since(&self, from: usize) -> Vec<Vec<u8>> {
        self.sent.lock().unwrap()[from..].to_vec()
    }

    /// Lets hanging sends return (and stops hanging).
    pub fn release(&self) {
        self.mode.store(NORMAL, Ordering::SeqCst);
        *self.released.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// See the module documentation.
pub struct TapQueue {
    inner: UdpQueue,
    tap: Arc<Tap>,
    /// Capabilities reported instead of the inner queue's (a smaller datagram limit).
    caps: Option<Capabilities>,
}

impl TapQueue {
    /// A loopback queue on an ephemeral port.
    pub fn open(tap: Arc<Tap>) -> Self {
        let cfg = UdpConfig::new("127.0.0.1:0".parse().unwrap()).with_gso(false).with_gro(false);
        Self { inner: UdpQueue::open(&cfg).unwrap(), tap, caps: None }
    }

    /// Reports `max` as the largest UDP payload the queue carries, like a datapath whose
    /// frames are small (AF_XDP).
    pub fn with_max_udp_payload(mut self, max: usize) -> Self {
        let mut caps = self.inner.capabilities().clone();
        caps.max_udp_payload = max;
        self.caps = Some(caps);
        self
    }
}

impl Queue for TapQueue {
    fn capabilities(&self) -> &Capabilities {
        self.caps.as_ref().unwrap_or_else(|| self.inner.capabilities())
    }
    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }
    fn alloc_tx(&mut self) -> Option<TxBuffer> {
        self.inner.alloc_tx()
    }
    fn max_tx_buffer(&self) -> usize {
        self.inner.max_tx_buffer()
    }
    fn send(&mut self, batch: &mut TxBatch) -> io::Result<usize> {
        match self.tap.mode.load(Ordering::SeqCst) {
            HANG => {
                self.tap.hanging.fetch_add(1, Ordering::SeqCst);
                let mut r = self.tap.released.lock().unwrap();
                while !*r {
                    r = self.tap.cv.wait(r).unwrap();
                }
                self.tap.hanging.fetch_sub(1, Ordering::SeqCst);
            }
            STALL => return Ok(0),
            _ => {}
        }
        let bufs: Vec<TxBuffer> = batch.drain().collect();
        let n = bufs.len();
        let mut keep = TxBatch::new();
        for b in bufs {
            let seg = b.meta.segment_size.unwrap_or(b.len()).max(1);
            for d in b.data().chunks(seg) {
                self.tap.sent.lock().unwrap().push(d.to_vec());
            }
            if self.tap.drop_all.load(Ordering::SeqCst) {
                continue;
            }
            let ok = self
                .tap
                .pass_budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok();
            if ok {
                keep.push(b);
            }
        }
        while !keep.is_empty() {
            if self.inner.send(&mut keep)? == 0 {
                self.inner.wait(Some(Duration::from_millis(10)), true)?;
            }
        }
        Ok(n)
    }
    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        self.inner.recv(batch)
    }
    fn wait(&mut self, timeout: Option<Duration>, writable: bool) -> io::Result<()> {
        if self.tap.mode.load(Ordering::SeqCst) == STALL && writable {
            std::thread::sleep(timeout.unwrap_or(Duration::from_millis(10)));
            return Ok(());
        }
        self.inner.wait(timeout, writable)
    }
    fn wait_with(
        &mut self,
        timeout: Option<Duration>,
        writable: bool,
        waker: &Waker,
    ) -> io::Result<()> {
        if self.tap.mode.load(Ordering::SeqCst) == STALL && writable {
            // Writable never comes: sleep in bounded slices like the default does.
            return self.wait(
                Some(timeout.unwrap_or(Duration::from_millis(1)).min(Duration::from_millis(1))),
                writable,
            );
        }
        self.inner.wait_with(timeout, writable, waker)
    }
    fn stats(&self) -> QueueStats {
        self.inner.stats()
    }
}

/// Packet number spaces of the QUIC packets coalesced in one datagram (0 Initial,
/// 1 Handshake, 2 1-RTT; 0-RTT and Retry are not expected here).
pub fn packet_spaces(d: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut p = d;
    while !p.is_empty() {
        if p[0] & 0x80 == 0 {
            // A short header (fixed bit set) runs to the end; zeros are datagram padding.
            if p[0] & 0x40 != 0 {
                out.push(2);
            }
            break;
        }
        let ty = (p[0] >> 4) & 3;
        let mut i = 5;
        let Some(&dl) = p.get(i) else { break };
        i += 1 + dl as usize;
        let Some(&sl) = p.get(i) else { break };
        i += 1 + sl as usize;
        if ty == 0 {
            let Some((tl, n)) = varint(&p[i.min(p.len())..]) else { break };
            i += n + tl as usize;
        }
        let Some((len, n)) = varint(&p[i.min(p.len())..]) else { break };
        i += n + len as usize;
        out.push(match ty {
            0 => 0,
            2 => 1,
            _ => 3,
        });
        p = &p[i.min(p.len())..];
    }
    out
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let n = 1usize << (first >> 6);
    if b.len() < n {
        return None;
    }
    let mut v = u64::from(first & 0x3f);
    for x in &b[1..n] {
        v = (v << 8) | u64::from(*x);
    }
    Some((v, n))
}
