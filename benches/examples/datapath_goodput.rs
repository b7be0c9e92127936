//! The datapaths side by side on one veth pair (root; two network namespaces made by
//! `scripts/netns.sh`): udp, uring, and AF_XDP in native mode two ways on side a — `xdp-copy`
//! (payloads copied between engine buffers and UMEM frames, GSO trains split in software:
//! `XdpConfig::with_payload_copy(true)`) and `xdp-zero-copy` (the engine seals into and opens
//! in UMEM frames, no user-space copy; the default) — and the kernel's UDP stack on side b. One
//! table: raw datagrams per second both ways and QUIC goodput, with the per-packet cost (calls
//! and CPU) of side a, then the AF_XDP rows' QUIC CPU per datagram as a ratio of udp's. The
//! bind mode of each AF_XDP row is printed: veth allows only copy-mode binds (the kernel copies
//! between the UMEM and its `sk_buff`s), so "zero-copy" here is user space's side. Run it through `scripts/bench_datapaths.sh`, or:
//!
//! ```text
//! cargo run --release -p peregrine-benches --example datapath_goodput -- [SECS] [SIZE]
//! ```
//!
//! Per backend, SECS seconds each (default 2), SIZE-byte datagrams (default 1200):
//! - **raw rx**: side b blasts 16-segment GSO trains with a `UdpQueue`; side a's queue receives.
//! - **raw tx**: side a's queue sends 16-segment trains (split in software on AF_XDP); side b
//!   receives with GRO.
//! - **QUIC**: a Peregrine server on side a's queue (one worker) sends one unidirectional stream
//!   without end; a Peregrine client on side b (UDP datapath) reads it for SECS seconds.
//!   Goodput is stream bytes read per second.
//!
//! Costs are side a's: `calls/dg` is transmit + receive calls (syscalls, ring submissions or
//! ring polls, as [`QueueStats`] counts them; waits are not counted) per datagram; `ns/dg` is
//! the CPU time of side a's thread(s) per datagram, from `/proc/<pid>/task/<tid>/schedstat`.
//! On veth the "wire" is a memcpy in the kernel and softirq work is billed to whichever
//! thread was running, so compare rows of one run; the rates do not carry over to a NIC.

// A benchmark reads the clock itself.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peregrine_datapath::netns::run_in;
use peregrine_datapath::udp::{UdpConfig, UdpQueue};
use peregrine_datapath::uring::{UringConfig, UringQueue};
use peregrine_datapath::xdp::{XdpConfig, XdpMode, XdpQueue};
use peregrine_datapath::{Queue, QueueStats, RxBatch, TxBatch};
use peregrine_engine::api::{block_on, Endpoint, EndpointConfig};
use peregrine_engine::connection::{ClientConfig, ServerConfig, TransportConfig};
use peregrine_engine::crypto::{TlsClientConfig, TlsServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const ALPN: &[u8] = b"perf";
/// Bytes per stream write of the QUIC sender.
const CHUNK: usize = 1 << 20;
/// Writes the QUIC sender keeps in flight.
const INFLIGHT: usize = 16;
/// Bound on every QUIC setup step.
const LIMIT: Duration = Duration::from_secs(10);
const IP_A: &str = "10.203.0.1";
const IP_B: &str = "10.203.0.2";

fn script() -> String {
    format!("{}/../scripts/netns.sh", env!("CARGO_MANIFEST_DIR"))
}

fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    run_in(ns, f).unwrap_or_else(|e| panic!("enter {ns}: {e}"))
}

