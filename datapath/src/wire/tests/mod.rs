//! Whole-frame tests: known-good captures, round trips, corruption detection, never-panic fuzzing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;
use crate::Ecn;

/// A real IPv4/UDP frame captured on an Ethernet network (sent by a Windows host: TTL 128, no
/// DF), 10.228.34.150:52157 -> 10.228.41.168:16384, with a 28-byte text payload. Both checksums
/// are the sender's and verify (IP 0x8277, UDP 0xf9bc; also checked with an independent
/// script when this test was written).
const CAPTURED_IPV4: [u8; 70] = [
    0x14, 0x2d, 0x27, 0x6e, 0x56, 0xd1, 0x44, 0x1c, 0xa8, 0x4e, 0x01, 0xa3, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x38, 0x56, 0x38, 0x00, 0x00, 0x80, 0x11, 0x82, 0x77, 0x0a, 0xe4, 0x22, 0x96, 0x0a, 0xe4,
    0x29, 0xa8, 0xcb, 0xbd, 0x40, 0x00, 0x00, 0x24, 0xf9, 0xbc, 0x4d, 0xc3, 0xb8, 0x74, 0x65, 0x20,
    0x46, 0x72, 0x20, 0x35, 0x2e, 0x35, 0x20, 0x31, 0x34, 0x3a, 0x34, 0x35, 0x20, 0x46, 0x6c, 0xc3,
    0xa5, 0x6b, 0x6c, 0x79, 0x70, 0x61,
];

/// The same datagram captured on Linux loopback (127.0.0.1 -> 127.0.0.1): checksum offload
/// leaves only the pseudo-header sum (0xfe37) in the UDP checksum field, which does not verify.
const CAPTURED_LOOPBACK_PARTIAL: [u8; 70] = [
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x38, 0x7c, 0x6c, 0x40, 0x00, 0x40, 0x11, 0xc0, 0x46, 0x7f, 0x00, 0x00, 0x01, 0x7f, 0x00,
    0x00, 0x01, 0xd7, 0xc0, 0x40, 0x00, 0x00, 0x24, 0xfe, 0x37, 0x4d, 0xc3, 0xb8, 0x74, 0x65, 0x20,
    0x46, 0x72, 0x20, 0x35, 0x2e, 0x35, 0x20, 0x31, 0x34, 0x3a, 0x34, 0x35, 0x20, 0x46, 0x6c, 0xc3,
    0xa5, 0x6b, 0x6c, 0x79, 0x70, 0x61,
];

/// A captured IPv6/UDP frame: an ISO 15118 SDP request (fe80::665:65ff:fe00:64c3 port 52399 ->
/// ff02::1 port 15118, hop limit 10), UDP checksum 0x895e.
const CAPTURED_IPV6: [u8; 72] = [
    0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x04, 0x65, 0x65, 0x00, 0x64, 0xc3, 0x86, 0xdd, 0x60, 0x00,
    0x00, 0x00, 0x00, 0x12, 0x11, 0x0a, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x65,
    0x65, 0xff, 0xfe, 0x00, 0x64, 0xc3, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xcc, 0xaf, 0x3b, 0x0e, 0x00, 0x12, 0x89, 0x5e, 0x01, 0xfe,
    0x90, 0x00, 0x00, 0x00, 0x00, 0x02, 0x10, 0x00,
];

/// A captured IPv6 DNS query (no link header) with one stray byte after the declared payload:
/// fced:172:16:201::11 port 28493 -> 2001:4860:4860::8888 port 53, UDP checksum 0xda69.
const CAPTURED_IPV6_DNS: &str = "600b2f43002b1140fced0172001602010000000000000011200148604860000000\
    000000000088886f4d0035002bda69c30a01000001000000000000037777770973746172747061676503636f6d000001\
    00013d";

fn hex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    s.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

