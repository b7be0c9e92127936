//! Routing: local IDs, client-chosen Initial IDs, retirement, removal, forwarding, clients.

use super::*;

fn accepted(r: &mut Router, now: Instant, dcid: &ConnectionId, scid: &ConnectionId) -> Accepted {
    let d = client_initial(version::V1, dcid, scid, &[], 1200);
    let inc = expect_new(r.handle(now, client_addr(), None, Ecn::NotEct, &d));
    r.accept(&inc).unwrap()
}

#[test]
fn known_cids_route_and_retired_stop() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Never);
    let a = accepted(&mut r, now, &cid(&[1; 8]), &cid(&[0xc1; 4]));
    assert_eq!(r.connection_count(), 1);
    assert_eq!(r.local_cids(a.handle), &[a.local_cid]);
    assert_eq!(a.reset_token, r.reset_token(&a.local_cid));
    assert_eq!(r.config().cid_format().decode_worker(&a.local_cid), Some(3));

    let short = short_packet(&a.local_cid, 60);
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::Ect0, &short),
        DatagramEvent::Known(a.handle)
    );
    // A migrated client (another address) still routes by connection ID.
    let moved: SocketAddr = "198.51.100.9:1234".parse().unwrap();
    assert_eq!(r.handle(now, moved, None, Ecn::NotEct, &short), DatagramEvent::Known(a.handle));
    let hs =
        long_packet(LongType::Handshake, version::V1, &a.local_cid, &cid(&[0xc1; 4]), &[], 100);
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &hs),
        DatagramEvent::Known(a.handle)
    );

    let (second, token) = r.new_cid(a.handle).unwrap();
    assert_eq!(token, r.reset_token(&second));
    assert_ne!(second, a.local_cid);
    assert_eq!(r.cid_count(), 2);
    let short2 = short_packet(&second, 60);
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &short2),
        DatagramEvent::Known(a.handle)
    );

    assert!(r.retire_cid(a.handle, &a.local_cid));
    assert!(!r.retire_cid(a.handle, &a.local_cid), "already retired");
    assert!(!matches!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &short),
        DatagramEvent::Known(_)
    ));
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &short2),
        DatagramEvent::Known(a.handle)
    );
    assert_eq!(r.local_cids(a.handle), &[second]);
}

/// The last-routed-ID cache never outlives the route: retiring the ID just routed, or
/// removing its connection, stops routing at once (and a new connection using a fresh ID
/// is not confused with the old one).
#[test]
fn last_routed_cid_is_forgotten_on_retire_and_remove() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Never);
    let a = accepted(&mut r, now, &cid(&[1; 8]), &cid(&[0xc1; 4]));
    let short = short_packet(&a.local_cid, 60);
    for _ in 0..2 {
        assert_eq!(
            r.handle(now, client_addr(), None, Ecn::NotEct, &short),
            DatagramEvent::Known(a.handle)
        );
    }
    assert!(r.retire_cid(a.handle, &a.local_cid));
    assert!(!matches!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &short),
        DatagramEvent::Known(_)
    ));

    let b = accepted(&mut r, now, &cid(&[2; 8]), &cid(&[0xc2; 4]));
    let short_b = short_packet(&b.local_cid, 60);
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &short_b),
        DatagramEvent::Known(b.handle)
    );
    assert!(r.remove_connection(b.handle));
    assert!(!matches!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &short_b),
        DatagramEvent::Known(_)
    ));
    // Two connections alternating: each datagram still goes to its own.
    let c = accepted(&mut r, now, &cid(&[3; 8]), &cid(&[0xc3; 4]));
    let d = accepted(&mut r, now, &cid(&[4; 8]), &cid(&[0xc4; 4]));
    for _ in 0..3 {
        for x in [&c, &d] {
            let p = short_packet(&x.local_cid, 60);
            assert_eq!(
                r.handle(now, client_addr(), None, Ecn::NotEct, &p),
                DatagramEvent::Known(x.handle)
            );
        }
    }
}