/// CPU time of thread `tid` of this process (nanoseconds on a CPU, from schedstat).
fn thread_cpu(tid: &str) -> Duration {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).unwrap_or_default();
    Duration::from_nanos(s.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// CPU time of the calling thread.
fn self_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(s.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Thread ids of this process.
fn tids() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

/// The datapaths under test on side a.
const BACKENDS: [&str; 4] = ["udp", "uring", "xdp-copy", "xdp-zero-copy"];

/// Opens side a's queue of `kind` in namespace `ns`, bound to `IP_A`.
fn open_a(kind: &str, ns: &str, ifname: &str) -> Box<dyn Queue> {
    let (kind, ifname) = (kind.to_string(), ifname.to_string());
    in_ns(ns, move || -> Box<dyn Queue> {
        let bind = SocketAddr::new(IP_A.parse().unwrap(), 0);
        match kind.as_str() {
            "udp" => Box::new(UdpQueue::open(&UdpConfig::new(bind)).expect("udp queue")),
            "uring" => Box::new(UringQueue::open(&UringConfig::new(bind)).expect("uring queue")),
            k => {
                let copy = k == "xdp-copy";
                let cfg = XdpConfig::new(&ifname, bind)
                    .with_mode(XdpMode::Native)
                    .with_payload_copy(copy);
                Box::new(XdpQueue::open(&cfg).expect("xdp queue"))
            }
        }
    })
}

fn open_b(ns: &str) -> Box<dyn Queue> {
    in_ns(ns, || -> Box<dyn Queue> {
        Box::new(UdpQueue::open(&UdpConfig::new("0.0.0.0:0".parse().unwrap())).unwrap())
    })
}

/// What one side did in a raw run.
#[derive(Default)]
struct Raw {
    datagrams: u64,
    calls: u64,
    cpu: Duration,
}

/// Receives for `secs`, then raises `stop`.
fn receive(q: &mut dyn Queue, secs: f64, stop: &AtomicBool) -> Raw {
    let mut rx = RxBatch::new(64);
    let (c0, s0) = (self_cpu(), q.stats());
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        if q.recv(&mut rx).unwrap_or(0) == 0 {
            let _ = q.wait(Some(Duration::from_millis(1)), false);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let s = q.stats();
    Raw {
        datagrams: s.rx_datagrams - s0.rx_datagrams,
        calls: s.rx_calls - s0.rx_calls,
        cpu: self_cpu() - c0,
    }
}

/// Sends `size`-byte datagrams in 16-segment trains to `dst` until `stop` (at most 30 s).
fn blast(q: &mut dyn Queue, dst: SocketAddr, size: usize, stop: &AtomicBool) -> Raw {
    let caps = q.capabilities();
    let segs = if caps.gso { 16.min(caps.max_gso_segments) } else { 1 };
    let data = vec![0x5au8; size * segs];
    let mut batch = TxBatch::new();
    let (c0, s0) = (self_cpu(), q.stats());
    let end = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        while batch.len() < 32 {
            let Some(mut b) = q.alloc_tx() else { break };
            b.extend_from_slice(&data);
            b.meta.dst = dst;
            b.meta.segment_size = (segs > 1).then_some(size);
            batch.push(b);
        }
        if q.send(&mut batch).unwrap_or(0) == 0 {
            let _ = q.wait(Some(Duration::from_millis(1)), true);
        }
    }
    batch.drain().for_each(drop);
    let s = q.stats();
    Raw {
        datagrams: s.tx_datagrams - s0.tx_datagrams,
        calls: s.tx_calls - s0.tx_calls,
        cpu: self_cpu() - c0,
    }
}

/// One raw run: `rx` (side a receives) or `tx` (side a sends). Returns side a's figures.
fn raw(kind: &str, rx: bool, net: &Net, secs: f64, size: usize) -> Raw {
    let mut a = open_a(kind, &net.ns_a, &net.if_a);
    let mut b = open_b(&net.ns_b);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        if rx {
            let dst = SocketAddr::new(IP_A.parse().unwrap(), a.local_addr().port());
            let st = &stop;
            let tx = s.spawn(move || blast(b.as_mut(), dst, size, st));
            let r = receive(a.as_mut(), secs, &stop);
            tx.join().unwrap();
            r
        } else {
            let dst = SocketAddr::new(IP_B.parse().unwrap(), b.local_addr().port());
            let st = &stop;
            let rx = s.spawn(move || receive(b.as_mut(), secs, st));
            let r = blast(a.as_mut(), dst, size, &stop);
            rx.join().unwrap();
            r
        }
    })
}

fn cert() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    (ck.cert.der().clone(), key)
}

/// What the QUIC run measured on side a.
struct Quic {
    bytes: u64,
    secs: f64,
    queue: QueueStats,
    cpu: Duration,
}