/// Straightforward RFC 1071 sum, 16 bits at a time (independent of `checksum.rs`).
fn ref_sum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for pair in data.chunks(2) {
        s += (u32::from(pair[0]) << 8) | pair.get(1).map_or(0, |&b| u32::from(b));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Reference UDP checksum: pseudo-header spelled out byte by byte, field cleared, 0 -> ffff.
fn ref_udp_checksum(src: IpAddr, dst: IpAddr, udp: &[u8]) -> u16 {
    let mut v = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            v.extend_from_slice(&s.octets());
            v.extend_from_slice(&d.octets());
            v.extend_from_slice(&[0, 17]);
            v.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            v.extend_from_slice(&s.octets());
            v.extend_from_slice(&d.octets());
            v.extend_from_slice(&(udp.len() as u32).to_be_bytes());
            v.extend_from_slice(&[0, 0, 0, 17]);
        }
        _ => panic!("mixed families"),
    }
    let at = v.len();
    v.extend_from_slice(udp);
    v[at + 6] = 0;
    v[at + 7] = 0;
    match !ref_sum(&v) {
        0 => 0xffff,
        c => c,
    }
}

fn spec(src: SocketAddr, dst: SocketAddr) -> FrameSpec {
    FrameSpec {
        src_mac: MacAddr([0x02, 0, 0, 0, 0, 1]),
        dst_mac: MacAddr([0x02, 0, 0, 0, 0, 2]),
        vlan: None,
        src,
        dst,
        dscp: 0,
        ecn: Ecn::Ect0,
        hop_limit: 64,
        ipv4_ident: 0x1234,
        ipv6_flow_label: 0,
    }
}

fn build(spec: &FrameSpec, payload: &[u8]) -> Vec<u8> {
    let at = spec.headers_len().unwrap();
    let mut buf = vec![0u8; at + payload.len()];
    buf[at..].copy_from_slice(payload);
    assert_eq!(build_frame(&mut buf, spec, payload.len()), Ok(buf.len()));
    buf
}

fn v4_spec() -> FrameSpec {
    spec("192.0.2.1:4433".parse().unwrap(), "198.51.100.7:443".parse().unwrap())
}

fn v6_spec() -> FrameSpec {
    spec("[2001:db8::1]:4433".parse().unwrap(), "[2001:db8:ffff::7]:443".parse().unwrap())
}

#[test]
fn captured_ipv4_frame_parses_and_reemits() {
    let p = parse_frame_with(&CAPTURED_IPV4, &ParseOptions::STRICT).unwrap();
    assert_eq!(p.src, "10.228.34.150:52157".parse::<SocketAddr>().unwrap());
    assert_eq!(p.dst, "10.228.41.168:16384".parse::<SocketAddr>().unwrap());
    assert_eq!((p.ecn, p.dscp, p.hop_limit, p.vlan), (Ecn::NotEct, 0, 128, None));
    assert_eq!(p.src_mac, MacAddr([0x44, 0x1c, 0xa8, 0x4e, 0x01, 0xa3]));
    assert_eq!(p.payload, 42..70);
    assert_eq!(
        std::str::from_utf8(&CAPTURED_IPV4[p.payload]).unwrap(),
        "M\u{f8}te Fr 5.5 14:45 Fl\u{e5}klypa"
    );
    // The reprs emit the captured headers byte for byte (this sender did not set DF).
    let ip = Ipv4Repr {
        src: Ipv4Addr::new(10, 228, 34, 150),
        dst: Ipv4Addr::new(10, 228, 41, 168),
        protocol: 17,
        payload_len: 36,
        ttl: 128,
        dscp: 0,
        ecn: Ecn::NotEct,
        ident: 0x5638,
        dont_frag: false,
    };
    let mut out = CAPTURED_IPV4;
    out[14..42].fill(0);
    ip.emit(&mut out[14..34]).unwrap();
    let udp = UdpRepr { src_port: 52157, dst_port: 16384 };
    udp.emit(&mut out[34..], ip.src.into(), ip.dst.into()).unwrap();
    assert_eq!(out, CAPTURED_IPV4);
    assert_eq!(ref_udp_checksum(ip.src.into(), ip.dst.into(), &out[34..]), 0xf9bc);
}

