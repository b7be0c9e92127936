//! Loopback tests of the io_uring datapath: real sockets on 127.0.0.1 and ::1, exact bytes,
//! against itself and against the UDP backend.
//!
//! Where the kernel refuses io_uring (seccomp, `kernel.io_uring_disabled`) each test prints
//! why and returns; where a feature is missing it says so. Every wait is bounded; nothing
//! asserts a timing.

// Tests bound their loops in wall-clock time; only they read the clock.
#![allow(clippy::disallowed_methods)]

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

mod batches;
mod meta;
mod ring;

use super::{UringConfig, UringQueue};
use crate::udp::{UdpConfig, UdpQueue};
use crate::{Ecn, Queue, RxBatch, RxMeta, TxBatch};

pub(super) const T: Duration = Duration::from_secs(3);

pub(super) fn v4() -> UringConfig {
    UringConfig::new("127.0.0.1:0".parse().unwrap())
}

pub(super) fn v6() -> UringConfig {
    UringConfig::new("[::1]:0".parse().unwrap())
}

/// Opens a queue, or `None` (printed; a failure under `PEREGRINE_REQUIRE_ALL=1`) when this
/// kernel or sandbox refuses io_uring.
pub(super) fn try_open(cfg: &UringConfig) -> Option<UringQueue> {
    match UringQueue::open(cfg) {
        Ok(q) => Some(q),
        Err(e) if e.to_string().starts_with("io_uring unavailable") => {
            crate::require::unavailable(e);
            None
        }
        Err(e) => panic!("open {:?}: {e}", cfg.bind_addr()),
    }
}

/// Opens a queue or returns from the test (loudly) when io_uring is unavailable.
macro_rules! open {
    ($cfg:expr) => {
        match try_open(&$cfg) {
            Some(q) => q,
            None => return,
        }
    };
}

pub(super) fn udp(cfg: UdpConfig) -> UdpQueue {
    UdpQueue::open(&cfg).expect("open udp queue")
}

/// `len` bytes that depend on `tag` and position, so a misplaced byte shows.
pub(super) fn pattern(tag: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (tag.wrapping_mul(31).wrapping_add(i as u32 * 7) % 251) as u8).collect()
}

/// What to put in one transmit buffer.
#[derive(Clone, Debug)]
pub(super) struct Out {
    pub(super) dst: SocketAddr,
    pub(super) data: Vec<u8>,
    pub(super) segment: Option<usize>,
    pub(super) ecn: Ecn,
    pub(super) src_ip: Option<IpAddr>,
}

impl Out {
    pub(super) fn new(dst: SocketAddr, data: Vec<u8>) -> Self {
        Self { dst, data, segment: None, ecn: Ecn::NotEct, src_ip: None }
    }
    pub(super) fn gso(mut self, seg: usize) -> Self {
        self.segment = Some(seg);
        self
    }
    pub(super) fn ecn(mut self, ecn: Ecn) -> Self {
        self.ecn = ecn;
        self
    }
    pub(super) fn src(mut self, ip: IpAddr) -> Self {
        self.src_ip = Some(ip);
        self
    }
}

/// 10 segments of 1200 bytes and a 500-byte tail.
pub(super) fn train(dst: SocketAddr, tag: u32) -> Out {
    Out::new(dst, pattern(tag, 10 * 1200 + 500)).gso(1200)
}

pub(super) fn push(q: &mut dyn Queue, batch: &mut TxBatch, o: &Out) {
    let mut b = q.alloc_tx().expect("tx pool has a buffer");
    assert!(b.extend_from_slice(&o.data), "payload fits");
    b.meta.dst = o.dst;
    b.meta.segment_size = o.segment;
    b.meta.ecn = o.ecn;
    b.meta.src_ip = o.src_ip;
    batch.push(b);
}

/// Sends `outs` as one batch until it is empty (bounded); returns each `send`'s count.
pub(super) fn send_all(q: &mut dyn Queue, outs: &[Out]) -> Vec<usize> {
    let mut batch = TxBatch::new();
    for o in outs {
        push(q, &mut batch, o);
    }
    let mut counts = Vec::new();
    let deadline = Instant::now() + T;
    while !batch.is_empty() && Instant::now() < deadline {
        counts.push(q.send(&mut batch).expect("send"));
        if !batch.is_empty() {
            q.wait(Some(Duration::from_millis(5)), true).unwrap();
        }
    }
    assert!(batch.is_empty(), "batch not sent in time");
    counts
}

/// One received buffer, copied out.
#[derive(Clone, Debug)]
pub(super) struct In {
    pub(super) data: Vec<u8>,
    pub(super) meta: RxMeta,
}

/// Receives until `datagrams` datagrams (GRO segments counted) arrived or `limit` passed.
pub(super) fn recv_n(q: &mut dyn Queue, datagrams: usize, limit: Duration) -> Vec<In> {
    let mut batch = RxBatch::new(16);
    let (mut got, mut count) = (Vec::new(), 0);
    let deadline = Instant::now() + limit;
    while count < datagrams && Instant::now() < deadline {
        if q.recv(&mut batch).expect("recv") == 0 {
            q.wait(Some(Duration::from_millis(10)), false).unwrap();
            continue;
        }
        count += batch.datagram_count();
        got.extend(batch.iter().map(|d| In { data: d.data().to_vec(), meta: d.meta }));
    }
    got
}

/// Every datagram of `ins`, split at its segment size.
pub(super) fn flatten(ins: &[In]) -> Vec<Vec<u8>> {
    ins.iter()
        .flat_map(|d| {
            if d.data.is_empty() {
                vec![Vec::new()]
            } else {
                d.data.chunks(d.meta.segment_size.max(1)).map(<[u8]>::to_vec).collect()
            }
        })
        .collect()
}

/// The wire datagrams `outs` should become.
pub(super) fn expected(outs: &[Out]) -> Vec<Vec<u8>> {
    outs.iter()
        .flat_map(|o| match o.segment {
            Some(s) if s > 0 && s < o.data.len() => o.data.chunks(s).map(<[u8]>::to_vec).collect(),
            _ => vec![o.data.clone()],
        })
        .collect()
}

pub(super) fn sizes(v: &[In]) -> Vec<usize> {
    v.iter().map(|d| d.data.len()).collect()
}
pub(super) use open;
