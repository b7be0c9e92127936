//! Whole Ethernet + IP + UDP frames: build headers around a placed payload, parse received ones.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use super::ethernet::{self, EtherType, EthernetFrame, EthernetRepr, MacAddr};
use super::ipv4::{self, Ipv4Packet, Ipv4Repr};
use super::ipv6::{self, Ipv6Packet, Ipv6Repr};
use super::udp::{self, ParseOptions, UdpChecksum, UdpPacket, UdpRepr};
use super::{WireError, IP_PROTOCOL_UDP};
use crate::Ecn;

/// Headers of an untagged Ethernet + IPv4 + UDP frame: 14 + 20 + 8 bytes.
pub const IPV4_HEADERS_LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;
/// Headers of an untagged Ethernet + IPv6 + UDP frame: 14 + 40 + 8 bytes.
pub const IPV6_HEADERS_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + udp::HEADER_LEN;
/// The most headroom [`build_frame_before`] can need: IPv6 with a VLAN tag (66 bytes).
pub const MAX_HEADERS_LEN: usize = IPV6_HEADERS_LEN + ethernet::VLAN_TAG_LEN;
/// Largest UDP payload of an IPv4 frame (total length 65535 minus 28 bytes of headers).
pub const MAX_IPV4_PAYLOAD: usize = ipv4::MAX_TOTAL_LEN - ipv4::HEADER_LEN - udp::HEADER_LEN;
/// Largest UDP payload of an IPv6 frame (payload length 65535 minus the 8-byte UDP header).
pub const MAX_IPV6_PAYLOAD: usize = ipv6::MAX_PAYLOAD_LEN - udp::HEADER_LEN;

/// An IP version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpVersion {
    /// The version of `addr`.
    pub fn of(addr: &SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(_) => IpVersion::V4,
            SocketAddr::V6(_) => IpVersion::V6,
        }
    }
}

/// Length of the Ethernet (with `vlan_tagged`, one 802.1Q tag), IP and UDP headers in front of
/// a UDP payload: the headroom a caller reserves before writing the payload.
pub const fn headers_len(version: IpVersion, vlan_tagged: bool) -> usize {
    let base = match version {
        IpVersion::V4 => IPV4_HEADERS_LEN,
        IpVersion::V6 => IPV6_HEADERS_LEN,
    };
    if vlan_tagged {
        base + ethernet::VLAN_TAG_LEN
    } else {
        base
    }
}

/// Everything the headers of a transmitted frame say besides the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameSpec {
    /// Source MAC address (our interface).
    pub src_mac: MacAddr,
    /// Destination MAC address (the peer or the next-hop router).
    pub dst_mac: MacAddr,
    /// 802.1Q Tag Control Information, or `None` for an untagged frame.
    pub vlan: Option<u16>,
    /// Source address and port; the same IP version as `dst`.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// Differentiated Services Code Point (six bits; higher bits are ignored).
    pub dscp: u8,
    /// ECN codepoint (the low bits of the TOS / traffic class byte).
    pub ecn: Ecn,
    /// IPv4 TTL or IPv6 hop limit (64 is the usual default).
    pub hop_limit: u8,
    /// IPv4 identification (ignored for IPv6). With DF set it only needs to be unique enough
    /// for duplicate detection (RFC 6864); a per-queue counter will do.
    pub ipv4_ident: u16,
    /// IPv6 flow label (20 bits; ignored for IPv4). 0 when unused.
    pub ipv6_flow_label: u32,
}

impl FrameSpec {
    /// The IP version of `src` and `dst`, or [`WireError::AddressFamilyMismatch`].
    pub fn ip_version(&self) -> Result<IpVersion, WireError> {
        let v = IpVersion::of(&self.src);
        if v != IpVersion::of(&self.dst) {
            return Err(WireError::AddressFamilyMismatch);
        }
        Ok(v)
    }

    /// Length of the headers this spec produces (see [`headers_len`]).
    pub fn headers_len(&self) -> Result<usize, WireError> {
        Ok(headers_len(self.ip_version()?, self.vlan.is_some()))
    }
}

