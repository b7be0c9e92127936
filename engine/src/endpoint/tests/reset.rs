//! Stateless resets through the router: sending for lost connections, receiving from peers.

use super::*;
use crate::endpoint::reset::MIN_STATELESS_RESET_LEN;
use std::time::Duration;

/// One of our IDs (this worker) that no connection holds: what a server sees after a restart.
fn lost_cid(r: &Router) -> ConnectionId {
    r.config()
        .cid_format()
        .generate(3, &mut <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(5))
}

#[test]
fn reset_for_unknown_short_header_is_smaller_and_carries_the_token() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Never);
    let lost = lost_cid(&r);
    for len in [29, 30, 43, 44, 100, 1200, 1500] {
        let trigger = short_packet(&lost, len);
        let t = expect_response(
            r.handle(now, client_addr(), None, Ecn::NotEct, &trigger),
            ResponseKind::StatelessReset,
        );
        let reset = &t.contents;
        assert!(reset.len() < len, "{len}: smaller than its trigger");
        assert!(reset.len() >= MIN_STATELESS_RESET_LEN);
        if len <= 43 {
            assert_eq!(reset.len(), len - 1);
        }
        assert_eq!(reset[0] & 0xc0, 0x40, "looks like a short header");
        assert_eq!(&reset[reset.len() - 16..], &r.reset_token(&lost).0);
    }
}

#[test]
fn a_restarted_server_sharing_the_key_resets_old_connections() {
    let now = t0();
    let mut before = server(now, RetryPolicy::Never);
    let d = client_initial(version::V1, &cid(&[1; 8]), &cid(&[2]), &[], 1200);
    let inc = expect_new(before.handle(now, client_addr(), None, Ecn::NotEct, &d));
    let a = before.accept(&inc).unwrap();
    // The peer learned a.reset_token; the server restarts with the same reset key.
    let mut after = server(now, RetryPolicy::Never);
    let trigger = short_packet(&a.local_cid, 80);
    let t = expect_response(
        after.handle(now, client_addr(), None, Ecn::NotEct, &trigger),
        ResponseKind::StatelessReset,
    );
    assert_eq!(&t.contents[t.contents.len() - 16..], &a.reset_token.0);
    // Under another key the token would differ (and the peer would ignore the reset).
    let other = Router::new(
        RouterConfig::new(ResetKey::new(&[0x77; 32]), [7; 32]).with_worker(3, 4).unwrap(),
        now,
        UNIX,
    );
    assert_ne!(other.reset_token(&a.local_cid), a.reset_token);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3
//= type=test
//# Endpoints MUST discard packets that are too small to be valid QUIC
//# packets.
#[test]
fn no_reset_for_tiny_or_foreign_packets() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Never);
    let lost = lost_cid(&r);
    for len in 0..29 {
        let ev = r.handle(now, client_addr(), None, Ecn::NotEct, &short_packet(&lost, len));
        assert!(matches!(ev, DatagramEvent::Drop(_)), "{len}: {ev:?}");
    }
    // Not an ID this server issues (wrong first octet): dropped, never reset.
    let mut foreign = lost.as_bytes().to_vec();
    foreign[0] ^= 0x20;
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &short_packet(&foreign, 200)),
        DatagramEvent::Drop(DropReason::UnknownConnectionId)
    );
    // Another server's ID (same key, other server ID): never reset it here (RFC 9000 §21.11).
    let s = AcceptConfig::new(TokenKey::new(&TOKEN_KEY));
    let mut with_sid = Router::new(
        server_config(s).with_cid_format(CidFormat::new(8, &[1], 0).unwrap()),
        now,
        UNIX,
    );
    let theirs = CidFormat::new(8, &[2], 0)
        .unwrap()
        .generate(3, &mut rand_chacha::ChaCha20Rng::from_seed([0; 32]));
    assert_eq!(
        with_sid.handle(now, client_addr(), None, Ecn::NotEct, &short_packet(&theirs, 200)),
        DatagramEvent::Drop(DropReason::UnknownConnectionId)
    );
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.3
//= type=test
//# An endpoint can remember the number of Stateless Resets that it has
//# sent and stop generating new Stateless Resets once a limit is
//# reached.
#[test]
fn resets_are_rate_limited() {
    let now = t0();
    let s = AcceptConfig::new(TokenKey::new(&TOKEN_KEY));
    let mut r = Router::new(server_config(s).with_reset_rate(5, 10), now, UNIX);
    let trigger = short_packet(&lost_cid(&r), 100);
    let sent = |r: &mut Router, at| {
        (0..20)
            .filter(|_| {
                matches!(
                    r.handle(at, client_addr(), None, Ecn::NotEct, &trigger),
                    DatagramEvent::Response(_)
                )
            })
            .count()
    };
    assert_eq!(sent(&mut r, now), 5, "the burst");
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &trigger),
        DatagramEvent::Drop(DropReason::ResetRateLimited)
    );
    assert_eq!(sent(&mut r, now + Duration::from_millis(300)), 3, "10 per second");
    assert_eq!(sent(&mut r, now + Duration::from_secs(60)), 5, "refilled to the burst");
    let mut off = Router::new(
        server_config(AcceptConfig::new(TokenKey::new(&TOKEN_KEY))).with_reset_rate(0, 0),
        now,
        UNIX,
    );
    assert_eq!(sent(&mut off, now), 0);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-10.3.1
