//! Transport parameter tests: exact bytes and every validation rule.

mod props;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use super::*;
use crate::error::TransportErrorCode;

pub(super) fn param(id: u64, value: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 16 + value.len()];
    let mut w = Writer::new(&mut buf);
    put_param(&mut w, id, value).unwrap();
    let n = w.len();
    buf.truncate(n);
    buf
}

fn int_param(id: u64, v: u64) -> Vec<u8> {
    let mut b = [0u8; 8];
    let n = varint::encode(v, &mut b).unwrap();
    param(id, &b[..n])
}

/// Decodes, expecting a TRANSPORT_PARAMETER_ERROR; returns its reason.
fn reject(sender: Side, bytes: &[u8]) -> &'static str {
    let e = TransportParameters::decode(sender, bytes).expect_err("accepted invalid parameters");
    assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR, "{e}");
    e.reason
}

fn accept(sender: Side, bytes: &[u8]) -> TransportParameters {
    TransportParameters::decode(sender, bytes).unwrap()
}

fn cid(b: &[u8]) -> ConnectionId {
    ConnectionId::new(b).unwrap()
}

fn sample_address() -> PreferredAddress {
    PreferredAddress {
        ipv4: Some(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 4433)),
        ipv6: None,
        connection_id: cid(&[7; 8]),
        stateless_reset_token: ResetToken([9; 16]),
    }
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
//= type=test
//# Transport parameters have a
//# default value of 0 if the transport parameter is absent, unless
//# otherwise stated.
#[test]
fn defaults_are_omitted_and_assumed() {
    let d = TransportParameters::default();
    assert_eq!(d.encoded_len(), 0);
    assert!(d.to_vec().is_empty());
    for side in [Side::Client, Side::Server] {
        let p = accept(side, &[]);
        assert_eq!(p, d);
        assert_eq!(p.max_udp_payload_size.into_inner(), 65527);
        assert_eq!(p.ack_delay_exponent.into_inner(), 3);
        assert_eq!(p.max_ack_delay_duration(), Duration::from_millis(25));
        assert_eq!(p.active_connection_id_limit.into_inner(), 2);
        assert_eq!(p.idle_timeout(), None);
        assert_eq!(p.max_datagram_frame_size, None);
    }
}

