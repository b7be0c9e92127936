//! UDP headers (RFC 768) and their checksum over the IPv4 and IPv6 pseudo-headers.

use std::net::IpAddr;

use super::checksum::{self, Checksum};
use super::{get_u16, put, WireError, IP_PROTOCOL_UDP};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// Largest UDP length (a 16-bit field), header included.
pub const MAX_LEN: usize = 0xffff;

/// What to verify when parsing a received datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParseOptions {
    /// Verify the IPv4 header checksum and the UDP checksum. Default `true`; turn it off only
    /// when the NIC has already verified both.
    pub verify_checksums: bool,
    /// Accept an IPv4 UDP datagram whose checksum field is zero, which RFC 768 defines as "no
    /// checksum was computed". Default `true`, as the RFC requires. With `false`, such a
    /// datagram is [`WireError::BadUdpChecksum`]: every byte of the datagram is then protected
    /// (a corruption that zeroes the checksum field is caught too). Over IPv6 a zero checksum
    /// is always rejected.
    pub accept_zero_udp_checksum_ipv4: bool,
    /// Accept a datagram whose checksum field holds only the sum of its pseudo-header, not
    /// complemented: a *partial* checksum (Linux `CHECKSUM_PARTIAL`), which the sender's kernel
    /// leaves for a checksum offload to finish. A veth (and some virtual NICs) delivers it
    /// unfinished to an XDP program, so an AF_XDP receiver sees it. Default `true`: such a
    /// datagram is sound in every header field and QUIC's AEAD authenticates its payload, so
    /// only a corruption the AEAD would catch anyway goes undetected ([`UdpChecksum::Partial`]
    /// tells the caller, to count it). With `false` it is [`WireError::BadUdpChecksum`].
    pub accept_partial_udp_checksum: bool,
}

/// What the checksum of an accepted UDP datagram proved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UdpChecksum {
    /// The full checksum verified.
    Verified,
    /// IPv4 checksum field zero: the sender computed none (RFC 768).
    Zero,
    /// The field holds only the pseudo-header sum (see
    /// [`ParseOptions::accept_partial_udp_checksum`]): header fields are sound, the payload
    /// is not covered.
    Partial,
    /// Not checked ([`ParseOptions::verify_checksums`] off).
    Unverified,
}

