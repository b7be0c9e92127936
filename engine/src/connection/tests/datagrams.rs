//! DATAGRAM frames (RFC 9221): negotiation, both directions with loss (unreliable: some lost,
//! none duplicated or corrupted, never retransmitted), the bounded queues' drop-oldest
//! overflow, size limits and the PROTOCOL_VIOLATIONs.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use peregrine_datapath::sim::LinkConfig;

use super::pair::{Pair, PairConfig};
use crate::connection::{ConnectionError, DatagramError, TransportConfig};
use crate::error::TransportErrorCode;

fn with_datagrams(t: TransportConfig, queue: usize) -> TransportConfig {
    t.with_datagrams(1200, queue).unwrap()
}

fn pair(loss: f64, seed: u64, queue: usize) -> Pair {
    let link = LinkConfig { loss, ..LinkConfig::with_delay(Duration::from_millis(10)) };
    let d = PairConfig::default();
    let cfg = PairConfig {
        seed,
        up: link.clone(),
        down: link,
        client: with_datagrams(d.client.clone(), queue),
        server: with_datagrams(d.server.clone(), queue),
        ..d
    };
    let mut p = Pair::new(cfg);
    assert!(p.handshake(), "{:?}", p.client.error());
    p
}

/// Datagram `i` of a run: 8 bytes of index, then a pattern of 100..400 bytes.
fn payload(i: u32) -> Bytes {
    let mut v = i.to_be_bytes().to_vec();
    v.extend((0..100 + i % 300).map(|k| (k as u8).wrapping_mul(7) ^ i as u8));
    Bytes::from(v)
}

fn check(d: &[u8]) -> u32 {
    let i = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    assert_eq!(d, &payload(i)[..], "datagram {i} intact");
    i
}

/// Sends `n` datagrams each way, a few per step (within the queue), and collects what arrives.
fn exchange(p: &mut Pair, n: u32) -> (HashSet<u32>, HashSet<u32>) {
    let (mut at_server, mut at_client) = (HashSet::new(), HashSet::new());
    let mut next = 0;
    for _ in 0..20_000 {
        if next < n {
            for _ in 0..4 {
                if next < n {
                    p.client.send_datagram(payload(next)).unwrap();
                    p.server().send_datagram(payload(next)).unwrap();
                    next += 1;
                }
            }
        }
        p.step();
        while let Some(d) = p.server().recv_datagram() {
            assert!(at_server.insert(check(&d)), "no duplicate");
        }
        while let Some(d) = p.client.recv_datagram() {
            assert!(at_client.insert(check(&d)), "no duplicate");
        }
        if next == n && p.client.datagrams_queued() == 0 && p.server().datagrams_queued() == 0 {
            p.run_for(Duration::from_millis(200), 10_000);
            while let Some(d) = p.server().recv_datagram() {
                assert!(at_server.insert(check(&d)));
            }
            while let Some(d) = p.client.recv_datagram() {
                assert!(at_client.insert(check(&d)));
            }
            break;
        }
    }
    (at_server, at_client)
}

/// Both directions on a clean path: every datagram arrives once and intact.
#[test]
fn datagrams_both_ways() {
    let mut p = pair(0.0, 3, 64);
    assert!(p.client.max_datagram_payload().is_some_and(|m| m >= 1000));
    let (s, c) = exchange(&mut p, 300);
    assert_eq!((s.len(), c.len()), (300, 300));
    assert_eq!(p.client.stats().datagram_frames_sent, 300);
    assert_eq!(p.server().stats().datagram_frames_received, 300);
    assert_eq!(p.client.stats().datagram_frames_dropped, 0);
}

/// With 10% loss both ways: some are lost (never retransmitted), none duplicated or corrupted,
/// most arrive, and the connection stays healthy (streams still work afterwards).
#[test]
fn datagrams_both_ways_with_loss() {
    for seed in [5, 6, 7] {
        let mut p = pair(0.1, seed, 64);
        let (s, c) = exchange(&mut p, 400);
        println!("seed {seed}: {} of 400 at the server, {} at the client", s.len(), c.len());
        for got in [s.len(), c.len()] {
            assert!((300..400).contains(&got), "seed {seed}: {got} of 400 arrived");
        }
        assert_eq!(p.client.stats().datagram_frames_sent, 400, "each sent once");
        assert_eq!(p.server().stats().datagram_frames_sent, 400, "each sent once");
        assert!(!p.client.is_closed() && !p.server().is_closed());
    }
}

