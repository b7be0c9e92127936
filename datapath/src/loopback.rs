//! Datapath throughput over loopback (`peregrine datapath-bench`, the `udp_datapath` bench): a
//! sender thread and a receiver thread, each with its own
//! queue — a [`UdpQueue`] or a [`UringQueue`] on either side ([`Backend`]) — counting and
//! verifying every datagram.
//!
//! Each datagram carries its sequence number (little-endian `u64`) in its first and last eight
//! bytes; the receiver checks the length and that both copies agree, and counts only datagrams
//! that pass. The sender keeps at most [`LoopbackBenchConfig::max_in_flight`] datagrams ahead of
//! what the receiver has counted, so the figure is what the datapath carries end to end, not
//! what the kernel dropped on a full receive buffer.

// A benchmark measures wall-clock time.
#![allow(clippy::disallowed_methods)]

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::udp::{UdpConfig, UdpQueue, MAX_UDP_PAYLOAD};
use crate::uring::{UringConfig, UringQueue};
use crate::{Capabilities, Queue, RxBatch, TxBatch};

/// Which datapath backend a side of the benchmark uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// [`UdpQueue`]: `sendmmsg` / `recvmmsg`.
    #[default]
    Udp,
    /// [`UringQueue`]: linked `sendmsg` SQEs / multishot `recvmsg` on a buffer ring.
    Uring,
    /// [`UringQueue`] with zero-copy transmit (`sendmsg_zc`; receive as [`Backend::Uring`]).
    UringZc,
}

impl Backend {
    /// Its name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Udp => "udp",
            Backend::Uring => "uring",
            Backend::UringZc => "uring-zc",
        }
    }

    /// Opens a queue of this backend with the given socket settings.
    pub fn open(self, cfg: UdpConfig) -> io::Result<Box<dyn Queue>> {
        Ok(match self {
            Backend::Udp => Box::new(UdpQueue::open(&cfg)?),
            Backend::Uring => Box::new(UringQueue::open(&UringConfig::from_udp(cfg))?),
            Backend::UringZc => {
                Box::new(UringQueue::open(&UringConfig::from_udp(cfg).with_send_zc(true))?)
            }
        })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "udp" => Ok(Backend::Udp),
            "uring" | "io_uring" => Ok(Backend::Uring),
            "uring-zc" => Ok(Backend::UringZc),
            other => Err(format!("unknown backend {other:?} (udp, uring, uring-zc)")),
        }
    }
}

/// How long the receiver waits for stragglers once the sender is done.
const DRAIN_IDLE: Duration = Duration::from_millis(100);

/// Extra time past [`LoopbackBenchConfig::duration`] after which the receiver gives up.
const GRACE: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopbackBenchConfig {
    /// UDP payload of each datagram in bytes (default 1200; 16 ..= 65507).
    pub payload: usize,
    /// Sender uses GSO trains (default on).
    pub gso: bool,
    /// Receiver asks for GRO (default on).
    pub gro: bool,
    /// Stop after sending this many datagrams; 0 for no count limit (default 0).
    pub datagrams: u64,
    /// Stop sending after this long (default 1 s); the run ends at the first limit reached.
    pub duration: Duration,
    /// Use ::1 instead of 127.0.0.1 (default off).
    pub ipv6: bool,
    /// Most datagrams the sender may be ahead of the receiver's count (default 2048, about
    /// 2.4 MB at 1200 bytes, well inside the 4 MiB receive buffer); 0 turns flow control off
    /// and lets the kernel drop what the receiver cannot keep up with.
    pub max_in_flight: u64,
    /// Messages per `sendmmsg` / `recvmmsg` (or send SQEs per submission; default 32).
    pub batch: usize,
    /// Backend of the sending side (default [`Backend::Udp`]).
    pub tx_backend: Backend,
    /// Backend of the receiving side (default [`Backend::Udp`]).
    pub rx_backend: Backend,
}

