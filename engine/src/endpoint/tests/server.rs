//! Server-side stateless handling: Version Negotiation, Retry, tokens, limits, small Initials.

use super::*;
use crate::packet::{RetryPacket, VersionNegotiation};

const ODCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

fn scid() -> ConnectionId {
    cid(&[0xc0, 0xff, 0xee])
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.1
//= type=test
//# The server MUST include the value from the Source Connection ID field
//# of the packet it receives in the Destination Connection ID field.
#[test]
fn unsupported_version_gets_version_negotiation() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Never);
    // An unknown version whose IDs exceed 20 octets: still answered, IDs echoed swapped.
    let mut d = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 21];
    d.extend_from_slice(&[0xd1; 21]);
    d.push(2);
    d.extend_from_slice(&[0x51, 0x52]);
    d.resize(1200, 0);
    let t = expect_response(
        r.handle(now, client_addr(), None, Ecn::Ect0, &d),
        ResponseKind::VersionNegotiation,
    );
    assert_eq!(t.destination, client_addr());
    assert_eq!(t.ecn, Ecn::NotEct);
    let vn = VersionNegotiation::parse(&t.contents).unwrap();
    assert_eq!(vn.dst_cid, &[0x51, 0x52]);
    assert_eq!(vn.src_cid, &[0xd1; 21][..]);
    assert_eq!(vn.versions().collect::<Vec<_>>(), version::SUPPORTED.to_vec());
    assert_eq!(t.contents[0] & 0xc0, 0xc0, "long header form with the 0x40 bit set");
    assert_eq!(r.connection_count(), 0);
}

#[test]
fn version_negotiation_lists_configured_versions() {
    let now = t0();
    let s = AcceptConfig::new(TokenKey::new(&TOKEN_KEY));
    let config = server_config(s).with_versions(&[version::V1]).unwrap();
    let mut r = Router::new(config, now, UNIX);
    // v2 is implemented by the crate but not configured here: negotiate.
    let d = client_initial(version::V2, &cid(&ODCID), &scid(), &[], 1200);
    let t = expect_response(
        r.handle(now, client_addr(), None, Ecn::NotEct, &d),
        ResponseKind::VersionNegotiation,
    );
    let vn = VersionNegotiation::parse(&t.contents).unwrap();
    assert_eq!(vn.versions().collect::<Vec<_>>(), vec![version::V1]);
    assert_eq!((vn.dst_cid, vn.src_cid), (&scid()[..], &ODCID[..]));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-5.2.2
//= type=test
//# Servers MUST drop smaller packets that specify unsupported versions.
//= https://www.rfc-editor.org/rfc/rfc9000#section-6.1
//= type=test
//# An endpoint MUST NOT send a Version Negotiation packet
//# in response to receiving a Version Negotiation packet.
#[test]
fn no_version_negotiation_for_small_datagrams_or_vn() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Never);
    let mut d = vec![0xc0, 0xff, 0x00, 0x00, 0x1d, 8];
    d.extend_from_slice(&ODCID);
    d.push(0);
    d.resize(1199, 0);
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &d),
        DatagramEvent::Drop(DropReason::UnsupportedVersionTooSmall)
    );
    let mut vn = vec![0u8; 1300];
    let mut w = Writer::new(&mut vn);
    let range =
        crate::packet::write_version_negotiation(&mut w, 0, &ODCID, &[1, 2], &[0xff00_001d])
            .unwrap();
    let mut vn = vn[..range.end].to_vec();
    vn.resize(1300, 0);
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &vn),
        DatagramEvent::Drop(DropReason::UnknownVersionNegotiation)
    );
    // A client-only router never sends Version Negotiation.
    d.resize(1300, 0);
    assert_eq!(
        client(now).handle(now, client_addr(), None, Ecn::NotEct, &d),
        DatagramEvent::Drop(DropReason::UnsupportedVersion)
    );
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-14.1
//= type=test
//# A server MUST discard an Initial packet that is carried in a UDP
//# datagram with a payload that is smaller than the smallest allowed
//# maximum datagram size of 1200 bytes.
#[test]
fn small_initials_and_short_dcids_are_dropped() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Always);
    let d = client_initial(version::V1, &cid(&ODCID), &scid(), &[], 1199);
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &d),
        DatagramEvent::Drop(DropReason::InitialTooSmall)
    );
    let d = client_initial(version::V1, &cid(&ODCID[..7]), &scid(), &[], 1200);
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &d),
        DatagramEvent::Drop(DropReason::InitialDcidTooShort)
    );
    // 1200 octets made of a small Initial coalesced with junk is large enough.
    let mut d = client_initial(version::V1, &cid(&ODCID), &scid(), &[], 300);
    d.resize(1200, 0);
    assert!(matches!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &d),
        DatagramEvent::Response(_)
    ));
}

