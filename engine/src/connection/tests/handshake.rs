//! Handshake tests: completion, confirmation, key discard, ALPN, coalescing and padding.

use super::pair::{Pair, ALPN};
use crate::connection::Event;

//= https://www.rfc-editor.org/rfc/rfc9001#section-4.9.2
//= type=test
//# An endpoint MUST discard its Handshake keys when the TLS handshake is
//# confirmed (Section 4.1.2).
#[test]
fn handshake_completes_and_confirms() {
    let mut p = Pair::default_pair();
    assert!(p.handshake(), "handshake did not complete in {} steps", p.steps);
    let s = p.server.as_ref().unwrap();
    assert!(p.client.is_handshake_complete() && s.is_handshake_complete());
    assert!(p.client.is_handshake_confirmed() && s.is_handshake_confirmed());
    assert_eq!(p.client.alpn_protocol(), Some(ALPN));
    assert_eq!(s.alpn_protocol(), Some(ALPN));
    // Initial and Handshake keys are gone on both sides; 1-RTT keys remain.
    assert_eq!(p.client.spaces_with_keys(), [false, false, true]);
    assert_eq!(s.spaces_with_keys(), [false, false, true]);
    assert!(p.client_events.contains(&Event::HandshakeConfirmed));
    assert!(p.server_events.contains(&Event::HandshakeConfirmed));
    // Transport parameters were exchanged and authenticated.
    assert!(p.client.peer_params().is_some() && s.peer_params().is_some());
    assert_eq!(p.client.remote_cid(), s.local_cid());
    assert_eq!(s.remote_cid(), p.client.local_cid());
}

/// A resuming client's TLS first reports the transport parameters remembered with the ticket;
/// the connection must use the server's new ones (its original_destination_connection_id
/// differs every time).
//= https://www.rfc-editor.org/rfc/rfc9000#section-7.3
//= type=test
//# An endpoint MUST treat the following as a connection error of type
//# TRANSPORT_PARAMETER_ERROR or PROTOCOL_VIOLATION:
#[test]
fn resumed_handshake_uses_fresh_transport_parameters() {
    use crate::connection::TransportConfig;
    use std::time::Duration;
    let mut first = Pair::default_pair();
    assert!(first.handshake());
    // Let the session tickets arrive.
    first.run_for(Duration::from_millis(500), 10_000);
    let mut resumed = 0;
    for seed in 0..3 {
        let cfg = super::pair::PairConfig {
            client: TransportConfig::default().with_rng_seed(100 + seed),
            ..Default::default()
        };
        let mut p = Pair::new(cfg);
        assert!(p.handshake(), "{:?} {:?}", p.client_events, p.client.error());
        resumed += u32::from(p.client.is_resumed());
    }
    assert!(resumed > 0, "at least one handshake resumed a session");
}

fn first_datagrams(
    from: &mut crate::connection::Connection,
    now: std::time::Instant,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..64 {
        match from.poll_transmit(now, &mut buf, 1) {
            Some(t) => out.push(buf[..t.len].to_vec()),
            None => break,
        }
    }
    out
}

