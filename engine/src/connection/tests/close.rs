//! Close paths (DESIGN.md invariant 1, "close emitted once"): application and transport
//! closes at every handshake stage and encryption level, draining, closing-state resends, idle
//! timeout.

use std::time::Duration;

use peregrine_datapath::Ecn;

use super::pair::{Pair, PairConfig, CID_LEN};
use crate::connection::{CloseState, Connection, ConnectionError, Event, TransportConfig};
use crate::error::TransportErrorCode;
use crate::packet::{Coalesced, LongType, PlainHeader};
use crate::streams::Dir;
use crate::varint::VarInt;

/// Packet types in a datagram: (Initial, Handshake, 1-RTT).
fn packet_kinds(datagram: &[u8]) -> (usize, usize, usize) {
    let mut d = datagram.to_vec();
    let mut k = (0, 0, 0);
    for p in Coalesced::new(&mut d, CID_LEN, false).flatten() {
        match p.header.header() {
            PlainHeader::Long { ty: LongType::Initial, .. } => k.0 += 1,
            PlainHeader::Long { ty: LongType::Handshake, .. } => k.1 += 1,
            PlainHeader::Short { .. } => k.2 += 1,
            _ => {}
        }
    }
    k
}

/// Polls `conn` until it has nothing more (bounded), returning every datagram. The bound is
/// the test: a connection that loops on its close never returns `None`.
fn drain_transmits(conn: &mut Connection, now: std::time::Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..100 {
        match conn.poll_transmit(now, &mut buf, 1) {
            Some(t) => out.push(buf[..t.len].to_vec()),
            None => return out,
        }
    }
    panic!("poll_transmit never stopped ({} datagrams)", out.len());
}