/// The whole Retry exchange, for both versions: the Retry's tag verifies with the crypto
/// layer, the client's second Initial carries the token to the Retry's SCID, and the server
/// gets a validated NewConnection with the original DCID.
//= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.5.1
//= type=test
//# This value MUST NOT be equal to the Destination
//# Connection ID field of the packet sent by the client.
#[test]
fn retry_flow() {
    for v in [version::V1, version::V2] {
        let now = t0();
        let mut r = server(now, RetryPolicy::Always);
        let first = client_initial(v, &cid(&ODCID), &scid(), &[], 1200);
        let t = expect_response(
            r.handle(now, client_addr(), None, Ecn::NotEct, &first),
            ResponseKind::Retry,
        );
        assert!(t.contents.len() < 1200, "smaller than the Initial");
        let wire = crypto::Version::from_wire(v).unwrap();
        crypto::verify_retry_integrity(wire, &ODCID, &t.contents).unwrap();
        assert!(crypto::verify_retry_integrity(wire, &ODCID[..7], &t.contents).is_err());
        let retry = RetryPacket::parse(&t.contents).unwrap();
        assert_eq!((retry.version, retry.dst_cid), (v, scid()));
        assert_ne!(retry.src_cid, cid(&ODCID));
        assert_eq!(
            r.config().cid_format().decode_worker(&retry.src_cid),
            Some(3),
            "routable to us"
        );
        assert_eq!(r.connection_count(), 0, "Retry keeps no state");

        let later = now + std::time::Duration::from_secs(2);
        let second = client_initial(v, &retry.src_cid, &scid(), retry.token, 1200);
        let inc = expect_new(r.handle(later, client_addr(), None, Ecn::NotEct, &second));
        assert_eq!(inc.orig_dst_cid, cid(&ODCID));
        assert_eq!(inc.dst_cid, retry.src_cid);
        assert_eq!(inc.src_cid, scid());
        assert_eq!(inc.validation, AddressValidation::Retry { retry_src_cid: retry.src_cid });
        assert!(inc.address_validated());
        assert_eq!(inc.version, v);
        // No second Retry for a client that followed one.
        assert_eq!(r.retry(later, &inc), None);
        let a = r.accept(&inc).unwrap();
        let third = client_initial(v, &retry.src_cid, &scid(), retry.token, 1200);
        assert_eq!(
            r.handle(later, client_addr(), None, Ecn::NotEct, &third),
            DatagramEvent::Known(a.handle)
        );
    }
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-8.1.2
//= type=test
//# Instead, the
//# server SHOULD immediately close (Section 10.2) the connection with an
//# INVALID_TOKEN error.
#[test]
fn invalid_retry_tokens_close_with_invalid_token() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Always);
    let first = client_initial(version::V1, &cid(&ODCID), &scid(), &[], 1200);
    let t = expect_response(
        r.handle(now, client_addr(), None, Ecn::NotEct, &first),
        ResponseKind::Retry,
    );
    let retry = RetryPacket::parse(&t.contents).unwrap();
    let (token, rscid) = (retry.token.to_vec(), retry.src_cid);
    let cases = [
        ("expired", now + std::time::Duration::from_secs(12), client_addr(), token.clone()),
        ("other port", now, "192.0.2.1:50001".parse().unwrap(), token.clone()),
        ("tampered", now, client_addr(), {
            let mut t = token.clone();
            t[20] ^= 4;
            t
        }),
    ];
    for (what, at, from, tok) in cases {
        let d = client_initial(version::V1, &rscid, &scid(), &tok, 1200);
        let t =
            expect_response(r.handle(at, from, None, Ecn::NotEct, &d), ResponseKind::InvalidToken);
        assert_eq!(t.destination, from, "{what}");
        let (dcid, _, code) = open_initial_close(version::V1, &rscid, &t.contents, scid().len());
        assert_eq!(dcid, scid(), "{what}");
        assert_eq!(code, TransportErrorCode::INVALID_TOKEN.0, "{what}");
    }
    assert_eq!(r.connection_count(), 0);
}