#[test]
fn loopback_partial_checksum_is_accepted_as_partial_and_rejected_strictly() {
    // Linux's own partial checksum (captured) is what `is_partial_checksum` recognises.
    let p = parse_frame(&CAPTURED_LOOPBACK_PARTIAL).unwrap();
    assert_eq!(p.udp_checksum, UdpChecksum::Partial);
    assert_eq!(
        parse_frame_with(&CAPTURED_LOOPBACK_PARTIAL, &ParseOptions::STRICT),
        Err(WireError::BadUdpChecksum)
    );
    let trusting = ParseOptions { verify_checksums: false, ..ParseOptions::DEFAULT };
    let p = parse_frame_with(&CAPTURED_LOOPBACK_PARTIAL, &trusting).unwrap();
    assert_eq!(p.src, "127.0.0.1:55232".parse::<SocketAddr>().unwrap());
    assert_eq!(p.dst, "127.0.0.1:16384".parse::<SocketAddr>().unwrap());
}

#[test]
fn captured_ipv6_frame_parses_and_is_rebuilt_exactly() {
    let p = parse_frame_with(&CAPTURED_IPV6, &ParseOptions::STRICT).unwrap();
    let src: SocketAddr = "[fe80::665:65ff:fe00:64c3]:52399".parse().unwrap();
    let dst: SocketAddr = "[ff02::1]:15118".parse().unwrap();
    assert_eq!((p.src, p.dst), (src, dst));
    assert_eq!((p.ecn, p.dscp, p.hop_limit), (Ecn::NotEct, 0, 10));
    assert_eq!(p.dst_mac, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    assert_eq!(p.payload, 62..72);
    let spec = FrameSpec {
        src_mac: p.src_mac,
        dst_mac: p.dst_mac,
        vlan: None,
        src,
        dst,
        dscp: 0,
        ecn: Ecn::NotEct,
        hop_limit: 10,
        ipv4_ident: 0,
        ipv6_flow_label: 0,
    };
    assert_eq!(build(&spec, &CAPTURED_IPV6[62..]), CAPTURED_IPV6);
}

#[test]
fn captured_ipv6_dns_query_with_trailing_byte() {
    let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd];
    frame.extend_from_slice(&hex(CAPTURED_IPV6_DNS));
    let p = parse_frame_with(&frame, &ParseOptions::STRICT).unwrap();
    assert_eq!(p.src, "[fced:172:16:201::11]:28493".parse::<SocketAddr>().unwrap());
    assert_eq!(p.dst, "[2001:4860:4860::8888]:53".parse::<SocketAddr>().unwrap());
    // 43 bytes of UDP; the stray byte after them is not payload.
    assert_eq!(p.payload, 14 + 40 + 8..14 + 40 + 43);
    assert!(frame[p.payload].ends_with(b"\x09startpage\x03com\x00\x00\x01\x00\x01"));
}

//= https://www.rfc-editor.org/rfc/rfc9000#section-14
//= type=test
//# In IPv4 [IPv4], the Don't Fragment (DF) bit MUST be set if
//# possible, to prevent fragmentation on the path.
#[test]
fn builder_matches_known_ipv4_header() {
    // The Wikipedia "Internet checksum" example header: 115-byte datagram, DF, TTL 64, ident 0.
    let mut s = spec("192.168.0.1:1000".parse().unwrap(), "192.168.0.199:2000".parse().unwrap());
    (s.ecn, s.ipv4_ident) = (Ecn::NotEct, 0);
    let frame = build(&s, &[0x5a; 115 - 28]);
    assert_eq!(
        &frame[14..34],
        &[
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7
        ]
    );
}

#[test]
fn built_checksums_match_reference() {
    for s in [v4_spec(), v6_spec()] {
        for len in [0usize, 1, 2, 3, 7, 1200, 1201] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let f = build(&s, &payload);
            let udp_at = s.headers_len().unwrap() - 8;
            let ck = u16::from_be_bytes([f[udp_at + 6], f[udp_at + 7]]);
            assert_eq!(ck, ref_udp_checksum(s.src.ip(), s.dst.ip(), &f[udp_at..]));
            if s.src.is_ipv4() {
                assert_eq!(ref_sum(&f[14..34]), 0xffff, "IPv4 header checksum");
            }
        }
    }
}

