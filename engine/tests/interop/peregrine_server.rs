//! quinn-proto client against a Peregrine server: every interop case.

crate::cases::interop_cases!(crate::setup::quinn_peregrine);
