//! AF_XDP without user-space payload copies, as root: a Peregrine server on an `XdpQueue` in
//! namespace a that lends its UMEM frames to the engine (the default), a Peregrine client in
//! namespace b on the kernel's UDP stack, joined by a veth pair made by `scripts/netns.sh`.
//!
//! The main case moves 50 MB each way at once, byte-exact: the client uploads a body on a
//! unidirectional stream while it downloads another over hq-interop. The queue's copy counters
//! (`rx_payload_copies`, `tx_payload_copies`: every user-space memcpy of a payload between an
//! engine buffer and a UMEM frame) must stay 0 while every datagram it received was lent to the
//! engine in its UMEM frame and every frame it sent was one the engine sealed into. A control
//! case runs the older path (`with_payload_copy(true)`) and sees the counters count each
//! datagram: they are not stuck at 0. The bind mode (copy on veth, where the driver refuses
//! `XDP_ZEROCOPY`) is printed and must agree with what the queue reports.
//!
//! Skips (with the reason printed) only when not root, when AF_XDP is missing, or when a tool
//! the setup needs is absent, and fails instead under `PEREGRINE_REQUIRE_ALL=1`.

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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ns::{in_ns, NetnsPair, Published, Watched};
use peregrine_datapath::require::xdp_netns;
use peregrine_datapath::xdp::{XdpConfig, XdpMode, XdpQueue};
use peregrine_datapath::Queue;
use peregrine_engine::api::{Endpoint, EndpointConfig};
use peregrine_engine::connection::{ClientConfig, ServerConfig, TransportConfig};
use peregrine_engine::VarInt;
use quinn_udp::{certs, hq};

/// Bytes moved each way in the main case.
const SIZE: usize = 50 << 20;
/// Bytes moved each way in the control case (the older, copying path).
const CONTROL_SIZE: usize = 4 << 20;
const CLOSE_CODE: u32 = 0x42;
/// UDP payload that fits the veth MTU of 1500 over IPv4.
const DATAGRAM: u16 = 1472;
const LIMIT: Duration = Duration::from_secs(60);
/// Seeds of the two bodies.
const DOWN_SEED: u8 = 7;
const UP_SEED: u8 = 11;

async fn bounded<F: IntoFuture>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f.into_future()).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no progress within {LIMIT:?}"),
    }
}

fn transport() -> TransportConfig {
    TransportConfig::default().with_max_datagram_size(DATAGRAM).unwrap()
}

/// The final counters of the server's XDP queue (published when the endpoint dropped it).
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

