//! IPv4 headers (RFC 791): checked view, repr, header checksum.

use std::net::Ipv4Addr;

use super::checksum::{self, Checksum};
use super::{get_array, get_u16, get_u8, put, WireError};
use crate::Ecn;

/// Length of an IPv4 header without options (IHL 5).
pub const HEADER_LEN: usize = 20;
/// Largest IPv4 total length (a 16-bit field).
pub const MAX_TOTAL_LEN: usize = 0xffff;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet in a buffer (which may extend past the total length, e.g. with
/// Ethernet padding).
///
/// [`Ipv4Packet::new_checked`] validates IHL and total length against the buffer, after which
/// [`Ipv4Packet::options`] and [`Ipv4Packet::payload`] cover exactly what the header declares.
/// No accessor panics, checked or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking it (fields beyond its end read as 0).
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after [`Ipv4Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    //= https://www.rfc-editor.org/rfc/rfc791#section-3.1
    //# Internet Header Length is the length of the internet header in 32
    //# bit words, and thus points to the beginning of the data.  Note that
    //# the minimum value for a correct header is 5.
    //
    //= https://www.rfc-editor.org/rfc/rfc791#section-3.1
    //# Total Length is the length of the datagram, measured in octets,
    //# including internet header and data.
    /// Checks that the fixed header fits, the version is 4 (otherwise the length fields mean
    /// nothing), IHL is at least 5, and the header and the total length fit in the buffer and
    /// agree.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::BadVersion);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(WireError::BadHeaderLength);
        }
        if header_len > len {
            return Err(WireError::Truncated);
        }
        let total = usize::from(self.total_len());
        if total < header_len {
            return Err(WireError::BadLength);
        }
        if total > len {
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

    /// Version field (4 for IPv4).
    pub fn version(&self) -> u8 {
        get_u8(self.buf(), 0) >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(get_u8(self.buf(), 0) & 0x0f) * 4
    }

    /// The whole TOS / Differentiated Services byte (DSCP and ECN).
    pub fn tos(&self) -> u8 {
        get_u8(self.buf(), 1)
    }

    /// Differentiated Services Code Point (the high six bits of the TOS byte).
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    /// ECN codepoint (the low two bits of the TOS byte).
    pub fn ecn(&self) -> Ecn {
        Ecn::from_tos(self.tos())
    }

    /// Total length field: header and data, in bytes.
    pub fn total_len(&self) -> u16 {
        get_u16(self.buf(), 2)
    }

    /// Identification field.
    pub fn ident(&self) -> u16 {
        get_u16(self.buf(), 4)
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buf(), 6) & FLAG_DF != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        get_u16(self.buf(), 6) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> usize {
        usize::from(get_u16(self.buf(), 6) & FRAG_OFFSET_MASK) * 8
    }

    /// Whether this is a fragment of a larger datagram (MF set or a nonzero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        get_u8(self.buf(), 8)
    }

    /// Protocol of the payload (17 for UDP).
    pub fn protocol(&self) -> u8 {
        get_u8(self.buf(), 9)
    }

    /// Header checksum field.
    pub fn header_checksum(&self) -> u16 {
        get_u16(self.buf(), 10)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_array::<4>(self.buf(), 12))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_array::<4>(self.buf(), 16))
    }

    /// The whole header, options included (clamped to the buffer).
    pub fn header(&self) -> &[u8] {
        let end = self.header_len().min(self.buf().len());
        &self.buf()[..end]
    }

    /// Options: the header bytes after the fixed 20 (empty when there are none).
    pub fn options(&self) -> &[u8] {
        self.header().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// The payload: from the end of the header to the total length (empty when those do not
    /// describe a range of the buffer; [`Ipv4Packet::check_len`] rules that out).
    pub fn payload(&self) -> &[u8] {
        let range = self.header_len()..usize::from(self.total_len());
        self.buf().get(range).unwrap_or(&[])
    }

    //= https://www.rfc-editor.org/rfc/rfc791#section-3.1
    //# The checksum field is the 16 bit one's complement of the one's
    //# complement sum of all 16 bit words in the header.
    /// Whether the header checksum verifies (over the header, options included).
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.header())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the TOS / Differentiated Services byte (does not update the checksum).
    pub fn set_tos(&mut self, tos: u8) {
        put(self.buffer.as_mut(), 1, &[tos]);
    }

    /// Sets the ECN bits, keeping the DSCP, and updates the header checksum incrementally
    /// (RFC 1624), as a router marking CE does.
    pub fn set_ecn_and_update_checksum(&mut self, ecn: Ecn) {
        let old_word = get_u16(self.buffer.as_ref(), 0);
        let tos = (self.tos() & !0b11) | ecn.bits();
        self.set_tos(tos);
        let new_word = get_u16(self.buffer.as_ref(), 0);
        let ck = checksum::update_word(self.header_checksum(), old_word, new_word);
        put(self.buffer.as_mut(), 10, &ck.to_be_bytes());
    }

    /// Sets the time to live (does not update the checksum).
    pub fn set_ttl(&mut self, ttl: u8) {
        put(self.buffer.as_mut(), 8, &[ttl]);
    }

    /// Sets the source address (does not update the checksum).
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        put(self.buffer.as_mut(), 12, &addr.octets());
    }

    /// Sets the destination address (does not update the checksum).
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        put(self.buffer.as_mut(), 16, &addr.octets());
    }

    /// Recomputes the header checksum over the header, options included.
    pub fn fill_checksum(&mut self) {
        put(self.buffer.as_mut(), 10, &[0, 0]);
        let ck = checksum::internet_checksum(self.header());
        put(self.buffer.as_mut(), 10, &ck.to_be_bytes());
    }

    /// The payload, writable (see [`Ipv4Packet::payload`]).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        self.buffer.as_mut().get_mut(range).unwrap_or(&mut [])
    }
}

/// The meaning of an IPv4 header. Options are skipped on parse and never emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: u8,
    /// Payload length in bytes (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Differentiated Services Code Point (six bits; higher bits are ignored on emit).
    pub dscp: u8,
    /// ECN codepoint.
    pub ecn: Ecn,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment flag.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Parses a packet (checked again here): the header checksum must verify (when
    /// `verify_checksum`), and the packet must not be a fragment.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Ipv4Packet<T>,
        verify_checksum: bool,
    ) -> Result<Self, WireError> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum() {
            return Err(WireError::BadIpChecksum);
        }
        if packet.is_fragment() {
            return Err(WireError::Fragmented);
        }
        Ok(Ipv4Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.payload().len(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Length of the header this repr emits (no options).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 20-byte header, checksum included, at the front of `header`. The payload
    /// need not follow in the same slice: the header checksum covers the header only.
    pub fn emit(&self, header: &mut [u8]) -> Result<(), WireError> {
        let total = HEADER_LEN
            .checked_add(self.payload_len)
            .filter(|&t| t <= MAX_TOTAL_LEN)
            .ok_or(WireError::PayloadTooLarge)?;
        let out = header.get_mut(..HEADER_LEN).ok_or(WireError::BufferTooSmall)?;
        out[0] = 0x45;
        out[1] = ((self.dscp & 0x3f) << 2) | self.ecn.bits();
        out[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        out[4..6].copy_from_slice(&self.ident.to_be_bytes());
        let flags = if self.dont_frag { FLAG_DF } else { 0 };
        out[6..8].copy_from_slice(&flags.to_be_bytes());
        out[8] = self.ttl;
        out[9] = self.protocol;
        //= https://www.rfc-editor.org/rfc/rfc791#section-3.1
        //# For purposes of computing the checksum, the value of the
        //# checksum field is zero.
        out[10..12].fill(0);
        out[12..16].copy_from_slice(&self.src.octets());
        out[16..20].copy_from_slice(&self.dst.octets());
        let ck = Checksum::of(out).finish();
        out[10..12].copy_from_slice(&ck.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the Wikipedia article "Internet checksum": a real IPv4/UDP header,
    /// 192.168.0.1 -> 192.168.0.199, DF, TTL 64, total length 115, checksum b861.
    const WIKIPEDIA_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn wikipedia_repr() -> Ipv4Repr {
        Ipv4Repr {
            src: Ipv4Addr::new(192, 168, 0, 1),
            dst: Ipv4Addr::new(192, 168, 0, 199),
            protocol: 17,
            payload_len: 115 - 20,
            ttl: 64,
            dscp: 0,
            ecn: Ecn::NotEct,
            ident: 0,
            dont_frag: true,
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc791#section-3.1
    //= type=test
    //# The checksum field is the 16 bit one's complement of the one's
    //# complement sum of all 16 bit words in the header.
    #[test]
    fn known_header_parses_and_emits() {
        let mut packet = WIKIPEDIA_HEADER.to_vec();
        packet.resize(115, 0);
        let view = Ipv4Packet::new_checked(&packet[..]).unwrap();
        assert!(view.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&view, true), Ok(wikipedia_repr()));
        let mut out = [0u8; 20];
        wikipedia_repr().emit(&mut out).unwrap();
        assert_eq!(out, WIKIPEDIA_HEADER);
    }

    #[test]
    fn options_are_covered_and_skipped() {
        // IHL 6: one word of options (NOP NOP NOP EOL), then 4 bytes of payload.
        let mut p = vec![
            0x46, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0, 0, 10, 0, 0, 1, 10, 0,
            0, 2, 1, 1, 1, 0, 0xde, 0xad, 0xbe, 0xef,
        ];
        Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        let view = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(view.options(), &[1, 1, 1, 0]);
        assert_eq!(view.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        let repr = Ipv4Repr::parse(&view, true).unwrap();
        assert_eq!(repr.payload_len, 4);
        // The checksum covers the options.
        p[21] ^= 0x80;
        let view = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&view, true), Err(WireError::BadIpChecksum));
    }

    #[test]
    fn length_errors() {
        let mut p = WIKIPEDIA_HEADER.to_vec();
        p.resize(115, 0);
        let check = |p: &[u8]| Ipv4Packet::new_checked(p).map(|_| ());
        assert_eq!(check(&p[..19]), Err(WireError::Truncated));
        assert_eq!(check(&p[..114]), Err(WireError::Truncated), "total length > buffer");
        let mut bad = p.clone();
        bad[0] = 0x44; // IHL 4
        assert_eq!(check(&bad), Err(WireError::BadHeaderLength));
        bad[0] = 0x4f; // IHL 15 = 60 bytes, beyond a 20-byte buffer
        assert_eq!(check(&bad[..20]), Err(WireError::Truncated));
        let mut bad = p.clone();
        bad[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(check(&bad), Err(WireError::BadLength));
        // Trailing bytes (Ethernet padding) are fine and not part of the payload.
        p.extend_from_slice(&[0; 6]);
        assert_eq!(Ipv4Packet::new_checked(&p[..]).unwrap().payload().len(), 95);
    }

    #[test]
    fn version_and_fragments() {
        let mut p = WIKIPEDIA_HEADER.to_vec();
        p.resize(115, 0);
        let reparse = |p: &mut Vec<u8>| {
            Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
            Ipv4Repr::parse(&Ipv4Packet::new_checked(&p[..])?, true)
        };
        p[0] = 0x65;
        assert_eq!(reparse(&mut p), Err(WireError::BadVersion));
        p[0] = 0x45;
        p[6] = 0x20; // MF
        assert_eq!(reparse(&mut p), Err(WireError::Fragmented));
        p[6] = 0x00;
        p[7] = 0x01; // offset 8
        assert_eq!(reparse(&mut p), Err(WireError::Fragmented));
        p[7] = 0x00;
        assert!(reparse(&mut p).is_ok());
    }

    #[test]
    fn ecn_rewrite_keeps_checksum_valid() {
        let mut p = WIKIPEDIA_HEADER;
        for ecn in [Ecn::Ect0, Ecn::Ce, Ecn::Ect1, Ecn::NotEct] {
            let mut view = Ipv4Packet::new_unchecked(&mut p[..]);
            view.set_ecn_and_update_checksum(ecn);
            assert_eq!(view.ecn(), ecn);
            assert!(view.verify_checksum());
        }
        assert_eq!(p, WIKIPEDIA_HEADER);
    }

    #[test]
    fn emit_limits() {
        let mut repr = wikipedia_repr();
        repr.payload_len = MAX_TOTAL_LEN - HEADER_LEN + 1;
        assert_eq!(repr.emit(&mut [0; 20]), Err(WireError::PayloadTooLarge));
        repr.payload_len = MAX_TOTAL_LEN - HEADER_LEN;
        assert_eq!(repr.emit(&mut [0; 19]), Err(WireError::BufferTooSmall));
        assert_eq!(repr.emit(&mut [0; 20]), Ok(()));
    }
}