/// Frames with structural problems are each rejected with the right error.
#[test]
fn malformed_frames() {
    let good4 = build(&v4_spec(), b"hello world");
    let good6 = build(&v6_spec(), b"hello world");
    let fix_ip = |f: &mut Vec<u8>| Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();

    let mut f = good4.clone();
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(parse_frame(&f), Err(WireError::UnsupportedEtherType(0x0806)));

    let mut f = good4.clone();
    f[14] = 0x44;
    assert_eq!(parse_frame(&f), Err(WireError::BadHeaderLength));

    let mut f = good4.clone();
    f[23] = 6;
    fix_ip(&mut f);
    assert_eq!(parse_frame(&f), Err(WireError::UnsupportedProtocol(6)));

    // IPv4 total length beyond the frame, and UDP length short of the IP payload.
    let mut f = good4.clone();
    f[17] += 1;
    fix_ip(&mut f);
    assert_eq!(parse_frame(&f), Err(WireError::Truncated));
    f.push(0);
    assert_eq!(parse_frame(&f), Err(WireError::BadLength));

    // UDP length beyond the IP payload.
    let mut f = good4.clone();
    f[39] += 1;
    assert_eq!(parse_frame(&f), Err(WireError::BadLength));

    // An IPv6 header behind the IPv4 EtherType, and the reverse.
    let mut f = good6.clone();
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    assert_eq!(parse_frame(&f), Err(WireError::BadVersion));
    let mut f = good4.clone();
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f.resize(80, 0);
    assert_eq!(parse_frame(&f), Err(WireError::BadVersion));

    // IPv6 payload length too long, then too short for the UDP length.
    let mut f = good6.clone();
    f[19] += 1;
    assert_eq!(parse_frame(&f), Err(WireError::Truncated));
    f[19] -= 2;
    assert_eq!(parse_frame(&f), Err(WireError::BadLength));

    // IPv6 zero UDP checksum.
    let mut f = good6.clone();
    f[60..62].fill(0);
    assert_eq!(parse_frame(&f), Err(WireError::BadUdpChecksum));

    // IPv4 fragment.
    let mut f = good4.clone();
    f[20] |= 0x20;
    fix_ip(&mut f);
    assert_eq!(parse_frame(&f), Err(WireError::Fragmented));

    // Every strict prefix of a frame is rejected.
    for g in [&good4, &good6] {
        for cut in 0..g.len() {
            assert!(parse_frame(&g[..cut]).is_err(), "prefix of {cut} bytes");
        }
    }
}

#[test]
fn options_extension_headers_vlan_and_padding_are_skipped() {
    let payload = b"0123456789";
    // IPv4 with one word of options (NOP NOP NOP EOL): the UDP checksum does not cover them.
    let mut f = build(&v4_spec(), payload);
    f.splice(34..34, [1, 1, 1, 0]);
    f[14] = 0x46;
    f[17] += 4;
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    let p = parse_frame_with(&f, &ParseOptions::STRICT).unwrap();
    assert_eq!(&f[p.payload], payload);

    // IPv6 with a Hop-by-Hop header (PadN): the pseudo-header length is the UDP length.
    let mut f = build(&v6_spec(), payload);
    f.splice(54..54, [17, 0, 1, 4, 0, 0, 0, 0]);
    f[20] = ipv6::NEXT_HOP_BY_HOP;
    f[19] += 8;
    let p = parse_frame_with(&f, &ParseOptions::STRICT).unwrap();
    assert_eq!(p.payload, 70..80);
    assert_eq!(&f[p.payload], payload);

    // An 802.1Q tag, and Ethernet padding to the 60-byte minimum.
    for base in [v4_spec(), v6_spec()] {
        let s = FrameSpec { vlan: Some(0x0064), ..base };
        let mut f = build(&s, b"x");
        assert_eq!(&f[12..16], &[0x81, 0x00, 0x00, 0x64]);
        f.resize(f.len().max(60) + 3, 0);
        let p = parse_frame_with(&f, &ParseOptions::STRICT).unwrap();
        assert_eq!((p.vlan, p.src, p.dst), (Some(0x64), s.src, s.dst));
        assert_eq!(&f[p.payload], b"x");
    }
}

