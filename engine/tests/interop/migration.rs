//! Connection migration with quinn-proto (RFC 9000 §9): a Peregrine client moves to a new
//! address mid-transfer and to a quinn-proto server's preferred address. (quinn-proto 0.11's
//! client records a server's preferred address but never moves to it, so the other direction
//! has no peer here.)

use std::net::SocketAddr;

use crate::app::Peer;
use crate::driver::Budget;
use crate::scenarios;
use crate::setup::{self, Setup};

/// Mid-transfer, the Peregrine client moves to a new address (here, the simulated network
/// gives its port a new address): it sends from there with a new connection ID of quinn's and
/// a PATH_CHALLENGE; quinn-proto answers it, validates the client's new address with its own
/// PATH_CHALLENGE, and the transfer completes on the new path.
#[test]
fn peregrine_client_migrates_against_quinn() {
    let (mut p, _) = setup::peregrine_quinn(&Setup::new(70));
    scenarios::handshake(&mut p);
    scenarios::transfer(&mut p, 1, 64 * 1024, Budget::new(50_000, 60));
    let new_addr: SocketAddr = "10.0.0.9:50001".parse().expect("address");
    let now = p.now();
    let conn = p.client.conn().expect("client connection");
    let old_cid = conn.remote_cid();
    conn.migrate(now, new_addr).expect("quinn gave spare connection IDs");
    assert_ne!(conn.remote_cid(), old_cid);
    p.net.rebind(setup::CLIENT.parse().expect("addr"), new_addr, now).expect("rebind");
    scenarios::transfer(&mut p, 2, 512 * 1024, Budget::new(200_000, 60));
    p.run_until(Budget::new(50_000, 10), |c, _, _| c.conn().is_some_and(|c| !c.is_migrating()))
        .expect("validation ends");
    let st = p.client.conn().expect("conn").stats();
    assert_eq!((st.migrations, st.paths_validated, st.path_validations_failed), (1, 1, 0));
    let f = p.server.quinn_frames_rx().expect("quinn counts frames");
    assert!(f.path_challenge > 0, "quinn saw our PATH_CHALLENGE: {f:?}");
    assert!(f.path_response > 0, "we answered quinn's PATH_CHALLENGE: {f:?}");
    assert!(f.retire_connection_id > 0, "we retired the old connection ID: {f:?}");
    assert!(p.client.is_connected() && p.server.is_connected());
}

/// quinn-proto's server advertises a preferred address: once the handshake is confirmed the
/// Peregrine client validates it with the connection ID quinn gave for it (sequence number 1)
/// and moves there; the transfer runs over it.
#[test]
fn peregrine_client_uses_quinn_servers_preferred_address() {
    let preferred: std::net::SocketAddrV4 = "10.0.0.3:4434".parse().expect("address");
    let setup = Setup { quinn_preferred: Some(preferred), ..Setup::new(71) };
    let (mut p, _) = setup::peregrine_quinn(&setup);
    // The server's port also answers at the preferred address (and is seen from it).
    let now = p.now();
    p.net
        .rebind(setup::SERVER.parse().expect("addr"), SocketAddr::V4(preferred), now)
        .expect("rebind");
    scenarios::handshake(&mut p);
    p.run_until(Budget::new(50_000, 10), |c, _, _| {
        c.conn().is_some_and(|c| c.stats().paths_validated == 1)
    })
    .expect("the preferred address is validated");
    let conn = p.client.conn().expect("conn");
    assert_eq!(conn.remote_address(), SocketAddr::V4(preferred));
    scenarios::transfer(&mut p, 2, 256 * 1024, Budget::new(200_000, 60));
    let f = p.server.quinn_frames_rx().expect("quinn counts frames");
    assert!(f.path_challenge > 0, "quinn saw our PATH_CHALLENGE: {f:?}");
    assert_eq!(p.client.conn().expect("conn").remote_address(), SocketAddr::V4(preferred));
    assert_eq!(p.client.conn().expect("conn").stats().path_validations_failed, 0);
}
