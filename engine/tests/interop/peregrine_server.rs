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