#[test]
fn build_errors_write_nothing() {
    let s = v4_spec();
    let mut buf = vec![0x77u8; 100];
    let hl = IPV4_HEADERS_LEN;
    assert_eq!(build_frame_before(&mut buf, hl - 1, 10, &s), Err(WireError::BufferTooSmall));
    assert_eq!(build_frame_before(&mut buf, hl, 100 - hl + 1, &s), Err(WireError::BufferTooSmall));
    let mixed = FrameSpec { dst: v6_spec().dst, ..s };
    assert_eq!(build_frame(&mut buf, &mixed, 10), Err(WireError::AddressFamilyMismatch));
    assert!(buf.iter().all(|&b| b == 0x77));
    assert_eq!(build_frame_before(&mut buf, hl, 100 - hl, &s), Ok(0..100), "exactly fits");
    assert_eq!(
        build_frame_before(&mut buf, usize::MAX, usize::MAX, &s),
        Err(WireError::PayloadTooLarge)
    );

    // The largest payloads fit the length fields exactly; one more byte does not.
    for (s, max) in [(v4_spec(), frame::MAX_IPV4_PAYLOAD), (v6_spec(), frame::MAX_IPV6_PAYLOAD)] {
        let hl = s.headers_len().unwrap();
        let mut buf = vec![0u8; hl + max + 1];
        assert_eq!(build_frame(&mut buf, &s, max + 1), Err(WireError::PayloadTooLarge));
        let len = build_frame(&mut buf, &s, max).unwrap();
        let p = parse_frame_with(&buf[..len], &ParseOptions::STRICT).unwrap();
        assert_eq!(p.payload.len(), max);
    }
    assert_eq!(MAX_HEADERS_LEN, 66);
    assert_eq!(headers_len(IpVersion::V4, true), 46);
}

/// Bytes of an IPv6 frame that no check covers: traffic class, flow label and hop limit (IPv6
/// has no header checksum and the pseudo-header leaves them out), unless the version changes.
fn ipv6_unprotected(ip_at: usize, pos: usize, mask: u8) -> bool {
    (pos == ip_at && mask & 0xf0 == 0) || (ip_at + 1..ip_at + 4).contains(&pos) || pos == ip_at + 7
}

/// Flips `mask` into each byte of `frame` from the EtherType on (MAC addresses are protected by
/// the Ethernet FCS, which the NIC checks and strips) and checks that a checksum or length check
/// catches it. `unprotected(pos, mask)` marks the flips no check can see; those may parse, but
/// only to the same addresses and payload.
fn assert_corruption_detected(frame: &[u8], unprotected: impl Fn(usize, u8) -> bool) {
    let good = parse_frame_with(frame, &ParseOptions::STRICT).unwrap();
    let udp_ck_at = good.payload.start - 2;
    let mut f = frame.to_vec();
    for pos in 12..frame.len() {
        for mask in 1..=255u8 {
            f[pos] ^= mask;
            match parse_frame_with(&f, &ParseOptions::STRICT) {
                Err(_) => {}
                Ok(p) => {
                    assert!(unprotected(pos, mask), "undetected: byte {pos} ^ {mask:#04x}");
                    assert_eq!((p.src, p.dst), (good.src, good.dst));
                    assert_eq!(&f[p.payload.clone()], &frame[good.payload.clone()]);
                }
            }
            // By default a zeroed IPv4 UDP checksum means "none" (RFC 768), and a checksum
            // field holding the pseudo-header sum is a partial checksum: a flip of the
            // checksum field into one of those, and only that, also gets through.
            match parse_frame(&f) {
                Ok(p) if !unprotected(pos, mask) => {
                    assert!((udp_ck_at..udp_ck_at + 2).contains(&pos));
                    if p.udp_checksum == UdpChecksum::Zero {
                        assert!(good.src.is_ipv4());
                        assert_eq!(&f[udp_ck_at..udp_ck_at + 2], &[0, 0]);
                    } else {
                        assert_eq!(p.udp_checksum, UdpChecksum::Partial);
                    }
                }
                _ => {}
            }
            f[pos] ^= mask;
        }
    }
}

#[test]
fn every_single_byte_corruption_is_detected() {
    let odd: Vec<u8> = (0..37u8).collect();
    assert_corruption_detected(&CAPTURED_IPV4, |_, _| false);
    assert_corruption_detected(&build(&v4_spec(), &odd), |_, _| false);
    assert_corruption_detected(&build(&v6_spec(), &odd), |p, m| ipv6_unprotected(14, p, m));
    assert_corruption_detected(&CAPTURED_IPV6, |p, m| ipv6_unprotected(14, p, m));
    // With a VLAN tag, the TCI (bytes 14..16) is protected by nothing but the FCS.
    let tagged = FrameSpec { vlan: Some(5), ..v4_spec() };
    assert_corruption_detected(&build(&tagged, &odd), |p, _| (14..16).contains(&p));
    let tagged6 = FrameSpec { vlan: Some(5), ..v6_spec() };
    assert_corruption_detected(&build(&tagged6, &odd), |p, m| {
        (14..16).contains(&p) || ipv6_unprotected(18, p, m)
    });
}

