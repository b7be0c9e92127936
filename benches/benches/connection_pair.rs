//! Connection-pair goodput on the simulated network (no syscalls), and heap allocations per
//! packet in steady state, counted by a global allocator wrapper and split between the
//! connection's send path (`poll_transmit`), its receive path (`handle_datagram`) and the rest
//! (simulator, application).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use peregrine_datapath::alloc_count::CountingAllocator;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use peregrine_datapath::sim::{LinkConfig, SimNetwork, SimQueue, SimQueueConfig};
use peregrine_datapath::{Queue, RxBatch, TxBatch, TxBuffer, TxMeta};
use peregrine_engine::connection::{
    ClientConfig, Connection, Event, Incoming, RandomCidGenerator, ServerConfig, TransportConfig,
};
use peregrine_engine::crypto::{TlsClientConfig, TlsServerConfig};
use peregrine_engine::packet::{LongType, PartialDecode, PlainHeader};
use peregrine_engine::streams::{Dir, StreamEvent, StreamId};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Counts every allocation (and reallocation) made by the process.
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator::new();

fn allocs() -> u64 {
    GLOBAL.allocations()
}

const CID_LEN: usize = 8;
const CHUNK: usize = 64 * 1024;
static DATA: [u8; CHUNK] = [0x5a; CHUNK];

fn tls() -> (Arc<TlsClientConfig>, Arc<TlsServerConfig>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let cert = ck.cert.der().clone();
    let server = TlsServerConfig::builder(vec![cert.clone()], key)
        .alpn_protocols([b"bench".as_slice()])
        .build()
        .unwrap();
    let client = TlsClientConfig::builder()
        .add_root_certificate(cert)
        .unwrap()
        .alpn_protocols([b"bench".as_slice()])
        .build()
        .unwrap();
    (Arc::new(client), Arc::new(server))
}

/// Allocation counts by where they happened.
#[derive(Default, Debug, Clone, Copy)]
struct AllocSplit {
    send: u64,
    recv: u64,
}

/// A client streaming to a server over a simulated 10 Gbit/s, 1 ms link.
struct BenchPair {
    net: SimNetwork,
    client: Connection,
    server: Option<Connection>,
    cq: SimQueue,
    sq: SimQueue,
    server_addr: SocketAddr,
    server_cfg: ServerConfig,
    /// One receive batch per port: a batch recycles its buffers into the pool of the port it
    /// receives from next, so sharing one between ports would free and reallocate them.
    crx: RxBatch,
    srx: RxBatch,
    /// A transmit buffer taken but not filled, kept for the next flush (a buffer dropped
    /// instead of sent is freed, and a new one is zero-filled).
    ctx_spare: Option<TxBuffer>,
    stx_spare: Option<TxBuffer>,
    stream: Option<StreamId>,
    read_buf: Vec<u8>,
    received: u64,
    split: AllocSplit,
}

impl BenchPair {
    fn new(tls: &(Arc<TlsClientConfig>, Arc<TlsServerConfig>)) -> Self {
        let net = SimNetwork::new(7);
        let ca: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let sa: SocketAddr = "10.0.0.2:443".parse().unwrap();
        let cq = net.bind_with(ca, SimQueueConfig::default()).unwrap();
        let sq = net.bind_with(sa, SimQueueConfig::default()).unwrap();
        let link = LinkConfig {
            rate_bps: Some(10_000_000_000),
            queue_bytes: 4 << 20,
            ..LinkConfig::with_delay(Duration::from_millis(1))
        };
        net.set_path(ca, sa, link).unwrap();
        let t = TransportConfig::default().with_max_datagram_size(1452).unwrap();
        let mut cc = ClientConfig::new(tls.0.clone());
        cc.transport = t.clone().with_rng_seed(1);
        let client = Connection::client(
            &cc,
            net.now(),
            sa,
            "localhost",
            Box::new(RandomCidGenerator::new(CID_LEN, 1)),
        )
        .unwrap();
        let mut server_cfg = ServerConfig::new(tls.1.clone());
        server_cfg.transport = t.with_rng_seed(2);
        Self {
            net,
            client,
            server: None,
            cq,
            sq,
            server_addr: sa,
            server_cfg,
            crx: RxBatch::new(64),
            srx: RxBatch::new(64),
            ctx_spare: None,
            stx_spare: None,
            stream: None,
            read_buf: vec![0u8; 256 * 1024],
            received: 0,
            split: AllocSplit::default(),
        }
    }

