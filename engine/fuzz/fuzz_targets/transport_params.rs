//! Transport parameter decoding and re-encoding.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peregrine_engine::fuzz::transport_params(data));
