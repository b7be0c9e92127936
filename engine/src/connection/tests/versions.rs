//! QUIC versions: starting in v2, Version Negotiation followed to a common version, the
//! Version Negotiation packets a client must ignore, compatible negotiation (RFC 9368) in both
//! roles, and the version_information checks against downgrades.

use std::time::Duration;

use peregrine_datapath::sim::LinkConfig;
use peregrine_datapath::Ecn;

use super::pair::{version_negotiation, Pair, PairConfig};
use crate::connection::{ConnectionError, Event};
use crate::error::TransportErrorCode;
use crate::packet::{InvariantHeader, PartialDecode, PlainHeader};
use crate::transport_params::VersionInformation;
use crate::version::{V1, V2};

const RESERVED: u32 = 0x1a2a_3a4a;

/// The QUIC version of each long header packet in `d` (coalesced packets included).
fn long_versions(d: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = d;
    while let Ok((pd, tail)) = PartialDecode::new(rest, super::pair::CID_LEN, false) {
        if let PlainHeader::Long { version, .. } = pd.header() {
            out.push(*version);
        }
        if tail.is_empty() || tail.len() == rest.len() {
            break;
        }
        rest = tail;
    }
    out
}

/// The client's first datagram (taken from the client, never sent) and its version.
fn first_initial_version(p: &mut Pair) -> u32 {
    let mut buf = vec![0u8; 2048];
    let t = p.client.poll_transmit(p.now(), &mut buf, 1).expect("an Initial");
    match InvariantHeader::parse(&buf[..t.len], 8).expect("a long header") {
        InvariantHeader::Long { version, .. } => version,
        InvariantHeader::Short { .. } => panic!("short header first"),
    }
}

fn vn_for(p: &Pair, versions: &[u32]) -> Vec<u8> {
    version_negotiation(
        p.client.local_cid().as_bytes(),
        p.client.ids.original_dcid.as_bytes(),
        versions,
    )
}

fn closed_with(err: Option<&ConnectionError>, code: TransportErrorCode) -> bool {
    matches!(err, Some(ConnectionError::TransportError { code: c, .. }) if *c == code)
}

fn handshake_ok(p: &mut Pair) {
    assert!(
        p.handshake(),
        "client {:?} / server {:?}",
        p.client.error(),
        p.server.as_ref().and_then(|s| s.error())
    );
}

/// `ClientConfig::with_version(V2)`: the first Initial is v2 and the handshake completes in v2
/// on both sides; the client's version_information offers v2 first.
#[test]
fn client_starts_in_v2() {
    let cfg = PairConfig { client_version: Some(V2), ..PairConfig::default() };
    let mut p = Pair::new(cfg.clone());
    assert_eq!(first_initial_version(&mut p), V2);
    let mut p = Pair::new(cfg);
    handshake_ok(&mut p);
    assert_eq!((p.client.version(), p.server().version()), (V2, V2));
    assert_eq!(p.vn_sent, 0);
    let vi = p.server().peer_params().unwrap().version_information.clone().unwrap();
    assert_eq!(vi, VersionInformation { chosen_version: V2, available_versions: vec![V2, V1] });
}

//= https://www.rfc-editor.org/rfc/rfc9368#section-2.1
//= type=test
//# Upon receiving the Version Negotiation packet, the client SHALL search for a
//# version it supports in the list provided by the server.
/// A server that accepts only v2 answers the client's v1 Initial with Version Negotiation;
/// the client starts again in v2 (same connection, new first flight) and connects, and the
/// server's version_information (available: v2) passes the client's downgrade check.
#[test]
fn version_negotiation_to_v2_connects() {
    let cfg = PairConfig { server_versions: vec![V2], ..PairConfig::default() };
    let mut p = Pair::new(cfg);
    handshake_ok(&mut p);
    assert_eq!(p.vn_sent, 1, "one Version Negotiation");
    assert_eq!((p.client.version(), p.server().version()), (V2, V2));
    assert!(p.client.versions.after_vn);
    // The transfer works after the restart.
    let id = p.client.open(crate::streams::Dir::Bi).unwrap();
    p.client.write(id, bytes::Bytes::from_static(b"hello v2"), true).unwrap();
    assert!(p.drive(
        10_000,
        |_| {},
        |p| p.server.as_mut().is_some_and(|s| {
            let mut b = [0u8; 64];
            s.read(id, &mut b).is_ok_and(|r| r.0 == 8)
        })
    ));
}