impl Default for LoopbackBenchConfig {
    fn default() -> Self {
        Self {
            payload: 1200,
            gso: true,
            gro: true,
            datagrams: 0,
            duration: Duration::from_secs(1),
            ipv6: false,
            max_in_flight: 2048,
            batch: 32,
            tx_backend: Backend::Udp,
            rx_backend: Backend::Udp,
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct LoopbackBenchResult {
    /// The configuration that ran.
    pub config: LoopbackBenchConfig,
    /// From the first send to the last verified receive.
    pub elapsed: Duration,
    /// Datagrams the kernel accepted from the sender (GSO segments counted one by one).
    pub sent: u64,
    /// Datagrams received with a valid length and sequence number.
    pub received: u64,
    /// `sent - received`.
    pub lost: u64,
    /// Datagrams received with a wrong length or mismatched sequence numbers.
    pub corrupt: u64,
    /// Datagrams that arrived after one with a higher sequence number.
    pub reordered: u64,
    /// Payload bytes of the verified datagrams.
    pub bytes_received: u64,
    /// Received buffers (fewer than `received` when GRO coalesced).
    pub rx_buffers: u64,
    /// Verified datagrams per second.
    pub packets_per_sec: f64,
    /// Verified payload throughput in Gbit/s (10^9 bits).
    pub gbit_per_sec: f64,
    /// Transmit system calls: `sendmmsg` (udp) or `io_uring_enter` (uring).
    pub tx_syscalls: u64,
    /// Receive system calls: `recvmmsg` (udp) or `io_uring_enter` (uring; a receive that finds
    /// completions already posted makes none).
    pub rx_syscalls: u64,
    /// [`Queue::wait`] calls by both threads (`poll` or `io_uring_enter`, one each).
    pub poll_syscalls: u64,
    /// Datagrams the sender's queue dropped on per-datagram errors.
    pub tx_errors: u64,
    /// Sender capabilities.
    pub tx_caps: Capabilities,
    /// Receiver capabilities.
    pub rx_caps: Capabilities,
}

impl LoopbackBenchResult {
    /// System calls of both sides (transmit, receive, wait) per verified datagram.
    pub fn syscalls_per_datagram(&self) -> f64 {
        (self.tx_syscalls + self.rx_syscalls + self.poll_syscalls) as f64
            / self.received.max(1) as f64
    }
}

impl fmt::Display for LoopbackBenchResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = |b: bool| if b { "on" } else { "off" };
        write!(
            f,
            "{} -> {}, {} B payload, GSO {} GRO {}: {:.2} Gbit/s, {:.0} datagrams/s over \
             {:.3} s; sent {} received {} lost {} corrupt {} reordered {}; rx buffers {} \
             ({:.1} datagrams each); syscalls: tx {} rx {} wait {} ({:.4} per datagram)",
            self.config.tx_backend,
            self.config.rx_backend,
            self.config.payload,
            on(self.tx_caps.gso),
            on(self.rx_caps.gro),
            self.gbit_per_sec,
            self.packets_per_sec,
            self.elapsed.as_secs_f64(),
            self.sent,
            self.received,
            self.lost,
            self.corrupt,
            self.reordered,
            self.rx_buffers,
            self.received as f64 / self.rx_buffers.max(1) as f64,
            self.tx_syscalls,
            self.rx_syscalls,
            self.poll_syscalls,
            self.syscalls_per_datagram(),
        )
    }
}

/// State shared by the two threads.
#[derive(Default)]
struct Shared {
    /// Verified datagrams so far (receiver writes).
    received: AtomicU64,
    /// Final count of sent datagrams, valid once `done` is set (sender writes).
    sent: AtomicU64,
    done: AtomicBool,
}

struct RxOutcome {
    received: u64,
    corrupt: u64,
    reordered: u64,
    bytes: u64,
    buffers: u64,
    last: Option<Instant>,
    polls: u64,
    calls: u64,
}

struct TxOutcome {
    sent: u64,
    errors: u64,
    calls: u64,
    polls: u64,
}

/// Runs one loopback transfer and reports what the receiver verified.
///
/// Errors are for queues that cannot be opened, a payload outside 16 ..= 65507 bytes, or a
/// queue error during the run.
pub fn udp_loopback_throughput(cfg: &LoopbackBenchConfig) -> io::Result<LoopbackBenchResult> {
    if !(16..=MAX_UDP_PAYLOAD).contains(&cfg.payload) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "payload outside 16..=65507"));
    }
    let ip = if cfg.ipv6 { "[::1]:0" } else { "127.0.0.1:0" };
    let bind: SocketAddr = ip.parse().map_err(io::Error::other)?;
    let batch = cfg.batch.max(1);
    let rx_cfg = UdpConfig::new(bind)
        .with_gso(false)
        .with_gro(cfg.gro)
        .with_rx_batch(batch)?
        .with_rx_pool(2 * batch)?;
    let tx_cfg = UdpConfig::new(bind).with_gso(cfg.gso).with_gro(false).with_tx_batch(batch)?;
    let mut rxq = cfg.rx_backend.open(rx_cfg)?;
    let mut txq = cfg.tx_backend.open(tx_cfg)?;
    let (tx_caps, rx_caps) = (txq.capabilities().clone(), rxq.capabilities().clone());
    let dst = rxq.local_addr();
    let shared = Arc::new(Shared::default());
    let start = Instant::now();
    let hard_stop = start + cfg.duration + GRACE;

    let rx_shared = Arc::clone(&shared);
    let (payload, rx_batch) = (cfg.payload, batch);
    let receiver = thread::Builder::new()
        .name("udp-bench-rx".into())
        .spawn(move || receive(&mut *rxq, &rx_shared, payload, rx_batch, hard_stop))?;
    let tx_shared = Arc::clone(&shared);
    let tx_cfg_run = cfg.clone();
    let sender = thread::Builder::new()
        .name("udp-bench-tx".into())
        .spawn(move || transmit(&mut *txq, &tx_shared, &tx_cfg_run, dst, start))?;

    let tx = sender.join().map_err(|_| io::Error::other("sender thread panicked"))?;
    let rx = receiver.join().map_err(|_| io::Error::other("receiver thread panicked"))?;
    let (tx, rx) = (tx?, rx?);
    let elapsed = rx.last.map_or(start.elapsed(), |t| t - start);
    let secs = elapsed.as_secs_f64().max(1e-9);
    Ok(LoopbackBenchResult {
        config: cfg.clone(),
        elapsed,
        sent: tx.sent,
        received: rx.received,
        lost: tx.sent.saturating_sub(rx.received),
        corrupt: rx.corrupt,
        reordered: rx.reordered,
        bytes_received: rx.bytes,
        rx_buffers: rx.buffers,
        packets_per_sec: rx.received as f64 / secs,
        gbit_per_sec: rx.bytes as f64 * 8.0 / secs / 1e9,
        tx_syscalls: tx.calls,
        rx_syscalls: rx.calls,
        poll_syscalls: tx.polls + rx.polls,
        tx_errors: tx.errors,
        tx_caps,
        rx_caps,
    })
}

