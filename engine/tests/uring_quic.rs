//! QUIC over io_uring on loopback: Peregrine server and client both on `UringQueue`s (multishot
//! recvmsg on a provided-buffer ring, linked sendmsg with UDP_SEGMENT, optionally SEND_ZC), and
//! a quinn 0.11 client against a Peregrine server on a `UringQueue`. Bodies are checked
//! byte-exact (50 MB on one stream, 100 streams of 64 KB); the queues' io_uring counters show
//! the ring (not a recvmmsg fallback) carried the traffic.
//!
//! Skips (with the reason printed) only when the kernel refuses io_uring (seccomp,
//! `kernel.io_uring_disabled`, a kernel before 6.0), and fails instead under
//! `PEREGRINE_REQUIRE_ALL=1` (`peregrine_datapath::require`).

#![allow(clippy::disallowed_methods)]

#[allow(dead_code)]
mod quinn_udp {
    pub mod certs;
    pub mod hq;
}

use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peregrine_datapath::uring::{UringConfig, UringQueue, UringStats};
use peregrine_datapath::{Capabilities, Queue, QueueStats, RxBatch, TxBatch, TxBuffer, Waker};
use peregrine_engine::api::{Endpoint, EndpointConfig};
use peregrine_engine::connection::{ClientConfig, ServerConfig, TransportConfig};
use peregrine_engine::VarInt;
use quinn_udp::{certs, hq};

/// Bound on every step of a case.
const LIMIT: Duration = Duration::from_secs(30);
/// The application close code the client sends when done.
const CLOSE_CODE: u32 = 0x42;

async fn bounded<F: IntoFuture>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f.into_future()).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no progress within {LIMIT:?}"),
    }
}

fn transport() -> TransportConfig {
    TransportConfig::default().with_max_datagram_size(1472).unwrap()
}

/// Final counters of a queue, published when it is dropped with its endpoint.
#[derive(Clone, Copy, Debug, Default)]
struct Final {
    queue: QueueStats,
    uring: UringStats,
    multishot: bool,
    send_zc: bool,
    closed: bool,
}

/// A [`UringQueue`] that publishes its counters when dropped.
struct Watched(UringQueue, Arc<Mutex<Final>>);

impl Drop for Watched {
    fn drop(&mut self) {
        *self.1.lock().unwrap() = Final {
            queue: self.0.stats(),
            uring: self.0.uring_stats(),
            multishot: self.0.multishot_recv(),
            send_zc: self.0.send_zc(),
            closed: true,
        };
    }
}

impl Queue for Watched {
    fn capabilities(&self) -> &Capabilities {
        self.0.capabilities()
    }
    fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }
    fn alloc_tx(&mut self) -> Option<TxBuffer> {
        self.0.alloc_tx()
    }
    fn max_tx_buffer(&self) -> usize {
        self.0.max_tx_buffer()
    }
    fn send(&mut self, batch: &mut TxBatch) -> io::Result<usize> {
        self.0.send(batch)
    }
    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        self.0.recv(batch)
    }
    fn wait(&mut self, timeout: Option<Duration>, writable: bool) -> io::Result<()> {
        self.0.wait(timeout, writable)
    }
    fn wait_with(&mut self, t: Option<Duration>, writable: bool, w: &Waker) -> io::Result<()> {
        self.0.wait_with(t, writable, w)
    }
    fn stats(&self) -> QueueStats {
        self.0.stats()
    }
}

/// An endpoint on one io_uring queue on 127.0.0.1, or `None` (with the reason printed; a
/// failure under `PEREGRINE_REQUIRE_ALL=1`) when io_uring is refused.
fn uring_endpoint(
    test: &str,
    config: EndpointConfig,
    zc: bool,
) -> Option<(Endpoint, Arc<Mutex<Final>>)> {
    let cfg = UringConfig::new("127.0.0.1:0".parse().unwrap()).with_send_zc(zc);
    let q = match UringQueue::open(&cfg) {
        Ok(q) => q,
        Err(e) => {
            peregrine_datapath::require::unavailable(format_args!("io_uring unavailable: {e}"));
            return None;
        }
    };
    println!("{test}: uring queue caps {:?}", q.capabilities());
    let out = Arc::new(Mutex::new(Final::default()));
    let ep = Endpoint::with_queues(vec![Watched(q, out.clone())], config).expect("endpoint");
    Some((ep, out))
}

