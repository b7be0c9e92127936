//! Stateless Ethernet II / IPv4 / IPv6 / UDP header encode and decode, and Internet checksums.
//!
//! This is what the AF_XDP datapath needs to put whole frames on the wire and take them off it,
//! in the style of smoltcp's `wire` module: no state, no I/O, no `unsafe`, no allocation.
//!
//! Two layers per protocol:
//! - **Checked views** ([`EthernetFrame`], [`Ipv4Packet`], [`Ipv6Packet`], [`UdpPacket`]) wrap a
//!   buffer. `new_checked` validates the lengths once; no accessor or setter ever panics, even on
//!   a view made with `new_unchecked` (a field beyond the buffer reads as 0, and a write to it is
//!   dropped).
//! - **Reprs** ([`EthernetRepr`], [`Ipv4Repr`], [`Ipv6Repr`], [`UdpRepr`]) are the meaning of a
//!   header: `parse` validates versions, checksums and fragments, `emit` writes the header
//!   (and its checksum) into a caller's buffer.
//!
//! On top, [`frame`] builds a whole Ethernet + IP + UDP frame around a payload that is already in
//! place ([`build_frame`], [`build_frame_before`]: the engine encrypts into the buffer, the
//! headers are written in front of it) and parses a received frame into addresses, ECN and the
//! payload's range ([`parse_frame`]).
//!
//! [`checksum`] holds the Internet checksum (RFC 1071), its incremental update (RFC 1624) and the
//! UDP pseudo-headers of IPv4 (RFC 768) and IPv6 (RFC 8200).
//!
//! Every decoder accepts arbitrary bytes without panicking (property-tested in `tests.rs`).

use std::fmt;

pub mod checksum;
pub mod ethernet;
pub mod frame;
pub mod ipv4;
pub mod ipv6;
pub mod udp;

#[cfg(test)]
mod tests;

pub use checksum::Checksum;
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr};
pub use frame::{
    build_frame, build_frame_before, headers_len, parse_frame, parse_frame_with, FrameSpec,
    IpVersion, ParsedFrame, IPV4_HEADERS_LEN, IPV6_HEADERS_LEN, MAX_HEADERS_LEN,
};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use udp::{ParseOptions, UdpChecksum, UdpPacket, UdpRepr};

/// IP protocol number / IPv6 next-header value of UDP.
pub const IP_PROTOCOL_UDP: u8 = 17;

/// Why a header could not be decoded or encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireError {
    /// The buffer ends before a header, or before the length a header declares.
    Truncated,
    /// The IP version field does not match the EtherType (or is neither 4 nor 6).
    BadVersion,
    /// The IPv4 Internet Header Length is below 5 words.
    BadHeaderLength,
    /// Length fields disagree: IPv4 total length below the header length, a UDP length below 8,
    /// or a UDP length that is not the IP payload length.
    BadLength,
    /// The IPv4 header checksum does not verify.
    BadIpChecksum,
    /// The UDP checksum does not verify, or is zero where a checksum is mandatory (IPv6).
    BadUdpChecksum,
    /// The EtherType is neither IPv4 nor IPv6 (ARP, LLDP, an 802.3 length field, ...).
    UnsupportedEtherType(u16),
    /// More than one VLAN tag (802.1ad QinQ or nested 802.1Q): only one tag is parsed.
    StackedVlan,
    /// The IP payload is not UDP (the IPv4 protocol or final IPv6 next-header value is given).
    UnsupportedProtocol(u8),
    /// A malformed or unsupported IPv6 extension header chain (Hop-by-Hop not first, a Routing
    /// header with segments left, too many headers).
    BadExtensionHeader,
    /// A fragment of a fragmented IP datagram (there is no reassembly here).
    Fragmented,
    /// Emit: the buffer is too small for the headers and payload, or there is not enough room
    /// in front of the payload for the headers.
    BufferTooSmall,
    /// Emit: the payload does not fit the 16-bit length fields of IP and UDP.
    PayloadTooLarge,
    /// Emit: source and destination addresses are of different IP versions.
    AddressFamilyMismatch,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("truncated header or packet"),
            WireError::BadVersion => f.write_str("unexpected IP version"),
            WireError::BadHeaderLength => f.write_str("IPv4 header length below 20 bytes"),
            WireError::BadLength => f.write_str("inconsistent length fields"),
            WireError::BadIpChecksum => f.write_str("bad IPv4 header checksum"),
            WireError::BadUdpChecksum => f.write_str("bad UDP checksum"),
            WireError::UnsupportedEtherType(t) => write!(f, "unsupported EtherType {t:#06x}"),
            WireError::StackedVlan => f.write_str("stacked VLAN tags are not supported"),
            WireError::UnsupportedProtocol(p) => write!(f, "unsupported IP protocol {p}"),
            WireError::BadExtensionHeader => {
                f.write_str("bad or unsupported IPv6 extension header")
            }
            WireError::Fragmented => f.write_str("IP fragment (no reassembly)"),
            WireError::BufferTooSmall => f.write_str("buffer too small for headers and payload"),
            WireError::PayloadTooLarge => f.write_str("payload too large for IP/UDP length fields"),
            WireError::AddressFamilyMismatch => {
                f.write_str("source and destination are of different IP versions")
            }
        }
    }
}

impl std::error::Error for WireError {}

/// Reads a big-endian `u16` at `at`, or 0 when the buffer is too short (never panics).
#[inline]
pub(crate) fn get_u16(buf: &[u8], at: usize) -> u16 {
    match buf.get(at..at.wrapping_add(2)) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

/// Reads the byte at `at`, or 0 when the buffer is too short (never panics).
#[inline]
pub(crate) fn get_u8(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

/// Reads `N` bytes at `at`, or zeros when the buffer is too short (never panics).
#[inline]
pub(crate) fn get_array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(at..at.wrapping_add(N)) {
        out.copy_from_slice(src);
    }
    out
}

/// Writes `bytes` at `at` when they fit; drops the write otherwise (never panics).
#[inline]
pub(crate) fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at.wrapping_add(bytes.len())) {
        dst.copy_from_slice(bytes);
    }
}
