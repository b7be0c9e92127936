//! Client-initiated migration and the server's preferred address (RFC 9000 §9) on the
//! simulated network: path validation, the change of connection ID, congestion and RTT reset,
//! fallback when validation fails, refusals, preferred address used and unreachable.

use std::net::SocketAddr;
use std::time::Duration;

use peregrine_datapath::sim::LinkConfig;

use super::app::{dispatch, Receiver, Sender};
use super::pair::{Pair, PairConfig};
use crate::connection::{MigrationError, TransportConfig};
use crate::streams::Dir;

const UP: (usize, u64) = (1, 200_000);
const DOWN: (usize, u64) = (1, 1_500_000);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A pair on a 20 Mbit/s, 10 ms path (both ways), handshake done.
fn pair_with(cfg: PairConfig) -> Pair {
    let mut pair = Pair::new(cfg);
    assert!(pair.handshake(), "handshake: {:?}", pair.client.error());
    pair
}

fn link() -> LinkConfig {
    LinkConfig {
        rate_bps: Some(20_000_000),
        queue_bytes: 512 * 1024,
        mtu: Some(1500),
        ..LinkConfig::with_delay(Duration::from_millis(10))
    }
}

fn cfg() -> PairConfig {
    PairConfig { up: link(), down: link(), ..PairConfig::default() }
}

/// A bidirectional transfer (`UP` on a client stream, `DOWN` on a server stream) that calls
/// `at_step(pair, step)` after every step; returns whether it completed byte-exact.
fn transfer(pair: &mut Pair, max_steps: u64, mut at_step: impl FnMut(&mut Pair, u64)) -> bool {
    let mut ctx = Sender::new(Dir::Bi, UP.0, UP.1, 16 * 1024);
    let mut stx = Sender::new(Dir::Uni, DOWN.0, DOWN.1, 16 * 1024);
    let (mut crx, mut srx) = (Receiver::default(), Receiver::default());
    for i in 0..max_steps {
        pair.step();
        let mut ev = std::mem::take(&mut pair.client_events);
        dispatch(&mut ev, |e| {
            ctx.on_event(e);
            crx.on_event(e);
        });
        let mut ev = std::mem::take(&mut pair.server_events);
        dispatch(&mut ev, |e| {
            stx.on_event(e);
            srx.on_event(e);
        });
        ctx.pump(&mut pair.client);
        crx.pump(&mut pair.client);
        let s = pair.server();
        stx.pump(s);
        srx.pump(s);
        at_step(pair, i);
        if srx.complete(UP.0, UP.1)
            && crx.complete(DOWN.0, DOWN.1)
            && ctx.all_acked()
            && stx.all_acked()
        {
            assert_eq!(srx.mismatches + crx.mismatches, 0, "byte-exact");
            return true;
        }
    }
    false
}

/// Runs until `done` or `d` of virtual time passed.
fn run_until(pair: &mut Pair, d: Duration, mut done: impl FnMut(&Pair) -> bool) -> bool {
    let end = pair.now() + d;
    for _ in 0..200_000 {
        if done(pair) {
            return true;
        }
        if pair.now() >= end || !pair.step_capped(Some(end)) {
            break;
        }
    }
    done(pair)
}