fn final_counters(out: &Mutex<Final>) -> Final {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let f = *out.lock().unwrap();
        if f.closed {
            return f;
        }
        assert!(Instant::now() < end, "queue not dropped with its endpoint");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The ring carried the traffic: multishot receive armed (no recvmmsg fallback), datagrams
/// both ways.
fn check_ring(who: &str, f: &Final, min_rx: u64, zc: bool) {
    println!("{who}: {f:?}");
    assert!(f.multishot, "{who}: multishot recvmsg on the buffer ring");
    assert!(f.uring.recv_arms >= 1, "{who}: receive armed in the ring");
    assert!(f.queue.rx_datagrams >= min_rx, "{who}: received {}", f.queue.rx_datagrams);
    assert!(f.queue.tx_datagrams > 0 && f.queue.tx_calls > 0, "{who}: sent");
    assert_eq!(f.send_zc, zc, "{who}: SEND_ZC as asked");
    if zc {
        assert!(f.uring.zc_sends > 0, "{who}: zero-copy sends submitted");
    }
}

/// Peregrine client → Peregrine server, both on io_uring.
async fn peregrine_pair(test: &str, fetches: Vec<(usize, u8)>, zc: bool) {
    let mut sc = ServerConfig::new(certs::peregrine_server());
    sc.transport = transport();
    let Some((server, s_out)) = uring_endpoint(test, EndpointConfig::server(sc), zc) else {
        return;
    };
    let mut cc = ClientConfig::new(certs::peregrine_client());
    cc.transport = transport();
    let Some((client, c_out)) = uring_endpoint(test, EndpointConfig::client(cc), zc) else {
        return;
    };
    let served = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let connecting = client.connect(server.local_addr(), "localhost").expect("connect");
    let sconn = bounded("accept", server.accept()).await.expect("accepted");
    let serving = tokio::spawn(hq::serve_peregrine(sconn, served.clone()));
    let conn = bounded("handshake", connecting).await.expect("handshake");
    let mut tasks = Vec::new();
    for &(size, seed) in &fetches {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            (size, seed, hq::fetch_peregrine(&conn, size, seed).await)
        }));
    }
    let mut total = 0;
    for t in tasks {
        let (size, seed, got) = bounded("fetch", t).await.expect("fetch task");
        hq::check_body(&got, size, seed);
        total += size;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{test}: {total} bytes in {secs:.2} s ({:.0} Mbit/s)", total as f64 * 8e-6 / secs);
    assert_eq!(served.load(Ordering::Relaxed), fetches.len(), "requests served");
    conn.close(VarInt::from_u32(CLOSE_CODE), b"done");
    let reason = bounded("server sees close", serving).await.expect("serve task");
    assert!(hq::peregrine_app_close(&reason, CLOSE_CODE.into()), "server saw {reason:?}");
    assert!(conn.wait_drained(LIMIT), "client connection drained");
    assert!(server.shutdown(Duration::from_secs(5)).is_ok());
    drop((server, client));
    let (s, c) = (final_counters(&s_out), final_counters(&c_out));
    // Loopback's path MTU lets DPLPMTUD reach the largest UDP payload: count by that size.
    let min = (total / 65_527) as u64;
    check_ring("server", &s, 2, zc);
    check_ring("client", &c, min, zc);
    assert!(s.queue.tx_bytes >= total as u64, "the server sent the bodies");
    assert!(c.queue.rx_bytes >= total as u64, "the client received the bodies through the ring");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uring_peregrine_pair_50m() {
    peregrine_pair("uring_peregrine_pair_50m", vec![(50 << 20, 3)], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uring_peregrine_pair_100_streams() {
    let fetches = (0..100).map(|i| (64 << 10, i as u8)).collect();
    peregrine_pair("uring_peregrine_pair_100_streams", fetches, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uring_send_zc_peregrine_pair_50m() {
    peregrine_pair("uring_send_zc_peregrine_pair_50m", vec![(50 << 20, 4)], true).await;
}

/// quinn client → Peregrine server on io_uring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uring_quinn_client_50m() {
    let test = "uring_quinn_client_50m";
    let mut sc = ServerConfig::new(certs::peregrine_server());
    sc.transport = transport();
    let Some((server, s_out)) = uring_endpoint(test, EndpointConfig::server(sc), false) else {
        return;
    };
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("quinn");
    client.set_default_client_config(certs::quinn_client());
    let served = Arc::new(AtomicUsize::new(0));
    let connecting = client.connect(server.local_addr(), "localhost").expect("quinn connect");
    let sconn = bounded("accept", server.accept()).await.expect("accepted");
    let serving = tokio::spawn(hq::serve_peregrine(sconn, served.clone()));
    let conn = bounded("quinn handshake", connecting).await.expect("handshake");
    let size = 50 << 20;
    let started = Instant::now();
    let got = bounded("quinn fetch", hq::fetch_quinn(&conn, size, 5)).await;
    let secs = started.elapsed().as_secs_f64();
    println!("{test}: 50 MB in {secs:.2} s ({:.0} Mbit/s)", size as f64 * 8e-6 / secs);
    hq::check_body(&got, size, 5);
    assert_eq!(served.load(Ordering::Relaxed), 1);
    conn.close(CLOSE_CODE.into(), b"done");
    let reason = bounded("server sees close", serving).await.expect("serve task");
    assert!(hq::peregrine_app_close(&reason, CLOSE_CODE.into()), "server saw {reason:?}");
    bounded("quinn idle", client.wait_idle()).await;
    assert!(server.shutdown(Duration::from_secs(5)).is_ok());
    drop(server);
    let s = final_counters(&s_out);
    check_ring("server", &s, 2, false);
    assert!(s.queue.tx_bytes >= size as u64);
}
