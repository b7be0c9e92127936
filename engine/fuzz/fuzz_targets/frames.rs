//! Frame decoders: every frame and ACK range, and decode/encode round trips.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peregrine_engine::fuzz::frames(data));