/// The client moves to a new IP address mid-transfer: a fresh connection ID of the server's,
/// a PATH_CHALLENGE answered on the new path, congestion control and RTT back to initial
/// values (RFC 9000 §9.4), the old connection ID retired, the server following and
/// validating the new address; the transfer completes byte-exact.
//= https://www.rfc-editor.org/rfc/rfc9000#section-9.2
//= type=test
//# An endpoint can migrate a connection to a new local address by
//# sending packets containing non-probing frames from that address.
#[test]
fn client_migrates_to_a_new_address_mid_transfer() {
    let mut pair = pair_with(cfg());
    let new = addr("10.0.0.7:40000");
    pair.bind_client(new);
    let initial_window = TransportConfig::default().congestion_config().initial_window();
    let mut migrated = None;
    let done = transfer(&mut pair, 400_000, |p, _| {
        if migrated.is_none() && p.client.stats().stream_bytes_sent > 60_000 {
            let cid = p.client.remote_cid();
            let cwnd = p.client.congestion_controller().window();
            let srtt = p.client.stats().smoothed_rtt;
            p.client.migrate(p.now(), new).unwrap();
            assert_ne!(p.client.remote_cid(), cid, "a new connection ID on the new path");
            assert!(cwnd > initial_window, "the window had grown: {cwnd}");
            assert_eq!(p.client.congestion_controller().window(), initial_window);
            assert_ne!(p.client.stats().smoothed_rtt, srtt);
            assert_eq!(p.client.stats().smoothed_rtt, crate::recovery::INITIAL_RTT);
            assert!(p.client.is_migrating());
            assert_eq!(p.client.local_address(), Some(new));
            migrated = Some(cid);
        }
    });
    assert!(done, "transfer: {:?}", pair.client.stats());
    let old_cid = migrated.expect("migrated");
    // The PATH_RESPONSE may still be on its way when the last byte is acknowledged.
    assert!(run_until(&mut pair, Duration::from_secs(2), |p| !p.client.is_migrating()));
    let st = pair.client.stats();
    assert_eq!((st.migrations, st.paths_validated, st.path_validations_failed), (1, 1, 0));
    assert_ne!(pair.client.remote_cid(), old_cid);
    let server = pair.server.as_ref().unwrap();
    assert_eq!(server.remote_address(), new, "the server follows the client");
    assert!(server.path.validated, "the server validated the new address");
    assert!(
        !server.local_cids.contains(&old_cid),
        "the client retired the old connection ID (RETIRE_CONNECTION_ID)"
    );
    let after = pair.net.link_stats(new, pair.server_addr);
    assert!(after.delivered > 100, "data went over the new path: {after:?}");
}

/// Only the port changes: the congestion window and RTT estimate are kept (RFC 9000 §9.4
/// allows it), the path is still validated with a new connection ID.
//= https://www.rfc-editor.org/rfc/rfc9000#section-9.4
//= type=test
//# On confirming a peer's ownership of its new address, an endpoint
//# MUST immediately reset the congestion controller and round-trip time
//# estimator for the new path to initial values (see Appendices A.3 and
//# B.3 of [QUIC-RECOVERY]) unless the only change in the peer's address
//# is its port number.
#[test]
fn port_only_migration_keeps_congestion_state() {
    let mut pair = pair_with(cfg());
    let new = addr("10.0.0.1:50002");
    pair.bind_client(new);
    let mut checked = false;
    let done = transfer(&mut pair, 400_000, |p, _| {
        if !checked && p.client.stats().stream_bytes_sent > 60_000 {
            let cwnd = p.client.congestion_controller().window();
            let srtt = p.client.stats().smoothed_rtt;
            let cid = p.client.remote_cid();
            p.client.migrate(p.now(), new).unwrap();
            assert_eq!(p.client.congestion_controller().window(), cwnd);
            assert_eq!(p.client.stats().smoothed_rtt, srtt);
            assert_ne!(p.client.remote_cid(), cid);
            checked = true;
        }
    });
    assert!(checked, "migrated");
    assert!(done, "{:?} {:?}", pair.client.stats(), pair.server.as_ref().map(|s| s.stats()));
    assert!(run_until(&mut pair, Duration::from_secs(2), |p| !p.client.is_migrating()));
    assert_eq!(pair.client.stats().paths_validated, 1);
    assert_eq!(pair.server.as_ref().unwrap().remote_address(), new);
}