fn assert_closed_once(conn: &mut Connection, now: std::time::Instant, want: [bool; 3]) {
    assert_eq!(conn.close_pending_spaces(), want, "close owed in every space with keys");
    let dgrams = drain_transmits(conn, now);
    assert_eq!(dgrams.len(), 1, "exactly one close datagram");
    let k = packet_kinds(&dgrams[0]);
    assert_eq!(
        (k.0 > 0, k.1 > 0, k.2 > 0),
        (want[0], want[1], want[2]),
        "one close packet per needed space"
    );
    assert_eq!((k.0 + k.1 + k.2), want.iter().filter(|w| **w).count());
    if want[0] && conn.side() == crate::crypto::Side::Client {
        assert!(dgrams[0].len() >= 1200, "a client's Initial datagram is padded");
    }
    assert_eq!(conn.close_pending_spaces(), [false; 3]);
    assert!(conn.is_closed() && !conn.is_drained());
    // Still nothing: the close is never re-emitted without an incoming packet.
    assert!(drain_transmits(conn, now).is_empty());
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.3
//= type=test
//# A CONNECTION_CLOSE of type 0x1d MUST be replaced by a
//# CONNECTION_CLOSE of type 0x1c when sending the frame in Initial or
//# Handshake packets.
#[test]
fn close_emitted_once_client_before_anything_was_sent() {
    let mut p = Pair::default_pair();
    let now = p.now();
    p.client.close(now, VarInt::from_u32(7), b"bye");
    assert_closed_once(&mut p.client, now, [true, false, false]);
}

#[test]
fn close_emitted_once_client_mid_handshake_all_levels() {
    let mut p = Pair::default_pair();
    // Client Initial out, server flight back: the client holds Initial, Handshake and 1-RTT
    // keys before it sends anything at Handshake level.
    let mut buf = vec![0u8; 64 * 1024];
    let now = p.now();
    let t = p.client.poll_transmit(now, &mut buf, 1).unwrap();
    let mut first = buf[..t.len].to_vec();
    let mut p2 = p;
    // Let the harness create the server from the real datagram.
    let (src, dst) = (p2.client_addr, p2.server_addr);
    let _ = dst;
    let incoming = initial_incoming(&first);
    let mut server = Connection::server(
        &crate::connection::ServerConfig::new(super::pair::tls_server()),
        now,
        src,
        incoming,
        Box::new(crate::connection::RandomCidGenerator::new(CID_LEN, 9)),
    )
    .unwrap();
    server.handle_datagram(now, src, Ecn::NotEct, &mut first);
    for mut d in drain_transmits(&mut server, now) {
        p2.client.handle_datagram(now, dst, Ecn::NotEct, &mut d);
    }
    assert_eq!(p2.client.spaces_with_keys(), [true, true, true]);
    p2.client.close(now, VarInt::from_u32(9), b"mid-handshake");
    assert_closed_once(&mut p2.client, now, [true, true, true]);
}

#[test]
fn close_emitted_once_server_mid_handshake() {
    let mut p = Pair::default_pair();
    let mut buf = vec![0u8; 64 * 1024];
    let now = p.now();
    let t = p.client.poll_transmit(now, &mut buf, 1).unwrap();
    let mut first = buf[..t.len].to_vec();
    let incoming = initial_incoming(&first);
    let mut server = Connection::server(
        &crate::connection::ServerConfig::new(super::pair::tls_server()),
        now,
        p.client_addr,
        incoming,
        Box::new(crate::connection::RandomCidGenerator::new(CID_LEN, 9)),
    )
    .unwrap();
    server.handle_datagram(now, p.client_addr, Ecn::NotEct, &mut first);
    assert_eq!(server.spaces_with_keys(), [true, true, true]);
    server.close(now, VarInt::from_u32(3), b"no");
    // The server does not know which keys the client has: Initial, Handshake and 1-RTT.
    assert_closed_once(&mut server, now, [true, true, true]);
    // The close stays within the anti-amplification limit.
    assert!(server.stats().bytes_sent <= 3 * server.stats().bytes_received);
}

#[test]
fn close_emitted_once_after_handshake_then_drains() {
    let mut p = Pair::default_pair();
    assert!(p.handshake());
    let now = p.now();
    p.client.close(now, VarInt::from_u32(42), b"done");
    assert_closed_once(&mut p.client, now, [false, false, true]);
    // Re-poll through the harness: the peer learns the close and drains.
    p.run_for(Duration::from_secs(5), 10_000);
    let reason = ConnectionError::ApplicationClosed { code: 42, reason: "done".into() };
    assert!(p.server_events.contains(&Event::ConnectionLost { reason }), "{:?}", p.server_events);
    assert!(p.server_events.contains(&Event::Drained));
    assert!(p.client_events.contains(&Event::Drained));
    assert!(p.client.is_drained() && p.server.as_ref().unwrap().is_drained());
    assert_eq!(p.client_events.iter().filter(|e| **e == Event::Drained).count(), 1);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-10.2.1
//= type=test
//# An endpoint in the closing state sends a packet containing a
//# CONNECTION_CLOSE frame in response to any incoming packet that it
//# attributes to the connection.
#[test]
fn closing_state_answers_incoming_packets_rate_limited() {
    let mut p = Pair::default_pair();
    assert!(p.handshake());
    let now = p.now();
    // The server keeps pinging while the client is closing: the client answers the 1st, 2nd,
    // 4th, 8th... packet, never more.
    p.client.close(now, VarInt::from_u32(1), b"");
    let first = drain_transmits(&mut p.client, now);
    assert_eq!(first.len(), 1);
    let mut answered = 0;
    let s = p.server.as_mut().unwrap();
    let mut buf = vec![0u8; 2048];
    for i in 0..16 {
        s.ping();
        let t = s.poll_transmit(now, &mut buf, 1).expect("server still open");
        let mut d = buf[..t.len].to_vec();
        p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
        let out = drain_transmits(&mut p.client, now);
        assert!(out.len() <= 1, "packet {i}: at most one close per incoming packet");
        answered += out.len();
    }
    assert_eq!(answered, 5, "answers to packets 1, 2, 4, 8 and 16");
}

#[test]
fn transport_error_close_reaches_peer_with_code_and_frame_type() {
    let mut p = Pair::default_pair();
    assert!(p.handshake());
    // A client must never send HANDSHAKE_DONE: make it, and the server closes with
    // PROTOCOL_VIOLATION naming frame type 0x1e.
    p.client.handshake_done_pending = true;
    p.run_for(Duration::from_secs(3), 10_000);
    let s = p.server.as_ref().unwrap();
    match s.error() {
        Some(ConnectionError::TransportError { code, frame_type, .. }) => {
            assert_eq!(*code, TransportErrorCode::PROTOCOL_VIOLATION);
            assert_eq!(*frame_type, Some(0x1e));
        }
        other => panic!("server error {other:?}"),
    }
    match p.client.error() {
        Some(ConnectionError::PeerTransportClose { code, frame_type, .. }) => {
            assert_eq!(*code, TransportErrorCode::PROTOCOL_VIOLATION);
            assert_eq!(*frame_type, 0x1e);
        }
        other => panic!("client error {other:?}"),
    }
    assert!(p.client.is_drained());
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-19.9
//= type=test
//# An
//# endpoint MUST terminate a connection with an error of type
//# FLOW_CONTROL_ERROR if it receives more data than the maximum data
//# value that it has sent.
#[test]
fn flow_control_violation_closes_with_flow_control_error() {
    let mut p = Pair::default_pair();
    assert!(p.handshake());
    // The client wrongly believes it has 100 MB of credit.
    let big = 100 << 20;
    p.client
        .streams()
        .set_peer_limits(crate::streams::PeerLimits {
            initial_max_data: big,
            initial_max_stream_data_bidi_local: big,
            initial_max_stream_data_bidi_remote: big,
            initial_max_stream_data_uni: big,
            initial_max_streams_bidi: 100,
            initial_max_streams_uni: 100,
        })
        .unwrap();
    let id = p.client.open(Dir::Uni).unwrap();
    p.client.write(id, bytes::Bytes::from(vec![1u8; 4 << 20]), true).unwrap();
    p.run_for(Duration::from_secs(5), 100_000);
    match p.client.error() {
        Some(ConnectionError::PeerTransportClose { code, .. }) => {
            assert_eq!(*code, TransportErrorCode::FLOW_CONTROL_ERROR)
        }
        other => panic!("client error {other:?}"),
    }
    // Invariant 2: the write was cancelled, exactly once.
    let cancelled = p
        .client_events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Stream(crate::streams::StreamEvent::WriteComplete {
                    outcome: crate::streams::WriteOutcome::Cancelled(_),
                    ..
                })
            )
        })
        .count();
    assert_eq!(cancelled, 1);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-10.1
//= type=test
//# If a max_idle_timeout is specified by either endpoint in its
//# transport parameters (Section 18.2), the connection is silently
//# closed and its state is discarded when it remains idle for longer
//# than the minimum of the max_idle_timeout value advertised by both
//# endpoints.
#[test]
fn idle_timeout_fires_at_negotiated_value() {
    let cfg = PairConfig {
        client: TransportConfig::default()
            .with_idle_timeout(Some(Duration::from_secs(2)))
            .unwrap()
            .with_rng_seed(3),
        server: TransportConfig::default()
            .with_idle_timeout(Some(Duration::from_secs(5)))
            .unwrap()
            .with_rng_seed(4),
        ..PairConfig::default()
    };
    let mut p = Pair::new(cfg);
    assert!(p.handshake());
    assert_eq!(p.client.idle_timeout(), Some(Duration::from_secs(2)));
    assert_eq!(p.server.as_ref().unwrap().idle_timeout(), Some(Duration::from_secs(2)));
    // Stay quiet: track the client's last packet in either direction.
    let mut last_activity = p.now();
    // PMTU probes (the jumbo size lost after the handshake) are not activity: they do not
    // restart the idle timer.
    let sent = |st: crate::connection::ConnectionStats| st.packets_sent - st.pmtu_probes_sent;
    let mut seen = (sent(p.client.stats()), p.client.stats().packets_received);
    let mut lost_at = None;
    for _ in 0..10_000 {
        // Events of a step happen at the time it starts.
        let t = p.now();
        let more = p.step();
        let st = p.client.stats();
        if (sent(st), st.packets_received) != seen && !p.client.is_closed() {
            seen = (sent(st), st.packets_received);
            last_activity = t;
        }
        if lost_at.is_none()
            && p.client_events
                .contains(&Event::ConnectionLost { reason: ConnectionError::TimedOut })
        {
            lost_at = Some(t);
        }
        if !more {
            break;
        }
    }
    let lost_at = lost_at.expect("idle timeout fired");
    let idle = lost_at - last_activity;
    assert!(idle <= Duration::from_secs(2), "fired within 2 s of the last packet: {idle:?}");
    assert!(idle >= Duration::from_millis(1900), "not early: {idle:?}");
    assert!(p.client.is_drained() && p.server.as_ref().unwrap().is_drained());
    // A silent close: nothing was sent for it.
    assert_eq!(*p.client.close_state(), CloseState::Drained);
}

/// The Incoming of a client's first datagram.
fn initial_incoming(d: &[u8]) -> crate::connection::Incoming {
    let (pd, _) = crate::packet::PartialDecode::new(d, CID_LEN, false).unwrap();
    match pd.header().clone() {
        PlainHeader::Long { version, dst_cid, src_cid, .. } => {
            crate::connection::Incoming { dst_cid, src_cid, version, retry: None }
        }
        _ => panic!("not a long header"),
    }
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
//= type=test
//# Values above 20 are invalid.
#[test]
fn invalid_transport_parameters_close_with_transport_parameter_error() {
    // A client that advertises ack_delay_exponent 21: the server rejects its parameters.
    let mut client = TransportConfig::default().with_rng_seed(31);
    client.ack_delay_exponent = 21;
    let mut p = Pair::new(PairConfig { client, ..PairConfig::default() });
    assert!(!p.handshake());
    match p.server.as_ref().unwrap().error() {
        Some(ConnectionError::TransportError { code, .. }) => {
            assert_eq!(*code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR)
        }
        other => panic!("{other:?}"),
    }
    match p.client.error() {
        Some(ConnectionError::PeerTransportClose { code, .. }) => {
            assert_eq!(*code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR)
        }
        other => panic!("{other:?}"),
    }
    assert!(p.client_events.iter().any(|e| matches!(e, Event::HandshakeFailed { .. })));
}