#[test]
fn new_token_validates_and_unusable_tokens_are_ignored() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Always);
    let tok = r.new_token(now, client_addr().ip()).unwrap();
    // A later connection from another port with the NEW_TOKEN token skips the Retry.
    let from: SocketAddr = "192.0.2.1:40000".parse().unwrap();
    let d = client_initial(version::V1, &cid(&ODCID), &scid(), &tok, 1200);
    let inc = expect_new(r.handle(
        now + std::time::Duration::from_secs(3600),
        from,
        None,
        Ecn::NotEct,
        &d,
    ));
    assert_eq!(inc.validation, AddressValidation::NewToken);
    assert_eq!(inc.orig_dst_cid, cid(&ODCID));
    // From another IP, or under another server's key, it is ignored: treated as no token.
    let other_ip: SocketAddr = "192.0.2.99:40000".parse().unwrap();
    let t = expect_response(r.handle(now, other_ip, None, Ecn::NotEct, &d), ResponseKind::Retry);
    assert!(RetryPacket::parse(&t.contents).is_ok());
    let mut never = server(now, RetryPolicy::Never);
    let inc = expect_new(never.handle(now, other_ip, None, Ecn::NotEct, &d));
    assert_eq!(inc.validation, AddressValidation::None);
    assert_eq!(inc.ignored_token, Some(TokenError::AddressMismatch));
    let s = AcceptConfig::new(TokenKey::new(&[0x99; 32]));
    let mut foreign = Router::new(server_config(s), now, UNIX);
    let inc = expect_new(foreign.handle(now, client_addr(), None, Ecn::NotEct, &d));
    assert_eq!(inc.ignored_token, Some(TokenError::Unauthentic));
}

#[test]
fn tokens_are_valid_on_another_server_sharing_the_key() {
    let now = t0();
    let mut a = server(now, RetryPolicy::Always);
    // Server B shares the token key, has another server ID, started an hour later.
    let s = AcceptConfig::new(TokenKey::new(&TOKEN_KEY)).with_retry_policy(RetryPolicy::Always);
    let b_config = server_config(s).with_cid_format(CidFormat::new(10, &[0x42], 0).unwrap());
    let b_start = now + std::time::Duration::from_secs(3600);
    let mut b = Router::new(b_config, b_start, UNIX + 3600);
    let first = client_initial(version::V1, &cid(&ODCID), &scid(), &[], 1200);
    let t = expect_response(
        a.handle(now, client_addr(), None, Ecn::NotEct, &first),
        ResponseKind::Retry,
    );
    let retry = RetryPacket::parse(&t.contents).unwrap();
    let second = client_initial(version::V1, &retry.src_cid, &scid(), retry.token, 1200);
    // B's wall clock is an hour past A's issue time: the Retry token has expired there.
    expect_response(
        b.handle(b_start, client_addr(), None, Ecn::NotEct, &second),
        ResponseKind::InvalidToken,
    );
    // Same wall time on both: valid.
    let mut b2 = Router::new(
        server_config(AcceptConfig::new(TokenKey::new(&TOKEN_KEY)))
            .with_cid_format(CidFormat::new(10, &[0x42], 0).unwrap()),
        now,
        UNIX,
    );
    let inc = expect_new(b2.handle(now, client_addr(), None, Ecn::NotEct, &second));
    assert_eq!(inc.validation, AddressValidation::Retry { retry_src_cid: retry.src_cid });
    assert_eq!(inc.orig_dst_cid, cid(&ODCID));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-5.2.2
//= type=test
//# If a server refuses to accept a new connection, it SHOULD send an
//# Initial packet containing a CONNECTION_CLOSE frame with error code
//# CONNECTION_REFUSED.
#[test]
fn over_the_limit_is_refused() {
    let now = t0();
    let s = AcceptConfig::new(TokenKey::new(&TOKEN_KEY)).with_max_connections(2).unwrap();
    let mut r = Router::new(server_config(s), now, UNIX);
    for i in 0..2u8 {
        let d = client_initial(version::V1, &cid(&[i; 8]), &scid(), &[], 1200);
        let inc = expect_new(r.handle(now, client_addr(), None, Ecn::NotEct, &d));
        r.accept(&inc).unwrap();
    }
    let d = client_initial(version::V2, &cid(&ODCID), &scid(), &[], 1200);
    let t =
        expect_response(r.handle(now, client_addr(), None, Ecn::NotEct, &d), ResponseKind::Refused);
    assert!(t.contents.len() < 1200);
    let (dcid, src, code) =
        open_initial_close(version::V2, &cid(&ODCID), &t.contents, scid().len());
    assert_eq!((dcid, code), (scid(), TransportErrorCode::CONNECTION_REFUSED.0));
    assert_ne!(src, cid(&ODCID));
    // The application can refuse too.
    let inc = expect_new(server(now, RetryPolicy::Never).handle(
        now,
        client_addr(),
        None,
        Ecn::NotEct,
        &d,
    ));
    assert_eq!(r.accept(&inc), Err(AcceptError::TooManyConnections));
    let refusal = r.refuse(&inc).unwrap();
    assert_eq!(refusal.kind, ResponseKind::Refused);
    let (_, _, code) = open_initial_close(version::V2, &cid(&ODCID), &refusal.transmit.contents, 3);
    assert_eq!(code, TransportErrorCode::CONNECTION_REFUSED.0);
    // Room again once a connection is gone.
    r.remove_connection(ConnectionHandle(0));
    assert!(matches!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &d),
        DatagramEvent::NewConnection(_)
    ));
}