#[test]
fn exact_encoding_of_a_client_configuration() {
    let p = TransportParameters {
        max_idle_timeout: VarInt::from_u32(30_000),
        initial_max_data: VarInt::from_u32(1 << 20),
        initial_max_stream_data_bidi_local: VarInt::from_u32(256 * 1024),
        initial_max_streams_bidi: VarInt::from_u32(100),
        max_ack_delay: VarInt::from_u32(25), // the default: omitted
        initial_source_connection_id: Some(cid(&[0xab, 0xcd])),
        max_datagram_frame_size: Some(VarInt::from_u32(65535)),
        grease_quic_bit: true,
        ..Default::default()
    };
    let want: Vec<u8> = [
        &[0x01, 0x04, 0x80, 0x00, 0x75, 0x30][..], // max_idle_timeout 30000
        &[0x04, 0x04, 0x80, 0x10, 0x00, 0x00],     // initial_max_data 2^20
        &[0x05, 0x04, 0x80, 0x04, 0x00, 0x00],     // bidi_local 262144
        &[0x08, 0x02, 0x40, 0x64],                 // initial_max_streams_bidi 100
        &[0x0f, 0x02, 0xab, 0xcd],                 // initial_source_connection_id
        &[0x20, 0x04, 0x80, 0x00, 0xff, 0xff],     // max_datagram_frame_size 65535
        &[0x6a, 0xb2, 0x00],                       // grease_quic_bit (0x2ab2)
    ]
    .concat();
    assert_eq!(p.to_vec(), want);
    assert_eq!(p.encoded_len(), want.len());
    assert_eq!(accept(Side::Client, &want), p);
    assert_eq!(p.idle_timeout(), Some(Duration::from_secs(30)));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-7.4
//= type=test
//# An endpoint SHOULD treat receipt of
//# duplicate transport parameters as a connection error of type
//# TRANSPORT_PARAMETER_ERROR.
#[test]
fn duplicates_rejected() {
    let twice = [int_param(id::MAX_ACK_DELAY, 10), int_param(id::MAX_ACK_DELAY, 20)].concat();
    assert_eq!(reject(Side::Client, &twice), "duplicate transport parameter");
    let cids = [param(id::INITIAL_SOURCE_CONNECTION_ID, &[1]), param(0x0f, &[2])].concat();
    assert_eq!(reject(Side::Server, &cids), "duplicate transport parameter");
    let flags = [param(id::GREASE_QUIC_BIT, &[]), param(id::GREASE_QUIC_BIT, &[])].concat();
    assert_eq!(reject(Side::Server, &flags), "duplicate transport parameter");
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-7.4.2
//= type=test
//# An endpoint MUST ignore transport parameters that it does not support.
//= https://www.rfc-editor.org/rfc/rfc9000#section-18.1
//= type=test
//# Transport parameters with an identifier of the form 31 * N + 27 for
//# integer values of N are reserved to exercise the requirement that
//# unknown transport parameters be ignored.
#[test]
fn unknown_and_reserved_parameters_ignored() {
    let bytes = [
        param(27, b"grease"),
        param(reserved_id(1_000_000), &[0xff; 300]),
        param(0xff73db, &[0, 0, 0, 1]), // draft version_information codepoint
        param(0x1234, &[]),
        param(0x1234, &[1]), // unknown duplicates are not tracked
        int_param(id::INITIAL_MAX_DATA, 5),
    ]
    .concat();
    let p = accept(Side::Server, &bytes);
    assert_eq!(p.initial_max_data.into_inner(), 5);
    assert!(id::is_reserved(reserved_id(0)) && id::is_reserved(reserved_id(u64::MAX)));
    assert!(reserved_id(u64::MAX) <= varint::MAX);
    assert!(id::ALL.iter().all(|&i| !id::is_reserved(i)));
    // A reserved parameter written by this endpoint is skipped by the decoder.
    let q = TransportParameters { initial_max_data: VarInt::from_u32(9), ..Default::default() };
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    q.encode_with_grease(&mut w, 77, b"xyz").unwrap();
    assert_eq!(w.len(), q.encoded_len() + varint::size(reserved_id(77)) + 1 + 3);
    assert_eq!(accept(Side::Client, w.written()), q);
}

#[test]
fn bad_lengths() {
    // An integer whose varint does not fill the value, or overruns it.
    assert_eq!(
        reject(Side::Client, &param(id::INITIAL_MAX_DATA, &[0x05, 0x00])),
        "integer parameter length mismatch"
    );
    assert_eq!(
        reject(Side::Client, &param(id::INITIAL_MAX_DATA, &[0x40])),
        "truncated integer parameter"
    );
    assert_eq!(
        reject(Side::Client, &param(id::MAX_IDLE_TIMEOUT, &[])),
        "truncated integer parameter"
    );
    // A non-minimal integer encoding that fills its length is fine.
    let p = accept(Side::Client, &param(id::INITIAL_MAX_DATA, &[0x80, 0, 0, 5]));
    assert_eq!(p.initial_max_data.into_inner(), 5);
    assert_eq!(
        reject(Side::Server, &param(id::STATELESS_RESET_TOKEN, &[1; 15])),
        "stateless_reset_token is not 16 bytes"
    );
    assert_eq!(
        reject(Side::Server, &param(id::STATELESS_RESET_TOKEN, &[1; 17])),
        "stateless_reset_token is not 16 bytes"
    );
    assert_eq!(
        reject(Side::Server, &param(id::INITIAL_SOURCE_CONNECTION_ID, &[1; 21])),
        "connection ID parameter over 20 bytes"
    );
    // A zero-length connection ID is a valid value.
    let p = accept(Side::Server, &param(id::INITIAL_SOURCE_CONNECTION_ID, &[]));
    assert_eq!(p.initial_source_connection_id, Some(ConnectionId::EMPTY));
    // Truncated framing.
    assert_eq!(reject(Side::Client, &[0x40]), "truncated parameter identifier");
    assert_eq!(reject(Side::Client, &[0x04, 0x05, 0x01]), "truncated parameter value");
    assert_eq!(reject(Side::Client, &[0x04]), "truncated parameter value");
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
//= type=test
//# This
//# parameter is a zero-length value.
//= https://www.rfc-editor.org/rfc/rfc9287#section-3
//= type=test
//# The transport parameter is sent with an empty value; an endpoint that
//# understands this transport parameter MUST treat receipt of a non-empty
//# value of the transport parameter as a connection error of type
//# TRANSPORT_PARAMETER_ERROR.
#[test]
fn flags_take_no_value() {
    assert_eq!(
        reject(Side::Client, &param(id::GREASE_QUIC_BIT, &[0])),
        "flag parameter with a value"
    );
    assert_eq!(
        reject(Side::Client, &param(id::DISABLE_ACTIVE_MIGRATION, &[1])),
        "flag parameter with a value"
    );
    let p = accept(Side::Client, &param(id::DISABLE_ACTIVE_MIGRATION, &[]));
    assert!(p.disable_active_migration && !p.grease_quic_bit);
}

/// (parameter, largest valid, smallest invalid) or the reverse for lower bounds.
//= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
//= type=test
//# Values below 1200 are invalid.
//= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
//= type=test
//# Values above 20 are invalid.
//= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
//= type=test
//# Values of 2^14 or greater are invalid.
//= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
//= type=test
//# An
//# endpoint that receives a value less than 2 MUST close the
//# connection with an error of type TRANSPORT_PARAMETER_ERROR.
//= https://www.rfc-editor.org/rfc/rfc9000#section-4.6
//= type=test
//# If either is received, the connection MUST be closed
//# immediately with a connection error of type TRANSPORT_PARAMETER_ERROR
//# if the offending value was received in a transport parameter
#[test]
fn value_ranges() {
    let cases: [(u64, u64, u64, &str); 6] = [
        (id::MAX_UDP_PAYLOAD_SIZE, 1200, 1199, "max_udp_payload_size below 1200"),
        (id::ACK_DELAY_EXPONENT, 20, 21, "ack_delay_exponent above 20"),
        (id::MAX_ACK_DELAY, (1 << 14) - 1, 1 << 14, "max_ack_delay of 2^14 or more"),
        (id::ACTIVE_CONNECTION_ID_LIMIT, 2, 1, "active_connection_id_limit below 2"),
        (id::INITIAL_MAX_STREAMS_BIDI, 1 << 60, (1 << 60) + 1, "initial_max_streams above 2^60"),
        (id::INITIAL_MAX_STREAMS_UNI, 1 << 60, (1 << 60) + 1, "initial_max_streams above 2^60"),
    ];
    for (param_id, ok, bad, reason) in cases {
        for side in [Side::Client, Side::Server] {
            accept(side, &int_param(param_id, ok));
            assert_eq!(reject(side, &int_param(param_id, bad)), reason, "id {param_id:#x}");
        }
    }
    assert_eq!(
        reject(Side::Client, &int_param(id::ACTIVE_CONNECTION_ID_LIMIT, 0)),
        "active_connection_id_limit below 2"
    );
    assert_eq!(
        reject(Side::Client, &int_param(id::MAX_UDP_PAYLOAD_SIZE, 0)),
        "max_udp_payload_size below 1200"
    );
    // The largest varint is fine where there is no bound.
    let p = accept(Side::Client, &int_param(id::MAX_IDLE_TIMEOUT, varint::MAX));
    assert_eq!(p.max_idle_timeout, VarInt::MAX);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
//= type=test
//# A client MUST NOT include any server-only transport parameter:
//# original_destination_connection_id, preferred_address,
//# retry_source_connection_id, or stateless_reset_token.  A server MUST
//# treat receipt of any of these transport parameters as a connection
//# error of type TRANSPORT_PARAMETER_ERROR.
#[test]
fn server_only_parameters_from_a_client() {
    let mut pa = [0u8; 64];
    let mut w = Writer::new(&mut pa);
    sample_address().encode(&mut w).unwrap();
    let pa = w.written().to_vec();
    let server_only = [
        param(id::ORIGINAL_DESTINATION_CONNECTION_ID, &[1, 2, 3, 4]),
        param(id::STATELESS_RESET_TOKEN, &[3; 16]),
        param(id::PREFERRED_ADDRESS, &pa),
        param(id::RETRY_SOURCE_CONNECTION_ID, &[5; 8]),
    ];
    for bytes in &server_only {
        assert_eq!(reject(Side::Client, bytes), "server-only transport parameter sent by a client");
        accept(Side::Server, bytes);
    }
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-18.2
//= type=test
//# Similarly, a server MUST NOT include a zero-
//# length connection ID in this transport parameter.  A client MUST
//# treat a violation of these requirements as a connection error of
//# type TRANSPORT_PARAMETER_ERROR.
#[test]
fn preferred_address_rules() {
    let mut pa = sample_address();
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    pa.encode(&mut w).unwrap();
    let good = w.written().to_vec();
    assert_eq!(good.len(), 41 + 8);
    let p = accept(Side::Server, &param(id::PREFERRED_ADDRESS, &good));
    assert_eq!(p.preferred_address, Some(pa));
    // Length off by one either way.
    assert_eq!(
        reject(Side::Server, &param(id::PREFERRED_ADDRESS, &good[..good.len() - 1])),
        "preferred_address length mismatch"
    );
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        reject(Side::Server, &param(id::PREFERRED_ADDRESS, &long)),
        "preferred_address length mismatch"
    );
    // Zero-length connection ID.
    let mut zero = good[..24].to_vec();
    zero.push(0);
    zero.extend_from_slice(&[9; 16]);
    assert_eq!(
        reject(Side::Server, &param(id::PREFERRED_ADDRESS, &zero)),
        "preferred_address with a zero-length connection ID"
    );
    // Connection ID over 20 bytes.
    let mut over = good[..24].to_vec();
    over.push(21);
    over.extend_from_slice(&[1; 21 + 16]);
    assert_eq!(
        reject(Side::Server, &param(id::PREFERRED_ADDRESS, &over)),
        "preferred_address connection ID over 20 bytes"
    );
    // A server using a zero-length connection ID must not offer a preferred address.
    let both = [param(id::PREFERRED_ADDRESS, &good), param(id::INITIAL_SOURCE_CONNECTION_ID, &[])]
        .concat();
    assert_eq!(reject(Side::Server, &both), "preferred_address with a zero-length connection ID");
    // Only IPv6, with the IPv4 family zeroed.
    pa.ipv4 = None;
    pa.ipv6 = Some(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 443, 0, 0));
    let q = TransportParameters { preferred_address: Some(pa), ..Default::default() };
    let enc = q.to_vec();
    assert_eq!(&enc[2..8], &[0; 6], "0.0.0.0:0");
    assert_eq!(accept(Side::Server, &enc), q);
}

//= https://www.rfc-editor.org/rfc/rfc9368#section-4
//= type=test
//# If an endpoint
//# receives a Chosen Version equal to zero, or any Available Version equal to zero,
//# it MUST treat it as a parsing failure.
//= https://www.rfc-editor.org/rfc/rfc9368#section-4
//= type=test
//# If a server receives Version
//# Information where the Chosen Version is not included in Available Versions, it
//# MUST treat it as a parsing failure.
#[test]
fn version_information_rules() {
    let vi = |words: &[u32]| {
        let b: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        param(id::VERSION_INFORMATION, &b)
    };
    let p = accept(Side::Client, &vi(&[1, 0x6b33_43cf, 1, 0x0a1a_2a3a]));
    assert_eq!(
        p.version_information,
        Some(VersionInformation {
            chosen_version: 1,
            available_versions: vec![0x6b33_43cf, 1, 0x0a1a_2a3a]
        })
    );
    assert_eq!(p.to_vec(), vi(&[1, 0x6b33_43cf, 1, 0x0a1a_2a3a]));
    assert_eq!(
        reject(Side::Client, &vi(&[1, 2])),
        "client's chosen version not among its available versions"
    );
    assert_eq!(
        reject(Side::Client, &vi(&[1])),
        "client's chosen version not among its available versions"
    );
    // A server's Available Versions may leave out its chosen version, or be empty.
    accept(Side::Server, &vi(&[1, 2]));
    accept(Side::Server, &vi(&[1]));
    for side in [Side::Client, Side::Server] {
        assert_eq!(reject(side, &vi(&[0, 0])), "version_information with version 0");
        assert_eq!(reject(side, &vi(&[1, 1, 0])), "version_information with version 0");
        for bad in [&[][..], &[0, 0, 0][..], &[0, 0, 0, 1, 0, 0][..]] {
            assert_eq!(
                reject(side, &param(id::VERSION_INFORMATION, bad)),
                "version_information length not a positive multiple of 4"
            );
        }
    }
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-7.3
//= type=test
//# An endpoint MUST treat the absence of the
//# initial_source_connection_id transport parameter from either endpoint
//# or the absence of the original_destination_connection_id transport
//# parameter from the server as a connection error of type
//# TRANSPORT_PARAMETER_ERROR.
#[test]
fn connection_id_authentication() {
    let seen = HandshakeCids {
        peer_initial_scid: cid(&[1; 8]),
        original_dcid: cid(&[2; 8]),
        retry_scid: None,
    };
    let client = TransportParameters {
        initial_source_connection_id: Some(cid(&[1; 8])),
        ..Default::default()
    };
    assert!(client.authenticate_cids(Side::Client, &seen).is_ok());
    let mut server = TransportParameters {
        initial_source_connection_id: Some(cid(&[1; 8])),
        original_destination_connection_id: Some(cid(&[2; 8])),
        ..Default::default()
    };
    assert!(server.authenticate_cids(Side::Server, &seen).is_ok());

    let reason = |p: &TransportParameters, side, seen: &HandshakeCids| {
        let e = p.authenticate_cids(side, seen).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR);
        e.reason
    };
    let none = TransportParameters::default();
    assert_eq!(reason(&none, Side::Client, &seen), "initial_source_connection_id missing");
    let other = HandshakeCids { peer_initial_scid: cid(&[3; 8]), ..seen };
    assert_eq!(reason(&client, Side::Client, &other), "initial_source_connection_id mismatch");
    // A client's parameters never carry the server-only IDs: not required.
    assert_eq!(reason(&client, Side::Server, &seen), "original_destination_connection_id missing");
    let other = HandshakeCids { original_dcid: cid(&[4; 8]), ..seen };
    assert_eq!(
        reason(&server, Side::Server, &other),
        "original_destination_connection_id mismatch"
    );
    // Retry: required after one, forbidden without one, must match.
    let retried = HandshakeCids { retry_scid: Some(cid(&[5; 4])), ..seen };
    assert_eq!(
        reason(&server, Side::Server, &retried),
        "retry_source_connection_id missing after Retry"
    );
    server.retry_source_connection_id = Some(cid(&[5; 4]));
    assert!(server.authenticate_cids(Side::Server, &retried).is_ok());
    assert_eq!(reason(&server, Side::Server, &seen), "retry_source_connection_id without a Retry");
    let other = HandshakeCids { retry_scid: Some(cid(&[6; 4])), ..seen };
    assert_eq!(reason(&server, Side::Server, &other), "retry_source_connection_id mismatch");
}

#[test]
fn encode_refuses_a_short_buffer_without_writing() {
    let p = TransportParameters {
        initial_max_data: VarInt::from_u32(1 << 20),
        initial_source_connection_id: Some(cid(&[1; 20])),
        ..Default::default()
    };
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf[..p.encoded_len() - 1]);
    assert_eq!(p.encode(&mut w), Err(BufferFull));
    assert_eq!(w.len(), 0);
    let mut w = Writer::new(&mut buf[..p.encoded_len() + 3]);
    assert_eq!(p.encode_with_grease(&mut w, 0, b"abc"), Err(BufferFull));
    assert_eq!(w.len(), 0);
}

//= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-3
//= type=test
//# Endpoints that support this extension MUST treat receipt of a min_ack_delay that
//# is greater than the max_ack_delay as a connection error of type
//# TRANSPORT_PARAMETER_ERROR.
#[test]
fn min_ack_delay_is_encoded_and_checked_against_max_ack_delay() {
    let p =
        TransportParameters { min_ack_delay: Some(VarInt::from_u32(1000)), ..Default::default() };
    // 0xff04de1b as an 8-byte varint, length 2, value 1000 (0x43e8).
    let want = [0xc0, 0, 0, 0, 0xff, 0x04, 0xde, 0x1b, 0x02, 0x43, 0xe8];
    assert_eq!(p.to_vec(), want);
    assert_eq!(accept(Side::Server, &want), p);
    // 25 ms is 25000 us: equal is fine, one more is not.
    let ok = TransportParameters { min_ack_delay: Some(VarInt::from_u32(25_000)), ..p.clone() };
    assert!(ok.validate(Side::Client).is_ok());
    let bad = TransportParameters { min_ack_delay: Some(VarInt::from_u32(25_001)), ..p };
    let err = TransportParameters::decode(Side::Client, &bad.to_vec()).unwrap_err();
    assert_eq!(err.code, crate::error::TransportErrorCode::TRANSPORT_PARAMETER_ERROR);
}
