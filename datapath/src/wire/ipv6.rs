//! IPv6 headers (RFC 8200): checked view, repr, extension-header walk.

use std::net::Ipv6Addr;

use super::{get_array, get_u16, get_u8, put, WireError};
use crate::Ecn;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Largest IPv6 payload length without a jumbogram option (a 16-bit field).
pub const MAX_PAYLOAD_LEN: usize = 0xffff;
/// Largest number of extension headers walked before giving up.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// Next-header value of the Hop-by-Hop Options header.
pub const NEXT_HOP_BY_HOP: u8 = 0;
/// Next-header value of the Routing header.
pub const NEXT_ROUTING: u8 = 43;
/// Next-header value of the Fragment header.
pub const NEXT_FRAGMENT: u8 = 44;
/// Next-header value of the Destination Options header.
pub const NEXT_DEST_OPTIONS: u8 = 60;
/// Next-header value meaning "no next header".
pub const NEXT_NONE: u8 = 59;

/// A view of an IPv6 packet in a buffer (which may extend past the payload, e.g. with Ethernet
/// padding).
///
/// [`Ipv6Packet::new_checked`] validates the payload length against the buffer, after which
/// [`Ipv6Packet::payload`] covers exactly the declared payload. No accessor panics, checked or
/// not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without checking it (fields beyond its end read as 0).
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after [`Ipv6Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    //= https://www.rfc-editor.org/rfc/rfc8200#section-3
    //# Length of the IPv6
    //# payload, i.e., the rest of the packet
    //# following this IPv6 header, in octets.
    /// Checks that the fixed header fits, the version is 6 (otherwise the length field means
    /// nothing) and the declared payload fits in the buffer.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::BadVersion);
        }
        if len - HEADER_LEN < usize::from(self.payload_len()) {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn buf(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Version field (6 for IPv6).
    pub fn version(&self) -> u8 {
        get_u8(self.buf(), 0) >> 4
    }

    /// Traffic class byte (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        ((get_u16(self.buf(), 0) >> 4) & 0xff) as u8
    }

    /// Differentiated Services Code Point (high six bits of the traffic class).
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// ECN codepoint (low two bits of the traffic class).
    pub fn ecn(&self) -> Ecn {
        Ecn::from_tos(self.traffic_class())
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        u32::from_be_bytes(get_array(self.buf(), 0)) & 0x000f_ffff
    }

    /// Payload length field: everything after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buf(), 4)
    }

    /// Next header: the first extension header or the upper-layer protocol.
    pub fn next_header(&self) -> u8 {
        get_u8(self.buf(), 6)
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        get_u8(self.buf(), 7)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(get_array::<16>(self.buf(), 8))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(get_array::<16>(self.buf(), 24))
    }

    /// The payload as declared by the payload length (empty when it does not fit the buffer;
    /// [`Ipv6Packet::check_len`] rules that out).
    pub fn payload(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        self.buf().get(HEADER_LEN..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the traffic class byte.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let word = get_u16(self.buffer.as_ref(), 0);
        let word = (word & 0xf00f) | (u16::from(tc) << 4);
        put(self.buffer.as_mut(), 0, &word.to_be_bytes());
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        put(self.buffer.as_mut(), 7, &[hop_limit]);
    }

    /// The payload, writable (see [`Ipv6Packet::payload`]).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        self.buffer.as_mut().get_mut(HEADER_LEN..end).unwrap_or(&mut [])
    }
}

/// Walks the extension headers at the front of an IPv6 `payload` whose first header is `next`,
/// returning the upper-layer protocol and its offset in `payload`.
///
/// Hop-by-Hop (only first), Destination Options, Routing with no segments left and atomic
/// Fragment headers (offset 0, no more fragments; RFC 6946) are skipped. A real fragment is
/// [`WireError::Fragmented`]; a Routing header with segments left, a misplaced Hop-by-Hop header
/// or more than [`MAX_EXTENSION_HEADERS`] headers is [`WireError::BadExtensionHeader`].
pub fn skip_extension_headers(mut next: u8, payload: &[u8]) -> Result<(u8, usize), WireError> {
    let mut at = 0usize;
    for index in 0..MAX_EXTENSION_HEADERS {
        let len = match next {
            NEXT_HOP_BY_HOP | NEXT_DEST_OPTIONS | NEXT_ROUTING => {
                //= https://www.rfc-editor.org/rfc/rfc8200#section-4
                //# The Hop-by-Hop Options header, when present, must immediately
                //# follow the IPv6 header.
                if next == NEXT_HOP_BY_HOP && index != 0 {
                    return Err(WireError::BadExtensionHeader);
                }
                let hdr_ext_len = payload.get(at + 1).ok_or(WireError::Truncated)?;
                //= https://www.rfc-editor.org/rfc/rfc8200#section-4.4
                //# If Segments Left is zero, the node must ignore the Routing header
                //# and proceed to process the next header in the packet
                if next == NEXT_ROUTING && get_u8(payload, at + 3) != 0 {
                    return Err(WireError::BadExtensionHeader);
                }
                8 * (usize::from(*hdr_ext_len) + 1)
            }
            NEXT_FRAGMENT => {
                let word = payload
                    .get(at + 2..at + 4)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    .ok_or(WireError::Truncated)?;
                // Fragment offset (13 bits) and M flag: both zero for an atomic fragment.
                if word & 0xfff9 != 0 {
                    return Err(WireError::Fragmented);
                }
                8
            }
            upper => return Ok((upper, at)),
        };
        if payload.len() - at < len {
            return Err(WireError::Truncated);
        }
        next = get_u8(payload, at);
        at += len;
    }
    Err(WireError::BadExtensionHeader)
}

/// The meaning of a fixed IPv6 header. Extension headers are not part of it: see
/// [`skip_extension_headers`]; none are emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Next header (the upper-layer protocol when there are no extension headers).
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Differentiated Services Code Point (six bits; higher bits are ignored on emit).
    pub dscp: u8,
    /// ECN codepoint.
    pub ecn: Ecn,
    /// Flow label (20 bits; higher bits are ignored on emit).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Parses a packet (checked again here: version 6, payload within the buffer).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Self, WireError> {
        packet.check_len()?;
        Ok(Ipv6Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            flow_label: packet.flow_label(),
        })
    }

    /// Length of the header this repr emits.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte fixed header at the front of `header`.
    pub fn emit(&self, header: &mut [u8]) -> Result<(), WireError> {
        if self.payload_len > MAX_PAYLOAD_LEN {
            return Err(WireError::PayloadTooLarge);
        }
        let out = header.get_mut(..HEADER_LEN).ok_or(WireError::BufferTooSmall)?;
        let tc = ((self.dscp & 0x3f) << 2) | self.ecn.bits();
        let word = (6u32 << 28) | (u32::from(tc) << 20) | (self.flow_label & 0x000f_ffff);
        out[0..4].copy_from_slice(&word.to_be_bytes());
        out[4..6].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
        out[6] = self.next_header;
        out[7] = self.hop_limit;
        out[8..24].copy_from_slice(&self.src.octets());
        out[24..40].copy_from_slice(&self.dst.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr() -> Ipv6Repr {
        Ipv6Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: 17,
            payload_len: 4,
            hop_limit: 64,
            dscp: 46,
            ecn: Ecn::Ect0,
            flow_label: 0xabcde,
        }
    }

    #[test]
    fn round_trip_and_fields() {
        let mut buf = [0u8; 46]; // 2 bytes of trailing padding
        repr().emit(&mut buf).unwrap();
        assert_eq!(&buf[..4], &[0x6b, 0xaa, 0xbc, 0xde]);
        let view = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(view.traffic_class(), (46 << 2) | 0b10);
        assert_eq!(view.payload().len(), 4);
        assert_eq!(Ipv6Repr::parse(&view), Ok(repr()));
        let mut view = Ipv6Packet::new_unchecked(&mut buf[..]);
        view.set_traffic_class(0x03);
        assert_eq!(view.ecn(), Ecn::Ce);
        assert_eq!(view.flow_label(), 0xabcde);
    }

    #[test]
    fn length_and_version_errors() {
        let mut buf = [0u8; 44];
        repr().emit(&mut buf).unwrap();
        assert_eq!(Ipv6Packet::new_checked(&buf[..43]).unwrap_err(), WireError::Truncated);
        assert_eq!(Ipv6Packet::new_checked(&buf[..39]).unwrap_err(), WireError::Truncated);
        buf[0] = 0x4b;
        assert_eq!(Ipv6Packet::new_checked(&buf[..]).unwrap_err(), WireError::BadVersion);
        let view = Ipv6Packet::new_unchecked(&buf[..]);
        assert_eq!(Ipv6Repr::parse(&view), Err(WireError::BadVersion));
        let mut big = repr();
        big.payload_len = MAX_PAYLOAD_LEN + 1;
        assert_eq!(big.emit(&mut buf), Err(WireError::PayloadTooLarge));
        assert_eq!(repr().emit(&mut buf[..39]), Err(WireError::BufferTooSmall));
    }

    #[test]
    fn extension_headers() {
        // Hop-by-Hop (8 bytes) -> Destination Options (16 bytes) -> atomic Fragment -> UDP.
        let mut p = vec![NEXT_DEST_OPTIONS, 0, 1, 4, 0, 0, 0, 0];
        p.extend_from_slice(&[NEXT_FRAGMENT, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[17, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd]);
        p.extend_from_slice(&[0x12; 8]);
        assert_eq!(skip_extension_headers(NEXT_HOP_BY_HOP, &p), Ok((17, 32)));
        // No extension headers at all.
        assert_eq!(skip_extension_headers(17, &p), Ok((17, 0)));
        // Truncated chains.
        assert_eq!(skip_extension_headers(NEXT_HOP_BY_HOP, &p[..20]), Err(WireError::Truncated));
        assert_eq!(skip_extension_headers(NEXT_HOP_BY_HOP, &[]), Err(WireError::Truncated));
        // A real fragment.
        let mut frag = p.clone();
        frag[27] = 0x01; // M flag
        assert_eq!(skip_extension_headers(NEXT_HOP_BY_HOP, &frag), Err(WireError::Fragmented));
        // Hop-by-Hop in second place.
        assert_eq!(
            skip_extension_headers(NEXT_DEST_OPTIONS, &[0, 0, 0, 0, 0, 0, 0, 0, 17, 0]),
            Err(WireError::BadExtensionHeader)
        );
        // Routing header with segments left, and with none.
        let mut routing = vec![17, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            skip_extension_headers(NEXT_ROUTING, &routing),
            Err(WireError::BadExtensionHeader)
        );
        routing[3] = 0;
        assert_eq!(skip_extension_headers(NEXT_ROUTING, &routing), Ok((17, 8)));
        // An endless chain of Destination Options headers.
        let endless = [NEXT_DEST_OPTIONS, 0, 0, 0, 0, 0, 0, 0].repeat(20);
        assert_eq!(
            skip_extension_headers(NEXT_DEST_OPTIONS, &endless),
            Err(WireError::BadExtensionHeader)
        );
    }
}