#[test]
fn retry_above_handshake_count() {
    let now = t0();
    let mut r = server(now, RetryPolicy::AboveHandshakes(2));
    let mut handles = Vec::new();
    for i in 0..2u8 {
        let d = client_initial(version::V1, &cid(&[i; 8]), &scid(), &[], 1200);
        let inc = expect_new(r.handle(now, client_addr(), None, Ecn::NotEct, &d));
        handles.push(r.accept(&inc).unwrap());
    }
    let d = client_initial(version::V1, &cid(&ODCID), &scid(), &[], 1200);
    expect_response(r.handle(now, client_addr(), None, Ecn::NotEct, &d), ResponseKind::Retry);
    r.handshake_done(handles[0].handle);
    assert_eq!(r.handshake_count(), 1);
    expect_new(r.handle(now, client_addr(), None, Ecn::NotEct, &d));
}

/// The half-open cap: past it, a client without a token is dropped under
/// [`RetryPolicy::Never`] and retried under any other policy; the Retry's token then gets it
/// in even while the cap is reached.
#[test]
fn half_open_cap_drops_or_retries() {
    let now = t0();
    for policy in [RetryPolicy::Never, RetryPolicy::AboveHandshakes(1000)] {
        let s = AcceptConfig::new(TokenKey::new(&TOKEN_KEY))
            .with_retry_policy(policy)
            .with_max_handshakes(3)
            .unwrap();
        let mut r = Router::new(server_config(s), now, UNIX);
        for i in 0..3u8 {
            let d = client_initial(version::V1, &cid(&[i; 8]), &scid(), &[], 1200);
            let inc = expect_new(r.handle(now, client_addr(), None, Ecn::NotEct, &d));
            r.accept(&inc).unwrap();
        }
        assert_eq!(r.handshake_count(), 3);
        let d = client_initial(version::V1, &cid(&ODCID), &scid(), &[], 1200);
        let ev = r.handle(now, client_addr(), None, Ecn::NotEct, &d);
        if policy == RetryPolicy::Never {
            assert_eq!(ev, DatagramEvent::Drop(DropReason::TooManyHandshakes));
            continue;
        }
        let t = expect_response(ev, ResponseKind::Retry);
        let retry = RetryPacket::parse(&t.contents).unwrap();
        let d = client_initial(version::V1, &retry.src_cid, &scid(), retry.token, 1200);
        let inc = expect_new(r.handle(now, client_addr(), None, Ecn::NotEct, &d));
        r.accept(&inc).unwrap();
        assert_eq!(r.handshake_count(), 4, "a validated client is not held by the cap");
    }
    let zero = AcceptConfig::new(TokenKey::new(&TOKEN_KEY)).with_max_handshakes(0);
    assert!(zero.is_err());
}

