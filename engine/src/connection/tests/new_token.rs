//! NEW_TOKEN frames between a connection pair: resent until acknowledged, stored once by the
//! client, refused from a client.

use std::time::Duration;

use peregrine_datapath::sim::{Blackhole, LinkConfig};

use super::pair::Pair;
use crate::error::TransportErrorCode;
use crate::frame::{Frame, NewToken};
use crate::recovery::SpaceId;

/// The server's NEW_TOKEN frame is lost (the server-to-client link drops everything for a
/// while): it is sent again, reaches the client, and lands in the client's token store once.
//= https://www.rfc-editor.org/rfc/rfc9000#section-13.3
//= type=test
//# NEW_TOKEN frames are retransmitted if the packet containing them
//# is lost.
#[test]
fn a_lost_new_token_frame_is_resent_and_stored_once() {
    let mut p = Pair::default_pair();
    assert!(p.handshake());
    p.run_for(Duration::from_millis(200), 10_000);
    let now = p.now();
    let cut = Blackhole { start: now, end: now + Duration::from_millis(300) };
    let down = LinkConfig { blackholes: vec![cut], ..LinkConfig::default() };
    p.net.set_link(p.server_addr, p.client_addr, down).unwrap();
    p.server().queue_new_token(b"token-1".to_vec());
    // Queued once only: a second token for the same connection is ignored.
    p.server().queue_new_token(b"token-2".to_vec());
    p.run_for(Duration::from_secs(3), 100_000);
    let dropped = p.net.link_stats(p.server_addr, p.client_addr).dropped_blackhole;
    assert!(dropped > 0, "the first copy was lost");
    assert_eq!(p.client.new_token(), Some(&b"token-1"[..]));
    assert!(p.client.stats().new_tokens_received >= 1);
    assert_eq!(p.server().stats().new_tokens_sent, 1);
    assert!(p.server().token_out.is_none(), "acknowledged: the server let it go");
    let (store, name) = p.client.token_store.clone().expect("the default store");
    assert_eq!(store.len(&name), 1, "stored once");
    assert_eq!(store.take(&name).as_deref(), Some(&b"token-1"[..]));
}

/// Clients never send NEW_TOKEN; a server receiving one closes with PROTOCOL_VIOLATION.
//= https://www.rfc-editor.org/rfc/rfc9000#section-19.7
//= type=test
//# A server MUST treat receipt
//# of a NEW_TOKEN frame as a connection error of type
//# PROTOCOL_VIOLATION.
#[test]
fn new_token_from_a_client_is_a_protocol_violation() {
    let mut p = Pair::default_pair();
    assert!(p.handshake());
    let (now, dcid) = (p.now(), p.server().local_cid());
    let f = Frame::NewToken(NewToken { token: b"x" });
    let e = p.server().on_frame(now, SpaceId::Data, f, &dcid).unwrap_err();
    assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION);
    // The client accepts the same frame.
    let f = Frame::NewToken(NewToken { token: b"x" });
    let dcid = p.client.local_cid();
    p.client.on_frame(now, SpaceId::Data, f, &dcid).unwrap();
    assert_eq!(p.client.new_token(), Some(&b"x"[..]));
}
