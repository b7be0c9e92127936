//! Harness self-check: every interop case with quinn-proto on both sides. If these fail, the
//! harness (driver, tap, adapters, cases) is broken, not Peregrine.

crate::cases::interop_cases!(crate::setup::quinn_quinn);
