//! Unreliable datagrams (RFC 9221) through the application APIs: the `Send + Sync` handles
//! (async on virtual time with loss, blocking over real UDP on loopback) and the handlers on
//! the owning worker (`ConnCtx`): what must arrive arrives intact and once, what must be
//! refused is refused with its typed error, and the receive queue's bound drops the oldest.

// The loopback tests bound their waits with the wall clock (termination only).
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use peregrine_datapath::sim::LinkConfig;
use peregrine_engine::api::{ConnError, DatagramError, EndpointConfig};
use peregrine_engine::app::{ConnCtx, ConnectionHandler, Service, ServiceFactory};
use peregrine_engine::connection::TransportConfig;
use peregrine_engine::sim::SimRuntime;

const T: Duration = Duration::from_secs(10);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn dgram(queue: usize) -> TransportConfig {
    TransportConfig::default().with_datagrams(1200, queue).unwrap()
}

/// Datagram `i`: 4 bytes of index, then 50..250 bytes of a pattern.
fn payload(i: u32) -> Bytes {
    let mut v = i.to_be_bytes().to_vec();
    v.extend((0..50 + i % 200).map(|k| (k as u8).wrapping_mul(13) ^ i as u8));
    Bytes::from(v)
}

fn check(d: &[u8]) -> u32 {
    let i = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    assert_eq!(d, &payload(i)[..], "datagram {i} intact");
    i
}

/// Both ways through the async handles on a simulated path with 10% loss each way: some are
/// lost, none is duplicated or corrupted, most arrive; the receive side is awaited.
#[test]
fn handles_both_ways_with_loss_on_virtual_time() {
    let mut rt = SimRuntime::new(21);
    let (s_addr, c_addr) = (addr("10.0.0.1:443"), addr("10.0.0.2:5000"));
    let link = LinkConfig { loss: 0.1, ..LinkConfig::with_delay(Duration::from_millis(5)) };
    rt.network().set_path(s_addr, c_addr, link).unwrap();
    let server =
        rt.endpoint(&[s_addr], EndpointConfig::server(support::server_config(dgram(64)))).unwrap();
    let client =
        rt.endpoint(&[c_addr], EndpointConfig::client(support::client_config(dgram(64)))).unwrap();
    // Before the handshake (nothing runs until the runtime is stepped): not ready.
    let connecting = client.connect(s_addr, "localhost").unwrap();
    let early = connecting.connection().unwrap();
    assert_eq!(early.send_datagram(payload(0)), Err(DatagramError::NotReady));
    assert_eq!(early.max_datagram_size(), None);
    let (conn, sconn) = rt
        .run_until(async { (connecting.await.unwrap(), server.accept().await.unwrap()) }, T)
        .expect("handshake in virtual time");
    assert!(conn.max_datagram_size().is_some_and(|m| m >= 1000));
    let n = 300u32;
    let (mut at_server, mut at_client) = (HashSet::new(), HashSet::new());
    for batch in 0..n / 10 {
        for i in batch * 10..batch * 10 + 10 {
            conn.send_datagram(payload(i)).unwrap();
            sconn.send_datagram(payload(i)).unwrap();
        }
        rt.run_for(Duration::from_millis(20));
        while let Some(d) = sconn.try_read_datagram() {
            assert!(at_server.insert(check(&d)), "no duplicate");
        }
        while let Some(d) = conn.try_read_datagram() {
            assert!(at_client.insert(check(&d)), "no duplicate");
        }
    }
    // One more, awaited: the receive side wakes its reader.
    sconn.send_datagram(payload(7777)).unwrap();
    let mut awaited = None;
    for _ in 0..20 {
        let got = rt.run_until(conn.read_datagram(), Duration::from_millis(200));
        match got {
            Some(Ok(d)) if check(&d) == 7777 => {
                awaited = Some(d);
                break;
            }
            Some(Ok(d)) => assert!(at_client.insert(check(&d))),
            Some(Err(e)) => panic!("{e}"),
            // Lost on the way: send it again.
            None => sconn.send_datagram(payload(7777)).unwrap(),
        }
    }
    assert!(awaited.is_some(), "an awaited datagram arrived");
    for got in [at_server.len(), at_client.len()] {
        assert!((200..300).contains(&got), "{got} of 300 arrived with 10% loss");
    }
    assert_eq!(conn.stats().datagram_frames_sent, u64::from(n), "each sent once, never again");
}

/// A server whose handlers echo every datagram back on the owning worker.
struct EchoDatagrams {
    seen: Arc<Mutex<Vec<usize>>>,
}

impl ConnectionHandler for EchoDatagrams {
    fn on_datagram(&mut self, cx: &mut ConnCtx<'_>) {
        while let Some(d) = cx.recv_datagram() {
            self.seen.lock().unwrap().push(cx.worker());
            cx.send_datagram(d).unwrap();
        }
    }
}

struct EchoService(Arc<Mutex<Vec<usize>>>);

impl Service for EchoService {
    fn on_connection(&mut self, cx: &mut ConnCtx<'_>) -> Option<Box<dyn ConnectionHandler>> {
        assert!(cx.max_datagram_payload().is_some(), "negotiated before the handler starts");
        Some(Box::new(EchoDatagrams { seen: self.0.clone() }))
    }
}

