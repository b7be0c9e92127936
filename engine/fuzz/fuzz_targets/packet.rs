//! Packet header decoders (invariant header, two-stage parse, coalesced datagrams, Retry, VN).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peregrine_engine::fuzz::packet(data));
