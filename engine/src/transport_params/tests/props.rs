//! Transport parameter properties: round trips of valid parameters, never-panic decoding.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use proptest::collection::vec;
use proptest::prelude::*;

use super::super::*;
use super::param;
use crate::error::TransportErrorCode;

fn any_cid() -> impl Strategy<Value = ConnectionId> {
    vec(any::<u8>(), 0..=20).prop_map(|b| ConnectionId::new(&b).unwrap())
}

fn varint_in(lo: u64, hi: u64) -> impl Strategy<Value = VarInt> {
    (lo..=hi).prop_map(|v| VarInt::new(v).unwrap())
}

fn any_address() -> impl Strategy<Value = PreferredAddress> {
    let v4 = proptest::option::of(
        (any::<u32>(), 1u16..).prop_map(|(ip, port)| SocketAddrV4::new(Ipv4Addr::from(ip), port)),
    );
    let v6 = proptest::option::of(
        (any::<u128>(), 1u16..)
            .prop_map(|(ip, port)| SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0)),
    );
    let cid = vec(any::<u8>(), 1..=20).prop_map(|b| ConnectionId::new(&b).unwrap());
    (v4, v6, cid, any::<[u8; 16]>()).prop_map(|(ipv4, ipv6, connection_id, t)| PreferredAddress {
        ipv4,
        ipv6,
        connection_id,
        stateless_reset_token: ResetToken(t),
    })
}

/// Valid parameters as `sender` may send them.
fn any_params(sender: Side) -> impl Strategy<Value = TransportParameters> {
    let server = sender == Side::Server;
    let ints = (
        varint_in(0, varint::MAX),
        varint_in(1200, varint::MAX),
        varint_in(0, varint::MAX),
        [varint_in(0, varint::MAX), varint_in(0, varint::MAX), varint_in(0, varint::MAX)],
        [varint_in(0, 1 << 60), varint_in(0, 1 << 60)],
        varint_in(0, 20),
        varint_in(0, (1 << 14) - 1),
        varint_in(2, varint::MAX),
        proptest::option::of(varint_in(0, varint::MAX)),
    );
    let ids = (
        proptest::option::of(any_cid()),
        proptest::option::of(any::<[u8; 16]>()),
        proptest::option::of(any_address()),
        proptest::option::of(vec(any::<u8>(), 1..=20).prop_map(|b| ConnectionId::new(&b).unwrap())),
        proptest::option::of(any_cid()),
    );
    let vi = proptest::option::of((1u32.., vec(1u32.., 0..6)).prop_map(move |(c, mut a)| {
        if !server {
            a.push(c);
        }
        VersionInformation { chosen_version: c, available_versions: a }
    }));
    (ints, ids, vi, any::<bool>(), any::<bool>()).prop_map(move |(i, c, vi, dam, grease)| {
        TransportParameters {
            original_destination_connection_id: c.0.filter(|_| server),
            max_idle_timeout: i.0,
            stateless_reset_token: c.1.filter(|_| server).map(ResetToken),
            max_udp_payload_size: i.1,
            initial_max_data: i.2,
            initial_max_stream_data_bidi_local: i.3[0],
            initial_max_stream_data_bidi_remote: i.3[1],
            initial_max_stream_data_uni: i.3[2],
            initial_max_streams_bidi: i.4[0],
            initial_max_streams_uni: i.4[1],
            ack_delay_exponent: i.5,
            max_ack_delay: i.6,
            disable_active_migration: dam,
            preferred_address: c.2.filter(|_| server),
            active_connection_id_limit: i.7,
            // Non-empty whenever a preferred address may be present.
            initial_source_connection_id: c.3,
            retry_source_connection_id: c.4.filter(|_| server),
            max_datagram_frame_size: i.8,
            version_information: vi,
            grease_quic_bit: grease,
            // Microseconds: the max_ack_delay's number of milliseconds is always valid.
            min_ack_delay: grease.then_some(i.6),
        }
    })
}

proptest! {
    #[test]
    fn round_trip_server(p in any_params(Side::Server), n in any::<u64>(), g in vec(any::<u8>(), 0..20)) {
        p.validate(Side::Server).unwrap();
        let bytes = p.to_vec();
        prop_assert_eq!(bytes.len(), p.encoded_len());
        prop_assert_eq!(TransportParameters::decode(Side::Server, &bytes), Ok(p.clone()));
        let mut buf = vec![0u8; bytes.len() + 40];
        let mut w = Writer::new(&mut buf);
        p.encode_with_grease(&mut w, n, &g).unwrap();
        prop_assert_eq!(TransportParameters::decode(Side::Server, w.written()), Ok(p));
    }

    #[test]
    fn round_trip_client(p in any_params(Side::Client)) {
        p.validate(Side::Client).unwrap();
        let bytes = p.to_vec();
        prop_assert_eq!(TransportParameters::decode(Side::Client, &bytes), Ok(p.clone()));
        prop_assert!(fuzz_decode(&[&[0u8][..], &bytes].concat()).is_ok());
    }

    #[test]
    fn decode_never_panics(bytes in vec(any::<u8>(), 0..300), server in any::<bool>()) {
        let side = if server { Side::Server } else { Side::Client };
        if let Ok(p) = TransportParameters::decode(side, &bytes) {
            prop_assert!(p.validate(side).is_ok());
        }
        let _ = fuzz_decode(&bytes);
    }

    /// Well-framed parameters with known identifiers and random values reach every value parser.
    #[test]
    fn structured_garbage_never_panics(
        params in vec((prop::sample::select(id::ALL.to_vec()), vec(any::<u8>(), 0..50)), 0..8),
        server in any::<bool>(),
    ) {
        let bytes: Vec<u8> = params.iter().flat_map(|(i, v)| param(*i, v)).collect();
        let mut input = vec![u8::from(server)];
        input.extend_from_slice(&bytes);
        match fuzz_decode(&input) {
            Ok(()) => {}
            Err(e) => prop_assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR),
        }
    }
}
