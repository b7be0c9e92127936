//! Tests of the simulated network: shared helpers, then one file per area.

mod bottleneck;
mod network;
mod port;
mod stats;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::link::Link;
use super::{Fate, LinkConfig, SimNetwork, SimQueue, TraceEvent};
use crate::{Ecn, Queue, RxBatch, RxMeta, TxBatch, TxMeta};

const A: &str = "10.0.0.1:1000";
const B: &str = "10.0.0.2:2000";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// A network with ports at `A` and `B` and `cfg` on the direction A -> B (B -> A is perfect).
fn pair(seed: u64, cfg: LinkConfig) -> (SimNetwork, SimQueue, SimQueue) {
    let net = SimNetwork::new(seed);
    let a = net.bind(addr(A)).expect("bind A");
    let b = net.bind(addr(B)).expect("bind B");
    net.set_link(addr(A), addr(B), cfg).expect("valid link config");
    net.set_trace(true);
    (net, a, b)
}

/// Sends one datagram of `payload` from `q` to `dst` with ECN codepoint `ecn`.
fn send(q: &mut SimQueue, dst: SocketAddr, payload: &[u8], ecn: Ecn) {
    let mut tx = q.alloc_tx().expect("a free tx buffer");
    assert!(tx.extend_from_slice(payload));
    tx.meta = TxMeta { ecn, ..TxMeta::to(dst) };
    let mut batch = TxBatch::new();
    batch.push(tx);
    assert_eq!(q.send(&mut batch).expect("send"), 1);
    assert!(batch.is_empty());
}

/// Everything `q` can receive at the current virtual time, in order (bounded loop).
fn recv_now(q: &mut SimQueue) -> Vec<(Vec<u8>, RxMeta)> {
    let mut out = Vec::new();
    let mut batch = RxBatch::new(64);
    for _ in 0..1_000_000 {
        if q.recv(&mut batch).expect("recv") == 0 {
            return out;
        }
        out.extend(batch.iter().map(|d| (d.data().to_vec(), d.meta)));
    }
    panic!("recv never drained");
}

/// Datagrams received, each with the virtual time it was received at.
type Received = Vec<(Duration, Vec<u8>, RxMeta)>;

/// Steps virtual time from arrival to arrival until nothing is on its way to `q`, receiving
/// everything together with the virtual time it became receivable (bounded loop).
fn drain(net: &SimNetwork, q: &mut SimQueue) -> Received {
    let mut out = Vec::new();
    for _ in 0..10_000_000 {
        let Some(t) = q.next_arrival() else {
            return out;
        };
        net.advance_to(t);
        let now = net.elapsed();
        out.extend(recv_now(q).into_iter().map(|(d, m)| (now, d, m)));
    }
    panic!("network never drained");
}

/// A payload of `len` bytes starting with the big-endian index `i`, then bytes derived from it.
fn numbered(i: u32, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> =
        (0..len).map(|k| (k as u32).wrapping_mul(31).wrapping_add(i) as u8).collect();
    v[..4].copy_from_slice(&i.to_be_bytes());
    v
}

fn index_of(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload[..4].try_into().expect("numbered payload"))
}

/// A standalone link for model tests that need many datagrams and no ports.
fn lone_link(cfg: LinkConfig, seed: u64) -> (Link, Instant) {
    cfg.validate().expect("valid link config");
    #[allow(clippy::disallowed_methods)] // an arbitrary anchor; only differences are used
    let start = Instant::now();
    (Link::new(cfg, true, seed, 0), start)
}

/// Asserts that `count` successes out of `n` trials fit a binomial(n, p) within 4 sigma.
fn assert_binomial(what: &str, count: u64, n: u64, p: f64) {
    let mean = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    let dev = (count as f64 - mean).abs();
    assert!(
        dev <= 4.0 * sigma,
        "{what}: {count} of {n}, expected {mean:.1} +- {:.1} (4 sigma)",
        4.0 * sigma
    );
}

/// The delivered events of a trace: (sent_at, arrival) per datagram.
fn arrivals(trace: &[TraceEvent]) -> Vec<(Duration, Duration)> {
    trace
        .iter()
        .filter_map(|e| match e.fate {
            Fate::Delivered { at, .. } => Some((e.sent_at, at)),
            Fate::Dropped(_) => None,
        })
        .collect()
}
