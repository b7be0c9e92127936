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
