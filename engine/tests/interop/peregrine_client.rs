//! Peregrine client against a quinn-proto server: every interop case.

crate::cases::interop_cases!(crate::setup::peregrine_quinn);
