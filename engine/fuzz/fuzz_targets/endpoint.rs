//! The endpoint router: routing, Version Negotiation, Retry, stateless reset, refusal.
#![no_main]
use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let now = *START.get_or_init(Instant::now);
    peregrine_engine::fuzz::endpoint(now, data);
});
