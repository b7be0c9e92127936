//! Peregrine client against a quinn-proto server: every interop case.

crate::cases::interop_cases!(crate::setup::peregrine_quinn);

/// Retry needs the quinn-proto server (the Peregrine server side of this harness has no Retry).
#[test]
fn retry() {
    crate::cases_more::retry(crate::setup::peregrine_quinn);
}