/// (Initial, Handshake, 1-RTT) packets in a datagram.
fn kinds(d: &[u8]) -> (usize, usize, usize) {
    use crate::packet::{Coalesced, LongType, PlainHeader};
    let mut d = d.to_vec();
    let mut k = (0, 0, 0);
    for p in Coalesced::new(&mut d, super::pair::CID_LEN, false).flatten() {
        match p.header.header() {
            PlainHeader::Long { ty: LongType::Initial, .. } => k.0 += 1,
            PlainHeader::Long { ty: LongType::Handshake, .. } => k.1 += 1,
            PlainHeader::Short { .. } => k.2 += 1,
            _ => {}
        }
    }
    k
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-14.1
//= type=test
//# A client MUST expand the payload of all UDP datagrams carrying
//# Initial packets to at least the smallest allowed maximum datagram
//# size of 1200 bytes by adding PADDING frames to the Initial packet or
//# by coalescing the Initial packet; see Section 12.2.
#[test]
fn initial_datagrams_padded_and_flights_coalesced() {
    use crate::connection::{Connection, Incoming, RandomCidGenerator, ServerConfig};
    use crate::packet::{PartialDecode, PlainHeader};
    use peregrine_datapath::Ecn;
    let mut p = Pair::default_pair();
    let now = p.now();
    let c1 = first_datagrams(&mut p.client, now);
    assert_eq!(c1.len(), 1, "the ClientHello fits one datagram");
    assert!(c1[0].len() >= 1200);
    assert_eq!(kinds(&c1[0]), (1, 0, 0));
    let (pd, _) = PartialDecode::new(&c1[0], 8, false).unwrap();
    let PlainHeader::Long { version, dst_cid, src_cid, .. } = pd.header().clone() else { panic!() };
    let mut server = Connection::server(
        &ServerConfig::new(super::pair::tls_server()),
        now,
        p.client_addr,
        Incoming { dst_cid, src_cid, version, retry: None },
        Box::new(RandomCidGenerator::new(8, 3)),
    )
    .unwrap();
    let mut d = c1[0].clone();
    server.handle_datagram(now, p.client_addr, Ecn::NotEct, &mut d);
    let s1 = first_datagrams(&mut server, now);
    assert!(!s1.is_empty());
    // The first server datagram coalesces Initial (ServerHello) and Handshake packets.
    let k = kinds(&s1[0]);
    assert_eq!((k.0, k.1 > 0), (1, true), "{k:?}");
    let total: usize = s1.iter().map(|d| d.len()).sum();
    for d in &s1 {
        if kinds(d).0 > 0 {
            assert!(d.len() >= 1200, "ack-eliciting Initial datagrams are padded");
        }
    }
    // Within the anti-amplification limit.
    assert!(total <= 3 * c1[0].len());
    for d in &s1 {
        let mut d = d.clone();
        p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
    }
    // The client's second flight: ACK of the Initial (padded) coalesced with its Handshake
    // Finished; the client then drops its Initial keys.
    let c2 = first_datagrams(&mut p.client, now);
    let k = kinds(&c2[0]);
    assert!(k.0 == 1 && k.1 >= 1, "{k:?}");
    assert!(c2[0].len() >= 1200);
    assert!(p.client.is_handshake_complete());
    assert!(!p.client.spaces_with_keys()[0], "Initial keys discarded after sending Handshake");
}

#[test]
fn gso_trains_of_equal_datagrams() {
    let mut p = Pair::default_pair();
    assert!(p.handshake());
    let id = p.client.open(crate::streams::Dir::Uni).unwrap();
    p.client.write(id, bytes::Bytes::from(vec![7u8; 200_000]), true).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let t = p.client.poll_transmit(p.now(), &mut buf, 8).unwrap();
    assert_eq!(t.segment_size, Some(1200));
    assert_eq!(t.datagrams, 8, "a full train within the initial window");
    assert_eq!(t.len, 8 * 1200);
    // Every segment is one 1-RTT packet.
    for seg in buf[..t.len].chunks(1200) {
        assert_eq!(kinds(seg), (0, 0, 1));
    }
}

/// TLS failures close with CRYPTO_ERROR carrying the alert (RFC 9001 §4.8).
//= https://www.rfc-editor.org/rfc/rfc9001#section-4.8
//= type=test
//# A TLS alert is converted into a QUIC connection error.  The
//# AlertDescription value is added to 0x0100 to produce a QUIC error
//# code from the range reserved for CRYPTO_ERROR; see Section 20.1 of
//# [QUIC-TRANSPORT].
#[test]
fn tls_failures_close_with_crypto_error() {
    use crate::connection::{ClientConfig, Connection, ConnectionError, RandomCidGenerator};
    use crate::crypto::TlsClientConfig;
    use std::sync::Arc;
    // An untrusted certificate: the client rejects it.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let tls = TlsClientConfig::builder()
        .add_root_certificate(other.cert.der().clone())
        .unwrap()
        .alpn_protocols([ALPN])
        .build()
        .unwrap();
    let mut p = Pair::default_pair();
    let cfg = ClientConfig::new(Arc::new(tls));
    p.client = Connection::client(
        &cfg,
        p.now(),
        p.server_addr,
        "localhost",
        Box::new(RandomCidGenerator::new(8, 77)),
    )
    .unwrap();
    assert!(!p.handshake());
    match p.client.error() {
        Some(ConnectionError::TransportError { code, .. }) => {
            assert!(code.tls_alert().is_some(), "CRYPTO_ERROR, got {code:?}")
        }
        other => panic!("{other:?}"),
    }
    match p.server.as_ref().unwrap().error() {
        Some(ConnectionError::PeerTransportClose { code, .. }) => {
            assert!(code.tls_alert().is_some())
        }
        other => panic!("{other:?}"),
    }
    // No common ALPN: the server refuses with no_application_protocol (120).
    let tls = TlsClientConfig::builder()
        .add_root_certificate(super::pair::tls_cert())
        .unwrap()
        .alpn_protocols([b"h3".as_slice()])
        .build()
        .unwrap();
    let mut p = Pair::default_pair();
    p.client = Connection::client(
        &ClientConfig::new(Arc::new(tls)),
        p.now(),
        p.server_addr,
        "localhost",
        Box::new(RandomCidGenerator::new(8, 78)),
    )
    .unwrap();
    assert!(!p.handshake());
    let want = crate::error::TransportErrorCode::crypto(120);
    match p.server.as_ref().unwrap().error() {
        Some(ConnectionError::TransportError { code, .. }) => assert_eq!(*code, want),
        other => panic!("{other:?}"),
    }
    match p.client.error() {
        Some(ConnectionError::PeerTransportClose { code, .. }) => assert_eq!(*code, want),
        other => panic!("{other:?}"),
    }
    assert!(p.client_events.iter().any(|e| matches!(e, Event::HandshakeFailed { .. })));
}

/// A client that sends its ClientHello again after the server answered (its PTO fired before
/// the answer arrived, or it restarted its Initial state, as picoquic 1.1's client does after a
/// compatible upgrade to v2) gets the server's Initial CRYPTO data again at once, not at the
/// server's PTO (RFC 9002 §6.2.3).
#[test]
fn duplicate_client_hello_brings_the_server_flight_early() {
    use peregrine_datapath::sim::LinkConfig;
    use std::time::Duration;
    // The server's answer takes 1.5 s to arrive; the client's PTO (initial RTT 333 ms) fires
    // at about 1 s; the server's own PTO (initial RTT 2 s) would fire at about 6 s.
    let cfg = super::pair::PairConfig {
        up: LinkConfig::with_delay(Duration::from_millis(10)),
        down: LinkConfig::with_delay(Duration::from_millis(1500)),
        server: crate::connection::TransportConfig::default()
            .with_rng_seed(22)
            .with_initial_rtt(Duration::from_secs(2))
            .unwrap(),
        ..super::pair::PairConfig::default()
    };
    let mut p = Pair::new(cfg);
    p.run_for(Duration::from_millis(500), 1000);
    let first = p.server().stats();
    assert!(first.datagrams_sent > 0, "the server answered");
    assert_eq!(p.client.stats().packets_sent, 1, "the client waits for its PTO");
    p.run_for(Duration::from_millis(1000), 1000);
    assert!(p.client.stats().packets_sent > 1, "the client's PTO resent its ClientHello");
    let later = p.server().stats();
    // An ACK alone is a small datagram; an Initial with CRYPTO data is padded to 1200 bytes.
    assert!(
        later.bytes_sent >= first.bytes_sent + 1200,
        "the server resent its Initial CRYPTO data on the duplicate ClientHello ({} then {} bytes)",
        first.bytes_sent,
        later.bytes_sent
    );
    assert!(p.handshake(), "the handshake completes");
}
