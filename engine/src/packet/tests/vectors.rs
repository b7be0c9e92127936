//! Known-good packets from RFC 9001 Appendix A and RFC 9369 Appendix A.

use super::{cid, hex};
use crate::cid::ConnectionId;
use crate::coding::Writer;
use crate::packet::*;
use crate::version::{V1, V2};

/// RFC 9001 A.2: the client Initial's unprotected header (Length 1182, packet number 2).
const CLIENT_INITIAL_V1: &str = "c300000001088394c8f03e5157080000449e00000002";
/// RFC 9001 A.3: the server Initial's unprotected header (Length 117, packet number 1).
const SERVER_INITIAL_V1: &str = "c1000000010008f067a5502a4262b50040750001";
/// RFC 9001 A.4: a Retry packet with token "token".
const RETRY_V1: &str = "ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba";
/// RFC 9369 A.2, A.3, A.4: the same packets in QUIC v2 (type bits rotated, version 0x6b3343cf).
const CLIENT_INITIAL_V2: &str = "d36b3343cf088394c8f03e5157080000449e00000002";
const SERVER_INITIAL_V2: &str = "d16b3343cf0008f067a5502a4262b50040750001";
const RETRY_V2: &str = "cf6b3343cf0008f067a5502a4262b5746f6b656ec8646ce8bfe33952d955543665dcc7b6";

const CLIENT_DCID: &str = "8394c8f03e515708";
const SERVER_SCID: &str = "f067a5502a4262b5";

/// The header followed by zeros up to `len` bytes (the protected payload does not matter to
/// header parsing).
fn packet(header_hex: &str, len: usize) -> Vec<u8> {
    let mut p = hex(header_hex);
    p.resize(len, 0);
    p
}