/// The same with loss: the client's restarted Initial and the server's flight are lost at
/// times; the client still connects in v2 with exactly one restart.
#[test]
fn version_negotiation_to_v2_with_loss() {
    for seed in 1..6 {
        let link = LinkConfig { loss: 0.2, ..LinkConfig::with_delay(Duration::from_millis(10)) };
        let cfg = PairConfig {
            seed,
            up: link.clone(),
            down: link,
            server_versions: vec![V2],
            ..PairConfig::default()
        };
        let mut p = Pair::new(cfg);
        handshake_ok(&mut p);
        assert_eq!((p.client.version(), p.server().version()), (V2, V2), "seed {seed}");
    }
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-6.2
//= type=test
//# A client MUST discard a Version Negotiation packet that lists the QUIC
//# version selected by the client.
/// Version Negotiation packets a client ignores: one listing its version, one with other
/// connection IDs, one after it restarted on an earlier one (RFC 9368 §4), and any after a
/// server packet was processed. None of them changes the version or ends the connection.
#[test]
fn version_negotiation_packets_that_are_ignored() {
    let mut p = Pair::default_pair();
    let now = p.now();
    let _ = first_initial_version(&mut p);
    // Lists our version (and v2): ignored.
    let mut d = vn_for(&p, &[V2, V1]);
    p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
    assert_eq!(p.client.version(), V1);
    // Wrong connection IDs: ignored.
    let mut d = version_negotiation(&[9; 8], p.client.ids.original_dcid.as_bytes(), &[V2]);
    p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
    let mut d = version_negotiation(p.client.local_cid().as_bytes(), &[9; 16], &[V2]);
    p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
    assert_eq!(p.client.version(), V1);
    assert!(!p.client.versions.after_vn);
    // A valid one: the client starts again in v2 ...
    let mut d = vn_for(&p, &[RESERVED, V2]);
    p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
    assert_eq!(p.client.version(), V2);
    assert_eq!(first_initial_version(&mut p), V2);
    // ... and ignores any later one, even one offering only something else.
    let mut d = vn_for(&p, &[0xff00_001d]);
    p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
    assert!(!p.client.is_closed());
    assert_eq!(p.client.version(), V2);

    // After a server packet was processed: ignored.
    let mut p = Pair::default_pair();
    handshake_ok(&mut p);
    let now = p.now();
    let mut d = vn_for(&p, &[V2]);
    p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
    assert!(!p.client.is_closed());
    assert_eq!(p.client.version(), V1);
}

/// No common version: the attempt ends with `VersionMismatch` listing the server's versions.
#[test]
fn version_negotiation_without_a_common_version_fails() {
    let cfg = PairConfig { client_versions: Some(vec![V1]), ..PairConfig::default() };
    let mut p = Pair::new(cfg);
    let now = p.now();
    let _ = first_initial_version(&mut p);
    let mut d = vn_for(&p, &[RESERVED, V2]);
    p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
    let want = ConnectionError::VersionMismatch { offered: vec![RESERVED, V2] };
    assert_eq!(p.client.error(), Some(&want));
    assert!(p.client.is_drained());
}

//= https://www.rfc-editor.org/rfc/rfc9368#section-4
//= type=test
//# If the client would have selected a different version, the
//# client MUST close the connection with a version negotiation error.
/// A forged Version Negotiation listing only v1 reaches a client that prefers v2 before the
/// server's answer: the client starts again in v1, but the server's version_information lists
/// v2 too, so the client sees the downgrade and closes with VERSION_NEGOTIATION_ERROR.
#[test]
fn forged_version_negotiation_downgrade_is_detected() {
    let cfg = PairConfig { client_version: Some(V2), ..PairConfig::default() };
    let mut p = Pair::new(cfg);
    let now = p.now();
    let mut d = vn_for(&p, &[V1]);
    p.client.handle_datagram(now, p.server_addr, Ecn::NotEct, &mut d);
    assert_eq!(p.client.version(), V1, "the client followed the forged packet");
    assert!(!p.handshake());
    let err = p.client.error();
    assert!(closed_with(err, TransportErrorCode::VERSION_NEGOTIATION_ERROR), "{err:?}");
    assert!(!p.client_events.contains(&Event::Connected));
    // The server learns why.
    let serr = p.server().error().cloned();
    assert!(
        matches!(serr, Some(ConnectionError::PeerTransportClose { code, .. })
            if code == TransportErrorCode::VERSION_NEGOTIATION_ERROR),
        "{serr:?}"
    );
}

//= https://www.rfc-editor.org/rfc/rfc9368#section-2.3
//= type=test
//# In order to perform compatible version negotiation, the server MUST select one
//# of these versions that it (1) supports and (2) knows the client's Chosen
//# Version is compatible with.
/// Compatible negotiation, server side: a server preferring v2 answers a client that starts
/// in v1 and offers v2 in v2, without Version Negotiation; the client follows (its Handshake
/// and 1-RTT keys derived with v2's labels) and both end in v2. Every server packet after the
/// client's first flight is v2.
#[test]
fn server_upgrades_a_v1_client_to_v2() {
    let cfg = PairConfig { server_preferred: Some(V2), ..PairConfig::default() };
    let mut p = Pair::new(cfg.clone());
    assert_eq!(first_initial_version(&mut p), V1);
    let mut p = Pair::new(cfg);
    handshake_ok(&mut p);
    assert_eq!(p.vn_sent, 0);
    assert_eq!((p.client.version(), p.server().version()), (V2, V2));
    let ci = p.server().peer_params().unwrap().version_information.clone().unwrap();
    assert_eq!(ci.chosen_version, V1, "the client chose v1");
    let si = p.client.peer_params().unwrap().version_information.clone().unwrap();
    assert_eq!(si.chosen_version, V2, "the server chose v2");
    // Data flows both ways in v2.
    let mut buf = vec![0u8; 2048];
    let now = p.now();
    let id = p.client.open(crate::streams::Dir::Bi).unwrap();
    p.client.write(id, bytes::Bytes::from_static(b"ping"), false).unwrap();
    let t = p.client.poll_transmit(now, &mut buf, 1).unwrap();
    assert!(long_versions(&buf[..t.len]).iter().all(|v| *v == V2));
}

/// The same with loss on both links (the server keeps reading v1 Initials until a v2
/// Handshake packet arrives; the client retransmits its first flight in v2).
#[test]
fn server_upgrade_with_loss() {
    for seed in 1..6 {
        let link = LinkConfig { loss: 0.2, ..LinkConfig::with_delay(Duration::from_millis(10)) };
        let cfg = PairConfig {
            seed,
            up: link.clone(),
            down: link,
            server_preferred: Some(V2),
            ..PairConfig::default()
        };
        let mut p = Pair::new(cfg);
        handshake_ok(&mut p);
        assert_eq!((p.client.version(), p.server().version()), (V2, V2), "seed {seed}");
    }
}

/// A client that does not offer v2 stays in v1 with a server that prefers v2.
#[test]
fn server_does_not_upgrade_a_client_that_does_not_offer_it() {
    let cfg = PairConfig {
        server_preferred: Some(V2),
        client_versions: Some(vec![V1]),
        ..PairConfig::default()
    };
    let mut p = Pair::new(cfg);
    handshake_ok(&mut p);
    assert_eq!((p.client.version(), p.server().version()), (V1, V1));
}

/// Compatible negotiation the other way: a v2 client offering v1 too, with a server that
/// prefers v1, is moved to v1.
#[test]
fn server_moves_a_v2_client_to_v1() {
    let cfg = PairConfig {
        client_version: Some(V2),
        server_preferred: Some(V1),
        ..PairConfig::default()
    };
    let mut p = Pair::new(cfg);
    handshake_ok(&mut p);
    assert_eq!((p.client.version(), p.server().version()), (V1, V1));
}

/// The client's checks of the server's version_information (RFC 9368 §4), on a connection
/// that completed in v1: a chosen version other than the negotiated one, or one the client
/// did not offer, is a VERSION_NEGOTIATION_ERROR; after a Version Negotiation a missing or
/// empty one is too. The server checks the client's chosen version against its Initial's.
#[test]
fn version_information_checks() {
    let mut p = Pair::default_pair();
    handshake_ok(&mut p);
    let vi = |chosen, available: &[u32]| VersionInformation {
        chosen_version: chosen,
        available_versions: available.to_vec(),
    };
    let vne = |r: Result<(), crate::error::Error>| {
        r.is_err_and(|e| e.code == TransportErrorCode::VERSION_NEGOTIATION_ERROR)
    };
    let c = &mut p.client;
    assert!(c.check_version_information(Some(&vi(V1, &[V1, V2]))).is_ok());
    assert!(c.check_version_information(None).is_ok(), "optional without negotiation");
    assert!(vne(c.check_version_information(Some(&vi(V2, &[V1, V2])))));
    c.versions.available = vec![V2];
    assert!(vne(c.check_version_information(Some(&vi(V1, &[V1])))), "not offered");
    c.versions.available = vec![V1, V2];
    c.versions.after_vn = true;
    assert!(vne(c.check_version_information(None)));
    assert!(vne(c.check_version_information(Some(&vi(V1, &[])))));
    assert!(c.check_version_information(Some(&vi(V1, &[V1]))).is_ok());
    c.versions.available = vec![V2, V1];
    assert!(vne(c.check_version_information(Some(&vi(V1, &[V1, V2])))), "would pick v2");
    let s = p.server.as_mut().unwrap();
    assert!(s.check_version_information(Some(&vi(V1, &[V1, V2]))).is_ok());
    assert!(s.check_version_information(None).is_ok());
    assert!(vne(s.check_version_information(Some(&vi(V2, &[V2, V1])))));
}

/// A client offering a reserved version draws Version Negotiation and then connects in its
/// preferred version among those the server lists.
#[test]
fn reserved_version_draws_version_negotiation() {
    let cfg = PairConfig { client_version: Some(RESERVED), ..PairConfig::default() };
    let mut p = Pair::new(cfg.clone());
    assert_eq!(first_initial_version(&mut p), RESERVED);
    let mut p = Pair::new(cfg);
    handshake_ok(&mut p);
    assert_eq!(p.vn_sent, 1);
    assert_eq!((p.client.version(), p.server().version()), (V1, V1));
    let cfg = PairConfig {
        client_version: Some(RESERVED),
        client_versions: Some(vec![V2, V1]),
        ..PairConfig::default()
    };
    let mut p = Pair::new(cfg);
    handshake_ok(&mut p);
    assert_eq!((p.client.version(), p.server().version()), (V2, V2));
}

//= https://www.rfc-editor.org/rfc/rfc9369#section-5
//= type=test
//# Clients MUST NOT use a
//# session ticket or token from a QUIC version 1 connection to initiate
//# a QUIC version 2 connection, and vice versa.
/// A session ticket received on a connection a server moved from v1 to v2 is kept for v2: a
/// later v2 connection resumes with it (it would find nothing if the ticket had gone to the v1
/// cache of the client's original version).
#[test]
fn ticket_after_compatible_switch_is_kept_for_the_negotiated_version() {
    let tls = super::pair::new_tls_client();
    let cfg = PairConfig {
        server_preferred: Some(V2),
        client_tls: Some(tls.clone()),
        ..PairConfig::default()
    };
    let mut first = Pair::new(cfg);
    handshake_ok(&mut first);
    assert_eq!(first.client.version(), V2);
    first.run_for(Duration::from_millis(500), 10_000);
    let cfg = PairConfig {
        client_version: Some(V2),
        client_tls: Some(tls),
        client: crate::connection::TransportConfig::default().with_rng_seed(77),
        ..PairConfig::default()
    };
    let mut second = Pair::new(cfg);
    handshake_ok(&mut second);
    assert_eq!(second.client.version(), V2);
    assert!(second.client.is_resumed(), "the v2 connection resumed with the v2 ticket");
}