/// Writes the Ethernet, IP and UDP headers of `spec` into `buf` in front of a payload of
/// `payload_len` bytes already placed at `buf[spec.headers_len()?..]`, with the IPv4 header
/// checksum and the full UDP checksum. Returns the frame length: the frame is
/// `buf[..frame_len]`.
pub fn build_frame(
    buf: &mut [u8],
    spec: &FrameSpec,
    payload_len: usize,
) -> Result<usize, WireError> {
    let at = spec.headers_len()?;
    build_frame_before(buf, at, payload_len, spec).map(|r| r.end)
}

/// Writes the headers of `spec` right in front of a payload of `payload_len` bytes already
/// placed at `buf[payload_offset..]`, and returns the frame's range in `buf`.
///
/// A caller that does not know the address family in advance reserves [`MAX_HEADERS_LEN`] of
/// headroom and hands the returned range (which may start past 0) to the NIC.
///
/// Errors: [`WireError::BufferTooSmall`] when the headroom is short or the payload does not fit
/// `buf`, [`WireError::PayloadTooLarge`] beyond [`MAX_IPV4_PAYLOAD`] / [`MAX_IPV6_PAYLOAD`],
/// [`WireError::AddressFamilyMismatch`] when `src` and `dst` differ in version. Nothing is
/// written on error.
pub fn build_frame_before(
    buf: &mut [u8],
    payload_offset: usize,
    payload_len: usize,
    spec: &FrameSpec,
) -> Result<Range<usize>, WireError> {
    let version = spec.ip_version()?;
    let max_payload = match version {
        IpVersion::V4 => MAX_IPV4_PAYLOAD,
        IpVersion::V6 => MAX_IPV6_PAYLOAD,
    };
    if payload_len > max_payload {
        return Err(WireError::PayloadTooLarge);
    }
    let headers = headers_len(version, spec.vlan.is_some());
    let start = payload_offset.checked_sub(headers).ok_or(WireError::BufferTooSmall)?;
    let end = payload_offset
        .checked_add(payload_len)
        .filter(|&end| end <= buf.len())
        .ok_or(WireError::BufferTooSmall)?;
    let frame = &mut buf[start..end];

    let eth = EthernetRepr {
        dst: spec.dst_mac,
        src: spec.src_mac,
        vlan: spec.vlan,
        ethertype: match version {
            IpVersion::V4 => EtherType::IPV4,
            IpVersion::V6 => EtherType::IPV6,
        },
    };
    let ip_at = eth.emit(frame)?;
    let udp_len = udp::HEADER_LEN + payload_len;
    let (src_ip, dst_ip) = (spec.src.ip(), spec.dst.ip());
    let udp_at = match (src_ip, dst_ip) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-14
            //# In IPv4 [IPv4], the Don't Fragment (DF) bit MUST be set if
            //# possible, to prevent fragmentation on the path.
            let ip = Ipv4Repr {
                src,
                dst,
                protocol: IP_PROTOCOL_UDP,
                payload_len: udp_len,
                ttl: spec.hop_limit,
                dscp: spec.dscp,
                ecn: spec.ecn,
                ident: spec.ipv4_ident,
                dont_frag: true,
            };
            ip.emit(&mut frame[ip_at..])?;
            ip_at + ip.header_len()
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let ip = Ipv6Repr {
                src,
                dst,
                next_header: IP_PROTOCOL_UDP,
                payload_len: udp_len,
                hop_limit: spec.hop_limit,
                dscp: spec.dscp,
                ecn: spec.ecn,
                flow_label: spec.ipv6_flow_label,
            };
            ip.emit(&mut frame[ip_at..])?;
            ip_at + ip.header_len()
        }
        _ => return Err(WireError::AddressFamilyMismatch),
    };
    let udp = UdpRepr { src_port: spec.src.port(), dst_port: spec.dst.port() };
    udp.emit(&mut frame[udp_at..], src_ip, dst_ip)?;
    Ok(start..end)
}

/// What a received frame says.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ParsedFrame {
    /// Source MAC address.
    pub src_mac: MacAddr,
    /// Destination MAC address.
    pub dst_mac: MacAddr,
    /// 802.1Q / 802.1ad Tag Control Information, when the frame was tagged.
    pub vlan: Option<u16>,
    /// Source address and port (the peer).
    pub src: SocketAddr,
    /// Destination address and port (ours).
    pub dst: SocketAddr,
    /// ECN codepoint.
    pub ecn: Ecn,
    /// Differentiated Services Code Point.
    pub dscp: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub hop_limit: u8,
    /// Where the UDP payload lies in the frame.
    pub payload: Range<usize>,
    /// What the UDP checksum proved (a partial one is accepted only as the options allow).
    pub udp_checksum: UdpChecksum,
}