/// A Peregrine server on side a's queue streams to a Peregrine client on side b for `secs`.
fn quic(kind: &str, net: &Net, secs: f64) -> Quic {
    let (c, k) = cert();
    let transport = || TransportConfig::default().with_max_datagram_size(1472).unwrap();
    let mut sc = ServerConfig::new(Arc::new(
        TlsServerConfig::builder(vec![c.clone()], k).alpn_protocols([ALPN]).build().unwrap(),
    ));
    sc.transport = transport();
    let mut cc = ClientConfig::new(Arc::new(
        TlsClientConfig::builder()
            .add_root_certificate(c)
            .unwrap()
            .alpn_protocols([ALPN])
            .build()
            .unwrap(),
    ));
    cc.transport = transport();
    let queue = AnyQueue(open_a(kind, &net.ns_a, &net.if_a));
    let before = tids();
    // Worker threads start in namespace a (threads inherit the namespace of their creator).
    let server =
        in_ns(&net.ns_a, move || Endpoint::with_queues(vec![queue], EndpointConfig::server(sc)))
            .expect("server endpoint");
    let workers: Vec<String> = tids().difference(&before).cloned().collect();
    let client = in_ns(&net.ns_b, || {
        Endpoint::bind("0.0.0.0:0".parse().unwrap(), EndpointConfig::client(cc))
    })
    .expect("client endpoint");
    let addr = SocketAddr::new(IP_A.parse::<IpAddr>().unwrap(), server.local_addr().port());
    let conn = client.connect(addr, "localhost").unwrap().wait(LIMIT).expect("handshake");
    let sconn = server.accept_blocking(Some(LIMIT)).expect("accepted");
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let sender = std::thread::spawn(move || {
        let chunk = Bytes::from(vec![0x42u8; CHUNK]);
        let Ok(send) = sconn.open_uni_blocking(LIMIT) else { return };
        let mut pending = std::collections::VecDeque::new();
        while !st.load(Ordering::Relaxed) {
            pending.push_back(send.write(chunk.clone()));
            if pending.len() >= INFLIGHT {
                let w: peregrine_engine::api::WriteCompletion = pending.pop_front().unwrap();
                if !w.wait(LIMIT).is_ok_and(|s| s.was_accepted()) {
                    return;
                }
            }
        }
        send.reset(0);
    });
    let mut recv = conn.accept_uni_blocking(LIMIT).expect("stream");
    let cpu0: Duration = workers.iter().map(|t| thread_cpu(t)).sum();
    let q0 = server.stats().workers[0].queue;
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        match block_on(recv.read_chunk(usize::MAX), Some(Duration::from_millis(100))) {
            Ok(Ok(Some(b))) => bytes += b.len() as u64,
            Ok(Ok(None)) | Ok(Err(_)) => break,
            Err(_) => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu: Duration = workers.iter().map(|t| thread_cpu(t)).sum::<Duration>() - cpu0;
    let q1 = server.stats().workers[0].queue;
    stop.store(true, Ordering::Relaxed);
    conn.close(0u32.into(), b"done");
    let _ = sender.join();
    let _ = server.shutdown(Duration::from_secs(2));
    let queue = QueueStats {
        tx_datagrams: q1.tx_datagrams - q0.tx_datagrams,
        tx_bytes: q1.tx_bytes - q0.tx_bytes,
        tx_calls: q1.tx_calls - q0.tx_calls,
        tx_errors: q1.tx_errors - q0.tx_errors,
        rx_datagrams: q1.rx_datagrams - q0.rx_datagrams,
        rx_bytes: q1.rx_bytes - q0.rx_bytes,
        rx_calls: q1.rx_calls - q0.rx_calls,
        rx_dropped: q1.rx_dropped - q0.rx_dropped,
        rx_csum_partial: q1.rx_csum_partial - q0.rx_csum_partial,
        rx_bad_checksum: q1.rx_bad_checksum - q0.rx_bad_checksum,
        rx_malformed: q1.rx_malformed - q0.rx_malformed,
    };
    Quic { bytes, secs, queue, cpu }
}

/// Side a's queue of any backend, for the endpoint (which takes one queue type).
struct AnyQueue(Box<dyn Queue>);

impl Queue for AnyQueue {
    fn capabilities(&self) -> &peregrine_datapath::Capabilities {
        self.0.capabilities()
    }
    fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }
    fn alloc_tx(&mut self) -> Option<peregrine_datapath::TxBuffer> {
        self.0.alloc_tx()
    }
    fn max_tx_buffer(&self) -> usize {
        self.0.max_tx_buffer()
    }
    fn send(&mut self, batch: &mut TxBatch) -> std::io::Result<usize> {
        self.0.send(batch)
    }
    fn recv(&mut self, batch: &mut RxBatch) -> std::io::Result<usize> {
        self.0.recv(batch)
    }
    fn wait(&mut self, timeout: Option<Duration>, writable: bool) -> std::io::Result<()> {
        self.0.wait(timeout, writable)
    }
    fn wait_with(
        &mut self,
        timeout: Option<Duration>,
        writable: bool,
        waker: &peregrine_datapath::Waker,
    ) -> std::io::Result<()> {
        self.0.wait_with(timeout, writable, waker)
    }
    fn stats(&self) -> QueueStats {
        self.0.stats()
    }
}

