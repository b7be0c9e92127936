//! Two-stage header parsing: cleartext fields before header protection is removed, then the rest.

use std::ops::Range;

use super::number::TruncatedPn;
use super::retry::RETRY_INTEGRITY_TAG_LEN;
use super::version_negotiation::VersionNegotiation;
use super::{
    InvariantHeader, LongType, PacketDecodeError, FIXED_BIT, HP_SAMPLE_LEN, HP_SAMPLE_OFFSET,
    KEY_PHASE_BIT, LONG_HEADER_FORM, LONG_RESERVED_BITS, PN_LEN_MASK, SHORT_RESERVED_BITS,
    SPIN_BIT,
};
use crate::cid::ConnectionId;
use crate::coding::Reader;
use crate::error::Error;
use crate::version;

/// The header fields readable before header protection is removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlainHeader {
    /// Initial, 0-RTT or Handshake: a protected long-header packet (`ty` is never `Retry`).
    Long {
        /// Initial, 0-RTT or Handshake.
        ty: LongType,
        /// QUIC version (v1 or v2).
        version: u32,
        /// Destination Connection ID.
        dst_cid: ConnectionId,
        /// Source Connection ID.
        src_cid: ConnectionId,
        /// Where the Token lies within the packet (empty unless Initial).
        token: Range<usize>,
        /// Offset of the Packet Number field within the packet.
        pn_offset: usize,
    },
    /// A Retry packet: parse it with [`super::RetryPacket::parse`].
    Retry {
        /// QUIC version (v1 or v2).
        version: u32,
        /// Destination Connection ID.
        dst_cid: ConnectionId,
        /// Source Connection ID.
        src_cid: ConnectionId,
    },
    /// A 1-RTT packet.
    Short {
        /// The latency spin bit (not header-protected).
        spin: bool,
        /// Destination Connection ID.
        dst_cid: ConnectionId,
        /// Offset of the Packet Number field within the packet.
        pn_offset: usize,
    },
    /// A Version Negotiation packet: read it with [`VersionNegotiation::parse`].
    VersionNegotiation {
        /// Destination Connection ID.
        dst_cid: ConnectionId,
        /// Source Connection ID.
        src_cid: ConnectionId,
    },
}

/// Stage 1 of receiving: the cleartext part of one packet at the front of a datagram. It borrows
/// nothing, so the caller can then take the packet's bytes mutably to remove protection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialDecode {
    header: PlainHeader,
    len: usize,
}

/// Stage 2 of receiving: the fields that header protection covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodedHeader {
    /// The first byte with header protection removed.
    pub first_byte: u8,
    /// The truncated packet number.
    pub pn: TruncatedPn,
    /// The Key Phase bit (short headers; always false for long headers).
    pub key_phase: bool,
    /// Length of the header including the packet number: the AEAD's associated data is
    /// `packet[..header_len]` and the ciphertext is `packet[header_len..]`.
    pub header_len: usize,
    reserved_bits: u8,
}

fn truncated(_: crate::coding::UnexpectedEnd) -> PacketDecodeError {
    PacketDecodeError::Invalid("truncated header")
}

fn cid(bytes: &[u8]) -> Result<ConnectionId, PacketDecodeError> {
    //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2
    //# Endpoints that receive a version 1 long header with a
    //# value larger than 20 MUST drop the packet.
    ConnectionId::new(bytes).map_err(|_| PacketDecodeError::Invalid("connection ID over 20 bytes"))
}

/// Rejects a protected packet too short to hold a header-protection sample.
//= https://www.rfc-editor.org/rfc/rfc9001#section-5.4.2
//# An endpoint MUST discard packets that are not long enough to contain
//# a complete sample.
fn check_sample(pn_offset: usize, packet_len: usize) -> Result<(), PacketDecodeError> {
    if pn_offset + HP_SAMPLE_OFFSET + HP_SAMPLE_LEN > packet_len {
        return Err(PacketDecodeError::Invalid("too short for a header protection sample"));
    }
    Ok(())
}

impl PartialDecode {
    /// Parses the packet at the front of `datagram`, returning it and the rest of the datagram
    /// (further coalesced packets; empty after a short header, Retry or Version Negotiation).
    ///
    /// `local_cid_len` is the length of the connection IDs this endpoint issues (short headers
    /// do not encode it). `peer_may_grease` is true when this endpoint advertised
    /// `grease_quic_bit` (RFC 9287), which lets the peer send a zero Fixed Bit.
    pub fn new(
        datagram: &[u8],
        local_cid_len: usize,
        peer_may_grease: bool,
    ) -> Result<(Self, &[u8]), PacketDecodeError> {
        let decoded = Self::parse(datagram, local_cid_len, peer_may_grease)?;
        let rest = &datagram[decoded.len..];
        Ok((decoded, rest))
    }

