//! quinn-proto client against a Peregrine server: every interop case.

crate::cases::interop_cases!(crate::setup::quinn_peregrine);

/// The quinn-proto client's NAT mapping changes mid-connection; the Peregrine server follows the
/// new address after validating it (RFC 9000 §9.3) and the transfer completes.
#[test]
fn nat_rebinding() {
    crate::cases_path::nat_rebinding(crate::setup::quinn_peregrine);
}

#[test]
fn resumption() {
    // A ~4 KB certificate chain, so that a full handshake is unmistakable on the wire.
    let setup = crate::setup::Setup { cert_names: 100, ..crate::setup::Setup::new(50) };
    crate::cases_streams::resumption(crate::setup::quinn_peregrine_resumable(&setup));
}

/// A Peregrine server that prefers QUIC v2 (compatible negotiation, RFC 9368) and a quinn-proto
/// client, which starts in v1 and sends no version_information: the server must not move the
/// connection (the client did not offer v2) and the transfer completes in v1.
#[test]
fn preferring_v2_keeps_a_client_that_does_not_offer_it() {
    use crate::driver::Budget;
    let v2 = peregrine_engine::version::V2;
    let setup = crate::setup::Setup { server_preferred: Some(v2), ..crate::setup::Setup::new(37) };
    let (mut p, _) = crate::setup::quinn_peregrine(&setup);
    crate::scenarios::handshake(&mut p);
    crate::scenarios::transfer(&mut p, 2, 64 * 1024, Budget::new(50_000, 60));
    let conn = p.server.conn().expect("server connection");
    assert_eq!(conn.version(), peregrine_engine::version::V1);
}

/// A quinn-proto client's request in 0-RTT to a Peregrine server that accepts it.
#[test]
fn zero_rtt() {
    let setup = crate::setup::Setup::new(60);
    crate::cases_streams::zero_rtt(crate::setup::quinn_peregrine_zero_rtt(&setup, true), true);
}

/// The same against a Peregrine server with 0-RTT off: rejected, the request arrives in 1-RTT.
#[test]
fn zero_rtt_rejected() {
    let setup = crate::setup::Setup::new(60);
    crate::cases_streams::zero_rtt(crate::setup::quinn_peregrine_zero_rtt(&setup, false), false);
}
