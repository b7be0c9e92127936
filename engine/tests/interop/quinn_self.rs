//! Harness self-check: every interop case with quinn-proto on both sides. If these fail, the
//! harness (driver, tap, adapters, cases) is broken, not Peregrine.

crate::cases::interop_cases!(crate::setup::quinn_quinn);

/// Retry needs the quinn-proto server (the Peregrine server side of this harness has no Retry).
#[test]
fn retry() {
    crate::cases_more::retry(crate::setup::quinn_quinn);
}

#[test]
fn nat_rebinding() {
    crate::cases_path::nat_rebinding(crate::setup::quinn_quinn);
}

#[test]
fn resumption() {
    // A ~4 KB certificate chain, so that a full handshake is unmistakable on the wire.
    let setup = crate::setup::Setup { cert_names: 100, ..crate::setup::Setup::new(50) };
    crate::cases_streams::resumption(crate::setup::quinn_quinn_resumable(&setup));
}

#[test]
fn stateless_reset() {
    crate::cases_path::stateless_reset(crate::setup::quinn_quinn);
}