/// Runs one transfer of `size` bytes each way through a server queue with payload copy
/// `copy`; returns the queue's final counters.
async fn both_ways(tag: &str, mode: XdpMode, copy: bool, size: usize) -> Published {
    let net = NetnsPair::up(tag, 0);
    let ip = net.ip4_a;
    let if_a = net.if_a.clone();
    let (server, out) = in_ns(&net.ns_a, move || {
        let cfg =
            XdpConfig::new(&if_a, SocketAddr::new(ip, 0)).with_mode(mode).with_payload_copy(copy);
        let q = XdpQueue::open(&cfg).unwrap_or_else(|e| panic!("XdpQueue::open ({mode}): {e}"));
        let caps = q.capabilities().clone();
        println!(
            "{tag}: xdp {} mode, bound {}, {}-byte frames, lends frames: {}, caps {caps:?}",
            q.mode(),
            if caps.zero_copy { "zero-copy (XDP_ZEROCOPY)" } else { "in copy mode" },
            q.frame_size(),
            q.lends_frames()
        );
        assert_eq!(q.lends_frames(), !copy);
        assert_eq!(q.frame_size(), 2048, "a 1500-byte MTU takes 2048-byte frames");
        assert_eq!(caps.max_udp_payload, usize::from(DATAGRAM), "MTU 1500");
        // The bind mode is reported either way: zero-copy, or why not.
        assert!(
            caps.zero_copy || caps.missing.iter().any(|m| m.starts_with("zero-copy: ")),
            "bind mode reported: {caps:?}"
        );
        // A lent frame holds one datagram: no GSO trains on the lending path.
        assert_eq!((caps.gso, caps.max_gso_segments), (copy, if copy { 16 } else { 1 }));
        let (w, out) = Watched::new(q);
        let mut sc = ServerConfig::new(certs::peregrine_server());
        sc.transport = transport().with_idle_timeout(Some(Duration::from_secs(30))).unwrap();
        let ep = Endpoint::with_queues(vec![w], EndpointConfig::server(sc)).expect("endpoint");
        (ep, out)
    });
    let addr = SocketAddr::new(ip, server.local_addr().port());
    let client = in_ns(&net.ns_b, || {
        let mut cc = ClientConfig::new(certs::peregrine_client());
        cc.transport = transport();
        Endpoint::bind("0.0.0.0:0".parse().unwrap(), EndpointConfig::client(cc))
    })
    .expect("bind peregrine client");
    let started = Instant::now();
    let served = Arc::new(AtomicUsize::new(0));

    let client_side = async {
        let conn = bounded("handshake", client.connect(addr, "localhost").expect("connect"))
            .await
            .expect("handshake");
        let upload = async {
            let send = conn.open_uni().await.expect("open_uni");
            send.write_all(hq::body(size, UP_SEED)).await.expect("upload");
            let st = send.finish().await;
            assert!(st.was_accepted(), "upload finish ended as {st:?}");
        };
        let download = hq::fetch_peregrine(&conn, size, DOWN_SEED);
        let ((), got) = tokio::join!(bounded("upload", upload), bounded("download", download));
        hq::check_body(&got, size, DOWN_SEED);
        conn
    };
    let server_side = async {
        let conn = bounded("accept", server.accept()).await.expect("accepted");
        let uploaded = async {
            let mut recv = conn.accept_uni().await.expect("accept_uni");
            recv.read_to_end(size + 1).await.expect("read upload")
        };
        let serve = hq::serve_peregrine(conn.clone(), served.clone());
        // The upload ends first; the hq server runs until the client closes.
        let (got, reason) = tokio::join!(bounded("upload read", uploaded), bounded("serve", serve));
        (got, reason)
    };
    let (conn, (uploaded, reason)) = tokio::join!(
        async {
            let conn = client_side.await;
            conn.close(VarInt::from_u32(CLOSE_CODE), b"done");
            conn
        },
        server_side
    );
    let secs = started.elapsed().as_secs_f64();
    hq::check_body(&uploaded, size, UP_SEED);
    assert!(hq::peregrine_app_close(&reason, CLOSE_CODE.into()), "server saw {reason:?}");
    assert_eq!(served.load(Ordering::Relaxed), 1, "requests served");
    assert!(conn.wait_drained(LIMIT), "client connection drained");
    drop(client);
    let report = server.shutdown(Duration::from_secs(5));
    assert!(report.is_ok(), "shutdown: {report:?}");
    drop(server);
    let p = final_counters(&out);
    println!(
        "{tag}: {} MB each way in {secs:.2} s ({:.0} Mbit/s total)\n  queue {:?}\n  xdp {:?}",
        size >> 20,
        2.0 * size as f64 * 8.0 / secs / 1e6,
        p.queue,
        p.xdp
    );
    let (q, x) = (p.queue, p.xdp);
    // Everything came and went through the XSK, and the kernel dropped nothing.
    assert_eq!(x.kernel_rx, 0, "datagrams through the kernel stack");
    assert_eq!(x.rx_invalid, 0, "frames failing verification");
    assert_eq!(x.xsk_rx_frames, q.rx_datagrams + q.rx_dropped, "every datagram via the XSK");
    assert_eq!(x.tx_frames, q.tx_datagrams, "one frame per datagram");
    assert_eq!(x.tx_completed, x.tx_frames, "every frame completed by the kernel");
    assert_eq!(x.xsk.rx_invalid_descs + x.xsk.tx_invalid_descs, 0, "{:?}", x.xsk);
    // Both directions carried the body: at least size / 1472 datagrams each way.
    let min = (size / usize::from(DATAGRAM)) as u64;
    assert!(q.rx_datagrams >= min, "{} datagrams received < {min}", q.rx_datagrams);
    assert!(q.tx_datagrams >= min, "{} datagrams sent < {min}", q.tx_datagrams);
    assert!(q.rx_bytes >= size as u64 && q.tx_bytes >= size as u64, "{q:?}");
    p
}

/// 50 MB each way, byte-exact, with no payload copied in user space: every received datagram
/// was opened in its UMEM frame, every sent one sealed into the frame it left in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xdp_native_lent_frames_50m_both_ways_without_a_copy() {
    if !xdp_netns(false) {
        return;
    }
    let p = both_ways("zcn", XdpMode::Native, false, SIZE).await;
    let (q, x) = (p.queue, p.xdp);
    assert_eq!(x.rx_payload_copies, 0, "received payloads copied in user space");
    assert_eq!(x.tx_payload_copies, 0, "sent payloads copied in user space");
    assert_eq!(x.rx_lent, q.rx_datagrams, "every received datagram lent in its frame");
    assert!(x.tx_lent >= x.tx_frames, "every sent frame was lent to the engine first: {x:?}");
}

/// The same in generic XDP mode (the program runs on the kernel's sk_buff path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xdp_generic_lent_frames_50m_both_ways_without_a_copy() {
    if !xdp_netns(false) {
        return;
    }
    let p = both_ways("zcg", XdpMode::Generic, false, SIZE).await;
    let (q, x) = (p.queue, p.xdp);
    assert_eq!((x.rx_payload_copies, x.tx_payload_copies), (0, 0), "{x:?}");
    assert_eq!(x.rx_lent, q.rx_datagrams);
    assert!(x.tx_lent >= x.tx_frames, "{x:?}");
}

/// Control: the older path copies each payload once each way, and the counters show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xdp_payload_copy_path_counts_its_copies() {
    if !xdp_netns(false) {
        return;
    }
    let p = both_ways("zcc", XdpMode::Native, true, CONTROL_SIZE).await;
    let (q, x) = (p.queue, p.xdp);
    assert_eq!(x.rx_payload_copies, q.rx_datagrams, "one copy per received datagram");
    assert_eq!(x.tx_payload_copies, x.tx_frames, "one copy per sent frame");
    assert_eq!((x.rx_lent, x.tx_lent), (0, 0), "nothing lent");
}