struct Net {
    name: String,
    ns_a: String,
    ns_b: String,
    if_a: String,
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["down", &self.name]).output();
    }
}

fn per(x: u64, n: u64) -> f64 {
    x as f64 / n.max(1) as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1200);
    let name = format!("dg{}", std::process::id() % 10_000_000);
    let out = Command::new(script()).args(["up", &name]).output().expect("netns.sh");
    assert!(out.status.success(), "netns.sh up: {}", String::from_utf8_lossy(&out.stderr));
    let net =
        Net { ns_a: format!("{name}a"), ns_b: format!("{name}b"), if_a: format!("{name}a0"), name };

    println!("veth pair, side a = datapath under test, side b = kernel UDP (GSO/GRO)");
    println!("raw: {size}-byte datagrams, 16-segment trains (one datagram per buffer where the queue has no GSO: xdp-zero-copy); QUIC: 1472-byte datagrams, one stream; {secs} s per run");
    println!(
        "| {:<13} | {:>10} | {:>8} | {:>8} | {:>10} | {:>8} | {:>8} | {:>9} | {:>9} | {:>8} |",
        "datapath",
        "rx dg/s",
        "rx c/dg",
        "rx ns/dg",
        "tx dg/s",
        "tx c/dg",
        "tx ns/dg",
        "QUIC Mb/s",
        "QUIC c/dg",
        "QUIC ns/dg"
    );
    println!(
        "|{:-<15}|{:-<12}|{:-<10}|{:-<10}|{:-<12}|{:-<10}|{:-<10}|{:-<11}|{:-<11}|{:-<11}|",
        "", "", "", "", "", "", "", "", "", ""
    );
    let mut quic_ns = Vec::new();
    let mut binds = Vec::new();
    for kind in BACKENDS {
        if kind.starts_with("xdp") {
            let q = open_a(kind, &net.ns_a, &net.if_a);
            let c = q.capabilities();
            let bind = if c.zero_copy { "XDP_ZEROCOPY" } else { "copy mode (the kernel copies)" };
            binds.push((
                kind,
                format!("native XDP, bound {bind}, gso {}, missing {:?}", c.gso, c.missing),
            ));
        }
        let r = raw(kind, true, &net, secs, size);
        let t = raw(kind, false, &net, secs, size);
        let q = quic(kind, &net, secs);
        let qd = q.queue.tx_datagrams + q.queue.rx_datagrams;
        quic_ns.push((kind, per(q.cpu.as_nanos() as u64, qd)));
        println!(
            "| {kind:<13} | {:>10.0} | {:>8.3} | {:>8.0} | {:>10.0} | {:>8.3} | {:>8.0} | {:>9.0} | {:>9.3} | {:>10.0} |",
            r.datagrams as f64 / secs,
            per(r.calls, r.datagrams),
            per(r.cpu.as_nanos() as u64, r.datagrams),
            t.datagrams as f64 / secs,
            per(t.calls, t.datagrams),
            per(t.cpu.as_nanos() as u64, t.datagrams),
            q.bytes as f64 * 8.0 / q.secs / 1e6,
            per(q.queue.tx_calls + q.queue.rx_calls, qd),
            per(q.cpu.as_nanos() as u64, qd),
        );
    }
    println!("rx/tx: side a receiving / sending raw datagrams; c/dg: calls per datagram; ns/dg: CPU of side a's thread per datagram");
    println!("QUIC: server on side a (its worker's CPU and calls per datagram sent + received), Peregrine UDP client on side b");
    let udp = quic_ns.first().map_or(0.0, |(_, ns)| *ns);
    for (kind, ns) in quic_ns.iter().skip(1) {
        println!("QUIC CPU per datagram, {kind} / udp: {:.2}", ns / udp.max(1.0));
    }
    for (kind, bind) in binds {
        println!("{kind}: {bind}");
    }
}
