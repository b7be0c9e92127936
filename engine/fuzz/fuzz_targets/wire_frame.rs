//! Ethernet/IPv4/IPv6/UDP frame parsing (the AF_XDP receive path).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = peregrine_datapath::wire::parse_frame(data);
    let _ = peregrine_datapath::wire::parse_frame_with(data, &peregrine_datapath::wire::ParseOptions::STRICT);
});
