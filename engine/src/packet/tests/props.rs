//! Property tests: every header form round-trips, and no decoder panics on any input.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::cid::ConnectionId;
use crate::coding::Writer;
use crate::packet::*;
use crate::version::{V1, V2};

fn any_cid() -> impl Strategy<Value = ConnectionId> {
    vec(any::<u8>(), 0..=20).prop_map(|b| ConnectionId::new(&b).unwrap())
}

fn any_pn() -> impl Strategy<Value = TruncatedPn> {
    (1usize..=4, any::<u32>()).prop_map(|(len, v)| TruncatedPn::truncate(u64::from(v), len))
}

fn any_protected_type() -> impl Strategy<Value = LongType> {
    prop_oneof![Just(LongType::Initial), Just(LongType::ZeroRtt), Just(LongType::Handshake)]
}

fn any_version() -> impl Strategy<Value = u32> {
    prop_oneof![Just(V1), Just(V2)]
}

proptest! {
    #[test]
    fn long_header_round_trip(
        ty in any_protected_type(),
        version in any_version(),
        dst_cid in any_cid(),
        src_cid in any_cid(),
        token in vec(any::<u8>(), 0..80),
        pn in any_pn(),
        frames in 1usize..300,
        tag_len in 0usize..=16,
        grease in any::<bool>(),
        buf_len in 400usize..20_000,
        prefix in 0usize..50,
    ) {
        let token: &[u8] = if ty == LongType::Initial { &token } else { &[] };
        let mut buf = vec![0x5a; buf_len];
        let mut w = Writer::new(&mut buf);
        w.reserve(prefix).unwrap(); // an earlier coalesced packet
        let h = LongHeader { ty, version, dst_cid, src_cid, token, pn, grease_quic_bit: grease };
        let b = PacketBuilder::long(&mut w, &h).unwrap();
        w.reserve(frames).unwrap().fill(1);
        let l = b.finish(&mut w, tag_len).unwrap();
        prop_assert_eq!(l.start, prefix);
        prop_assert_eq!(l.start + l.len, w.len());
        prop_assert!(l.len - l.pn_offset >= HP_SAMPLE_OFFSET + HP_SAMPLE_LEN);
        let packet = &w.written()[l.range()];

        let (pd, rest) = PartialDecode::new(packet, 0, grease).unwrap();
        prop_assert!(rest.is_empty());
        prop_assert_eq!(pd.len(), l.len);
        prop_assert_eq!(pd.pn_offset(), Some(l.pn_offset));
        prop_assert_eq!(pd.long_type(), Some(ty));
        prop_assert_eq!(pd.version(), Some(version));
        prop_assert_eq!(pd.dst_cid(), &dst_cid);
        prop_assert_eq!(pd.src_cid(), Some(&src_cid));
        prop_assert_eq!(pd.token(packet), token);
        if grease {
            prop_assert_eq!(packet[0] & FIXED_BIT, 0);
            prop_assert!(PartialDecode::new(packet, 0, false).is_err());
        }
        let d = pd.finish(packet).unwrap();
        prop_assert_eq!(d.pn, pn);
        prop_assert_eq!(d.header_len, l.header_len);
        prop_assert!(d.check_reserved_bits().is_ok());
    }

    #[test]
    fn short_header_round_trip(
        dst_cid in any_cid(),
        spin in any::<bool>(),
        key_phase in any::<bool>(),
        pn in any_pn(),
        frames in 1usize..300,
        grease in any::<bool>(),
    ) {
        let mut buf = [0u8; 400];
        let mut w = Writer::new(&mut buf);
        let h = ShortHeader { dst_cid, spin, key_phase, pn, grease_quic_bit: grease };
        let b = PacketBuilder::short(&mut w, &h).unwrap();
        w.reserve(frames).unwrap().fill(1);
        let l = b.finish(&mut w, 16).unwrap();
        let packet = w.written();
        let (pd, _) = PartialDecode::new(packet, dst_cid.len(), grease).unwrap();
        prop_assert_eq!(pd.header(), &PlainHeader::Short { spin, dst_cid, pn_offset: l.pn_offset });
        prop_assert_eq!(pd.len(), l.len);
        let d = pd.finish(packet).unwrap();
        prop_assert_eq!((d.pn, d.key_phase, d.header_len), (pn, key_phase, l.header_len));
        prop_assert!(d.check_reserved_bits().is_ok());
    }

    #[test]
    fn retry_round_trip(
        version in any_version(),
        dst_cid in any_cid(),
        src_cid in any_cid(),
        token in vec(any::<u8>(), 1..100),
        tag in any::<[u8; 16]>(),
        unused_bits in any::<u8>(),
    ) {
        let mut buf = [0u8; 200];
        let mut w = Writer::new(&mut buf);
        let h = RetryHeader { version, dst_cid, src_cid, token: &token, unused_bits };
        h.write_with_tag(&mut w, &tag).unwrap();
        let packet = w.written();
        let r = RetryPacket::parse(packet).unwrap();
        prop_assert_eq!((r.version, r.dst_cid, r.src_cid), (version, dst_cid, src_cid));
        prop_assert_eq!(r.token, &token[..]);
        prop_assert_eq!(r.integrity_tag, tag);
        let (pd, _) = PartialDecode::new(packet, 0, false).unwrap();
        prop_assert_eq!(pd.header(), &PlainHeader::Retry { version, dst_cid, src_cid });
    }

    #[test]
    fn version_negotiation_round_trip(
        dst_cid in vec(any::<u8>(), 0..=255),
        src_cid in vec(any::<u8>(), 0..=255),
        versions in vec(any::<u32>(), 1..20),
        unused in any::<u8>(),
    ) {
        let mut buf = [0u8; 700];
        let mut w = Writer::new(&mut buf);
        write_version_negotiation(&mut w, unused, &dst_cid, &src_cid, &versions).unwrap();
        let packet = w.written();
        prop_assert_eq!(packet[0] & 0xc0, 0xc0);
        let vn = VersionNegotiation::parse(packet).unwrap();
        prop_assert_eq!(vn.dst_cid, &dst_cid[..]);
        prop_assert_eq!(vn.src_cid, &src_cid[..]);
        prop_assert_eq!(vn.versions().collect::<Vec<_>>(), versions);
        // The reply to a received header swaps its IDs.
        let received = InvariantHeader::Long { first_byte: 0xc0, version: 0x0a0a_0a0a, dst_cid: &dst_cid, src_cid: &src_cid };
        let mut buf2 = [0u8; 700];
        let mut w2 = Writer::new(&mut buf2);
        write_version_negotiation_response(&mut w2, unused, &received, &[V1]).unwrap();
        let reply = VersionNegotiation::parse(w2.written()).unwrap();
        prop_assert_eq!((reply.dst_cid, reply.src_cid), (&src_cid[..], &dst_cid[..]));
    }

    /// No decoder panics on arbitrary bytes, whatever the parameters.
    #[test]
    fn decoders_never_panic(data in vec(any::<u8>(), 0..1400), cid_len in 0usize..=30, grease in any::<bool>()) {
        let _ = InvariantHeader::parse(&data, cid_len);
        if let Ok((pd, rest)) = PartialDecode::new(&data, cid_len, grease) {
            prop_assert_eq!(pd.len() + rest.len(), data.len());
            let _ = pd.finish(&data);
            let _ = pd.finish(&data[..data.len() / 2]);
            let _ = pd.token(&data[..data.len() / 3]);
        }
        let mut copy = data.clone();
        for _ in Coalesced::new(&mut copy, cid_len, grease) {}
        let _ = RetryPacket::parse(&data);
        let _ = VersionNegotiation::parse(&data);
        let _ = fuzz::invariant(&data);
        let _ = fuzz::partial_decode(&data);
        let _ = fuzz::coalesced(&data);
        let _ = fuzz::retry(&data);
        let _ = fuzz::version_negotiation(&data);
    }

    /// Valid packets with bytes flipped reach deeper paths than random bytes do.
    #[test]
    fn mutated_packets_never_panic(
        dst_cid in any_cid(),
        pn in any_pn(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        truncate in any::<prop::sample::Index>(),
        grease in any::<bool>(),
    ) {
        let mut buf = [0u8; 600];
        let mut w = Writer::new(&mut buf);
        for ty in [LongType::Initial, LongType::Handshake] {
            let token: &[u8] = if ty == LongType::Initial { b"xy" } else { &[] };
            let h = LongHeader { ty, version: V1, dst_cid, src_cid: dst_cid, token, pn, grease_quic_bit: false };
            let b = PacketBuilder::long(&mut w, &h).unwrap();
            w.put_slice(&[1; 30]).unwrap();
            b.finish(&mut w, 16).unwrap();
        }
        let h = ShortHeader { dst_cid, spin: true, key_phase: false, pn, grease_quic_bit: false };
        let b = PacketBuilder::short(&mut w, &h).unwrap();
        w.put_slice(&[1; 30]).unwrap();
        b.finish(&mut w, 16).unwrap();
        let mut d = w.written().to_vec();
        for (i, x) in flips {
            let i = i.index(d.len());
            d[i] ^= x;
        }
        d.truncate(truncate.index(d.len() + 1));
        let mut input = vec![dst_cid.len() as u8 | if grease { 0x80 } else { 0 }];
        input.extend_from_slice(&d);
        let _ = fuzz::partial_decode(&input);
        let _ = fuzz::coalesced(&input);
        let mut copy = d.clone();
        for p in Coalesced::new(&mut copy, dst_cid.len(), grease).flatten() {
            let _ = p.header.finish(p.bytes);
        }
    }
}

#[test]
fn unmutated_coalesced_datagram_parses_fully() {
    let mut buf = [0u8; 600];
    let mut w = Writer::new(&mut buf);
    let dst_cid = ConnectionId::new(&[3; 8]).unwrap();
    let pn = TruncatedPn::new(1, 1).unwrap();
    for ty in [LongType::Initial, LongType::Handshake] {
        let h = LongHeader {
            ty,
            version: V1,
            dst_cid,
            src_cid: dst_cid,
            token: &[],
            pn,
            grease_quic_bit: false,
        };
        let b = PacketBuilder::long(&mut w, &h).unwrap();
        w.put_slice(&[1; 30]).unwrap();
        b.finish(&mut w, 16).unwrap();
    }
    let mut input = vec![8u8];
    input.extend_from_slice(w.written());
    assert_eq!(fuzz::coalesced(&input), Ok(2));
    assert_eq!(fuzz::partial_decode(&input), Ok(()));
}
