//! Replays every file of the cargo-fuzz corpora (`engine/fuzz/corpus/<target>/`) through the
//! same entry points the fuzz targets call, so an input that once crashed stays fixed (on stable
//! Rust, in CI).

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for path in &entries {
        let data = std::fs::read(path).unwrap();
        // A panic here names the file through the hook below.
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(result.is_ok(), "{target}: input {} panicked", path.display());
    }
    entries.len()
}

#[test]
fn packet_corpus() {
    let n = replay("packet", peregrine_engine::fuzz::packet);
    assert!(n >= 5, "packet corpus has only {n} inputs");
}

#[test]
fn frames_corpus() {
    let n = replay("frames", peregrine_engine::fuzz::frames);
    assert!(n >= 5, "frames corpus has only {n} inputs");
}

#[test]
fn transport_params_corpus() {
    let n = replay("transport_params", peregrine_engine::fuzz::transport_params);
    assert!(n >= 3, "transport_params corpus has only {n} inputs");
}

#[test]
fn endpoint_corpus() {
    fn run(data: &[u8]) {
        // One fixed instant, as the fuzz target uses; the router never reads the clock itself.
        #[allow(clippy::disallowed_methods)]
        let now = std::time::Instant::now();
        peregrine_engine::fuzz::endpoint(now, data);
    }
    let n = replay("endpoint", run);
    assert!(n >= 5, "endpoint corpus has only {n} inputs");
}

#[test]
fn wire_frame_corpus() {
    fn run(data: &[u8]) {
        let _ = peregrine_datapath::wire::parse_frame(data);
        let _ = peregrine_datapath::wire::parse_frame_with(
            data,
            &peregrine_datapath::wire::ParseOptions::STRICT,
        );
    }
    let n = replay("wire_frame", run);
    assert!(n >= 3, "wire_frame corpus has only {n} inputs");
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The hand-made seeds are valid inputs: the decoders must accept them (so the fuzzer starts
/// from deep inside each decoder, and a decoder that starts rejecting valid input fails here).
#[test]
fn seeds_are_accepted() {
    use peregrine_engine::{frame, packet, transport_params};
    for name in ["server_initial_payload", "ack_ecn", "stream_all_bits", "stream_no_len"] {
        assert!(frame::decode_all(&seed("frames", name)).is_ok(), "frames/{name}");
    }
    for name in ["close_transport", "close_app", "new_cid", "flow_control", "misc", "datagram"] {
        assert!(frame::decode_all(&seed("frames", name)).is_ok(), "frames/{name}");
    }
    for name in ["client", "server", "grease", "version_information"] {
        let r = transport_params::fuzz_decode(&seed("transport_params", name));
        assert!(r.is_ok(), "transport_params/{name}: {r:?}");
    }
    for name in ["client_initial_v1", "client_initial_v2", "server_initial_v1", "short_a5"] {
        let r = packet::fuzz::partial_decode(&seed("packet", name));
        assert!(r.is_ok(), "packet/{name}: {r:?}");
    }
    assert_eq!(packet::fuzz::coalesced(&seed("packet", "coalesced_initial_handshake")), Ok(2));
    assert!(packet::fuzz::retry(&seed("packet", "retry_v1")[1..]).is_ok());
    assert!(packet::fuzz::retry(&seed("packet", "retry_v2")[1..]).is_ok());
    assert!(packet::fuzz::version_negotiation(&seed("packet", "version_negotiation")[1..]).is_ok());
    for name in ["ipv4_udp", "ipv6_udp", "vlan_ipv4"] {
        let r = peregrine_datapath::wire::parse_frame_with(
            &seed("wire_frame", name),
            &peregrine_datapath::wire::ParseOptions::STRICT,
        );
        assert!(r.is_ok(), "wire_frame/{name}: {r:?}");
    }
    assert!(peregrine_datapath::wire::parse_frame(&seed("wire_frame", "truncated")).is_err());
}
