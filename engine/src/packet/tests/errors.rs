//! Each rejection rule of the header decoders, with its exact outcome.

use super::{cid, hex};
use crate::cid::ConnectionId;
use crate::coding::Writer;
use crate::error::TransportErrorCode;
use crate::packet::*;
use crate::version::{V1, V2};

use PacketDecodeError::{Invalid, UnsupportedVersion};

fn invalid(r: Result<(PartialDecode, &[u8]), PacketDecodeError>) -> bool {
    matches!(r, Err(Invalid(_)))
}

/// A complete v1 Handshake packet: 8-byte DCID, 4-byte SCID, 2-byte pn, `payload` bytes.
fn handshake(first: u8, payload: usize) -> Vec<u8> {
    let mut p = vec![first, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 4, 9, 9, 9, 9];
    p.extend_from_slice(&[0x40, (2 + payload) as u8]);
    p.extend_from_slice(&[0, 7]);
    p.resize(p.len() + payload, 0);
    p
}

#[test]
fn empty_and_truncated_headers_are_dropped() {
    assert_eq!(PartialDecode::new(&[], 8, false), Err(Invalid("empty datagram")));
    let full = handshake(0xe1, 40);
    assert!(PartialDecode::new(&full, 8, false).is_ok());
    for n in 1..full.len() {
        assert!(invalid(PartialDecode::new(&full[..n], 8, false)), "prefix {n}");
    }
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-17.2
//= type=test
//# Packets containing a zero
//# value for this bit are not valid packets in this version and MUST
//# be discarded.
//= https://www.rfc-editor.org/rfc/rfc9287#section-3
//= type=test
//# An endpoint that advertises the grease_quic_bit transport parameter
//# MUST accept packets with the QUIC Bit set to a value of 0.
#[test]
fn fixed_bit_zero_dropped_unless_greasing_allowed() {
    let long = handshake(0xa1, 40); // 0xe1 without 0x40
    assert_eq!(PartialDecode::new(&long, 8, false), Err(Invalid("fixed bit is zero")));
    let (pd, _) = PartialDecode::new(&long, 8, true).unwrap();
    assert_eq!(pd.long_type(), Some(LongType::Handshake));

    let mut short = vec![0x01]; // short header, fixed bit 0
    short.extend_from_slice(&[7; 30]);
    assert_eq!(PartialDecode::new(&short, 4, false), Err(Invalid("fixed bit is zero")));
    assert!(PartialDecode::new(&short, 4, true).is_ok());

    // Version Negotiation ignores it: its first byte is all Unused bits.
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    write_version_negotiation(&mut w, 0, &[1], &[2], &[V1]).unwrap();
    let mut vn = w.written().to_vec();
    vn[0] = 0x80;
    assert!(PartialDecode::new(&vn, 0, false).is_ok());
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-17.2
//= type=test
//# Endpoints that receive a version 1 long header with a
//# value larger than 20 MUST drop the packet.
#[test]
fn cid_over_20_bytes() {
    let mut p = vec![0xe1, 0, 0, 0, 1, 21];
    p.extend_from_slice(&[5; 21]);
    p.extend_from_slice(&[0, 0x40, 30]);
    p.resize(p.len() + 30, 0);
    assert_eq!(PartialDecode::new(&p, 8, false), Err(Invalid("connection ID over 20 bytes")));
    // Under an unknown version the same bytes are a Version Negotiation candidate, and the
    // invariant header still reads the 21-byte ID to echo it.
    p[1..5].copy_from_slice(&0xff00_001du32.to_be_bytes());
    assert_eq!(PartialDecode::new(&p, 8, false), Err(UnsupportedVersion(0xff00_001d)));
    let inv = InvariantHeader::parse(&p, 8).unwrap();
    assert_eq!(inv.dst_cid(), &[5; 21][..]);
    assert_eq!(inv.version(), Some(0xff00_001d));
}

#[test]
fn unsupported_and_reserved_versions() {
    let mut p = handshake(0xc1, 40);
    p[1..5].copy_from_slice(&0x1a2a_3a4au32.to_be_bytes());
    assert_eq!(PartialDecode::new(&p, 8, false), Err(UnsupportedVersion(0x1a2a_3a4a)));
    // Fixed bit is version-specific: an unknown version is reported, not "fixed bit zero".
    p[0] = 0x80;
    assert_eq!(PartialDecode::new(&p, 8, false), Err(UnsupportedVersion(0x1a2a_3a4a)));
    p[1..5].copy_from_slice(&V2.to_be_bytes());
    p[0] = 0xf1; // type 0b11 is Handshake in v2
    let (pd, _) = PartialDecode::new(&p, 8, false).unwrap();
    assert_eq!(pd.long_type(), Some(LongType::Handshake));
    assert_eq!(pd.version(), Some(V2));
}

#[test]
fn length_field_rules() {
    // Length runs past the datagram.
    let mut p = handshake(0xe1, 40);
    p.truncate(p.len() - 1);
    assert_eq!(PartialDecode::new(&p, 8, false), Err(Invalid("Length exceeds the datagram")));
    // Length too small for packet number plus a header-protection sample (4 + 16).
    let p = handshake(0xe1, 17); // Length 19
    assert_eq!(
        PartialDecode::new(&p, 8, false),
        Err(Invalid("too short for a header protection sample"))
    );
    let p = handshake(0xe1, 18); // Length 20: exactly enough
    assert!(PartialDecode::new(&p, 8, false).is_ok());
    // Short header: same rule against the datagram end.
    let mut s = vec![0x40];
    s.extend_from_slice(&[1; 4 + 19]);
    assert!(invalid(PartialDecode::new(&s, 4, false)));
    s.push(0);
    assert!(PartialDecode::new(&s, 4, false).is_ok());
    // Short header shorter than the local CID length.
    assert_eq!(
        PartialDecode::new(&[0x40, 1, 2], 8, false),
        Err(Invalid("short header shorter than its CID"))
    );
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-17.2
//= type=test
//# An endpoint MUST
//# treat receipt of a packet that has a non-zero value for these bits
//# after removing both packet and header protection as a connection
//# error of type PROTOCOL_VIOLATION.
//= https://www.rfc-editor.org/rfc/rfc9000#section-17.3.1
//= type=test
//# An endpoint MUST treat receipt of a
//# packet that has a non-zero value for these bits, after removing
//# both packet and header protection, as a connection error of type
//# PROTOCOL_VIOLATION.
#[test]
fn reserved_bits_are_a_protocol_violation_after_decryption() {
    for (first, reserved) in [(0xe1u8, 0), (0xe5, 0x04), (0xe9, 0x08), (0xed, 0x0c)] {
        let p = handshake(first, 40);
        let (pd, _) = PartialDecode::new(&p, 8, false).unwrap();
        // Stage 2 itself succeeds: the bits may only be judged after the AEAD.
        let h = pd.finish(&p).unwrap();
        assert_eq!(h.reserved_bits(), reserved);
        match h.check_reserved_bits() {
            Ok(()) => assert_eq!(reserved, 0),
            Err(e) => assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION),
        }
    }
    for (first, reserved, key_phase) in
        [(0x40u8, 0, false), (0x44, 0, true), (0x50, 0x10, false), (0x5c, 0x18, true)]
    {
        let mut s = vec![first, 1, 2, 3, 4];
        s.resize(40, 0);
        let (pd, _) = PartialDecode::new(&s, 4, false).unwrap();
        let h = pd.finish(&s).unwrap();
        assert_eq!((h.reserved_bits(), h.key_phase), (reserved, key_phase));
        let err = h.check_reserved_bits().err().map(|e| e.code);
        assert_eq!(err, (reserved != 0).then_some(TransportErrorCode::PROTOCOL_VIOLATION));
    }
}

#[test]
fn stage_two_needs_the_packet_number_bytes() {
    let p = handshake(0xe3, 40); // 4-byte packet number
    let (pd, _) = PartialDecode::new(&p, 8, false).unwrap();
    let pn_offset = pd.pn_offset().unwrap();
    assert!(matches!(pd.finish(&p[..pn_offset + 3]), Err(Invalid(_))));
    assert!(matches!(pd.finish(&[]), Err(Invalid(_))));
    assert_eq!(pd.finish(&p).unwrap().pn.len(), 4);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.5.2
//= type=test
//# A client
//# MUST discard a Retry packet with a zero-length Retry Token field.
#[test]
fn retry_without_token_or_tag() {
    let d = hex("ff000000010008f067a5502a4262b504a265ba2eff4d829058fb3f0f2496ba");
    assert_eq!(RetryPacket::parse(&d), Err(Invalid("Retry without token")));
    assert_eq!(PartialDecode::new(&d, 0, false), Err(Invalid("Retry without token")));
    assert!(RetryPacket::parse(&d[..20]).is_err());
    // Not a Retry at all.
    assert_eq!(RetryPacket::parse(&handshake(0xe1, 40)), Err(Invalid("not a Retry packet")));
    let mut buf = [0u8; 64];
    let h = RetryHeader {
        version: V1,
        dst_cid: ConnectionId::EMPTY,
        src_cid: cid("01"),
        token: b"",
        unused_bits: 0,
    };
    assert!(matches!(h.write(&mut Writer::new(&mut buf)), Err(EncodeError::Invalid(_))));
}

//= https://www.rfc-editor.org/rfc/rfc8999#section-6
//= type=test
//# An endpoint MUST ignore
//# a packet that contains no Supported Version fields or contains a
//# truncated Supported Version value.
#[test]
fn version_negotiation_list_rules() {
    let base = hex("c000000000 01aa 01bb");
    assert!(VersionNegotiation::parse(&base).is_err(), "no versions");
    let mut t = base.clone();
    t.extend_from_slice(&[0, 0, 0, 1, 0x6b]);
    assert!(VersionNegotiation::parse(&t).is_err(), "truncated version");
    assert!(PartialDecode::new(&t, 0, false).is_err());
    t.truncate(base.len() + 4);
    let vn = VersionNegotiation::parse(&t).unwrap();
    assert_eq!(vn.versions().collect::<Vec<_>>(), vec![1]);
    assert!(vn.contains(V1) && !vn.contains(V2));
    // A VN packet whose IDs exceed 20 bytes cannot answer anything we sent.
    let mut long = vec![0xc0, 0, 0, 0, 0, 21];
    long.extend_from_slice(&[1; 21]);
    long.extend_from_slice(&[0, 0, 0, 0, 1]);
    assert!(VersionNegotiation::parse(&long).is_ok());
    assert_eq!(PartialDecode::new(&long, 0, false), Err(Invalid("connection ID over 20 bytes")));
}

#[test]
fn writers_refuse_invalid_headers() {
    let mut buf = [0u8; 128];
    let mut w = Writer::new(&mut buf);
    let mut h = LongHeader {
        ty: LongType::Retry,
        version: V1,
        dst_cid: cid("01"),
        src_cid: cid("02"),
        token: &[],
        pn: TruncatedPn::new(0, 1).unwrap(),
        grease_quic_bit: false,
    };
    assert!(matches!(PacketBuilder::long(&mut w, &h), Err(EncodeError::Invalid(_))));
    h.ty = LongType::Handshake;
    h.token = b"tok";
    assert!(matches!(PacketBuilder::long(&mut w, &h), Err(EncodeError::Invalid(_))));
    h.token = &[];
    h.version = 0xff00_001d;
    assert!(matches!(PacketBuilder::long(&mut w, &h), Err(EncodeError::Invalid(_))));
    h.version = V1;
    let b = PacketBuilder::long(&mut w, &h).unwrap();
    assert!(matches!(b.finish(&mut w, 16), Err(EncodeError::Invalid("packet without frames"))));
    // No room: BufferFull, not a panic.
    let mut small = [0u8; 8];
    let mut w = Writer::new(&mut small);
    assert_eq!(PacketBuilder::long(&mut w, &h), Err(EncodeError::BufferFull));
    assert!(write_version_negotiation(&mut w, 0, &[], &[], &[]).is_err());
    assert_eq!(
        write_version_negotiation(&mut w, 0, &[], &[], &[1, 2]),
        Err(EncodeError::BufferFull)
    );
}

#[test]
fn finish_pads_for_the_sample_and_reserves_the_tag() {
    let mut buf = [0xffu8; 100];
    let mut w = Writer::new(&mut buf);
    let b = PacketBuilder::short(
        &mut w,
        &ShortHeader {
            dst_cid: cid("0102030405060708"),
            spin: true,
            key_phase: true,
            pn: TruncatedPn::new(5, 1).unwrap(),
            grease_quic_bit: false,
        },
    )
    .unwrap();
    w.put_u8(0x01).unwrap();
    let l = b.finish(&mut w, 16).unwrap();
    // pn (1) + payload (1 + 2 padding) + tag (16) = 20 = sample offset + sample length.
    assert_eq!((l.pn_offset, l.header_len, l.len), (9, 10, 9 + 20));
    assert_eq!(&w.written()[10..13], &[1, 0, 0]);
    assert!(w.written()[13..].iter().all(|&b| b == 0), "tag space zeroed");
    assert_eq!(w.written()[0], 0x40 | 0x20 | 0x04);
    // And it parses back as a full short-header packet.
    let (pd, _) = PartialDecode::new(w.written(), 8, false).unwrap();
    assert_eq!(
        pd.header(),
        &PlainHeader::Short { spin: true, dst_cid: cid("0102030405060708"), pn_offset: 9 }
    );
}