/// Sender loop: fills whole GSO trains (or single datagrams) with sequence numbers and sends.
fn transmit(
    q: &mut dyn Queue,
    shared: &Shared,
    cfg: &LoopbackBenchConfig,
    dst: SocketAddr,
    start: Instant,
) -> io::Result<TxOutcome> {
    let payload = cfg.payload;
    let limit = if cfg.datagrams == 0 { u64::MAX } else { cfg.datagrams };
    let stop = start + cfg.duration;
    let per_buf = if q.capabilities().gso {
        (q.max_tx_buffer() / payload).clamp(1, q.capabilities().max_gso_segments)
    } else {
        1
    };
    let mut batch = TxBatch::new();
    let (mut seq, mut polls) = (0u64, 0u64);
    let mut checks = 0u32;
    loop {
        // Look at the clock every 64 rounds only.
        checks = checks.wrapping_add(1);
        if seq >= limit || (checks % 64 == 0 && Instant::now() >= stop) {
            break;
        }
        // Flow control: never more than `max_in_flight` datagrams ahead of the receiver.
        let mut room = u64::MAX;
        if cfg.max_in_flight > 0 {
            let mut spins = 0u32;
            loop {
                let ahead = seq.saturating_sub(shared.received.load(Ordering::Relaxed));
                room = cfg.max_in_flight.saturating_sub(ahead);
                spins += 1;
                if room > 0 || (spins % 1024 == 0 && Instant::now() >= stop + GRACE) {
                    break;
                }
                thread::yield_now();
            }
        }
        let mut filled = 0u64;
        while batch.len() < cfg.batch && seq < limit && filled < room {
            let Some(mut b) = q.alloc_tx() else { break };
            let segs = (limit - seq).min(room - filled).min(per_buf as u64) as usize;
            let spare = b.spare();
            for s in 0..segs {
                let d = &mut spare[s * payload..(s + 1) * payload];
                let tag = (seq + s as u64).to_le_bytes();
                d[..8].copy_from_slice(&tag);
                d[payload - 8..].copy_from_slice(&tag);
            }
            b.advance(segs * payload);
            b.meta.dst = dst;
            b.meta.segment_size = (segs > 1).then_some(payload);
            batch.push(b);
            seq += segs as u64;
            filled += segs as u64;
        }
        q.send(&mut batch)?;
        if !batch.is_empty() {
            polls += 1;
            q.wait(Some(Duration::from_millis(1)), true)?;
        }
    }
    // Flush what is still batched (bounded).
    for _ in 0..1000 {
        if batch.is_empty() {
            break;
        }
        q.send(&mut batch)?;
        if !batch.is_empty() {
            polls += 1;
            q.wait(Some(Duration::from_millis(1)), true)?;
        }
    }
    let s = q.stats();
    shared.sent.store(s.tx_datagrams, Ordering::Release);
    shared.done.store(true, Ordering::Release);
    Ok(TxOutcome { sent: s.tx_datagrams, errors: s.tx_errors, calls: s.tx_calls, polls })
}

