//! Fuzz entry points: what each cargo-fuzz target (`engine/fuzz/`) and the corpus replay test run.
//!
//! Each function takes arbitrary bytes and must never panic; the decoders' own internal
//! consistency checks (`assert!`s in `packet::fuzz`, `frame::fuzz`, `transport_params`) are what
//! a fuzzer is looking for.

/// Every packet-header decoder on the same input.
pub fn packet(data: &[u8]) {
    let _ = crate::packet::fuzz::invariant(data);
    let _ = crate::packet::fuzz::partial_decode(data);
    let _ = crate::packet::fuzz::coalesced(data);
    // Retry and Version Negotiation parsers take no configuration byte: run them on the input
    // both with and without the first byte, so corpus entries serve every decoder.
    for d in [data, data.get(1..).unwrap_or_default()] {
        let _ = crate::packet::fuzz::retry(d);
        let _ = crate::packet::fuzz::version_negotiation(d);
    }
}

/// Every frame of a packet payload, then a decode/encode/decode round trip of each.
pub fn frames(data: &[u8]) {
    let _ = crate::frame::decode_all(data);
    let _ = crate::frame::fuzz_round_trip(data);
}

/// Transport parameters (first byte: sender side), with a re-encode round trip.
pub fn transport_params(data: &[u8]) {
    let _ = crate::transport_params::fuzz_decode(data);
}

/// The endpoint router on one datagram (first byte: retry policy and remote selector), at `now`
/// (fuzz targets pass one fixed instant).
pub fn endpoint(now: std::time::Instant, data: &[u8]) {
    crate::endpoint::fuzz::handle(now, data);
}