/// The new path drops everything: no PATH_RESPONSE within the validation timeout, so the
/// client goes back to its old address, its old connection ID and its old congestion state,
/// retires the ID it tried, and the transfer completes byte-exact.
//= https://www.rfc-editor.org/rfc/rfc9000#section-8.2.4
//= type=test
//# Endpoints SHOULD abandon path validation based on a timer.
#[test]
fn failed_validation_falls_back_to_the_old_path() {
    let mut pair = pair_with(cfg());
    let dead = addr("10.0.0.8:40000");
    pair.bind_client(dead);
    let black = LinkConfig { loss: 1.0, ..link() };
    pair.net.set_link(dead, pair.server_addr, black.clone()).unwrap();
    pair.net.set_link(pair.server_addr, dead, black).unwrap();
    let mut tried = None;
    let done = transfer(&mut pair, 600_000, |p, _| {
        if tried.is_none() && p.client.stats().stream_bytes_sent > 60_000 {
            let old = p.client.remote_cid();
            p.client.migrate(p.now(), dead).unwrap();
            tried = Some((old, p.client.remote_cid()));
        }
    });
    assert!(done, "transfer after fallback: {:?}", pair.client.stats());
    let (old, new) = tried.unwrap();
    let st = pair.client.stats();
    assert_eq!((st.migrations, st.paths_validated, st.path_validations_failed), (1, 0, 1));
    assert_eq!(pair.client.local_address(), Some(pair.client_addr), "back on the old port");
    assert_eq!(pair.client.remote_cid(), old, "and on the old connection ID");
    assert_ne!(old, new);
    let server = pair.server.as_ref().unwrap();
    assert_eq!(server.remote_address(), pair.client_addr);
    assert!(!server.local_cids.contains(&new), "the tried connection ID was retired");
    assert!(pair.net.link_stats(dead, pair.server_addr).dropped() > 0);
}

/// A server that sent disable_active_migration: the client refuses to migrate with a typed
/// error and stays where it is.
//= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
//= type=test
//# An endpoint that receives this transport
//# parameter MUST NOT use a new local address when sending to the
//# address that the peer used during the handshake.
#[test]
fn migration_refused_when_the_peer_disabled_it() {
    let mut c = cfg();
    c.server = c.server.with_disable_active_migration(true);
    let mut pair = pair_with(c);
    let new = addr("10.0.0.7:40000");
    pair.bind_client(new);
    let cid = pair.client.remote_cid();
    assert_eq!(pair.client.migrate(pair.now(), new), Err(MigrationError::DisabledByPeer));
    assert_eq!(pair.client.remote_cid(), cid);
    assert_eq!(pair.client.local_address(), Some(pair.client_addr));
    assert!(transfer(&mut pair, 400_000, |_, _| {}));
    assert_eq!(pair.net.link_stats(new, pair.server_addr).sent, 0, "nothing left the new port");
}

/// Typed refusals: before the handshake is confirmed, on a server, during a migration, and
/// without a spare connection ID of the server's (active_connection_id_limit 2: the one spare
/// is used by the first migration; the server replaces the retired one only later).
//= https://www.rfc-editor.org/rfc/rfc9000#section-9
//= type=test
//# An endpoint MUST NOT initiate connection migration before the
//# handshake is confirmed, as defined in Section 4.1.2 of [QUIC-TLS].
#[test]
fn migration_refusals_are_typed() {
    let mut c = cfg();
    c.client = c.client.with_active_cid_limit(2).unwrap();
    let mut pair = Pair::new(c);
    let (a, b) = (addr("10.0.0.7:40000"), addr("10.0.0.7:40001"));
    pair.bind_client(a);
    pair.bind_client(b);
    assert_eq!(pair.client.migrate(pair.now(), a), Err(MigrationError::HandshakeNotConfirmed));
    assert!(pair.handshake());
    let now = pair.now();
    assert_eq!(pair.server().migrate(now, a), Err(MigrationError::NotClient));
    // Let the server's NEW_CONNECTION_ID arrive.
    assert!(run_until(&mut pair, Duration::from_secs(1), |p| p
        .client
        .peer_cids
        .spare(&[])
        .is_some()));
    pair.client.migrate(pair.now(), a).unwrap();
    assert_eq!(pair.client.migrate(pair.now(), b), Err(MigrationError::InProgress));
    assert!(run_until(&mut pair, Duration::from_secs(2), |p| !p.client.is_migrating()));
    assert_eq!(pair.client.stats().paths_validated, 1);
    // The old ID is being retired; the server has not replaced it yet.
    assert_eq!(pair.client.migrate(pair.now(), b), Err(MigrationError::NoSpareCid));
    // Once it has, a second migration works.
    assert!(run_until(&mut pair, Duration::from_secs(1), |p| p
        .client
        .peer_cids
        .spare(&[])
        .is_some()));
    pair.client.migrate(pair.now(), b).unwrap();
    assert!(run_until(&mut pair, Duration::from_secs(2), |p| !p.client.is_migrating()));
    assert_eq!(pair.client.stats().paths_validated, 2);
    assert_eq!(pair.server.as_ref().unwrap().remote_address(), b);
}