#[test]
fn zeroed_udp_checksum_path_is_reachable() {
    // Find a payload whose IPv4 UDP checksum has a zero byte, then show that zeroing the other
    // byte is accepted by default and rejected by STRICT.
    let s = v4_spec();
    let (frame, ck_at) = (0u16..)
        .map(|i| build(&s, &i.to_be_bytes()))
        .find_map(|f| {
            let at = IPV4_HEADERS_LEN - 2;
            (f[at] == 0 || f[at + 1] == 0).then_some((f, at))
        })
        .unwrap();
    let mut f = frame.clone();
    f[ck_at..ck_at + 2].fill(0);
    assert!(parse_frame(&f).is_ok());
    assert_eq!(parse_frame_with(&f, &ParseOptions::STRICT), Err(WireError::BadUdpChecksum));
    assert_corruption_detected(&frame, |_, _| false);
}

fn arb_addrs() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>(), any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(a, p, b, q)| (SocketAddr::from((a, p)), SocketAddr::from((b, q)))),
        (any::<[u8; 16]>(), any::<u16>(), any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(a, p, b, q)| (SocketAddr::from((a, p)), SocketAddr::from((b, q)))),
    ]
}

fn arb_spec() -> impl Strategy<Value = FrameSpec> {
    (
        arb_addrs(),
        any::<[u8; 6]>(),
        any::<[u8; 6]>(),
        proptest::option::of(any::<u16>()),
        0u8..64,
        0u8..4,
        any::<u8>(),
        any::<u16>(),
        0u32..(1 << 20),
    )
        .prop_map(
            |((src, dst), s, d, vlan, dscp, ecn, hop_limit, ipv4_ident, ipv6_flow_label)| {
                FrameSpec {
                    src_mac: MacAddr(s),
                    dst_mac: MacAddr(d),
                    vlan,
                    src,
                    dst,
                    dscp,
                    ecn: Ecn::from_tos(ecn),
                    hop_limit,
                    ipv4_ident,
                    ipv6_flow_label,
                }
            },
        )
}

/// Reads every field of every view over `bytes`, checked and unchecked, and checks what a
/// successful check promises. Must never panic.
fn exercise_views(bytes: &[u8]) {
    let e = EthernetFrame::new_unchecked(bytes);
    let _ = (e.dst(), e.src(), e.ethertype(), e.vlan_tci(), e.payload());
    if let Ok(e) = EthernetFrame::new_checked(bytes) {
        assert_eq!(e.payload().len(), bytes.len() - e.header_len());
        let _ = EthernetRepr::parse(&e);
    }
    let v4 = Ipv4Packet::new_unchecked(bytes);
    let _ = (v4.version(), v4.ecn(), v4.ident(), v4.frag_offset(), v4.ttl());
    let _ = (v4.src_addr(), v4.dst_addr(), v4.options(), v4.payload());
    let _ = v4.verify_checksum();
    if let Ok(v4) = Ipv4Packet::new_checked(bytes) {
        assert_eq!(v4.payload().len() + v4.header_len(), usize::from(v4.total_len()));
        let _ = Ipv4Repr::parse(&v4, true);
    }
    let v6 = Ipv6Packet::new_unchecked(bytes);
    let _ = (v6.traffic_class(), v6.flow_label(), v6.hop_limit());
    let _ = (v6.src_addr(), v6.dst_addr(), v6.payload());
    if let Ok(v6) = Ipv6Packet::new_checked(bytes) {
        assert_eq!(v6.payload().len(), usize::from(v6.payload_len()));
        let _ = Ipv6Repr::parse(&v6);
    }
    let _ = ipv6::skip_extension_headers(bytes.first().copied().unwrap_or(0), bytes);
    let u = UdpPacket::new_unchecked(bytes);
    let _ = (u.src_port(), u.dst_port(), u.len(), u.checksum(), u.payload());
    let (a, b) = (IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST));
    let _ = u.verify_checksum(a, a);
    if let Ok(u) = UdpPacket::new_checked(bytes) {
        assert_eq!(u.payload().len() + 8, usize::from(u.len()));
        for opts in [ParseOptions::DEFAULT, ParseOptions::STRICT] {
            let _ = UdpRepr::parse(&u, a, a, &opts);
            let _ = UdpRepr::parse(&u, b, b, &opts);
            let _ = UdpRepr::parse(&u, a, b, &opts);
        }
    }
    // Setters on unchecked views over short or garbage buffers.
    let mut copy = bytes.to_vec();
    let mut v4 = Ipv4Packet::new_unchecked(&mut copy[..]);
    v4.set_ecn_and_update_checksum(Ecn::Ce);
    v4.fill_checksum();
    let _ = v4.payload_mut();
    let mut v6 = Ipv6Packet::new_unchecked(&mut copy[..]);
    v6.set_traffic_class(0xff);
    let _ = v6.payload_mut();
    let mut u = UdpPacket::new_unchecked(&mut copy[..]);
    u.set_dst_port(1);
    let _ = u.payload_mut();
}