/// The send queue holds `queue` datagrams: beyond that the oldest are dropped and counted;
/// the newest arrive. The receive queue does the same when the application does not read.
#[test]
fn full_queues_drop_the_oldest() {
    let mut p = pair(0.0, 8, 16);
    for i in 0..40 {
        p.client.send_datagram(payload(i)).unwrap();
    }
    assert_eq!(p.client.datagrams_queued(), 16);
    assert_eq!(p.client.stats().datagram_frames_dropped, 24);
    p.run_for(Duration::from_millis(100), 10_000);
    let mut got = Vec::new();
    while let Some(d) = p.server().recv_datagram() {
        got.push(check(&d));
    }
    assert_eq!(got, (24..40).collect::<Vec<_>>(), "the newest 16, in order");
    // Receive side: 40 more sent in batches the queue can take, none read until the end.
    for batch in 0..4 {
        for i in 0..10 {
            p.client.send_datagram(payload(100 + batch * 10 + i)).unwrap();
        }
        p.run_for(Duration::from_millis(50), 10_000);
    }
    assert_eq!(p.server().stats().datagram_frames_dropped, 24);
    let mut got = Vec::new();
    while let Some(d) = p.server().recv_datagram() {
        got.push(check(&d));
    }
    assert_eq!(got, (124..140).collect::<Vec<_>>());
}

/// What `send_datagram` refuses: before the handshake, without negotiation on either side,
/// and above the size limit.
#[test]
fn send_datagram_refusals() {
    let d = PairConfig::default();
    let mut p = Pair::new(PairConfig { client: with_datagrams(d.client.clone(), 8), ..d });
    assert_eq!(p.client.send_datagram(Bytes::from_static(b"x")), Err(DatagramError::NotReady));
    assert!(p.handshake());
    // The server did not advertise max_datagram_frame_size; the client did.
    assert_eq!(
        p.client.send_datagram(Bytes::from_static(b"x")),
        Err(DatagramError::UnsupportedByPeer)
    );
    assert_eq!(p.server().send_datagram(Bytes::from_static(b"x")), Err(DatagramError::Disabled));
    let mut p = pair(0.0, 9, 8);
    let max = p.client.max_datagram_payload().unwrap();
    let big = Bytes::from(vec![0u8; max + 1]);
    assert_eq!(p.client.send_datagram(big), Err(DatagramError::TooLarge { max }));
    assert!(p.client.send_datagram(Bytes::from(vec![1u8; max])).is_ok());
    p.run_for(Duration::from_millis(100), 10_000);
    assert_eq!(p.server().recv_datagram().map(|d| d.len()), Some(max));
}

/// A DATAGRAM frame to an endpoint that did not advertise support, or one above the limit it
/// advertised, is a PROTOCOL_VIOLATION (RFC 9221 §3): on the wire (a client made to send one
/// anyway), and at the frame handler.
#[test]
fn unexpected_or_oversized_datagram_frames_are_protocol_violations() {
    let pv = |e: Option<&ConnectionError>| {
        matches!(e, Some(ConnectionError::TransportError { code, .. })
            if *code == TransportErrorCode::PROTOCOL_VIOLATION)
    };
    // The server did not advertise it; the client sends one regardless.
    let d = PairConfig::default();
    let mut p = Pair::new(PairConfig { client: with_datagrams(d.client.clone(), 8), ..d });
    assert!(p.handshake());
    p.client.datagrams.send.push_back(Bytes::from_static(b"unasked"));
    p.client.transmit_interest = true;
    p.run_for(Duration::from_millis(200), 10_000);
    assert!(pv(p.server().error()), "{:?}", p.server().error());
    // Advertised 1200: a 1200-byte frame is taken, a 1201-byte one refused.
    let mut p = pair(0.0, 10, 8);
    let big = vec![0u8; 1200 - 3];
    let ok = crate::frame::Datagram { data: &big, has_length: true };
    assert_eq!(ok.encoded_len(), 1200);
    assert!(p.server().on_datagram_frame(&ok).is_ok());
    let big = vec![0u8; 1200 - 2];
    let over = crate::frame::Datagram { data: &big, has_length: true };
    let e = p.server().on_datagram_frame(&over).unwrap_err();
    assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION);
}

/// `Event::DatagramReceived` is edge-triggered: one when a datagram arrives at an empty
/// receive queue, none while unread ones wait, one again after the queue was read empty.
#[test]
fn datagram_received_event_on_each_empty_to_nonempty_edge() {
    use crate::connection::Event;
    let mut p = pair(0.0, 11, 64);
    let count =
        |p: &Pair| p.server_events.iter().filter(|e| **e == Event::DatagramReceived).count();
    assert_eq!(count(&p), 0);
    for batch in 0..3 {
        p.client.send_datagram(payload(batch)).unwrap();
        p.run_for(Duration::from_millis(50), 10_000);
    }
    assert_eq!(p.server().datagrams_received_queued(), 3);
    assert_eq!(count(&p), 1, "unread datagrams: no new event");
    while p.server().recv_datagram().is_some() {}
    p.client.send_datagram(payload(9)).unwrap();
    p.run_for(Duration::from_millis(50), 10_000);
    assert_eq!(count(&p), 2, "read empty, then one arrived: told again");
}