    fn step(&mut self) {
        let now = self.net.now();
        self.cq.recv(&mut self.crx).unwrap();
        for d in self.crx.iter_mut() {
            let src = d.meta.src;
            let ecn = d.meta.ecn;
            for seg in d.segments_mut() {
                let a = allocs();
                self.client.handle_datagram(now, src, ecn, seg);
                self.split.recv += allocs() - a;
            }
        }
        self.sq.recv(&mut self.srx).unwrap();
        for d in self.srx.iter_mut() {
            let src = d.meta.src;
            let ecn = d.meta.ecn;
            for seg in d.segments_mut() {
                if self.server.is_none() {
                    let (pd, _) = PartialDecode::new(seg, CID_LEN, false).unwrap();
                    if let PlainHeader::Long {
                        ty: LongType::Initial,
                        version,
                        dst_cid,
                        src_cid,
                        ..
                    } = pd.header().clone()
                    {
                        let inc = Incoming { dst_cid, src_cid, version, retry: None };
                        self.server = Some(
                            Connection::server(
                                &self.server_cfg,
                                now,
                                src,
                                inc,
                                Box::new(RandomCidGenerator::new(CID_LEN, 2)),
                            )
                            .unwrap(),
                        );
                    }
                }
                if let Some(s) = self.server.as_mut() {
                    let a = allocs();
                    s.handle_datagram(now, src, ecn, seg);
                    self.split.recv += allocs() - a;
                }
            }
        }
        for c in [Some(&mut self.client), self.server.as_mut()].into_iter().flatten() {
            if c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now);
            }
        }
        self.split.send += flush(&mut self.client, &mut self.cq, &mut self.ctx_spare, now);
        if let Some(s) = self.server.as_mut() {
            self.split.send += flush(s, &mut self.sq, &mut self.stx_spare, now);
        }
        // Application: the client keeps the stream full, the server reads everything.
        if let Some(id) = self.stream {
            while self.client.write(id, Bytes::from_static(&DATA), false).is_ok() {}
        }
        while let Some(e) = self.client.poll_event() {
            if e == Event::Connected {
                self.stream = Some(self.client.open(Dir::Uni).unwrap());
            }
        }
        if let Some(s) = self.server.as_mut() {
            while let Some(e) = s.poll_event() {
                if let Event::Stream(StreamEvent::Opened { id } | StreamEvent::Readable { id }) = e
                {
                    while let Ok((n, _)) = s.read(id, &mut self.read_buf) {
                        if n == 0 {
                            break;
                        }
                        self.received += n as u64;
                    }
                }
            }
        }
        let next = [
            self.net.next_event(),
            self.client.poll_timeout(),
            self.server.as_ref().and_then(|s| s.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(t) = next {
            if t > now {
                self.net.advance_to(t);
            }
        }
        let _ = self.server_addr;
    }

    /// Runs until the server read `bytes` more (bounded).
    fn transfer(&mut self, bytes: u64) {
        let target = self.received + bytes;
        for _ in 0..10_000_000 {
            if self.received >= target {
                return;
            }
            self.step();
            // Keep reading streams that became readable without a new event.
            if let (Some(s), Some(id)) = (self.server.as_mut(), self.stream) {
                while let Ok((n, _)) = s.read(id, &mut self.read_buf) {
                    if n == 0 {
                        break;
                    }
                    self.received += n as u64;
                }
            }
        }
        panic!("transfer stalled at {} of {}", self.received, target);
    }

    fn packets(&self) -> (u64, u64) {
        let c = self.client.stats();
        let s = self.server.as_ref().map(|s| s.stats()).unwrap_or_default();
        (c.packets_sent + s.packets_sent, c.packets_received + s.packets_received)
    }
}

/// Sends everything `conn` has; returns the allocations made inside `poll_transmit`.
fn flush(
    conn: &mut Connection,
    q: &mut SimQueue,
    spare: &mut Option<TxBuffer>,
    now: Instant,
) -> u64 {
    let mut counted = 0;
    let mut batch = TxBatch::new();
    for _ in 0..4096 {
        let Some(mut tx) = spare.take().or_else(|| q.alloc_tx()) else { break };
        let a = allocs();
        let t = conn.poll_transmit(now, tx.spare(), 32);
        counted += allocs() - a;
        let Some(t) = t else {
            *spare = Some(tx);
            break;
        };
        tx.advance(t.len);
        tx.meta = TxMeta { dst: t.dst, src_ip: None, ecn: t.ecn, segment_size: t.segment_size };
        batch.push(tx);
        if batch.len() >= 32 {
            q.send(&mut batch).unwrap();
        }
    }
    if !batch.is_empty() {
        q.send(&mut batch).unwrap();
    }
    counted
}

fn goodput(c: &mut Criterion) {
    let tls = tls();
    let mut g = c.benchmark_group("connection_pair");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    const BYTES: u64 = 16 << 20;
    g.throughput(Throughput::Bytes(BYTES));
    g.bench_function("goodput_16MiB_one_stream", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut p = BenchPair::new(&tls);
                // Wall time of the handshake is excluded; the transfer is measured.
                p.transfer(1);
                // A benchmark measures wall time; the simulated pair itself runs on virtual time.
                #[allow(clippy::disallowed_methods)]
                let start = Instant::now();
                p.transfer(BYTES);
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn allocations_per_packet(_c: &mut Criterion) {
    let tls = tls();
    let mut p = BenchPair::new(&tls);
    // Warm up: handshake, slow start, buffers and pools at their steady size.
    p.transfer(32 << 20);
    let (sent0, recv0) = p.packets();
    p.split = AllocSplit::default();
    let total0 = allocs();
    p.transfer(32 << 20);
    let (sent1, recv1) = p.packets();
    let total = allocs() - total0;
    let (sent, recv) = (sent1 - sent0, recv1 - recv0);
    let packets = sent + recv;
    println!(
        "steady-state allocations: {:.3} per packet sent in poll_transmit ({} / {} packets), \
         {:.3} per packet received in handle_datagram ({} / {}), {:.3} per packet overall \
         including simulator and application ({} / {})",
        p.split.send as f64 / sent.max(1) as f64,
        p.split.send,
        sent,
        p.split.recv as f64 / recv.max(1) as f64,
        p.split.recv,
        recv,
        total as f64 / packets.max(1) as f64,
        total,
        packets,
    );
}

criterion_group!(benches, goodput, allocations_per_packet);
criterion_main!(benches);