fn parse_all_ways(bytes: &[u8]) {
    let trusting = ParseOptions { verify_checksums: false, ..ParseOptions::DEFAULT };
    for opts in [ParseOptions::DEFAULT, ParseOptions::STRICT, trusting] {
        if let Ok(p) = parse_frame_with(bytes, &opts) {
            assert!(p.payload.start <= p.payload.end && p.payload.end <= bytes.len());
        }
    }
    exercise_views(bytes);
    if bytes.len() > 14 {
        exercise_views(&bytes[14..]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn emit_parse_round_trip(
        spec in arb_spec(),
        payload in proptest::collection::vec(any::<u8>(), 0..1600),
        headroom in 0usize..24,
        tail in 0usize..8,
    ) {
        let at = spec.headers_len().unwrap() + headroom;
        let mut buf = vec![0xa5u8; at + payload.len() + tail];
        buf[at..at + payload.len()].copy_from_slice(&payload);
        let range = build_frame_before(&mut buf, at, payload.len(), &spec).unwrap();
        prop_assert_eq!(range.clone(), headroom..at + payload.len());
        let frame = &buf[range];
        let p = parse_frame_with(frame, &ParseOptions::STRICT).unwrap();
        prop_assert_eq!((p.src, p.dst, p.src_mac, p.dst_mac), (spec.src, spec.dst, spec.src_mac, spec.dst_mac));
        prop_assert_eq!((p.vlan, p.ecn, p.dscp, p.hop_limit), (spec.vlan, spec.ecn, spec.dscp, spec.hop_limit));
        prop_assert_eq!(&frame[p.payload.clone()], &payload[..]);
        // Independent checks of both checksums.
        let udp_at = p.payload.start - 8;
        let ck = u16::from_be_bytes([frame[udp_at + 6], frame[udp_at + 7]]);
        prop_assert_eq!(ck, ref_udp_checksum(spec.src.ip(), spec.dst.ip(), &frame[udp_at..]));
        if spec.src.is_ipv4() {
            prop_assert_eq!(ref_sum(&frame[udp_at - 20..udp_at]), 0xffff);
        }
        // The headers do not touch anything outside the frame.
        prop_assert!(buf[..headroom].iter().all(|&b| b == 0xa5));
        prop_assert!(buf[at + payload.len()..].iter().all(|&b| b == 0xa5));
    }

    #[test]
    fn random_single_byte_corruption_is_detected(
        spec in arb_spec(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        pos in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let mut f = build(&spec, &payload);
        let ip_at = if spec.vlan.is_some() { 18 } else { 14 };
        let pos = 12 + pos.index(f.len() - 12);
        f[pos] ^= mask;
        let unprotected = (spec.vlan.is_some() && (14..16).contains(&pos))
            || (spec.src.is_ipv6() && ipv6_unprotected(ip_at, pos, mask));
        match parse_frame_with(&f, &ParseOptions::STRICT) {
            Err(_) => {}
            Ok(p) => {
                prop_assert!(unprotected, "undetected: byte {} ^ {:#04x}", pos, mask);
                prop_assert_eq!((p.src, p.dst), (spec.src, spec.dst));
                prop_assert_eq!(&f[p.payload], &payload[..]);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        parse_all_ways(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(
        spec in arb_spec(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut f = build(&spec, &payload);
        for (at, v) in edits {
            let i = at.index(f.len());
            f[i] = v;
        }
        let cut = cut.index(f.len() + 1);
        parse_all_ways(&f[..cut]);
        parse_all_ways(&f);
    }
}

/// Replaces the UDP checksum of a built frame with the partial checksum a Linux sender leaves
/// for its offload: the folded pseudo-header sum, not complemented.
fn make_partial(frame: &mut [u8], spec: &FrameSpec) {
    let p = parse_frame_with(frame, &ParseOptions::STRICT).unwrap();
    let udp_at = p.payload.start - udp::HEADER_LEN;
    let udp_len = frame.len() - udp_at;
    let sum = udp::pseudo_header(spec.src.ip(), spec.dst.ip(), udp_len).unwrap().sum();
    frame[udp_at + 6..udp_at + 8].copy_from_slice(&sum.to_be_bytes());
}

#[test]
fn udp_checksums_are_classified_full_partial_or_bad() {
    let payload: Vec<u8> = (0..101u8).collect();
    for spec in [v4_spec(), v6_spec()] {
        let full = build(&spec, &payload);
        let ck_at = parse_frame(&full).unwrap().payload.start - 2;
        let class = |f: &[u8], o: &ParseOptions| parse_frame_with(f, o).map(|p| p.udp_checksum);
        for o in [ParseOptions::DEFAULT, ParseOptions::STRICT] {
            assert_eq!(class(&full, &o), Ok(UdpChecksum::Verified), "full, {o:?}");
        }

        // Partial: accepted and said so by default, refused by STRICT.
        let mut partial = full.clone();
        make_partial(&mut partial, &spec);
        assert_ne!(partial[ck_at..ck_at + 2], full[ck_at..ck_at + 2]);
        let p = parse_frame(&partial).unwrap();
        assert_eq!(p.udp_checksum, UdpChecksum::Partial);
        assert_eq!((p.src, p.dst), (spec.src, spec.dst));
        assert_eq!(&partial[p.payload], &payload[..]);
        assert_eq!(class(&partial, &ParseOptions::STRICT), Err(WireError::BadUdpChecksum));
        let no_partial =
            ParseOptions { accept_partial_udp_checksum: false, ..ParseOptions::DEFAULT };
        assert_eq!(class(&partial, &no_partial), Err(WireError::BadUdpChecksum));
        // The payload is not covered by a partial checksum (QUIC's AEAD covers it) ...
        let mut partial_payload = partial.clone();
        partial_payload[ck_at + 10] ^= 0x40;
        assert_eq!(class(&partial_payload, &ParseOptions::DEFAULT), Ok(UdpChecksum::Partial));
        // ... but the pseudo-header is: the sum of another destination is not our partial.
        let other_dst = if spec.src.is_ipv4() { "198.51.100.8:443" } else { "[2001:db8::9]:443" };
        let other = FrameSpec { dst: other_dst.parse().unwrap(), ..spec };
        let mut wrong = full.clone();
        make_partial(&mut wrong, &other);
        assert_eq!(class(&wrong, &ParseOptions::DEFAULT), Err(WireError::BadUdpChecksum));

        // Corrupted: a full checksum with a flipped payload bit, or a checksum off by one.
        let mut corrupt = full.clone();
        corrupt[ck_at + 10] ^= 0x40;
        assert_eq!(class(&corrupt, &ParseOptions::DEFAULT), Err(WireError::BadUdpChecksum));
        let mut off = full.clone();
        off[ck_at + 1] ^= 0x01;
        assert_eq!(class(&off, &ParseOptions::DEFAULT), Err(WireError::BadUdpChecksum));

        // Unverified when checks are off.
        let trusting = ParseOptions { verify_checksums: false, ..ParseOptions::DEFAULT };
        assert_eq!(class(&corrupt, &trusting), Ok(UdpChecksum::Unverified));
    }
}