impl ParseOptions {
    /// Verify everything; accept zero IPv4 UDP checksums (RFC 768). The default.
    /// Accept partial checksums too (see [`ParseOptions::accept_partial_udp_checksum`]).
    pub const DEFAULT: ParseOptions = ParseOptions {
        verify_checksums: true,
        accept_zero_udp_checksum_ipv4: true,
        accept_partial_udp_checksum: true,
    };
    /// Verify everything; reject zero IPv4 UDP checksums and partial checksums.
    pub const STRICT: ParseOptions = ParseOptions {
        verify_checksums: true,
        accept_zero_udp_checksum_ipv4: false,
        accept_partial_udp_checksum: false,
    };
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A view of a UDP datagram in a buffer (the IP payload).
///
/// [`UdpPacket::new_checked`] validates the length field against the buffer, after which
/// [`UdpPacket::payload`] covers exactly the declared data. No accessor panics, checked or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without checking it (fields beyond its end read as 0).
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after [`UdpPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    //= https://www.rfc-editor.org/rfc/rfc768
    //# Length  is the length  in octets  of this user datagram  including  this
    //# header  and the data.   (This  means the minimum value of the length is
    //# eight.)
    /// Checks that the header fits and the length field lies between 8 and the buffer length.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let field = usize::from(self.len());
        if field < HEADER_LEN || field > len {
            return Err(WireError::BadLength);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 2)
    }

    /// Length field: header and data, in bytes.
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 4)
    }

    /// Whether the datagram carries no data (length field 8 or less).
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 6)
    }

    /// The header and data as declared by the length field (clamped to the buffer).
    pub fn datagram(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        &buf[..usize::from(self.len()).min(buf.len())]
    }

    /// The data after the header, up to the length field (empty when that does not describe a
    /// range of the buffer; [`UdpPacket::check_len`] rules that out).
    pub fn payload(&self) -> &[u8] {
        let range = HEADER_LEN..usize::from(self.len());
        self.buffer.as_ref().get(range).unwrap_or(&[])
    }

    /// Whether the checksum verifies over the pseudo-header of `src` and `dst` (which must be of
    /// the same IP version) and the datagram. A zero checksum field is not special here; see
    /// [`UdpRepr::parse`].
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> Result<bool, WireError> {
        let datagram = self.datagram();
        let mut sum = pseudo_header(src, dst, datagram.len())?;
        sum.add(datagram);
        Ok(sum.verifies())
    }

    /// Whether the checksum field holds the partial checksum a sender's kernel leaves for an
    /// offload to finish: the pseudo-header sum of `src`, `dst` and the length, folded and not
    /// complemented (Linux: `~csum_tcpudp_magic(..)` / `~csum_ipv6_magic(..)`).
    pub fn is_partial_checksum(&self, src: IpAddr, dst: IpAddr) -> Result<bool, WireError> {
        let sum = pseudo_header(src, dst, self.datagram().len())?.sum();
        Ok(self.checksum() == sum)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port (does not update the checksum).
    pub fn set_src_port(&mut self, port: u16) {
        put(self.buffer.as_mut(), 0, &port.to_be_bytes());
    }

    /// Sets the destination port (does not update the checksum).
    pub fn set_dst_port(&mut self, port: u16) {
        put(self.buffer.as_mut(), 2, &port.to_be_bytes());
    }

    /// The data after the header, writable (see [`UdpPacket::payload`]).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = HEADER_LEN..usize::from(self.len());
        self.buffer.as_mut().get_mut(range).unwrap_or(&mut [])
    }
}

/// Sum of the pseudo-header for a UDP datagram of `len` bytes between `src` and `dst`.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, len: usize) -> Result<Checksum, WireError> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let len = u16::try_from(len).map_err(|_| WireError::PayloadTooLarge)?;
            Ok(checksum::pseudo_header_v4(s, d, IP_PROTOCOL_UDP, len))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            //= https://www.rfc-editor.org/rfc/rfc8200#section-8.1
            //# The Upper-Layer Packet Length in the pseudo-header is the length
            //# of the upper-layer header and data (e.g., TCP header plus TCP
            //# data).
            let len = u32::try_from(len).map_err(|_| WireError::PayloadTooLarge)?;
            Ok(checksum::pseudo_header_v6(&s, &d, IP_PROTOCOL_UDP, len))
        }
        _ => Err(WireError::AddressFamilyMismatch),
    }
}

/// The meaning of a UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses a checked datagram received from `src` to `dst`, verifying its checksum as
    /// `options` say.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &UdpPacket<T>,
        src: IpAddr,
        dst: IpAddr,
        options: &ParseOptions,
    ) -> Result<Self, WireError> {
        Self::parse_checksum(packet, src, dst, options).map(|(repr, _)| repr)
    }

    /// [`UdpRepr::parse`], also saying what the checksum proved.
    pub fn parse_checksum<T: AsRef<[u8]>>(
        packet: &UdpPacket<T>,
        src: IpAddr,
        dst: IpAddr,
        options: &ParseOptions,
    ) -> Result<(Self, UdpChecksum), WireError> {
        packet.check_len()?;
        let class = if packet.checksum() == 0 {
            match src {
                //= https://www.rfc-editor.org/rfc/rfc8200#section-8.1
                //# IPv6 receivers must discard UDP packets containing a zero checksum
                //# and should log the error.
                IpAddr::V6(_) => return Err(WireError::BadUdpChecksum),
                //= https://www.rfc-editor.org/rfc/rfc768
                //# An all zero  transmitted
                //# checksum  value means that the transmitter  generated  no checksum  (for
                //# debugging or for higher level protocols that don't care).
                IpAddr::V4(_) if !options.accept_zero_udp_checksum_ipv4 => {
                    return Err(WireError::BadUdpChecksum)
                }
                IpAddr::V4(_) => UdpChecksum::Zero,
            }
        } else if !options.verify_checksums {
            UdpChecksum::Unverified
        } else if packet.verify_checksum(src, dst)? {
            UdpChecksum::Verified
        } else if options.accept_partial_udp_checksum && packet.is_partial_checksum(src, dst)? {
            UdpChecksum::Partial
        } else {
            return Err(WireError::BadUdpChecksum);
        };
        Ok((UdpRepr { src_port: packet.src_port(), dst_port: packet.dst_port() }, class))
    }

    /// Writes the header, checksum included, at the front of `datagram`, whose remaining bytes
    /// are the payload, already in place: `datagram.len()` is the UDP length. `src` and `dst`
    /// are the IP addresses of the pseudo-header.
    pub fn emit(&self, datagram: &mut [u8], src: IpAddr, dst: IpAddr) -> Result<(), WireError> {
        let len = datagram.len();
        if len < HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        if len > MAX_LEN {
            return Err(WireError::PayloadTooLarge);
        }
        let mut sum = pseudo_header(src, dst, len)?;
        datagram[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        datagram[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        datagram[4..6].copy_from_slice(&(len as u16).to_be_bytes());
        datagram[6..8].fill(0);
        //= https://www.rfc-editor.org/rfc/rfc768
        //# Checksum is the 16-bit one's complement of the one's complement sum of a
        //# pseudo header of information from the IP header, the UDP header, and the
        //# data,  padded  with zero octets  at the end (if  necessary)  to  make  a
        //# multiple of two octets.
        sum.add(datagram);
        //= https://www.rfc-editor.org/rfc/rfc768
        //# If the computed  checksum  is zero,  it is transmitted  as all ones (the
        //# equivalent  in one's complement  arithmetic).
        //
        //= https://www.rfc-editor.org/rfc/rfc8200#section-8.1
        //# That is, whenever
        //# originating a UDP packet, an IPv6 node must compute a UDP checksum
        //# over the packet and the pseudo-header, and, if that computation
        //# yields a result of zero, it must be changed to hex FFFF for
        //# placement in the UDP header.
        let ck = match sum.finish() {
            0 => 0xffff,
            ck => ck,
        };
        datagram[6..8].copy_from_slice(&ck.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const V4_SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const V4_DST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    const V6_SRC: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

    fn datagram(payload: &[u8], src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let mut d = vec![0u8; HEADER_LEN];
        d.extend_from_slice(payload);
        let repr = UdpRepr { src_port: 4433, dst_port: 443 };
        repr.emit(&mut d, src, dst).unwrap();
        d
    }

    //= https://www.rfc-editor.org/rfc/rfc768
    //= type=test
    //# If the computed  checksum  is zero,  it is transmitted  as all ones (the
    //# equivalent  in one's complement  arithmetic).
    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the last two payload bytes so that the checksum computes to zero: with the
        // field cleared, the sum of everything else must be 0xffff.
        let mut d = datagram(&[0x12, 0x34, 0, 0], V4_SRC, V4_DST);
        d[6..8].fill(0);
        d[10..12].fill(0);
        let mut sum = pseudo_header(V4_SRC, V4_DST, d.len()).unwrap();
        sum.add(&d);
        let filler = !sum.sum();
        let repr = UdpRepr { src_port: 4433, dst_port: 443 };
        d[10..12].copy_from_slice(&filler.to_be_bytes());
        repr.emit(&mut d, V4_SRC, V4_DST).unwrap();
        assert_eq!(&d[6..8], &[0xff, 0xff]);
        let view = UdpPacket::new_checked(&d[..]).unwrap();
        assert_eq!(view.verify_checksum(V4_SRC, V4_DST), Ok(true));
    }

    //= https://www.rfc-editor.org/rfc/rfc8200#section-8.1
    //= type=test
    //# IPv6 receivers must discard UDP packets containing a zero checksum
    //# and should log the error.
    #[test]
    fn zero_checksum_policy() {
        let v6_dst = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let mut d = datagram(b"hello", V6_SRC, v6_dst);
        d[6..8].fill(0);
        let view = UdpPacket::new_checked(&d[..]).unwrap();
        for opts in [ParseOptions::DEFAULT, ParseOptions::STRICT] {
            assert_eq!(
                UdpRepr::parse(&view, V6_SRC, v6_dst, &opts),
                Err(WireError::BadUdpChecksum)
            );
        }
        let mut d = datagram(b"hello", V4_SRC, V4_DST);
        d[6..8].fill(0);
        let view = UdpPacket::new_checked(&d[..]).unwrap();
        assert!(UdpRepr::parse(&view, V4_SRC, V4_DST, &ParseOptions::DEFAULT).is_ok());
        assert_eq!(
            UdpRepr::parse(&view, V4_SRC, V4_DST, &ParseOptions::STRICT),
            Err(WireError::BadUdpChecksum)
        );
    }

    #[test]
    fn checksum_covers_pseudo_header() {
        let d = datagram(b"payload", V4_SRC, V4_DST);
        let view = UdpPacket::new_checked(&d[..]).unwrap();
        let opts = ParseOptions::DEFAULT;
        let repr = UdpRepr::parse(&view, V4_SRC, V4_DST, &opts).unwrap();
        assert_eq!((repr.src_port, repr.dst_port), (4433, 443));
        assert_eq!(view.payload(), b"payload");
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(UdpRepr::parse(&view, V4_SRC, other, &opts), Err(WireError::BadUdpChecksum));
        let unverified = ParseOptions { verify_checksums: false, ..opts };
        assert!(UdpRepr::parse(&view, V4_SRC, other, &unverified).is_ok());
        assert_eq!(
            UdpRepr::parse(&view, V4_SRC, V6_SRC, &opts),
            Err(WireError::AddressFamilyMismatch)
        );
    }

    #[test]
    fn length_checks() {
        let d = datagram(b"abc", V4_SRC, V4_DST);
        let check = |b: &[u8]| UdpPacket::new_checked(b).map(|_| ());
        assert_eq!(check(&d[..7]), Err(WireError::Truncated));
        assert_eq!(check(&d[..10]), Err(WireError::BadLength));
        let mut short = d.clone();
        short[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(check(&short), Err(WireError::BadLength));
        let repr = UdpRepr { src_port: 1, dst_port: 2 };
        assert_eq!(repr.emit(&mut [0u8; 7], V4_SRC, V4_DST), Err(WireError::BufferTooSmall));
        assert_eq!(
            repr.emit(&mut vec![0u8; MAX_LEN + 1], V4_SRC, V4_DST),
            Err(WireError::PayloadTooLarge)
        );
    }
}