/// Parses a received Ethernet + IPv4/IPv6 + UDP frame with [`ParseOptions::DEFAULT`].
pub fn parse_frame(frame: &[u8]) -> Result<ParsedFrame, WireError> {
    parse_frame_with(frame, &ParseOptions::DEFAULT)
}

/// Parses a received Ethernet + IPv4/IPv6 + UDP frame.
///
/// One VLAN tag is skipped; trailing bytes past the IP length (Ethernet padding) are ignored;
/// IPv4 options and the IPv6 extension headers [`ipv6::skip_extension_headers`] accepts are
/// skipped. The UDP length must equal the IP payload length. Checksums are verified as
/// `options` say, and [`ParsedFrame::udp_checksum`] tells what the UDP one proved (with
/// [`ParseOptions::DEFAULT`] a partial checksum is accepted as [`UdpChecksum::Partial`]).
/// Never panics, whatever `frame` holds.
pub fn parse_frame_with(frame: &[u8], options: &ParseOptions) -> Result<ParsedFrame, WireError> {
    let eth_view = EthernetFrame::new_checked(frame)?;
    let eth = EthernetRepr::parse(&eth_view)?;
    let ip_at = eth_view.header_len();
    let ip_bytes = eth_view.payload();

    let (src_ip, dst_ip, ecn, dscp, hop_limit, udp_at, udp_bytes) = match eth.ethertype {
        EtherType::IPV4 => {
            let view = Ipv4Packet::new_checked(ip_bytes)?;
            let ip = Ipv4Repr::parse(&view, options.verify_checksums)?;
            if ip.protocol != IP_PROTOCOL_UDP {
                return Err(WireError::UnsupportedProtocol(ip.protocol));
            }
            let udp_at = ip_at + view.header_len();
            let (src, dst) = (IpAddr::V4(ip.src), IpAddr::V4(ip.dst));
            let udp_bytes =
                ip_bytes.get(view.header_len()..usize::from(view.total_len())).unwrap_or(&[]);
            (src, dst, ip.ecn, ip.dscp, ip.ttl, udp_at, udp_bytes)
        }
        EtherType::IPV6 => {
            let view = Ipv6Packet::new_checked(ip_bytes)?;
            let ip = Ipv6Repr::parse(&view)?;
            let (protocol, ext_len) = ipv6::skip_extension_headers(ip.next_header, view.payload())?;
            if protocol != IP_PROTOCOL_UDP {
                return Err(WireError::UnsupportedProtocol(protocol));
            }
            let udp_at = ip_at + ipv6::HEADER_LEN + ext_len;
            let ip_end = ipv6::HEADER_LEN + ip.payload_len;
            let udp_bytes = ip_bytes.get(ipv6::HEADER_LEN + ext_len..ip_end).unwrap_or(&[]);
            let (src, dst) = (IpAddr::V6(ip.src), IpAddr::V6(ip.dst));
            (src, dst, ip.ecn, ip.dscp, ip.hop_limit, udp_at, udp_bytes)
        }
        other => return Err(WireError::UnsupportedEtherType(other.0)),
    };

    let udp_view = UdpPacket::new_checked(udp_bytes)?;
    if usize::from(udp_view.len()) != udp_bytes.len() {
        return Err(WireError::BadLength);
    }
    let (udp, udp_checksum) = UdpRepr::parse_checksum(&udp_view, src_ip, dst_ip, options)?;
    let payload_at = udp_at + udp::HEADER_LEN;
    Ok(ParsedFrame {
        src_mac: eth.src,
        dst_mac: eth.dst,
        vlan: eth.vlan,
        src: SocketAddr::new(src_ip, udp.src_port),
        dst: SocketAddr::new(dst_ip, udp.dst_port),
        ecn,
        dscp,
        hop_limit,
        payload: payload_at..payload_at + udp_view.payload().len(),
        udp_checksum,
    })
}
