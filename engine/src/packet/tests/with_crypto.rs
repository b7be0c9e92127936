//! The packet layer and the crypto layer together: build, seal, protect; split, unprotect,
//! finish, open. Proves the in-place flow the two layers were designed for.

use super::{cid, hex};
use crate::cid::ConnectionId;
use crate::coding::Writer;
use crate::crypto::{initial_keys, Cipher, DirectionalKeys, HashAlg, Secret, Side, Version};
use crate::packet::*;

/// RFC 9001 A.5: ChaCha20-Poly1305 short header packet carrying one PING.
const A5_SECRET: &str = "9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b";
const A5_PACKET: &str = "4cfe4189655e5cd55c41f69080575d7999c25a5bfb";
const A5_PN: u64 = 654_360_564;

fn a5_keys() -> DirectionalKeys {
    let secret = Secret::new(HashAlg::Sha256, &hex(A5_SECRET)).unwrap();
    DirectionalKeys::from_secret(Cipher::ChaCha20Poly1305, Version::V1, &secret).unwrap()
}

#[test]
fn rfc9001_a5_receive() {
    let keys = a5_keys();
    let mut d = hex(A5_PACKET);
    let mut packets = Coalesced::new(&mut d, 0, false);
    let p = packets.next().unwrap().unwrap();
    assert!(packets.next().is_none());
    let pn_offset = p.header.pn_offset().unwrap();
    keys.header.unprotect(p.bytes, pn_offset).unwrap();
    let h = p.header.finish(p.bytes).unwrap();
    assert_eq!(&p.bytes[..4], &hex("4200bff4")[..]);
    let pn = h.packet_number(Some(A5_PN - 1)).unwrap();
    assert_eq!(pn, A5_PN);
    let n = keys.packet.open_in_place(pn, p.bytes, h.header_len).unwrap();
    h.check_reserved_bits().unwrap();
    assert_eq!(&p.bytes[h.header_len..h.header_len + n], &[0x01], "one PING frame");
}

#[test]
fn rfc9001_a5_send() {
    let keys = a5_keys();
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    let b = PacketBuilder::short(
        &mut w,
        &ShortHeader {
            dst_cid: ConnectionId::EMPTY,
            spin: false,
            key_phase: false,
            // Three bytes as in the RFC (the sender's own choice of length).
            pn: TruncatedPn::truncate(A5_PN, 3),
            grease_quic_bit: false,
        },
    )
    .unwrap();
    w.put_u8(0x01).unwrap();
    let l = b.finish(&mut w, 16).unwrap();
    let packet = &mut w.written_mut()[l.range()];
    keys.packet.seal_in_place(A5_PN, packet, l.header_len).unwrap();
    keys.header.protect(packet, l.pn_offset).unwrap();
    assert_eq!(&packet[..], &hex(A5_PACKET)[..]);
}

/// A client Initial padded to 1200 bytes: sealed with
/// the client's Initial keys, read back with the server's, for both versions.
#[test]
fn initial_round_trip_through_crypto() {
    for version in [Version::V1, Version::V2] {
        let dcid = cid("8394c8f03e515708");
        let client = initial_keys(version, &dcid, Side::Client).unwrap();
        let server = initial_keys(version, &dcid, Side::Server).unwrap();
        let crypto_frame = [0x06, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef];

        let mut buf = [0u8; 1500];
        let mut w = Writer::new(&mut buf[..1300]);
        let pn = 7;
        let b = PacketBuilder::long(
            &mut w,
            &LongHeader {
                ty: LongType::Initial,
                version: version.to_wire(),
                dst_cid: dcid,
                src_cid: cid("c1"),
                token: b"retry-token",
                pn: TruncatedPn::encode(pn, None).unwrap(),
                grease_quic_bit: false,
            },
        )
        .unwrap();
        w.put_slice(&crypto_frame).unwrap();
        b.pad_datagram_to(&mut w, MIN_INITIAL_DATAGRAM_SIZE, 16).unwrap();
        let l = b.finish(&mut w, 16).unwrap();
        let packet = &mut w.written_mut()[l.range()];
        client.local.packet.seal_in_place(pn, packet, l.header_len).unwrap();
        client.local.header.protect(packet, l.pn_offset).unwrap();
        let len = w.len();
        assert_eq!(len, MIN_INITIAL_DATAGRAM_SIZE);

        let mut d = buf[..len].to_vec();
        let p = Coalesced::new(&mut d, 8, false).next().unwrap().unwrap();
        assert_eq!(p.header.long_type(), Some(LongType::Initial));
        assert_eq!(p.header.token(p.bytes), b"retry-token");
        server.remote.header.unprotect(p.bytes, p.header.pn_offset().unwrap()).unwrap();
        let h = p.header.finish(p.bytes).unwrap();
        let pn_rx = h.packet_number(None).unwrap();
        assert_eq!(pn_rx, pn);
        let n = server.remote.packet.open_in_place(pn_rx, p.bytes, h.header_len).unwrap();
        h.check_reserved_bits().unwrap();
        let plain = &p.bytes[h.header_len..h.header_len + n];
        assert_eq!(&plain[..crypto_frame.len()], &crypto_frame);
        assert!(plain[crypto_frame.len()..].iter().all(|&b| b == 0), "PADDING");
    }
}

/// A Retry built here, tagged by the crypto layer, reproduces RFC 9001 A.4 byte for byte.
#[test]
fn rfc9001_a4_retry_with_crypto_tag() {
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    let h = RetryHeader {
        version: crate::version::V1,
        dst_cid: ConnectionId::EMPTY,
        src_cid: cid("f067a5502a4262b5"),
        token: b"token",
        unused_bits: 0x0f,
    };
    let range = h.write(&mut w).unwrap();
    let tag = crate::crypto::retry_integrity_tag(
        Version::V1,
        &hex("8394c8f03e515708"),
        &w.written()[range],
    )
    .unwrap();
    w.put_slice(&tag).unwrap();
    assert_eq!(
        w.written(),
        &hex("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba")[..]
    );
    let r = RetryPacket::parse(w.written()).unwrap();
    crate::crypto::verify_retry_integrity(Version::V1, &hex("8394c8f03e515708"), w.written())
        .unwrap();
    assert_eq!(r.integrity_tag, tag);
}
