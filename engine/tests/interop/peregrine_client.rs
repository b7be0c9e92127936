//! Peregrine client against a quinn-proto server: every interop case.

crate::cases::interop_cases!(crate::setup::peregrine_quinn);

/// Retry needs the quinn-proto server (the Peregrine server side of this harness has no Retry).
#[test]
fn retry() {
    crate::cases_more::retry(crate::setup::peregrine_quinn);
}

#[test]
fn nat_rebinding() {
    crate::cases_path::nat_rebinding(crate::setup::peregrine_quinn);
}

#[test]
fn version_negotiation() {
    crate::cases_path::version_negotiation(crate::setup::peregrine_quinn);
}

#[test]
fn version_negotiation_without_version_information() {
    crate::cases_path::version_negotiation_without_version_information(
        crate::setup::peregrine_quinn,
    );
}

#[test]
fn resumption() {
    // A ~4 KB certificate chain, so that a full handshake is unmistakable on the wire.
    let setup = crate::setup::Setup { cert_names: 100, ..crate::setup::Setup::new(50) };
    crate::cases_streams::resumption(crate::setup::peregrine_quinn_resumable(&setup));
}

#[test]
fn stateless_reset() {
    crate::cases_path::stateless_reset(crate::setup::peregrine_quinn);
}

/// A Peregrine client's request in 0-RTT to a quinn-proto server that accepts it.
#[test]
fn zero_rtt() {
    let setup = crate::setup::Setup::new(60);
    crate::cases_streams::zero_rtt(crate::setup::peregrine_quinn_zero_rtt(&setup, true), true);
}

/// The same against a quinn-proto server that does not know the ticket: 0-RTT is rejected
/// and the Peregrine client sends the request again in 1-RTT by itself.
#[test]
fn zero_rtt_rejected() {
    let setup = crate::setup::Setup::new(60);
    crate::cases_streams::zero_rtt(crate::setup::peregrine_quinn_zero_rtt(&setup, false), false);
}