#[test]
fn client_chosen_dcid_routes_initial_and_zero_rtt_until_handshake_done() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Never);
    let odcid = cid(&[5; 8]);
    let scid = cid(&[0xc5; 5]);
    let a = accepted(&mut r, now, &odcid, &scid);
    assert_eq!((r.initial_cid_count(), r.handshake_count()), (1, 1));
    // A retransmitted Initial and a 0-RTT packet still carrying the client's DCID.
    let again = client_initial(version::V1, &odcid, &scid, &[], 1250);
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &again),
        DatagramEvent::Known(a.handle)
    );
    let zero_rtt = long_packet(LongType::ZeroRtt, version::V1, &odcid, &scid, &[], 300);
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &zero_rtt),
        DatagramEvent::Known(a.handle)
    );
    // The same DCID from another address is another client.
    let other: SocketAddr = "192.0.2.2:50000".parse().unwrap();
    assert!(matches!(
        r.handle(now, other, None, Ecn::NotEct, &again),
        DatagramEvent::NewConnection(_)
    ));
    // A Handshake packet never uses the client-chosen DCID.
    let hs = long_packet(LongType::Handshake, version::V1, &odcid, &scid, &[], 300);
    assert_eq!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &hs),
        DatagramEvent::Drop(DropReason::UnknownLongHeader(LongType::Handshake))
    );
    // accept() twice for the same Initial is refused.
    let inc = expect_new(r.handle(now, other, None, Ecn::NotEct, &again));
    let b = r.accept(&inc).unwrap();
    assert_eq!(r.accept(&inc), Err(AcceptError::AlreadyAccepted));

    r.handshake_done(a.handle);
    r.handshake_done(a.handle);
    assert_eq!((r.initial_cid_count(), r.handshake_count()), (1, 1), "only b is handshaking");
    assert!(matches!(
        r.handle(now, client_addr(), None, Ecn::NotEct, &again),
        DatagramEvent::NewConnection(_)
    ));
    assert_eq!(r.handle(now, other, None, Ecn::NotEct, &again), DatagramEvent::Known(b.handle));
}

/// DESIGN.md invariant 3 flavour: removing connections is idempotent, whatever the order and
/// however often, and leaves no route behind.
#[test]
fn invariant_3_remove_connection_is_idempotent() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Never);
    let mut handles = Vec::new();
    for i in 0..50u8 {
        let a = accepted(&mut r, now, &cid(&[i; 9]), &cid(&[i; 3]));
        r.new_cid(a.handle).unwrap();
        r.add_peer_reset_token(a.handle, client_addr(), ResetToken([i; 16])).unwrap();
        if i % 2 == 0 {
            r.handshake_done(a.handle);
        }
        handles.push(a);
    }
    assert_eq!(r.connection_count(), 50);
    assert_eq!((r.cid_count(), r.initial_cid_count(), r.peer_reset_token_count()), (100, 25, 50));
    for round in 0..3 {
        for a in handles.iter().rev() {
            assert_eq!(r.remove_connection(a.handle), round == 0);
        }
    }
    assert_eq!(r.connection_count(), 0);
    assert_eq!(r.handshake_count(), 0);
    assert_eq!((r.cid_count(), r.initial_cid_count(), r.peer_reset_token_count()), (0, 0, 0));
    for a in &handles {
        assert!(r.local_cids(a.handle).is_empty());
        assert_eq!(r.new_cid(a.handle), Err(TableError::UnknownConnection));
        assert_eq!(r.insert_cid(a.handle, cid(&[1; 8])), Err(TableError::UnknownConnection));
        assert!(!r.retire_cid(a.handle, &a.local_cid));
        r.handshake_done(a.handle);
        let short = short_packet(&a.local_cid, 60);
        assert!(!matches!(
            r.handle(now, client_addr(), None, Ecn::NotEct, &short),
            DatagramEvent::Known(_)
        ));
    }
    // Handles are never reused.
    let fresh = accepted(&mut r, now, &cid(&[0xee; 8]), &cid(&[1]));
    assert!(handles.iter().all(|a| a.handle != fresh.handle));
}

#[test]
fn cid_collisions_are_refused() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Never);
    let a = accepted(&mut r, now, &cid(&[1; 8]), &cid(&[1]));
    let b = accepted(&mut r, now, &cid(&[2; 8]), &cid(&[2]));
    assert_eq!(r.insert_cid(b.handle, a.local_cid), Err(TableError::CidInUse));
    assert!(!r.retire_cid(b.handle, &a.local_cid), "not b's to retire");
    let own = cid(&[0xab; 8]);
    r.insert_cid(b.handle, own).unwrap();
    assert_eq!(r.insert_cid(a.handle, own), Err(TableError::CidInUse));
}

#[test]
fn other_workers_ids_are_forwarded() {
    let now = t0();
    let mut r = server(now, RetryPolicy::Never);
    assert_eq!((r.config().worker(), r.config().workers()), (3, 8));
    let f = *r.config().cid_format();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    for worker in [0u8, 2, 4, 7] {
        let foreign = f.generate(worker, &mut rng);
        let short = short_packet(&foreign, 80);
        let ev = r.handle(now, client_addr(), None, Ecn::NotEct, &short);
        assert_eq!(ev, DatagramEvent::Forward(worker));
        // A client Initial after the server's first flight uses the server's ID: forwarded too.
        let init = client_initial(version::V1, &foreign, &cid(&[1]), &[], 1200);
        let ev = r.handle(now, client_addr(), None, Ecn::NotEct, &init);
        assert_eq!(ev, DatagramEvent::Forward(worker));
    }
    // An index past the worker count is no worker's: a client-chosen DCID that happens to
    // decode that way starts a connection here, a short header is dropped.
    let nobody = f.generate(8, &mut rng);
    let init = client_initial(version::V1, &nobody, &cid(&[1]), &[], 1200);
    expect_new(r.handle(now, client_addr(), None, Ecn::NotEct, &init));
    let ev = r.handle(now, client_addr(), None, Ecn::NotEct, &short_packet(&nobody, 80));
    assert_eq!(ev, DatagramEvent::Drop(DropReason::UnknownConnectionId));
    let base = RouterConfig::new(ResetKey::new(&[0; 32]), [0; 32]);
    assert!(base.clone().with_worker(8, 8).is_err());
    assert!(base.clone().with_worker(0, 0).is_err());
    assert!(base.clone().with_worker(0, 257).is_err());
    assert!(base.with_worker(255, 256).is_ok());
}

