//! One AF_XDP queue per worker, as root: a veth pair with 2 transmit and 2 receive queues on
//! each end (`scripts/netns.sh up --queues 2`), a Peregrine server in namespace a with 2
//! workers, each owning the XSK of one NIC queue (`XdpQueue::open_group(.., &[0, 1])`; the XDP
//! program redirects by `rx_queue_index` into the XSKMAP), and two Peregrine clients in
//! namespace b on the kernel's UDP stack.
//!
//! On veth, a datagram sent on transmit queue i of one end arrives on receive queue i of the
//! other. Each client's worker thread is pinned to its own CPU (A: 0, B: 1), and side b's XPS
//! map (`xps_cpus`) picks the transmit queue by sending CPU, so the test decides which server
//! queue each client's datagrams reach, as a NIC's RSS hash would. Client A's datagrams go to
//! queue 0 and client B's to queue 1:
//! each connection is owned by the worker of the queue its first Initial arrived on
//! (`Capabilities::flow_steered`), and both upload byte-exact. Then the steering is swapped:
//! every datagram now arrives on the other worker's queue and is forwarded to its owner
//! (`WorkerStats::rx_forwarded`), and both upload again, byte-exact.
//!
//! Skips (with the reason printed) only when not root, when AF_XDP is missing, when `ip` or
//! `ethtool` is absent or fewer than 2 CPUs are usable, and fails instead under
//! `PEREGRINE_REQUIRE_ALL=1`.

// The case bounds read the clock.
#![allow(clippy::disallowed_methods)]

mod ns;
#[allow(dead_code)]
mod quinn_udp {
    pub mod certs;
    pub mod hq;
}

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ns::{in_ns, NetnsPair, Published, Watched};
use peregrine_datapath::require::{unavailable, xdp_netns};
use peregrine_datapath::xdp::{XdpConfig, XdpMode, XdpQueue};
use peregrine_datapath::Queue;
use peregrine_engine::api::{Connection, Endpoint, EndpointConfig};
use peregrine_engine::connection::{ClientConfig, ServerConfig, TransportConfig};
use peregrine_engine::VarInt;
use quinn_udp::{certs, hq};

/// Bytes each client uploads in each phase.
const PHASE: usize = 8 << 20;
const CLOSE_CODE: u32 = 0x42;
const DATAGRAM: u16 = 1472;
const LIMIT: Duration = Duration::from_secs(60);

async fn bounded<F: IntoFuture>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f.into_future()).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no progress within {LIMIT:?}"),
    }
}

fn transport() -> TransportConfig {
    TransportConfig::default().with_max_datagram_size(DATAGRAM).unwrap()
}

