//! Fuzz entry point for the router: arbitrary datagrams against a server holding connections.

use std::net::SocketAddr;
use std::time::Instant;

use peregrine_datapath::Ecn;

use super::{
    AcceptConfig, AddressValidation, CidFormat, DatagramEvent, IncomingClient, ResetKey,
    RetryPolicy, Router, RouterConfig, TokenKey,
};
use crate::cid::{ConnectionId, ResetToken};
use crate::version;

/// Runs one datagram through a server router that already holds a connection (with a peer
/// reset token for the sending address). The first input byte picks the Retry policy (bits
/// 0-1), the sender (bit 2) and whether the half-open cap is 1, so that the connection held
/// fills it (bit 3); the rest is the datagram. Panics (the fuzzer's finding) when `handle` changes the
/// routing table, answers with more bytes than it received, or reports a new connection that
/// cannot then be accepted.
pub fn handle(now: Instant, data: &[u8]) {
    let (&sel, datagram) = data.split_first().unwrap_or((&0, &[]));
    let policy = match sel & 3 {
        0 => RetryPolicy::Never,
        1 => RetryPolicy::Always,
        2 => RetryPolicy::AboveHandshakes(1),
        _ => RetryPolicy::AboveHandshakes(2),
    };
    let known: SocketAddr = ([192, 0, 2, 1], 4433).into();
    let remote = if sel & 4 == 0 { known } else { ([198, 51, 100, 2], 443).into() };
    let format = CidFormat::new(8, &[0x5a], 1).unwrap_or_default();
    let mut server = AcceptConfig::new(TokenKey::new(&[1; 32])).with_retry_policy(policy);
    if sel & 8 != 0 {
        server = server.clone().with_max_handshakes(1).unwrap_or(server);
    }
    let config = RouterConfig::new(ResetKey::new(&[2; 32]), [3; 32])
        .with_cid_format(format)
        .with_server(server);
    let config = config.clone().with_worker(1, 4).unwrap_or(config);
    let mut r = Router::new(config, now, 1_700_000_000);
    let dcid = ConnectionId::new(&[0x83; 8]).unwrap_or_default();
    let incoming = IncomingClient {
        received: now,
        remote: known,
        local_ip: None,
        ecn: Ecn::NotEct,
        version: version::V1,
        dst_cid: dcid,
        src_cid: ConnectionId::EMPTY,
        orig_dst_cid: dcid,
        validation: AddressValidation::None,
        ignored_token: None,
    };
    if let Ok(a) = r.accept(&incoming) {
        let _ = r.add_peer_reset_token(a.handle, known, ResetToken([0xab; 16]));
    }

    let counts = |r: &Router| (r.connection_count(), r.cid_count(), r.initial_cid_count());
    let before = counts(&r);
    let event = r.handle(now, remote, None, Ecn::NotEct, datagram);
    assert_eq!(before, counts(&r), "handle() must not change the table");
    match event {
        DatagramEvent::Response(resp) => {
            assert!(resp.transmit.contents.len() <= datagram.len(), "{:?} amplifies", resp.kind);
            assert_eq!(resp.transmit.destination, remote);
        }
        DatagramEvent::NewConnection(inc) => {
            assert_eq!(inc.remote, remote);
            if let Err(e) = r.accept(&inc) {
                panic!("reported new connection cannot be accepted: {e}");
            }
        }
        _ => {}
    }
}
