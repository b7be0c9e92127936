//! Coalesced datagrams: building several packets into one buffer and splitting them again.

use super::cid;
use crate::cid::ConnectionId;
use crate::coding::Writer;
use crate::packet::*;
use crate::version::V1;

fn long(
    w: &mut Writer<'_>,
    ty: LongType,
    dcid: ConnectionId,
    pn: u32,
    frames: usize,
) -> PacketLayout {
    let b = PacketBuilder::long(
        w,
        &LongHeader {
            ty,
            version: V1,
            dst_cid: dcid,
            src_cid: cid("5eed"),
            token: if ty == LongType::Initial { b"tk" } else { &[] },
            pn: TruncatedPn::new(pn, 2).unwrap(),
            grease_quic_bit: false,
        },
    )
    .unwrap();
    w.reserve(frames).unwrap().fill(0x01);
    b.finish(w, 16).unwrap()
}

fn short(w: &mut Writer<'_>, dcid: ConnectionId, frames: usize) -> PacketLayout {
    let b = PacketBuilder::short(
        w,
        &ShortHeader {
            dst_cid: dcid,
            spin: false,
            key_phase: false,
            pn: TruncatedPn::new(9, 1).unwrap(),
            grease_quic_bit: false,
        },
    )
    .unwrap();
    w.reserve(frames).unwrap().fill(0x01);
    b.finish(w, 16).unwrap()
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-12.2
//= type=test
//# Receivers MUST be able to
//# process coalesced packets.
#[test]
fn initial_handshake_and_one_rtt_in_one_datagram() {
    let dcid = cid("0011223344556677");
    let mut buf = [0u8; 1500];
    let mut w = Writer::new(&mut buf);
    let a = long(&mut w, LongType::Initial, dcid, 0, 50);
    let b = long(&mut w, LongType::Handshake, dcid, 1, 30);
    let c = short(&mut w, dcid, 100);
    assert_eq!(a.start + a.len, b.start);
    assert_eq!(b.start + b.len, c.start);
    let len = w.len();
    assert_eq!(c.start + c.len, len);
    let mut datagram = buf[..len].to_vec();
    let items: Vec<_> = Coalesced::new(&mut datagram, 8, false).collect();
    assert_eq!(items.len(), 3);
    let got: Vec<(usize, usize, Option<LongType>)> = items
        .iter()
        .map(|i| {
            let p = i.as_ref().unwrap();
            (p.offset, p.bytes.len(), p.header.long_type())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (a.start, a.len, Some(LongType::Initial)),
            (b.start, b.len, Some(LongType::Handshake)),
            (c.start, c.len, None),
        ]
    );
    for (item, layout) in items.iter().zip([a, b, c]) {
        let p = item.as_ref().unwrap();
        assert_eq!(p.header.pn_offset(), Some(layout.pn_offset));
        assert_eq!(p.header.finish(p.bytes).unwrap().header_len, layout.header_len);
    }
    let first = items[0].as_ref().unwrap();
    assert_eq!(first.header.token(first.bytes), b"tk");

    // Each packet is handed out mutably, so protection can be removed in place.
    let mut datagram = buf[..len].to_vec();
    for p in Coalesced::new(&mut datagram, 8, false) {
        p.unwrap().bytes[0] ^= 0x0f;
    }
    assert_eq!(datagram[a.start], buf[a.start] ^ 0x0f);
    assert_eq!(datagram[c.start], buf[c.start] ^ 0x0f);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-12.2
//= type=test
//# Receivers
//# SHOULD ignore any subsequent packets with a different Destination
//# Connection ID than the first packet in the datagram.
#[test]
fn different_dcid_is_skipped_and_later_packets_still_returned() {
    let mut buf = [0u8; 1500];
    let mut w = Writer::new(&mut buf);
    long(&mut w, LongType::Initial, cid("aaaa"), 0, 40);
    long(&mut w, LongType::Handshake, cid("bbbb"), 0, 40);
    let last = long(&mut w, LongType::Handshake, cid("aaaa"), 1, 40);
    let len = w.len();
    let mut d = buf[..len].to_vec();
    let items: Vec<_> = Coalesced::new(&mut d, 2, false).map(|r| r.map(|p| p.offset)).collect();
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok());
    assert_eq!(items[1], Err(PacketDecodeError::DcidMismatch));
    assert_eq!(items[2], Ok(last.start));
}

#[test]
fn junk_after_packets_ends_iteration_with_one_error() {
    let mut buf = [0u8; 1500];
    let mut w = Writer::new(&mut buf);
    long(&mut w, LongType::Initial, cid("aaaa"), 0, 40);
    let end = w.len();
    // Zero bytes after the last packet (a peer padding outside any packet).
    let mut d = buf[..end + 30].to_vec();
    let mut it = Coalesced::new(&mut d, 2, false);
    assert!(it.next().unwrap().is_ok());
    assert_eq!(it.remaining(), 30);
    assert!(matches!(it.next(), Some(Err(PacketDecodeError::Invalid(_)))));
    assert!(it.next().is_none());
    assert!(it.next().is_none());
}

#[test]
fn short_header_takes_the_rest() {
    let mut buf = [0u8; 200];
    let mut w = Writer::new(&mut buf);
    short(&mut w, cid("aaaa"), 10);
    // A long header after a short one is just part of the short packet's payload.
    long(&mut w, LongType::Handshake, cid("aaaa"), 0, 10);
    let len = w.len();
    let mut d = buf[..len].to_vec();
    let items: Vec<_> = Coalesced::new(&mut d, 2, false).collect();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_ref().unwrap().bytes.len(), len);
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-12.2
//= type=test
//# Note also that there is no situation where
//# a Retry or Version Negotiation packet is coalesced with another
//# packet.
#[test]
fn retry_or_vn_after_a_packet_is_dropped() {
    let mut buf = [0u8; 300];
    let mut w = Writer::new(&mut buf);
    long(&mut w, LongType::Initial, cid("aaaa"), 0, 40);
    let tag = [7u8; RETRY_INTEGRITY_TAG_LEN];
    RetryHeader {
        version: V1,
        dst_cid: cid("aaaa"),
        src_cid: cid("01"),
        token: b"t",
        unused_bits: 0,
    }
    .write_with_tag(&mut w, &tag)
    .unwrap();
    let len = w.len();
    let mut d = buf[..len].to_vec();
    let items: Vec<_> = Coalesced::new(&mut d, 2, false).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert!(matches!(items[1], Err(PacketDecodeError::Invalid(_))));
}

#[test]
fn initial_padding_helper_reaches_1200() {
    let mut buf = [0u8; 1500];
    let mut w = Writer::new(&mut buf[..1350]);
    let b = PacketBuilder::long(
        &mut w,
        &LongHeader {
            ty: LongType::Initial,
            version: V1,
            dst_cid: cid("0011223344556677"),
            src_cid: cid("01"),
            token: &[],
            pn: TruncatedPn::new(0, 1).unwrap(),
            grease_quic_bit: false,
        },
    )
    .unwrap();
    w.put_slice(&[6, 0, 3, 1, 2, 3]).unwrap();
    b.pad_datagram_to(&mut w, MIN_INITIAL_DATAGRAM_SIZE, 16).unwrap();
    let l = b.finish(&mut w, 16).unwrap();
    assert_eq!(l.len, MIN_INITIAL_DATAGRAM_SIZE);
    // Already big enough: nothing added.
    let before = w.len();
    b.pad_datagram_to(&mut w, 100, 16).unwrap();
    assert_eq!(w.len(), before);
    let d = w.written().to_vec();
    let (pd, rest) = PartialDecode::new(&d, 8, false).unwrap();
    assert!(rest.is_empty());
    assert_eq!(pd.len(), MIN_INITIAL_DATAGRAM_SIZE);
}