/// Sends what CPU `cpu` transmits on side b on transmit queue `queue` (XPS,
/// `/sys/class/net/IF/queues/tx-N/xps_cpus`), for each `(cpu, queue)`. The clients' sockets
/// are unconnected, so the kernel picks the queue per datagram from the sending CPU.
fn steer(net: &NetnsPair, rules: &[(usize, usize)]) {
    for (cpu, queue) in rules {
        let path = format!("/sys/class/net/{}/queues/tx-{queue}/xps_cpus", net.if_b);
        let out = Command::new("ip")
            .args(["netns", "exec", &net.ns_b, "sh", "-c"])
            .arg(format!("echo {:x} > {path}", 1u64 << cpu))
            .output()
            .expect("run ip netns exec");
        assert!(out.status.success(), "xps {path}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The final counters of a server queue (published when the endpoint dropped it).
fn final_counters(out: &Mutex<Published>) -> Published {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let p = *out.lock().unwrap();
        if p.closed {
            return p;
        }
        assert!(Instant::now() < end, "XDP queue not dropped with the endpoint");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Uploads [`PHASE`] bytes drawn from `seed` on a new unidirectional stream; returns when the
/// peer acknowledged all of it.
async fn upload(conn: &Connection, seed: u8) {
    let send = conn.open_uni().await.expect("open_uni");
    send.write_all(hq::body(PHASE, seed)).await.expect("upload");
    let st = send.finish().await;
    assert!(st.was_accepted(), "upload finish ended as {st:?}");
}

/// Server side of one connection: reads two uploads in turn and checks them against the
/// seeds of the client whose port this is.
async fn serve(conn: Connection, seeds: [(u16, [u8; 2]); 2]) -> u16 {
    let port = conn.remote_address().port();
    let (_, want) = seeds.iter().find(|(p, _)| *p == port).expect("a known client port");
    for seed in want {
        let mut recv = conn.accept_uni().await.expect("accept_uni");
        let got = recv.read_to_end(PHASE + 1).await.expect("read upload");
        hq::check_body(&got, PHASE, *seed);
    }
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xdp_two_queues_two_workers_own_and_forward() {
    if !xdp_netns(false) {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        unavailable(format!("{cpus} CPU usable: the clients' workers need one CPU each"));
        return;
    }
    let net = NetnsPair::up_with_queues("xq", 0, 2);
    let ip = net.ip4_a;
    let if_a = net.if_a.clone();
    let (server, outs) = in_ns(&net.ns_a, move || {
        let cfg = XdpConfig::new(&if_a, SocketAddr::new(ip, 0)).with_mode(XdpMode::Native);
        let queues = XdpQueue::open_group(&cfg, &[0, 1]).expect("open queues 0 and 1");
        let mut watched = Vec::new();
        let mut outs = Vec::new();
        for q in queues {
            assert!(q.capabilities().flow_steered, "AF_XDP queues are steered by flow");
            println!("queue {}: {:?}", q.config().queue_id(), q.capabilities());
            let (w, out) = Watched::new(q);
            watched.push(w);
            outs.push(out);
        }
        let mut sc = ServerConfig::new(certs::peregrine_server());
        sc.transport = transport().with_idle_timeout(Some(Duration::from_secs(30))).unwrap();
        let ep = Endpoint::with_queues(watched, EndpointConfig::server(sc)).expect("endpoint");
        (ep, outs)
    });
    assert_eq!(server.stats().workers.len(), 2, "one worker per queue");
    let addr = SocketAddr::new(ip, server.local_addr().port());
    // Client i's worker runs on CPU i (and sends from there).
    let clients: Vec<Endpoint> = (0..2)
        .map(|cpu| {
            in_ns(&net.ns_b, || {
                let mut cc = ClientConfig::new(certs::peregrine_client());
                cc.transport = transport();
                let mut config = EndpointConfig::client(cc);
                config.worker.cores = vec![Some(cpu)];
                Endpoint::bind("0.0.0.0:0".parse().unwrap(), config)
            })
            .expect("bind client")
        })
        .collect();
    let (pa, pb) = (clients[0].local_addr().port(), clients[1].local_addr().port());
    steer(&net, &[(0, 0), (1, 1)]);
    // Side a's MAC is known up front: a first Initial held for ARP would leave from whichever
    // CPU takes the ARP reply, on that CPU's queue.
    let if_a = net.if_a.clone();
    let mac = in_ns(&net.ns_a, move || peregrine_datapath::xdp::if_mac(&if_a)).expect("mac");
    let lladdr = mac.0.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    let out = Command::new("ip")
        .args(["-n", &net.ns_b, "neigh", "replace", &ip.to_string(), "lladdr", &lladdr])
        .args(["nud", "permanent", "dev", &net.if_b])
        .output()
        .expect("ip neigh");
    assert!(out.status.success(), "ip neigh: {}", String::from_utf8_lossy(&out.stderr));
    let seeds = [(pa, [21, 22]), (pb, [31, 32])];

    let server_side = async {
        let c1 = bounded("accept 1", server.accept()).await.expect("accepted");
        let c2 = bounded("accept 2", server.accept()).await.expect("accepted");
        let (p1, p2) = tokio::join!(serve(c1, seeds), serve(c2, seeds));
        let mut ports = [p1, p2];
        ports.sort_unstable();
        ports
    };
    let client_side = async {
        let a = clients[0].connect(addr, "localhost").expect("connect a");
        let b = clients[1].connect(addr, "localhost").expect("connect b");
        let (a, b) = tokio::join!(bounded("handshake a", a), bounded("handshake b", b));
        let (a, b) = (a.expect("handshake a"), b.expect("handshake b"));
        // Phase 1: each client's datagrams reach the queue of the worker that owns it.
        tokio::join!(bounded("a, phase 1", upload(&a, 21)), bounded("b, phase 1", upload(&b, 31)));
        let w = server.stats().workers;
        println!(
            "after phase 1: {:?}",
            w.iter().map(|w| (w.connections, w.rx_forwarded)).collect::<Vec<_>>()
        );
        assert_eq!(
            w.iter().map(|w| w.connections).collect::<Vec<_>>(),
            vec![1, 1],
            "each worker owns the connection that arrived on its queue"
        );
        let before: u64 = w.iter().map(|w| w.rx_forwarded).sum();
        // Phase 2: swapped, every datagram arrives on the other worker's queue.
        steer(&net, &[(0, 1), (1, 0)]);
        tokio::join!(bounded("a, phase 2", upload(&a, 22)), bounded("b, phase 2", upload(&b, 32)));
        let w = server.stats().workers;
        println!(
            "after phase 2: {:?}",
            w.iter().map(|w| (w.connections, w.rx_forwarded)).collect::<Vec<_>>()
        );
        (before, w, a, b)
    };
    let (ports, (forwarded_before, workers, a, b)) = tokio::join!(server_side, client_side);
    // Closed once the server read both uploads to their end.
    a.close(VarInt::from_u32(CLOSE_CODE), b"done");
    b.close(VarInt::from_u32(CLOSE_CODE), b"done");
    assert!(a.wait_drained(LIMIT) && b.wait_drained(LIMIT), "clients drained");
    let mut want = [pa, pb];
    want.sort_unstable();
    assert_eq!(ports, want, "both connections served, both uploads byte-exact");
    let min = (PHASE / usize::from(DATAGRAM)) as u64;
    // Phase 1 needed no forwarding (a handful at most: none is expected).
    assert!(forwarded_before < min / 10, "phase 1 forwarded {forwarded_before}");
    for w in &workers {
        assert!(
            w.rx_forwarded >= min,
            "worker {} forwarded {} datagrams of the other's connection, want >= {min}",
            w.index,
            w.rx_forwarded
        );
    }
    drop(clients);
    let report = server.shutdown(Duration::from_secs(5));
    assert!(report.is_ok(), "shutdown: {report:?}");
    drop(server);
    for (i, out) in outs.iter().enumerate() {
        let p = final_counters(out);
        println!("queue {i}: {:?}\n  xdp {:?}", p.queue, p.xdp);
        let (q, x) = (p.queue, p.xdp);
        // Each queue received a whole upload in each phase (one client's, then the other's).
        assert!(q.rx_datagrams >= 2 * min, "queue {i} received {} < {}", q.rx_datagrams, 2 * min);
        assert_eq!(x.kernel_rx, 0, "queue {i}: datagrams through the kernel stack");
        assert_eq!(x.xsk_rx_frames, q.rx_datagrams + q.rx_dropped, "queue {i}: all via its XSK");
        // Each owner answered from its own queue.
        assert!(q.tx_datagrams > 0, "queue {i} sent nothing");
        assert_eq!(x.tx_completed, x.tx_frames, "queue {i}");
        assert_eq!((x.rx_payload_copies, x.tx_payload_copies), (0, 0), "queue {i}: {x:?}");
    }
}