/// The server advertises a preferred address (its connection ID is our sequence number 1,
/// routed to the same connection); once the handshake is confirmed the client validates it
/// and moves there, the server answers from it, and a transfer runs over it.
//= https://www.rfc-editor.org/rfc/rfc9000#section-9.6.2
//= type=test
//# A client that migrates to a preferred address MUST validate the
//# address it chooses before migrating; see Section 21.5.3.
#[test]
fn preferred_address_is_used() {
    let mut pair = Pair::new(cfg());
    let preferred = addr("10.0.0.3:4433");
    pair.bind_server(preferred);
    pair.server_cfg.preferred_address = Some(preferred);
    assert!(pair.handshake());
    let pa = pair.client.peer_params().and_then(|p| p.preferred_address).expect("advertised");
    assert_eq!(pa.ipv4.map(SocketAddr::V4), Some(preferred));
    assert!(pair.server.as_ref().unwrap().local_cids.contains(&pa.connection_id));
    assert!(run_until(&mut pair, Duration::from_secs(2), |p| p.client.stats().paths_validated == 1));
    assert_eq!(pair.client.remote_address(), preferred);
    assert_eq!(pair.client.remote_cid(), pa.connection_id, "the preferred address's ID");
    assert!(transfer(&mut pair, 400_000, |_, _| {}));
    let server = pair.server.as_ref().unwrap();
    assert_eq!(server.local_address(), Some(preferred), "the server sends from it");
    let to_pref = pair.net.link_stats(pair.client_addr, preferred);
    let from_pref = pair.net.link_stats(preferred, pair.client_addr);
    assert!(to_pref.delivered > 100 && from_pref.delivered > 100, "{to_pref:?} {from_pref:?}");
    assert_eq!(pair.client.stats().path_validations_failed, 0);
}

/// The preferred address does not answer (nothing is bound there): the client gives up
/// validating it and stays on the handshake address; the transfer completes.
//= https://www.rfc-editor.org/rfc/rfc9000#section-9.6.1
//= type=test
//# If path
//# validation fails, the client MUST continue sending all future packets
//# to the server's original IP address.
#[test]
fn unreachable_preferred_address_falls_back() {
    let mut pair = Pair::new(cfg());
    let preferred = addr("10.0.0.99:4433");
    pair.server_cfg.preferred_address = Some(preferred);
    assert!(pair.handshake());
    assert!(transfer(&mut pair, 600_000, |_, _| {}), "{:?}", pair.client.stats());
    assert!(run_until(&mut pair, Duration::from_secs(5), |p| !p.client.is_migrating()));
    let st = pair.client.stats();
    assert_eq!((st.migrations, st.paths_validated, st.path_validations_failed), (1, 0, 1));
    assert_eq!(pair.client.remote_address(), pair.server_addr);
    assert!(pair.net.link_stats(pair.client_addr, preferred).unroutable > 0);
}

/// A client configured not to use preferred addresses stays on the handshake address.
#[test]
fn preferred_address_can_be_ignored() {
    let mut c = cfg();
    c.client = c.client.with_use_preferred_address(false);
    let mut pair = Pair::new(c);
    let preferred = addr("10.0.0.3:4433");
    pair.bind_server(preferred);
    pair.server_cfg.preferred_address = Some(preferred);
    assert!(pair.handshake());
    assert!(transfer(&mut pair, 400_000, |_, _| {}));
    assert_eq!(pair.client.stats().migrations, 0);
    assert_eq!(pair.client.remote_address(), pair.server_addr);
    assert_eq!(pair.net.link_stats(pair.client_addr, preferred).sent, 0);
}