/// Flow-steered queues (AF_XDP behind RSS): a new client's Initial stays on the worker whose
/// queue received it, whatever its client-chosen DCID decodes to; the IDs this server issued
/// are still forwarded to their worker.
#[test]
fn local_initials_stay_where_they_arrive() {
    let now = t0();
    let s = AcceptConfig::new(TokenKey::new(&TOKEN_KEY)).with_retry_policy(RetryPolicy::Never);
    let mut r = Router::new(server_config(s).with_local_initials(true), now, UNIX);
    let f = *r.config().cid_format();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
    let other = f.generate(5, &mut rng);
    let a = accepted(&mut r, now, &other, &cid(&[1]));
    assert_eq!(a.local_cid[f.worker_offset()], 3, "owned here: our index in its own ID");
    // Its later Initials (same DCID) find it here too.
    let again = client_initial(version::V1, &other, &cid(&[1]), &[], 1200);
    let ev = r.handle(now, client_addr(), None, Ecn::NotEct, &again);
    assert_eq!(ev, DatagramEvent::Known(a.handle));
    let short = short_packet(&f.generate(5, &mut rng), 80);
    assert_eq!(r.handle(now, client_addr(), None, Ecn::NotEct, &short), DatagramEvent::Forward(5));
}

#[test]
fn client_connections_route_server_packets() {
    let now = t0();
    let mut c = client(now);
    let conn = c.connect().unwrap();
    assert_eq!(conn.initial_dcid.len(), CLIENT_INITIAL_DCID_LEN);
    assert_ne!(conn.local_cid, conn.initial_dcid);
    let server_addr: SocketAddr = "203.0.113.5:443".parse().unwrap();
    // The server's Initial, Handshake and 1-RTT packets and a Retry all carry our local ID.
    let init =
        long_packet(LongType::Initial, version::V1, &conn.local_cid, &cid(&[0x5e; 8]), &[], 1200);
    assert_eq!(
        c.handle(now, server_addr, None, Ecn::NotEct, &init),
        DatagramEvent::Known(conn.handle)
    );
    let short = short_packet(&conn.local_cid, 40);
    assert_eq!(
        c.handle(now, server_addr, None, Ecn::NotEct, &short),
        DatagramEvent::Known(conn.handle)
    );
    let retry = response::retry(
        version::V1,
        &conn.local_cid,
        &cid(&[0x5e; 8]),
        &conn.initial_dcid,
        b"tok",
        &mut rng(),
    )
    .unwrap();
    assert_eq!(
        c.handle(now, server_addr, None, Ecn::NotEct, &retry),
        DatagramEvent::Known(conn.handle)
    );
    // A client never accepts connections.
    let stray = client_initial(version::V1, &cid(&[8; 8]), &cid(&[1]), &[], 1200);
    assert_eq!(
        c.handle(now, server_addr, None, Ecn::NotEct, &stray),
        DatagramEvent::Drop(DropReason::NotServer)
    );
    let inc = expect_new(server(now, RetryPolicy::Never).handle(
        now,
        server_addr,
        None,
        Ecn::NotEct,
        &stray,
    ));
    assert_eq!(c.accept(&inc), Err(AcceptError::NotServer));
    assert!(c.new_token(now, server_addr.ip()).is_none());
    // Two connects give distinct handles and IDs.
    let conn2 = c.connect().unwrap();
    assert_ne!(conn.handle, conn2.handle);
    assert_ne!(conn.local_cid, conn2.local_cid);
    assert_eq!(c.connection_count(), 2);
}

fn rng() -> rand_chacha::ChaCha20Rng {
    rand_chacha::ChaCha20Rng::seed_from_u64(99)
}

#[test]
fn version_negotiation_routes_to_the_client() {
    let now = t0();
    let mut c = client(now);
    let conn = c.connect().unwrap();
    let server_addr: SocketAddr = "203.0.113.5:443".parse().unwrap();
    let mut vn = vec![0u8; 64];
    let mut w = Writer::new(&mut vn);
    let range = crate::packet::write_version_negotiation(
        &mut w,
        0,
        &conn.local_cid,
        &conn.initial_dcid,
        &[0x0a0a_0a0a],
    )
    .unwrap();
    vn.truncate(range.end);
    assert_eq!(
        c.handle(now, server_addr, None, Ecn::NotEct, &vn),
        DatagramEvent::Known(conn.handle)
    );
}

use rand::SeedableRng;
