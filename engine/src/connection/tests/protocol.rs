//! Protocol mechanics: Retry, Version Negotiation, stateless reset, key update, connection IDs,
//! anti-amplification and the client's anti-deadlock PTO.

use std::time::Duration;

use peregrine_datapath::sim::{Blackhole, LinkConfig};
use peregrine_datapath::Ecn;

use super::pair::{Pair, PairConfig, ServerMode, CID_LEN};
use super::transfer::{run_until_done, Outcome};
use crate::cid::ConnectionId;
use crate::coding::Writer;
use crate::connection::{ConnectionError, EndpointEvent, Event, TransportConfig};
use crate::error::TransportErrorCode;
use crate::packet::write_version_negotiation;

//= https://www.rfc-editor.org/rfc/rfc9000#section-7.3
//= type=test
//# *  absence of the retry_source_connection_id transport parameter from
//#    the server after receiving a Retry packet,
#[test]
fn retry_then_handshake() {
    let cfg = PairConfig { mode: ServerMode::Retry, ..PairConfig::default() };
    let mut p = Pair::new(cfg);
    assert!(p.handshake(), "{:?} {:?}", p.client_events, p.client.error());
    assert_eq!(p.retries_sent, 1);
    let params = p.client.peer_params().unwrap();
    assert_eq!(
        params.retry_source_connection_id,
        Some(ConnectionId::new(&[0xaa; CID_LEN]).unwrap())
    );
    assert_eq!(p.client.remote_cid(), p.server.as_ref().unwrap().local_cid());
    assert!(!p.client.token.is_empty(), "the Retry token was echoed");
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-5.8
//= type=test
//# Retry packets (see Section 17.2.5 of [QUIC-TRANSPORT]) carry a Retry
//# Integrity Tag that provides two properties: it allows the discarding
//# of packets that have accidentally been corrupted by the network, and
//# only an entity that observes an Initial packet can send a valid Retry
//# packet.
#[test]
fn forged_retry_is_ignored() {
    let mut p = Pair::default_pair();
    let now = p.now();
    let mut buf = vec![0u8; 2048];
    let _ = p.client.poll_transmit(now, &mut buf, 1).unwrap();
    let hdr = crate::packet::RetryHeader {
        version: crate::version::V1,
        dst_cid: p.client.local_cid(),
        src_cid: ConnectionId::new(&[1; 8]).unwrap(),
        token: b"forged",
        unused_bits: 0,
    };
    let mut w = Writer::new(&mut buf);
    hdr.write_with_tag(&mut w, &[0u8; 16]).unwrap();
    let mut d = w.written().to_vec();
    p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
    assert!(p.client.token.is_empty() && !p.client.retry_received);
    assert!(p.handshake(), "the real server still completes the handshake");
}

fn vn_datagram(p: &Pair, versions: &[u32]) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let mut w = Writer::new(&mut buf);
    write_version_negotiation(
        &mut w,
        0x2a,
        p.client.local_cid().as_bytes(),
        p.client.ids.original_dcid.as_bytes(),
        versions,
    )
    .unwrap();
    w.written().to_vec()
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-6.2
//= type=test
//# A client that supports only this version of QUIC MUST abandon the
//# current connection attempt if it receives a Version Negotiation
//# packet, with the following two exceptions.
#[test]
fn version_negotiation_without_our_version_fails_typed() {
    let mut p = Pair::default_pair();
    let now = p.now();
    let mut buf = vec![0u8; 2048];
    let _ = p.client.poll_transmit(now, &mut buf, 1).unwrap();
    // A VN listing our own version is ignored.
    let mut d = vn_datagram(&p, &[0x1a2a_3a4a, crate::version::V1]);
    p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
    assert!(!p.client.is_closed());
    let mut d = vn_datagram(&p, &[0x1a2a_3a4a, 0xff00_001d]);
    p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
    let want = ConnectionError::VersionMismatch { offered: vec![0x1a2a_3a4a, 0xff00_001d] };
    assert_eq!(p.client.error(), Some(&want));
    assert_eq!(p.client.poll_event(), Some(Event::HandshakeFailed { reason: want }));
    assert_eq!(p.client.poll_event(), Some(Event::Drained));
    assert!(p.client.is_drained());
    assert!(p.client.poll_transmit(now, &mut buf, 1).is_none());
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.1
//= type=test
//# If the last 16 bytes of the datagram are identical in value to
//# a stateless reset token, the endpoint MUST enter the draining
//# period and not send any further packets on this connection.
#[test]
fn stateless_reset_ends_the_connection() {
    let mut p = Pair::default_pair();
    assert!(p.handshake());
    // The server's token for its handshake ID came in its transport parameters.
    let token = p.client.peer_params().unwrap().stateless_reset_token.unwrap();
    let now = p.now();
    let mut d = vec![0x45u8; 43];
    d[43 - 16..].copy_from_slice(&token.0);
    p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
    assert_eq!(p.client.error(), Some(&ConnectionError::Reset));
    assert!(p.client.is_closed());
    let mut buf = vec![0u8; 2048];
    p.client.ping();
    assert!(p.client.poll_transmit(now, &mut buf, 1).is_none(), "draining: nothing is sent");
    // A datagram with a wrong token does nothing to a fresh connection.
    let mut q = Pair::default_pair();
    assert!(q.handshake());
    let mut d = vec![0x45u8; 43];
    let now = q.now();
    q.client.handle_datagram(now, q.server_addr, Ecn::NotEct, &mut d);
    assert!(q.client.error().is_none());
}

//= https://www.rfc-editor.org/rfc/rfc9001#section-6.2
//= type=test
//# If a packet is successfully processed using the next key and IV, then
//# the peer has initiated a key update.  The endpoint MUST update its
//# send keys to the corresponding key phase in response, as described in
//# Section 6.1.
#[test]
fn key_updates_mid_transfer() {
    let t = TransportConfig::default().with_key_update_interval(Some(300)).unwrap();
    let cfg = PairConfig { client: t.with_rng_seed(8), ..PairConfig::default() };
    let o: Outcome = run_until_done(cfg, (1, 2_000_000), (1, 500_000), 400_000);
    assert!(o.done);
    assert_eq!(o.server_rx.mismatches + o.client_rx.mismatches, 0);
    let cg = o.pair.client.key_generation().unwrap();
    let sg = o.pair.server.as_ref().unwrap().key_generation().unwrap();
    assert!(cg >= 3, "several key phases: generation {cg}");
    assert_eq!(cg, sg, "the server followed every update");
    assert!(o.pair.client.stats().key_updates >= 3);
}

#[test]
fn key_update_on_demand_by_server() {
    let mut p = Pair::default_pair();
    assert!(p.handshake());
    p.run_for(Duration::from_millis(100), 1000);
    p.server.as_mut().unwrap().initiate_key_update();
    p.server.as_mut().unwrap().ping();
    p.run_for(Duration::from_millis(200), 1000);
    assert_eq!(p.server.as_ref().unwrap().key_generation(), Some(1));
    assert_eq!(p.client.key_generation(), Some(1));
    // The connection still works in the new phase.
    let o = p.client.open(crate::streams::Dir::Uni).unwrap();
    p.client.write(o, bytes::Bytes::from_static(b"after update"), true).unwrap();
    p.run_for(Duration::from_millis(200), 1000);
    let mut buf = [0u8; 64];
    let (n, fin) = p.server.as_mut().unwrap().read(o, &mut buf).unwrap();
    assert_eq!((&buf[..n], fin), (&b"after update"[..], true));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-5.1.1
//= type=test
//# An endpoint MUST NOT
//# provide more connection IDs than the peer's limit.
#[test]
fn connection_ids_issued_up_to_the_peer_limit() {
    let cfg = PairConfig {
        client: TransportConfig::default().with_active_cid_limit(3).unwrap().with_rng_seed(1),
        server: TransportConfig::default().with_active_cid_limit(5).unwrap().with_rng_seed(2),
        ..PairConfig::default()
    };
    let mut p = Pair::new(cfg);
    assert!(p.handshake());
    p.run_for(Duration::from_millis(200), 1000);
    let count = |c: &mut crate::connection::Connection| {
        std::iter::from_fn(|| c.poll_endpoint_event())
            .filter(|e| matches!(e, EndpointEvent::NewLocalCid { .. }))
            .count()
    };
    // The server accepts 5 of the client's IDs, the client 3 of the server's (each count
    // includes the handshake ID, sequence number 0).
    assert_eq!(count(&mut p.client), 5);
    assert_eq!(count(p.server.as_mut().unwrap()), 3);
    assert_eq!(p.client.peer_cids.active_count_for_tests(), 3);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-5.1.1
//= type=test
//# After processing a NEW_CONNECTION_ID frame and
//# adding and retiring active connection IDs, if the number of active
//# connection IDs exceeds the value advertised in its
//# active_connection_id_limit transport parameter, an endpoint MUST
//# close the connection with an error of type CONNECTION_ID_LIMIT_ERROR.
#[test]
fn too_many_connection_ids_is_connection_id_limit_error() {
    let mut p = Pair::default_pair();
    assert!(p.handshake());
    p.run_for(Duration::from_millis(100), 1000);
    // The server ignores the client's limit of 4 and issues a fifth ID.
    let s = p.server.as_mut().unwrap();
    s.local_cids.issue(ConnectionId::new(&[0xee; 8]).unwrap(), crate::cid::ResetToken([0xee; 16]));
    s.ping();
    p.run_for(Duration::from_millis(500), 1000);
    match p.client.error() {
        Some(ConnectionError::TransportError { code, .. }) => {
            assert_eq!(*code, TransportErrorCode::CONNECTION_ID_LIMIT_ERROR)
        }
        other => panic!("{other:?}"),
    }
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-8.1
//= type=test
//# Prior to validating the client address, servers MUST NOT send more
//# than three times as many bytes as the number of bytes they have
//# received.
#[test]
fn server_respects_amplification_limit() {
    // Everything the client sends after its first flight is lost for a while: the server can
    // only answer within 3x what it received.
    let start = peregrine_datapath::sim::SimNetwork::new(1).now();
    let up = LinkConfig {
        blackholes: vec![Blackhole {
            start: start + Duration::from_millis(5),
            end: start + Duration::from_secs(2),
        }],
        ..LinkConfig::with_delay(Duration::from_millis(10))
    };
    let cfg = PairConfig { up, ..PairConfig::default() };
    let mut p = Pair::new(cfg);
    p.run_for(Duration::from_millis(1900), 10_000);
    let s = p.server.as_ref().unwrap().stats();
    assert!(s.bytes_received > 0 && s.bytes_sent > 0);
    assert!(s.bytes_sent <= 3 * s.bytes_received, "{} > 3 * {}", s.bytes_sent, s.bytes_received);
    // Once the path heals the handshake completes.
    assert!(p.handshake());
}

//= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.2.1
//= type=test
//# That is, the
//# client MUST set the PTO timer if the client has not received an
//# acknowledgment for any of its Handshake packets and the handshake is
//# not confirmed (see Section 4.1.2 of [QUIC-TLS]), even if there are no
//# packets in flight.
#[test]
fn handshake_survives_lost_flights() {
    let start = peregrine_datapath::sim::SimNetwork::new(1).now();
    let hole = |from: u64, to: u64| Blackhole {
        start: start + Duration::from_millis(from),
        end: start + Duration::from_millis(to),
    };
    // The server's first flight and the client's Handshake flight are lost.
    let down = LinkConfig {
        blackholes: vec![hole(0, 400)],
        ..LinkConfig::with_delay(Duration::from_millis(10))
    };
    let up = LinkConfig {
        blackholes: vec![hole(500, 1500)],
        ..LinkConfig::with_delay(Duration::from_millis(10))
    };
    let mut p = Pair::new(PairConfig { up, down, ..PairConfig::default() });
    assert!(p.handshake(), "{:?}", p.client_events);
    assert!(p.client.stats().pto_count > 0);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-14.1
//= type=test
//# A server MUST discard an Initial packet that is carried in a UDP
//# datagram with a payload that is smaller than the smallest allowed
//# maximum datagram size of 1200 bytes.
/// A valid client Initial carrying PING, padded so the datagram is `size` bytes.
fn ping_initial(dcid: &ConnectionId, scid: &ConnectionId, size: usize) -> Vec<u8> {
    use crate::crypto::{initial_keys, Side, Version, TAG_LEN};
    use crate::packet::{LongHeader, LongType, PacketBuilder, TruncatedPn};
    let keys = initial_keys(Version::V1, dcid, Side::Client).unwrap();
    let mut buf = vec![0u8; size];
    let mut w = Writer::new(&mut buf);
    let hdr = LongHeader {
        ty: LongType::Initial,
        version: crate::version::V1,
        dst_cid: *dcid,
        src_cid: *scid,
        token: &[],
        pn: TruncatedPn::encode(0, None).unwrap(),
        grease_quic_bit: false,
    };
    let b = PacketBuilder::long(&mut w, &hdr).unwrap();
    crate::frame::Ping.encode(&mut w).unwrap();
    b.pad_datagram_to(&mut w, size, TAG_LEN).unwrap();
    let l = b.finish(&mut w, TAG_LEN).unwrap();
    let pkt = &mut w.written_mut()[l.range()];
    keys.local.packet.seal_in_place(0, pkt, l.header_len).unwrap();
    keys.local.header.protect(pkt, l.pn_offset).unwrap();
    w.written().to_vec()
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-14.1
//= type=test
//# A server MUST discard an Initial packet that is carried in a UDP
//# datagram with a payload that is smaller than the smallest allowed
//# maximum datagram size of 1200 bytes.
#[test]
fn server_drops_initial_in_short_datagram() {
    let now = Pair::default_pair().now();
    let client: std::net::SocketAddr = "10.0.0.1:1".parse().unwrap();
    let dcid = ConnectionId::new(&[7; 8]).unwrap();
    let scid = ConnectionId::new(&[8; 8]).unwrap();
    let incoming = crate::connection::Incoming {
        dst_cid: dcid,
        src_cid: scid,
        version: crate::version::V1,
        retry: None,
    };
    let mut server = crate::connection::Connection::server(
        &crate::connection::ServerConfig::new(super::pair::tls_server()),
        now,
        client,
        incoming,
        Box::new(crate::connection::RandomCidGenerator::new(CID_LEN, 1)),
    )
    .unwrap();
    let mut short = ping_initial(&dcid, &scid, 1199);
    assert_eq!(short.len(), 1199);
    server.handle_datagram(now, client, Ecn::NotEct, &mut short);
    assert_eq!(server.stats().packets_received, 0, "dropped unprocessed");
    assert_eq!(server.stats().packets_dropped, 1);
    let mut full = ping_initial(&dcid, &scid, 1200);
    server.handle_datagram(now, client, Ecn::NotEct, &mut full);
    assert_eq!(server.stats().packets_received, 1, "the same packet in 1200 bytes is accepted");
}

//= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.2.1
//= type=test
//# When the PTO fires, the client MUST send a
//# Handshake packet if it has Handshake keys, otherwise it MUST send an
//# Initial packet in a UDP datagram with a payload of at least 1200
//# bytes.
#[test]
fn client_anti_deadlock_probe() {
    use crate::connection::{Connection, Incoming, RandomCidGenerator, ServerConfig};
    use crate::packet::{Coalesced, LongType, PartialDecode, PlainHeader};
    let mut p = Pair::default_pair();
    let now = p.now();
    let mut buf = vec![0u8; 64 * 1024];
    let t = p.client.poll_transmit(now, &mut buf, 1).unwrap();
    let mut c1 = buf[..t.len].to_vec();
    let (pd, _) = PartialDecode::new(&c1, CID_LEN, false).unwrap();
    let PlainHeader::Long { version, dst_cid, src_cid, .. } = pd.header().clone() else { panic!() };
    let mut server = Connection::server(
        &ServerConfig::new(super::pair::tls_server()),
        now,
        p.client_addr,
        Incoming { dst_cid, src_cid, version, retry: None },
        Box::new(RandomCidGenerator::new(CID_LEN, 5)),
    )
    .unwrap();
    server.handle_datagram(now, p.client_addr, Ecn::NotEct, &mut c1);
    // Only the server's first datagram arrives (its Initial acknowledges the client's, so the
    // client has nothing ack-eliciting in flight); the rest of the flight is lost, and the
    // client's answers never reach the server.
    let t = server.poll_transmit(now, &mut buf, 1).unwrap();
    // Keep only the Initial packet (ServerHello and the ACK) of the coalesced datagram.
    let (first, _) = PartialDecode::new(&buf[..t.len], CID_LEN, false).unwrap();
    assert!(first.len() < t.len, "the server coalesced Handshake data after its Initial");
    let mut s1 = buf[..first.len()].to_vec();
    let later = now + Duration::from_millis(20);
    p.client.handle_datagram(later, p.server_addr, Ecn::NotEct, &mut s1);
    while p.client.poll_transmit(later, &mut buf, 1).is_some() {}
    assert!(!p.client.is_handshake_complete());
    assert!(p.client.spaces_with_keys()[1], "the client has Handshake keys");
    let pto = p.client.poll_timeout().expect("the anti-deadlock PTO is armed");
    p.client.handle_timeout(pto);
    assert_eq!(p.client.stats().pto_count, 1);
    let t = p.client.poll_transmit(pto, &mut buf, 1).expect("a probe is sent");
    let mut d = buf[..t.len].to_vec();
    let handshake_packets = Coalesced::new(&mut d, CID_LEN, false)
        .flatten()
        .filter(|p| matches!(p.header.header(), PlainHeader::Long { ty: LongType::Handshake, .. }))
        .count();
    assert!(handshake_packets >= 1, "the probe is a Handshake packet");
}

#[test]
fn idle_timeout_is_at_least_three_pto() {
    let cfg = PairConfig {
        client: TransportConfig::default()
            .with_idle_timeout(Some(Duration::from_millis(10)))
            .unwrap()
            .with_rng_seed(5),
        up: LinkConfig::with_delay(Duration::from_millis(50)),
        down: LinkConfig::with_delay(Duration::from_millis(50)),
        ..PairConfig::default()
    };
    let mut p = Pair::new(cfg);
    // A 10 ms idle timeout on a 100 ms RTT path would kill every connection; 3 PTO applies.
    assert!(p.handshake(), "{:?}", p.client.error());
    let idle = p.client.idle_timeout().unwrap();
    assert!(idle >= Duration::from_millis(300), "{idle:?}");
}

/// Garbage and mutated copies of real datagrams, fed to both sides of an established
/// connection: nothing panics, nothing closes the connection (unauthenticated input is
/// dropped), and data still flows afterwards.
#[test]
fn garbage_and_mutated_datagrams_are_dropped_safely() {
    use rand::{Rng, SeedableRng};
    let mut p = Pair::default_pair();
    assert!(p.handshake());
    // Capture a few real datagrams of each side.
    let now = p.now();
    let mut buf = vec![0u8; 4096];
    let id = p.client.open(crate::streams::Dir::Bi).unwrap();
    p.client.write(id, bytes::Bytes::from(vec![9u8; 5000]), false).unwrap();
    let mut real = Vec::new();
    while let Some(t) = p.client.poll_transmit(now, &mut buf, 1) {
        real.push(buf[..t.len].to_vec());
    }
    assert!(!real.is_empty());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let s = p.server.as_mut().unwrap();
    for i in 0..3000 {
        let mut d = if i % 2 == 0 {
            let len = rng.gen_range(0..1500);
            (0..len).map(|_| rng.gen::<u8>()).collect::<Vec<u8>>()
        } else {
            let mut d = real[i % real.len()].clone();
            let flips = rng.gen_range(1..8);
            for _ in 0..flips {
                let at = rng.gen_range(0..d.len());
                d[at] ^= 1 << rng.gen_range(0..8);
            }
            if rng.gen_bool(0.2) {
                d.truncate(rng.gen_range(0..d.len()));
            }
            d
        };
        let target: &mut crate::connection::Connection =
            if i % 3 == 0 { &mut p.client } else { &mut *s };
        target.handle_datagram(now, p.client_addr, Ecn::NotEct, &mut d);
        let _ = target.poll_transmit(now, &mut buf, 1);
    }
    assert!(p.client.error().is_none(), "{:?}", p.client.error());
    assert!(s.error().is_none(), "{:?}", s.error());
    // The real datagrams still work.
    for d in &real {
        let mut d = d.clone();
        s.handle_datagram(now, p.client_addr, Ecn::NotEct, &mut d);
    }
    let mut out = [0u8; 8192];
    let (n, _) = s.read(id, &mut out).unwrap();
    assert!(n > 0 && out[..n].iter().all(|b| *b == 9));
}
