//! Loopback tests of the UDP datapath: real sockets on 127.0.0.1 and ::1, exact bytes.
//!
//! Every wait is bounded (a couple of seconds at most); nothing asserts a timing.

// Tests bound their loops in wall-clock time; only they read the clock.
#![allow(clippy::disallowed_methods)]

mod errors;
mod gso_gro;
mod meta;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::{UdpConfig, UdpQueue};
use crate::{Ecn, Queue, RxBatch, RxMeta, TxBatch};

/// A loopback configuration: IPv4 127.0.0.1, every feature requested.
/// Datagrams for a group steered by DCID octet 1 over 2 queues, with the queue each must
/// reach: short headers (0x40, DCID at 1) and long headers (0xc0, version, DCID length, DCID
/// at 6); the octet is DCID[1], modulo 2. Shared with the io_uring group's test.
pub(crate) fn steering_cases() -> Vec<(Vec<u8>, usize)> {
    let mut cases = Vec::new();
    for i in 0..8u8 {
        let short = vec![0x40, 0xf0 | i, i, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
        let long = vec![0xc0, 0, 0, 0, 1, 8, 0xf0, i + 1, 0, 0, 0, 0, 0, 0];
        cases.push((short, usize::from(i % 2)));
        cases.push((long, usize::from((i + 1) % 2)));
    }
    cases
}

pub(super) fn v4() -> UdpConfig {
    UdpConfig::new("127.0.0.1:0".parse().unwrap())
}

/// A loopback configuration: IPv6 ::1, every feature requested.
pub(super) fn v6() -> UdpConfig {
    UdpConfig::new("[::1]:0".parse().unwrap())
}

pub(super) fn open(cfg: &UdpConfig) -> UdpQueue {
    UdpQueue::open(cfg).unwrap_or_else(|e| panic!("open {:?}: {e}", cfg.bind_addr()))
}

/// `len` bytes whose content depends on `tag` and the position, so any misplaced or
/// misordered byte shows.
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

/// Pushes a buffer holding `out` into `batch`.
pub(super) fn push(q: &mut UdpQueue, batch: &mut TxBatch, out: &Out) {
    let mut b = q.alloc_tx().expect("tx pool has a buffer");
    assert!(b.extend_from_slice(&out.data), "payload fits the tx buffer");
    b.meta.dst = out.dst;
    b.meta.segment_size = out.segment;
    b.meta.ecn = out.ecn;
    b.meta.src_ip = out.src_ip;
    batch.push(b);
}

/// Sends every buffer of `outs` in one batch and returns what each `send` call returned.
pub(super) fn send_all(q: &mut UdpQueue, outs: &[Out]) -> Vec<usize> {
    let mut batch = TxBatch::new();
    for o in outs {
        push(q, &mut batch, o);
    }
    let mut counts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !batch.is_empty() && Instant::now() < deadline {
        counts.push(q.send(&mut batch).expect("send"));
        if !batch.is_empty() {
            q.wait(Some(Duration::from_millis(5)), true).unwrap();
        }
    }
    assert!(batch.is_empty(), "batch not sent within 2 s");
    counts
}

/// One received buffer, copied out.
#[derive(Clone, Debug)]
pub(super) struct In {
    pub(super) data: Vec<u8>,
    pub(super) meta: RxMeta,
}

impl In {
    /// The datagrams of this buffer, split at the segment size.
    pub(super) fn datagrams(&self) -> Vec<Vec<u8>> {
        if self.data.is_empty() {
            return vec![Vec::new()];
        }
        self.data.chunks(self.meta.segment_size.max(1)).map(<[u8]>::to_vec).collect()
    }
}

/// Receives until `datagrams` datagrams (GRO segments counted) arrived or `limit` passed.
pub(super) fn recv_n(q: &mut UdpQueue, datagrams: usize, limit: Duration) -> Vec<In> {
    let mut batch = RxBatch::new(16);
    let mut got = Vec::new();
    let mut count = 0;
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

/// All datagrams of `ins`, split.
pub(super) fn flatten(ins: &[In]) -> Vec<Vec<u8>> {
    ins.iter().flat_map(In::datagrams).collect()
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

/// Skips a test loudly when the kernel lacks a feature it needs (fails it under
/// `PEREGRINE_REQUIRE_ALL=1`: [`crate::require`]).
macro_rules! require {
    ($q:expr, $cap:ident) => {
        crate::require!(
            $q.capabilities().$cap,
            "kernel lacks {}: {:?}",
            stringify!($cap),
            $q.capabilities().missing
        )
    };
}
pub(super) use require;
