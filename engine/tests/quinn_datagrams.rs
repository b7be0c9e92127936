//! DATAGRAM frames (RFC 9221) between Peregrine's runtime (`api::Connection` handles on the
//! UDP datapath) and quinn 0.11 on tokio over real UDP on 127.0.0.1, in both roles: each side
//! sends a set of datagrams and must receive exactly the other side's set, intact (loopback
//! loses nothing at this volume); each side's size limit reflects the other's
//! max_datagram_frame_size; a Peregrine endpoint without datagrams is refused by quinn.
//!
//! Every wait is bounded by [`LIMIT`]: a hang fails the test instead of stalling it.

mod quinn_udp {
    pub mod certs;
}

use std::collections::BTreeSet;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use peregrine_engine::api::{Connection, Endpoint, EndpointConfig};
use peregrine_engine::connection::{ClientConfig, ServerConfig, TransportConfig};
use quinn_udp::certs;

const LIMIT: Duration = Duration::from_secs(20);
/// Datagrams each side sends.
const N: u32 = 50;
/// Our max_datagram_frame_size.
const FRAME: u64 = 1000;

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn bounded<F: IntoFuture>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f.into_future()).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no progress within {LIMIT:?}"),
    }
}

fn transport(datagrams: bool) -> TransportConfig {
    let t = TransportConfig::default().with_max_datagram_size(1472).unwrap();
    if datagrams {
        t.with_datagrams(FRAME, 256).unwrap()
    } else {
        t
    }
}

/// Datagram `i` from side `tag`: tag, 4 bytes of index, then 20..520 bytes of a pattern.
fn payload(tag: u8, i: u32) -> Bytes {
    let mut v = vec![tag];
    v.extend(i.to_be_bytes());
    v.extend((0..20 + (i * 37) % 500).map(|k| (k as u8).wrapping_mul(29) ^ tag ^ i as u8));
    Bytes::from(v)
}

/// The index of a datagram from `tag`, checked intact.
fn check(tag: u8, d: &[u8]) -> u32 {
    assert_eq!(d[0], tag, "from the other side");
    let i = u32::from_be_bytes([d[1], d[2], d[3], d[4]]);
    assert_eq!(d, &payload(tag, i)[..], "datagram {i} intact");
    i
}

/// Exchanges [`N`] datagrams each way between a Peregrine connection and a quinn one.
async fn exchange(ours: &Connection, theirs: &quinn::Connection) {
    // Peregrine's limit is quinn's advertised frame size less the frame overhead (and within
    // one packet); quinn's reflects our FRAME.
    let our_max = ours.max_datagram_size().expect("quinn advertises datagrams");
    assert!(our_max >= 1000, "quinn's limit and the path allow 1000+ bytes: {our_max}");
    let their_max = theirs.max_datagram_size().expect("we advertised datagrams");
    assert!(their_max < FRAME as usize, "quinn keeps within our {FRAME}: {their_max}");
    for i in 0..N {
        ours.send_datagram(payload(b'P', i)).expect("peregrine send");
        theirs.send_datagram(payload(b'Q', i)).expect("quinn send");
    }
    let mut at_quinn = BTreeSet::new();
    while at_quinn.len() < N as usize {
        let d = bounded("quinn read_datagram", theirs.read_datagram()).await.expect("quinn read");
        assert!(at_quinn.insert(check(b'P', &d)), "no duplicate at quinn");
    }
    let mut at_peregrine = BTreeSet::new();
    while at_peregrine.len() < N as usize {
        let d = bounded("peregrine read_datagram", ours.read_datagram()).await.expect("read");
        assert!(at_peregrine.insert(check(b'Q', &d)), "no duplicate at peregrine");
    }
    assert_eq!(ours.try_read_datagram(), None, "nothing beyond what quinn sent");
    // Too large for quinn's view of our limit: quinn refuses it locally.
    let big = Bytes::from(vec![0u8; FRAME as usize]);
    assert!(theirs.send_datagram(big).is_err(), "quinn honours our max_datagram_frame_size");
}

/// A handle's statistics are a snapshot the worker publishes some time after the datagrams
/// it counts went by: reads `stat` until it reaches `want` or 5 s pass, and returns it.
async fn settled(stat: impl Fn() -> u64, want: u64) -> u64 {
    for _ in 0..500 {
        if stat() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stat()
}

/// quinn client, Peregrine server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_both_ways_quinn_client_peregrine_server() {
    let mut sc = ServerConfig::new(certs::peregrine_server());
    sc.transport = transport(true);
    let server = Endpoint::bind(any(), EndpointConfig::server(sc)).expect("bind peregrine server");
    let mut client = quinn::Endpoint::client(any()).expect("bind quinn client");
    client.set_default_client_config(certs::quinn_client());
    let connecting = client.connect(server.local_addr(), "localhost").expect("quinn connect");
    let sconn = bounded("peregrine accept", server.accept()).await.expect("accepted");
    let conn = bounded("quinn handshake", connecting).await.expect("quinn handshake");
    exchange(&sconn, &conn).await;
    let received = settled(|| sconn.stats().datagram_frames_received, u64::from(N)).await;
    assert_eq!(received, u64::from(N));
    conn.close(0u32.into(), b"done");
    bounded("quinn idle", client.wait_idle()).await;
    assert!(server.shutdown(LIMIT).is_ok());
}

/// Peregrine client, quinn server; then a Peregrine client without datagrams: quinn sees
/// the parameter missing and refuses to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_both_ways_peregrine_client_quinn_server() {
    let server = quinn::Endpoint::server(certs::quinn_server(), any()).expect("bind quinn server");
    let addr = server.local_addr().unwrap();
    for enabled in [true, false] {
        let mut cc = ClientConfig::new(certs::peregrine_client());
        cc.transport = transport(enabled);
        let client = Endpoint::bind(any(), EndpointConfig::client(cc)).expect("bind client");
        let connecting = client.connect(addr, "localhost").expect("peregrine connect");
        let incoming = bounded("quinn accept", server.accept()).await.expect("incoming");
        let sconn = bounded("quinn handshake", incoming).await.expect("quinn handshake");
        let conn = bounded("peregrine handshake", connecting).await.expect("handshake");
        if enabled {
            exchange(&conn, &sconn).await;
            let sent = settled(|| conn.stats().datagram_frames_sent, u64::from(N)).await;
            assert_eq!(sent, u64::from(N));
        } else {
            assert_eq!(sconn.max_datagram_size(), None, "we did not advertise it");
            assert!(matches!(
                sconn.send_datagram(payload(b'Q', 0)),
                Err(quinn::SendDatagramError::UnsupportedByPeer)
            ));
            assert_eq!(
                conn.send_datagram(payload(b'P', 0)),
                Err(peregrine_engine::api::DatagramError::Disabled)
            );
        }
        conn.close(peregrine_engine::VarInt::from_u32(0), b"done");
        assert!(conn.wait_drained(LIMIT), "peregrine client connection drained");
    }
    server.close(0u32.into(), b"");
    bounded("quinn server idle", server.wait_idle()).await;
}