    fn parse(
        datagram: &[u8],
        local_cid_len: usize,
        peer_may_grease: bool,
    ) -> Result<Self, PacketDecodeError> {
        let inv = InvariantHeader::parse(datagram, local_cid_len)?;
        let first = datagram[0];
        //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2
        //# Packets containing a zero
        //# value for this bit are not valid packets in this version and MUST
        //# be discarded.
        //= https://www.rfc-editor.org/rfc/rfc9287#section-3
        //# An endpoint that advertises the grease_quic_bit transport parameter
        //# MUST accept packets with the QUIC Bit set to a value of 0.
        let fixed_ok = first & FIXED_BIT != 0 || peer_may_grease;
        let (version, dst_cid, src_cid) = match inv {
            InvariantHeader::Short { dst_cid, .. } => {
                //= https://www.rfc-editor.org/rfc/rfc9000#section-17.3.1
                //# Packets
                //# containing a zero value for this bit are not valid packets in this
                //# version and MUST be discarded.
                if !fixed_ok {
                    return Err(PacketDecodeError::Invalid("fixed bit is zero"));
                }
                let pn_offset = 1 + dst_cid.len();
                check_sample(pn_offset, datagram.len())?;
                let header = PlainHeader::Short {
                    spin: first & SPIN_BIT != 0,
                    dst_cid: cid(dst_cid)?,
                    pn_offset,
                };
                //= https://www.rfc-editor.org/rfc/rfc9000#section-12.2
                //# A packet with a short header does not include a
                //# length, so it can only be the last packet included in a UDP datagram.
                return Ok(Self { header, len: datagram.len() });
            }
            InvariantHeader::Long { version, dst_cid, src_cid, .. } => (version, dst_cid, src_cid),
        };
        let header_end = 1 + 4 + 1 + dst_cid.len() + 1 + src_cid.len();
        if version == 0 {
            // Validates the version list; the Unused bits (Fixed Bit included) are ignored.
            VersionNegotiation::parse(datagram)?;
            let header =
                PlainHeader::VersionNegotiation { dst_cid: cid(dst_cid)?, src_cid: cid(src_cid)? };
            return Ok(Self { header, len: datagram.len() });
        }
        if !version::is_supported(version) {
            return Err(PacketDecodeError::UnsupportedVersion(version));
        }
        if !fixed_ok {
            return Err(PacketDecodeError::Invalid("fixed bit is zero"));
        }
        let (dst_cid, src_cid) = (cid(dst_cid)?, cid(src_cid)?);
        let ty = LongType::from_bits(version, (first >> 4) & 0x03)
            .ok_or(PacketDecodeError::UnsupportedVersion(version))?;
        let mut r = Reader::new(datagram);
        r.skip(header_end).map_err(truncated)?;
        let token = match ty {
            LongType::Retry => {
                // A token of at least one byte, then the integrity tag; runs to the datagram end.
                if r.remaining() <= RETRY_INTEGRITY_TAG_LEN {
                    return Err(PacketDecodeError::Invalid("Retry without token"));
                }
                let header = PlainHeader::Retry { version, dst_cid, src_cid };
                return Ok(Self { header, len: datagram.len() });
            }
            LongType::Initial => {
                let token = r.varint_prefixed().map_err(truncated)?;
                (r.position() - token.len())..r.position()
            }
            LongType::ZeroRtt | LongType::Handshake => header_end..header_end,
        };
        let length = r.varint().map_err(truncated)?;
        let pn_offset = r.position();
        //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2
        //# Length:  This is the length of the remainder of the packet (that is,
        //# the Packet Number and Payload fields) in bytes, encoded as a
        //# variable-length integer (Section 16).
        let length = usize::try_from(length)
            .ok()
            .filter(|&l| l <= r.remaining())
            .ok_or(PacketDecodeError::Invalid("Length exceeds the datagram"))?;
        check_sample(pn_offset, pn_offset + length)?;
        let header = PlainHeader::Long { ty, version, dst_cid, src_cid, token, pn_offset };
        Ok(Self { header, len: pn_offset + length })
    }

    /// The cleartext header.
    pub fn header(&self) -> &PlainHeader {
        &self.header
    }

    /// Bytes of the datagram this packet occupies, from its first byte.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a packet has at least a first byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Offset of the Packet Number field within the packet; `None` for Retry and Version
    /// Negotiation, which have none and are not protected.
    pub fn pn_offset(&self) -> Option<usize> {
        match self.header {
            PlainHeader::Long { pn_offset, .. } | PlainHeader::Short { pn_offset, .. } => {
                Some(pn_offset)
            }
            PlainHeader::Retry { .. } | PlainHeader::VersionNegotiation { .. } => None,
        }
    }