/// Handlers: the server's `on_datagram` reads each datagram through its `ConnCtx` and sends
/// it back; the client's handles get every one back intact on a clean path.
#[test]
fn handler_echoes_datagrams_on_virtual_time() {
    let mut rt = SimRuntime::new(22);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let factory: ServiceFactory = {
        let seen = seen.clone();
        Arc::new(move |_| Box::new(EchoService(seen.clone())) as Box<dyn Service>)
    };
    let scfg = EndpointConfig::server(support::server_config(dgram(64))).with_service(factory);
    let server = rt.endpoint(&[addr("10.0.0.1:443")], scfg).unwrap();
    let client = rt
        .endpoint(
            &[addr("10.0.0.2:5000")],
            EndpointConfig::client(support::client_config(dgram(64))),
        )
        .unwrap();
    let conn = rt
        .run_until(client.connect(server.local_addr(), "localhost").unwrap(), T)
        .expect("handshake")
        .unwrap();
    let mut back = HashSet::new();
    for batch in 0..10u32 {
        for i in batch * 20..batch * 20 + 20 {
            conn.send_datagram(payload(i)).unwrap();
        }
        rt.run_for(Duration::from_millis(10));
        while let Some(d) = conn.try_read_datagram() {
            assert!(back.insert(check(&d)));
        }
    }
    assert_eq!(back.len(), 200, "every datagram echoed on a clean path");
    assert_eq!(seen.lock().unwrap().len(), 200, "the handler saw each one");
}

/// What sending refuses, with its typed error: datagrams not enabled here, not advertised by
/// the peer, too large; and the blocking receive over real UDP.
#[test]
fn refusals_and_blocking_receive_on_loopback() {
    // The server did not enable datagrams: the client's send is refused (peer), and so is the
    // server's (locally disabled).
    let (server, client) = support::loopback_pair(TransportConfig::default(), dgram(8));
    let conn = client.connect(server.local_addr(), "localhost").unwrap().wait(T).unwrap();
    let sconn = server.accept_blocking(Some(T)).unwrap();
    assert_eq!(conn.max_datagram_size(), None);
    assert_eq!(conn.send_datagram(payload(1)), Err(DatagramError::UnsupportedByPeer));
    assert_eq!(sconn.send_datagram(payload(1)), Err(DatagramError::Disabled));

    // Both enabled: too large is refused, the largest allowed goes through and is read
    // blocking.
    let (server, client) = support::loopback_pair(dgram(8), dgram(8));
    let conn = client.connect(server.local_addr(), "localhost").unwrap().wait(T).unwrap();
    let sconn = server.accept_blocking(Some(T)).unwrap();
    let max = conn.max_datagram_size().expect("negotiated");
    assert!(max < 1200, "within the peer's max_datagram_frame_size of 1200: {max}");
    let big = Bytes::from(vec![3u8; max + 1]);
    assert_eq!(conn.send_datagram(big), Err(DatagramError::TooLarge { max }));
    conn.send_datagram(Bytes::from(vec![4u8; max])).unwrap();
    let got = sconn.read_datagram_blocking(T).unwrap();
    assert_eq!(got.len(), max);
    assert!(got.iter().all(|b| *b == 4));
    assert_eq!(sconn.try_read_datagram(), None);

    // After close: refused locally, and a waiting read ends with the connection.
    conn.close(peregrine_engine::VarInt::from_u32(0), b"");
    assert_eq!(conn.send_datagram(payload(2)), Err(DatagramError::Closed));
    match sconn.read_datagram_blocking(T) {
        Err(ConnError::Connection(_)) | Err(ConnError::Closed) => {}
        other => panic!("read after the peer closed: {other:?}"),
    }
}

/// The handles' receive queue holds the configured number of datagrams: an application that
/// does not read keeps the newest, in order; the dropped are counted.
#[test]
fn unread_datagrams_keep_the_newest_on_loopback() {
    let (server, client) = support::loopback_pair(dgram(8), dgram(8));
    let conn = client.connect(server.local_addr(), "localhost").unwrap().wait(T).unwrap();
    let sconn = server.accept_blocking(Some(T)).unwrap();
    // 24 datagrams in batches the send queue (8) takes, each batch received before the next.
    for batch in 0..3u32 {
        for i in batch * 8..batch * 8 + 8 {
            conn.send_datagram(payload(i)).unwrap();
        }
        let want = u64::from(batch + 1) * 8;
        let deadline = Instant::now() + T;
        while sconn.stats().datagram_frames_received < want {
            assert!(Instant::now() < deadline, "{want} datagrams reach the server");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let mut got = Vec::new();
    while let Some(d) = sconn.try_read_datagram() {
        got.push(check(&d));
    }
    assert_eq!(got, (16..24).collect::<Vec<_>>(), "the newest 8, in order");
    assert_eq!(sconn.stats().datagram_frames_dropped, 16);
    assert_eq!(conn.stats().datagram_frames_dropped, 0);
}