//= type=test
//# However, the comparison MUST be performed
//# when the first packet in an incoming datagram either cannot be
//# associated with a connection or cannot be decrypted.
#[test]
fn received_resets_are_detected_for_the_right_address() {
    let now = t0();
    let mut c = client(now);
    let conn = c.connect().unwrap();
    let server_addr: SocketAddr = "203.0.113.5:443".parse().unwrap();
    let token = ResetToken([0x5a; 16]);
    c.add_peer_reset_token(conn.handle, server_addr, token).unwrap();
    c.add_peer_reset_token(conn.handle, server_addr, token).unwrap();
    assert_eq!(c.peer_reset_token_count(), 1);
    // What a server that lost state sends: random DCID, our token at the end.
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([3; 32]);
    for len in [21, 40, 300] {
        let reset = crate::endpoint::reset::stateless_reset(&token, len + 1, &mut rng).unwrap();
        if len < 43 {
            assert_eq!(reset.len(), len);
        }
        assert_eq!(
            c.handle(now, server_addr, None, Ecn::NotEct, &reset),
            DatagramEvent::StatelessReset(conn.handle)
        );
        assert_eq!(c.match_stateless_reset(server_addr, &reset), Some(conn.handle));
        // From another address it is not a reset for this connection.
        let elsewhere: SocketAddr = "203.0.113.6:443".parse().unwrap();
        let ev = c.handle(now, elsewhere, None, Ecn::NotEct, &reset);
        assert!(!matches!(ev, DatagramEvent::StatelessReset(_)), "{ev:?}");
    }
    // A datagram routed to the connection by its DCID is the connection's to check.
    let mut routed = short_packet(&conn.local_cid, 60);
    routed[44..].copy_from_slice(&token.0);
    assert_eq!(
        c.handle(now, server_addr, None, Ecn::NotEct, &routed),
        DatagramEvent::Known(conn.handle)
    );
    assert_eq!(c.match_stateless_reset(server_addr, &routed), Some(conn.handle));
    // Retired: no longer checked.
    c.remove_peer_reset_token(conn.handle, &token);
    assert_eq!(c.peer_reset_token_count(), 0);
    let reset = crate::endpoint::reset::stateless_reset(&token, 100, &mut rng).unwrap();
    let ev = c.handle(now, server_addr, None, Ecn::NotEct, &reset);
    assert!(!matches!(ev, DatagramEvent::StatelessReset(_)), "{ev:?}");
    assert_eq!(
        c.add_peer_reset_token(ConnectionHandle(99), server_addr, token),
        Err(TableError::UnknownConnection)
    );
}

use rand::SeedableRng;