    /// The Destination Connection ID.
    pub fn dst_cid(&self) -> &ConnectionId {
        match &self.header {
            PlainHeader::Long { dst_cid, .. }
            | PlainHeader::Retry { dst_cid, .. }
            | PlainHeader::Short { dst_cid, .. }
            | PlainHeader::VersionNegotiation { dst_cid, .. } => dst_cid,
        }
    }

    /// The Source Connection ID (long headers only).
    pub fn src_cid(&self) -> Option<&ConnectionId> {
        match &self.header {
            PlainHeader::Long { src_cid, .. }
            | PlainHeader::Retry { src_cid, .. }
            | PlainHeader::VersionNegotiation { src_cid, .. } => Some(src_cid),
            PlainHeader::Short { .. } => None,
        }
    }

    /// The version of a long header (0 for Version Negotiation); `None` for short headers.
    pub fn version(&self) -> Option<u32> {
        match self.header {
            PlainHeader::Long { version, .. } | PlainHeader::Retry { version, .. } => Some(version),
            PlainHeader::VersionNegotiation { .. } => Some(0),
            PlainHeader::Short { .. } => None,
        }
    }

    /// The long-header type, or `None` for short headers and Version Negotiation.
    pub fn long_type(&self) -> Option<LongType> {
        match self.header {
            PlainHeader::Long { ty, .. } => Some(ty),
            PlainHeader::Retry { .. } => Some(LongType::Retry),
            PlainHeader::Short { .. } | PlainHeader::VersionNegotiation { .. } => None,
        }
    }

    /// True for Initial, 0-RTT, Handshake and 1-RTT packets (those with header protection).
    pub fn is_protected(&self) -> bool {
        self.pn_offset().is_some()
    }

    /// The Token of an Initial packet, taken from the packet's bytes (`packet` starts at the
    /// packet's first byte); empty for other packets.
    ///
    /// Initial packets sent by a server carry no token; a client receiving one with a token MUST
    /// discard it or close with PROTOCOL_VIOLATION (RFC 9000 §17.2.2): the connection checks.
    pub fn token<'p>(&self, packet: &'p [u8]) -> &'p [u8] {
        match &self.header {
            PlainHeader::Long { token, .. } => packet.get(token.clone()).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Stage 2: after the crypto layer removed header protection from `packet` (the bytes of
    /// this packet, first byte first), reads the packet number length, the truncated packet
    /// number, the key phase and the reserved bits.
    pub fn finish(&self, packet: &[u8]) -> Result<DecodedHeader, PacketDecodeError> {
        let pn_offset = self
            .pn_offset()
            .ok_or(PacketDecodeError::Invalid("packet type has no packet number"))?;
        let first_byte = *packet.first().ok_or(PacketDecodeError::Invalid("empty packet"))?;
        let pn_len = usize::from(first_byte & PN_LEN_MASK) + 1;
        let header_len = pn_offset + pn_len;
        if header_len > self.len {
            return Err(PacketDecodeError::Invalid("packet number overruns the packet"));
        }
        let mut r = Reader::new(packet);
        r.skip(pn_offset).map_err(truncated)?;
        let pn = TruncatedPn::read(&mut r, pn_len).map_err(truncated)?;
        let (key_phase, reserved_bits) = if first_byte & LONG_HEADER_FORM != 0 {
            (false, first_byte & LONG_RESERVED_BITS)
        } else {
            (first_byte & KEY_PHASE_BIT != 0, first_byte & SHORT_RESERVED_BITS)
        };
        Ok(DecodedHeader { first_byte, pn, key_phase, header_len, reserved_bits })
    }
}

impl DecodedHeader {
    /// The reserved bits as received (0x0c of a long header, 0x18 of a short header).
    pub fn reserved_bits(&self) -> u8 {
        self.reserved_bits
    }

    /// Checks the reserved bits. Call only after the AEAD has opened the packet: a packet whose
    /// bits are wrong but which fails authentication is just dropped.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2
    //# An endpoint MUST
    //# treat receipt of a packet that has a non-zero value for these bits
    //# after removing both packet and header protection as a connection
    //# error of type PROTOCOL_VIOLATION.  Discarding such a packet after
    //# only removing header protection can expose the endpoint to
    //# attacks; see Section 9.5 of [QUIC-TLS].
    //= https://www.rfc-editor.org/rfc/rfc9000#section-17.3.1
    //# An endpoint MUST treat receipt of a
    //# packet that has a non-zero value for these bits, after removing
    //# both packet and header protection, as a connection error of type
    //# PROTOCOL_VIOLATION.
    pub fn check_reserved_bits(&self) -> Result<(), Error> {
        if self.reserved_bits == 0 {
            Ok(())
        } else {
            Err(Error::protocol_violation("reserved header bits set"))
        }
    }

    /// The full packet number, given the largest one processed in this space so far.
    pub fn packet_number(&self, largest_pn: Option<u64>) -> Option<u64> {
        self.pn.expand(largest_pn)
    }
}