fn check_client_initial(version: u32, header_hex: &str) {
    let d = packet(header_hex, 1200);
    let (pd, rest) = PartialDecode::new(&d, 8, false).unwrap();
    assert!(rest.is_empty());
    assert_eq!(pd.len(), 1200, "Length 1182 after an 18-byte header");
    assert_eq!(
        pd.header(),
        &PlainHeader::Long {
            ty: LongType::Initial,
            version,
            dst_cid: cid(CLIENT_DCID),
            src_cid: ConnectionId::EMPTY,
            token: 16..16,
            pn_offset: 18,
        }
    );
    assert!(pd.token(&d).is_empty());
    let h = pd.finish(&d).unwrap();
    assert_eq!((h.pn.len(), h.pn.value(), h.header_len), (4, 2, 22));
    assert_eq!(h.packet_number(None), Some(2));
    assert!(h.check_reserved_bits().is_ok());

    // Build the same header in place: 1162 bytes of frames (padding included) and a 16-byte
    // tag make the 1200-byte datagram, and the header bytes come out identical.
    let mut buf = [0xaau8; 1200];
    let mut w = Writer::new(&mut buf);
    let b = PacketBuilder::long(
        &mut w,
        &LongHeader {
            ty: LongType::Initial,
            version,
            dst_cid: cid(CLIENT_DCID),
            src_cid: ConnectionId::EMPTY,
            token: &[],
            pn: TruncatedPn::new(2, 4).unwrap(),
            grease_quic_bit: false,
        },
    )
    .unwrap();
    assert_eq!((b.pn_offset(), b.header_len()), (18, 22));
    w.put_u8(0x06).unwrap(); // a CRYPTO frame would follow
    b.pad_datagram_to(&mut w, MIN_INITIAL_DATAGRAM_SIZE, 16).unwrap();
    let layout = b.finish(&mut w, 16).unwrap();
    assert_eq!(
        layout,
        PacketLayout { start: 0, pn_offset: 18, header_len: 22, len: 1200, tag_len: 16 }
    );
    assert_eq!(&w.written()[..22], &hex(header_hex)[..]);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.2
//= type=test
//# Initial Packet {
#[test]
fn rfc9001_client_initial() {
    check_client_initial(V1, CLIENT_INITIAL_V1);
}

//= https://www.rfc-editor.org/rfc/rfc9369#section-3.2
//= type=test
//# All version 2 Long Header packet types are different.
#[test]
fn rfc9369_client_initial() {
    check_client_initial(V2, CLIENT_INITIAL_V2);
}

fn check_server_initial(version: u32, header_hex: &str) {
    let d = packet(header_hex, 135);
    // A second packet coalesced after it is left in `rest`.
    let mut two = d.clone();
    two.extend_from_slice(&[0x40; 30]);
    let (pd, rest) = PartialDecode::new(&two, 0, false).unwrap();
    assert_eq!(pd.len(), 135, "Length 117 after an 18-byte header");
    assert_eq!(rest, &[0x40; 30][..]);
    assert_eq!(pd.dst_cid(), &ConnectionId::EMPTY);
    assert_eq!(pd.src_cid(), Some(&cid(SERVER_SCID)));
    assert_eq!(
        (pd.version(), pd.long_type(), pd.pn_offset()),
        (Some(version), Some(LongType::Initial), Some(18))
    );
    let h = pd.finish(&d).unwrap();
    assert_eq!((h.pn.len(), h.pn.value(), h.header_len), (2, 1, 20));

    let mut buf = [0u8; 135];
    let mut w = Writer::new(&mut buf);
    let b = PacketBuilder::long(
        &mut w,
        &LongHeader {
            ty: LongType::Initial,
            version,
            dst_cid: ConnectionId::EMPTY,
            src_cid: cid(SERVER_SCID),
            token: &[],
            pn: TruncatedPn::encode(1, None).unwrap(),
            grease_quic_bit: false,
        },
    )
    .unwrap();
    // pn 1 with nothing acknowledged fits one byte; the RFC's sender used two.
    assert_eq!(b.header_len(), 19);
    let mut buf = [0u8; 135];
    let mut w = Writer::new(&mut buf);
    let b = PacketBuilder::long(
        &mut w,
        &LongHeader {
            ty: LongType::Initial,
            version,
            dst_cid: ConnectionId::EMPTY,
            src_cid: cid(SERVER_SCID),
            token: &[],
            pn: TruncatedPn::new(1, 2).unwrap(),
            grease_quic_bit: false,
        },
    )
    .unwrap();
    w.reserve(99).unwrap().fill(1);
    let layout = b.finish(&mut w, 16).unwrap();
    assert_eq!(layout.len, 135);
    assert_eq!(&w.written()[..20], &hex(header_hex)[..]);
}

#[test]
fn rfc9001_server_initial() {
    check_server_initial(V1, SERVER_INITIAL_V1);
}

#[test]
fn rfc9369_server_initial() {
    check_server_initial(V2, SERVER_INITIAL_V2);
}

fn check_retry(version: u32, packet_hex: &str) {
    let d = hex(packet_hex);
    let (pd, rest) = PartialDecode::new(&d, 8, false).unwrap();
    assert!(rest.is_empty());
    assert_eq!(
        pd.header(),
        &PlainHeader::Retry { version, dst_cid: ConnectionId::EMPTY, src_cid: cid(SERVER_SCID) }
    );
    assert_eq!(pd.pn_offset(), None);
    assert!(pd.finish(&d).is_err(), "Retry has no packet number");
    let r = RetryPacket::parse(&d).unwrap();
    assert_eq!(r.version, version);
    assert_eq!(r.dst_cid, ConnectionId::EMPTY);
    assert_eq!(r.src_cid, cid(SERVER_SCID));
    assert_eq!(r.token, b"token");
    assert_eq!(&r.integrity_tag[..], &d[d.len() - 16..]);
    assert_eq!(r.without_tag, &d[..d.len() - 16]);

    // Rebuild: same bytes (the Unused bits were all ones).
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    let h = RetryHeader {
        version,
        dst_cid: ConnectionId::EMPTY,
        src_cid: cid(SERVER_SCID),
        token: b"token",
        unused_bits: 0x0f,
    };
    let range = h.write_with_tag(&mut w, &r.integrity_tag).unwrap();
    assert_eq!(range, 0..d.len());
    assert_eq!(w.written(), &d[..]);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.5
//= type=test
//# Retry Packet {
#[test]
fn rfc9001_retry() {
    check_retry(V1, RETRY_V1);
}

//= https://www.rfc-editor.org/rfc/rfc9369#section-3.2
//= type=test
//# Retry: 0b00
#[test]
fn rfc9369_retry() {
    check_retry(V2, RETRY_V2);
}

/// RFC 9001 A.5: the ChaCha20 short-header packet, header 4200bff4, packet number 654360564.
#[test]
fn rfc9001_short_header() {
    let d = packet("4200bff4", 21);
    let (pd, rest) = PartialDecode::new(&d, 0, false).unwrap();
    assert!(rest.is_empty());
    assert_eq!(
        pd.header(),
        &PlainHeader::Short { spin: false, dst_cid: ConnectionId::EMPTY, pn_offset: 1 }
    );
    let h = pd.finish(&d).unwrap();
    assert_eq!((h.pn.len(), h.pn.value(), h.header_len, h.key_phase), (3, 0xbff4, 4, false));
    assert_eq!(h.packet_number(Some(654_360_563)), Some(654_360_564));

    let mut buf = [0u8; 21];
    let mut w = Writer::new(&mut buf);
    let b = PacketBuilder::short(
        &mut w,
        &ShortHeader {
            dst_cid: ConnectionId::EMPTY,
            spin: false,
            key_phase: false,
            pn: TruncatedPn::truncate(654_360_564, 3),
            grease_quic_bit: false,
        },
    )
    .unwrap();
    w.put_u8(0x01).unwrap(); // PING, as in A.5
    let layout = b.finish(&mut w, 16).unwrap();
    assert_eq!(&w.written()[..4], &hex("4200bff4")[..]);
    assert_eq!(layout.len, 21, "1 + 3 + 1 + 16: the sample rule is already met");
}

#[test]
fn type_bits_per_version() {
    use LongType::*;
    for (ty, v1, v2) in [(Initial, 0, 1), (ZeroRtt, 1, 2), (Handshake, 2, 3), (Retry, 3, 0)] {
        assert_eq!(ty.to_bits(V1), Some(v1));
        assert_eq!(ty.to_bits(V2), Some(v2));
        assert_eq!(LongType::from_bits(V1, v1), Some(ty));
        assert_eq!(LongType::from_bits(V2, v2), Some(ty));
    }
    assert_eq!(LongType::from_bits(0xff00_001d, 0), None);
    assert_eq!(Initial.to_bits(0x1a2a_3a4a), Some(0), "reserved: written as v1");
    assert_eq!(Initial.to_bits(0xff00_001d), None);
}