/// Version Negotiation and Retry share a token bucket per router, on the time passed in: a
/// flood of triggers gets `burst` answers at once, then `per_second`.
#[test]
fn stateless_responses_are_rate_limited() {
    let now = t0();
    let s = AcceptConfig::new(TokenKey::new(&TOKEN_KEY)).with_retry_policy(RetryPolicy::Always);
    let config = server_config(s).with_response_rate(3, 10);
    let mut r = Router::new(config, now, UNIX);
    let mut vn = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8];
    vn.extend_from_slice(&[0xd1; 8]);
    vn.push(0);
    vn.resize(1200, 0);
    let initial = client_initial(version::V1, &cid(&ODCID), &scid(), &[], 1200);
    let mut answered = 0;
    for i in 0..100 {
        let d = if i % 2 == 0 { &vn } else { &initial };
        match r.handle(now, client_addr(), None, Ecn::NotEct, d) {
            DatagramEvent::Response(_) => answered += 1,
            ev => assert_eq!(ev, DatagramEvent::Drop(DropReason::ResponseRateLimited)),
        }
    }
    println!("100 VN/Retry triggers at one instant, burst 3: {answered} answered");
    assert_eq!(answered, 3, "the burst");
    // 10 per second: one more every 100 ms of the caller's time.
    let later = now + std::time::Duration::from_millis(100);
    assert!(matches!(
        r.handle(later, client_addr(), None, Ecn::NotEct, &vn),
        DatagramEvent::Response(_)
    ));
    assert_eq!(
        r.handle(later, client_addr(), None, Ecn::NotEct, &initial),
        DatagramEvent::Drop(DropReason::ResponseRateLimited)
    );
    let much_later = now + std::time::Duration::from_secs(10);
    let n = (0..10)
        .filter(|_| {
            matches!(
                r.handle(much_later, client_addr(), None, Ecn::NotEct, &initial),
                DatagramEvent::Response(_)
            )
        })
        .count();
    assert_eq!(n, 3, "refilled up to the burst, not beyond");
}

#[test]
fn unknown_long_headers_are_dropped() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Never);
    for ty in [LongType::ZeroRtt, LongType::Handshake] {
        let d = long_packet(ty, version::V1, &cid(&ODCID), &scid(), &[], 1200);
        assert_eq!(
            r.handle(now, client_addr(), None, Ecn::NotEct, &d),
            DatagramEvent::Drop(DropReason::UnknownLongHeader(ty))
        );
    }
    let retry = response::retry(
        version::V1,
        &cid(&ODCID),
        &scid(),
        &cid(&[1; 8]),
        b"t",
        &mut rand_chacha::ChaCha20Rng::from_seed([1; 32]),
    )
    .unwrap();
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &retry),
        DatagramEvent::Drop(DropReason::UnknownLongHeader(LongType::Retry))
    );
    assert_eq!(r.connection_count(), 0);
}

use rand::SeedableRng;

/// A token that does not open under our key but reads "Retry" (its first octet) closes with
/// INVALID_TOKEN only when the Initial goes to a connection ID of ours (where a Retry of ours
/// sent the client); in a client's first Initial it is any server's NEW_TOKEN token (or a
/// modified one) and is ignored: a Retry follows, as for no token. A genuine Retry token
/// reused in a later connection attempt is still refused, never taken for a NEW_TOKEN token.
#[test]
fn unauthentic_retry_kind_tokens_are_ignored_outside_a_retry() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Always);
    let first = client_initial(version::V1, &cid(&ODCID), &scid(), &[], 1200);
    let t = expect_response(
        r.handle(now, client_addr(), None, Ecn::NotEct, &first),
        ResponseKind::Retry,
    );
    let retry = RetryPacket::parse(&t.contents).unwrap();
    let (token, rscid) = (retry.token.to_vec(), retry.src_cid);
    let mut forged = token.clone();
    forged[20] ^= 4;
    let foreign = [&[1u8][..], &[0x5a; 60]].concat();
    let fresh = cid(&[0x77; 16]);
    for (what, tok) in [("modified Retry token", &forged), ("foreign token", &foreign)] {
        let d = client_initial(version::V1, &fresh, &scid(), tok, 1200);
        let t = expect_response(
            r.handle(now, client_addr(), None, Ecn::NotEct, &d),
            ResponseKind::Retry,
        );
        assert!(RetryPacket::parse(&t.contents).is_ok(), "{what}");
        // At the Retry's connection ID the same token is refused.
        let d = client_initial(version::V1, &rscid, &scid(), tok, 1200);
        expect_response(
            r.handle(now, client_addr(), None, Ecn::NotEct, &d),
            ResponseKind::InvalidToken,
        );
    }
    // The genuine Retry token in a new attempt (a fresh DCID): refused, not a NEW_TOKEN token.
    let d = client_initial(version::V1, &fresh, &scid(), &token, 1200);
    expect_response(
        r.handle(now, client_addr(), None, Ecn::NotEct, &d),
        ResponseKind::InvalidToken,
    );
    let c = r.token_counters();
    assert_eq!((c.retries, c.tokens_ignored, c.invalid_retry_tokens), (3, 2, 3));
    assert_eq!((c.new_tokens_accepted, c.retry_tokens_accepted), (0, 0));
}