/// Receiver loop: verifies and counts until everything sent arrived, the sender is done and
/// nothing came for [`DRAIN_IDLE`], or `hard_stop`.
fn receive(
    q: &mut dyn Queue,
    shared: &Shared,
    payload: usize,
    batch_size: usize,
    hard_stop: Instant,
) -> io::Result<RxOutcome> {
    let mut batch = RxBatch::new(batch_size);
    let mut o = RxOutcome {
        received: 0,
        corrupt: 0,
        reordered: 0,
        bytes: 0,
        buffers: 0,
        last: None,
        polls: 0,
        calls: 0,
    };
    let mut next = 0u64;
    let mut idle_since: Option<Instant> = None;
    loop {
        let n = q.recv(&mut batch)?;
        if n > 0 {
            idle_since = None;
            o.buffers += n as u64;
            for d in batch.iter() {
                for seg in d.segments() {
                    let head = seg.get(..8).and_then(|h| <[u8; 8]>::try_from(h).ok());
                    let tail =
                        seg.len().checked_sub(8).and_then(|t| <[u8; 8]>::try_from(&seg[t..]).ok());
                    match (head, tail) {
                        (Some(h), Some(t)) if seg.len() == payload && h == t => {
                            let s = u64::from_le_bytes(h);
                            if s < next {
                                o.reordered += 1;
                            }
                            next = next.max(s + 1);
                            o.received += 1;
                            o.bytes += seg.len() as u64;
                        }
                        _ => o.corrupt += 1,
                    }
                }
            }
            shared.received.store(o.received, Ordering::Relaxed);
            let now = Instant::now();
            o.last = Some(now);
            if now >= hard_stop {
                break;
            }
            continue;
        }
        let now = Instant::now();
        if now >= hard_stop {
            break;
        }
        if shared.done.load(Ordering::Acquire) {
            if o.received >= shared.sent.load(Ordering::Acquire) {
                break;
            }
            match idle_since {
                Some(t) if now - t >= DRAIN_IDLE => break,
                Some(_) => {}
                None => idle_since = Some(now),
            }
        }
        o.polls += 1;
        q.wait(Some(Duration::from_millis(5)), false)?;
    }
    o.calls = q.stats().rx_calls;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_counts_every_datagram() {
        for (gso, gro) in [(true, true), (false, false)] {
            let cfg = LoopbackBenchConfig {
                gso,
                gro,
                datagrams: 5_000,
                duration: Duration::from_secs(5),
                ..LoopbackBenchConfig::default()
            };
            let r = udp_loopback_throughput(&cfg).unwrap();
            assert_eq!(r.sent, 5_000, "{r}");
            assert_eq!((r.received, r.lost, r.corrupt), (5_000, 0, 0), "{r}");
            assert_eq!(r.bytes_received, 5_000 * 1200);
            assert!(r.tx_syscalls > 0 && r.rx_syscalls > 0);
        }
    }

    #[test]
    fn uring_on_either_side_counts_every_datagram() {
        use Backend::{Udp, Uring};
        for (tx_backend, rx_backend, gso) in
            [(Uring, Uring, true), (Uring, Udp, false), (Udp, Uring, true)]
        {
            let cfg = LoopbackBenchConfig {
                gso,
                gro: gso,
                datagrams: 5_000,
                duration: Duration::from_secs(5),
                tx_backend,
                rx_backend,
                ..LoopbackBenchConfig::default()
            };
            let r = match udp_loopback_throughput(&cfg) {
                Err(e) if e.to_string().starts_with("io_uring unavailable") => {
                    return crate::require::unavailable(e);
                }
                r => r.unwrap(),
            };
            assert_eq!((r.sent, r.received, r.lost, r.corrupt), (5_000, 5_000, 0, 0), "{r}");
            assert_eq!(r.bytes_received, 5_000 * 1200);
            assert!(r.tx_syscalls > 0, "{r}");
        }
    }

    #[test]
    fn backend_names_parse() {
        assert_eq!("uring".parse::<Backend>(), Ok(Backend::Uring));
        assert_eq!(Backend::Udp.to_string().parse::<Backend>(), Ok(Backend::Udp));
        assert!("xdp".parse::<Backend>().is_err());
    }

    #[test]
    fn bad_payload_is_refused() {
        let cfg = LoopbackBenchConfig { payload: 8, ..LoopbackBenchConfig::default() };
        assert!(udp_loopback_throughput(&cfg).is_err());
    }
}
