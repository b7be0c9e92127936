//! Version Negotiation packets (RFC 8999 §6, RFC 9000 §17.2.1): build and parse.

use std::ops::Range;

use super::{EncodeError, InvariantHeader, PacketDecodeError, FIXED_BIT, LONG_HEADER_FORM};
use crate::coding::{Reader, Writer};

/// A received Version Negotiation packet. Connection IDs are borrowed (RFC 8999 allows up to
/// 255 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionNegotiation<'a> {
    /// Destination Connection ID (must equal the client's Source Connection ID).
    pub dst_cid: &'a [u8],
    /// Source Connection ID (must equal the client's original Destination Connection ID).
    pub src_cid: &'a [u8],
    versions: &'a [u8],
}

impl<'a> VersionNegotiation<'a> {
    /// Parses a Version Negotiation packet (a whole datagram: it is never coalesced).
    //= https://www.rfc-editor.org/rfc/rfc8999#section-6
    //# The remaining 7 bits,
    //# labeled "Unused", can be set to any value when sending and MUST be
    //# ignored on receipt.
    //= https://www.rfc-editor.org/rfc/rfc8999#section-6
    //# An endpoint MUST ignore
    //# a packet that contains no Supported Version fields or contains a
    //# truncated Supported Version value.
    pub fn parse(packet: &'a [u8]) -> Result<Self, PacketDecodeError> {
        let (dst_cid, src_cid) = match InvariantHeader::parse(packet, 0)? {
            InvariantHeader::Long { version: 0, dst_cid, src_cid, .. } => (dst_cid, src_cid),
            _ => return Err(PacketDecodeError::Invalid("not a Version Negotiation packet")),
        };
        let mut r = Reader::new(packet);
        // first byte, version, two length bytes, the two IDs
        let _ = r.skip(7 + dst_cid.len() + src_cid.len());
        let versions = r.rest();
        if versions.is_empty() || versions.len() % 4 != 0 {
            return Err(PacketDecodeError::Invalid("empty or truncated version list"));
        }
        Ok(Self { dst_cid, src_cid, versions })
    }

    /// The Supported Version fields, in order.
    pub fn versions(&self) -> impl Iterator<Item = u32> + 'a {
        self.versions.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// True when `version` is listed. A client MUST ignore a Version Negotiation packet that
    /// lists the version it attempted (RFC 9000 §6.2; RFC 9368 §4).
    pub fn contains(&self, version: u32) -> bool {
        self.versions().any(|v| v == version)
    }
}

/// Writes a Version Negotiation packet with the given connection IDs (already swapped: see
/// [`write_version_negotiation_response`]) and supported versions. `unused_random` supplies the
/// seven Unused bits (randomness as input); the 0x40 bit is always set. Returns the range
/// written.
//= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.1
//# Where QUIC
//# might be multiplexed with other protocols (see [RFC7983]), servers
//# SHOULD set the most significant bit of this field (0x40) to 1 so that
//# Version Negotiation packets appear to have the Fixed Bit field.
//= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.1
//# The Version field of a Version Negotiation packet MUST be set to
//# 0x00000000.
pub fn write_version_negotiation(
    w: &mut Writer<'_>,
    unused_random: u8,
    dst_cid: &[u8],
    src_cid: &[u8],
    versions: &[u32],
) -> Result<Range<usize>, EncodeError> {
    if dst_cid.len() > 255 || src_cid.len() > 255 {
        return Err(EncodeError::Invalid("connection ID over 255 bytes"));
    }
    if versions.is_empty() {
        return Err(EncodeError::Invalid("no supported versions"));
    }
    let need = 7 + dst_cid.len() + src_cid.len() + 4 * versions.len();
    if need > w.remaining() {
        return Err(EncodeError::BufferFull);
    }
    let start = w.len();
    w.put_u8(LONG_HEADER_FORM | FIXED_BIT | (unused_random & 0x3f))?;
    w.put_u32(0)?;
    w.put_u8(dst_cid.len() as u8)?;
    w.put_slice(dst_cid)?;
    w.put_u8(src_cid.len() as u8)?;
    w.put_slice(src_cid)?;
    for v in versions {
        w.put_u32(*v)?;
    }
    Ok(start..w.len())
}

/// Writes the Version Negotiation reply to a received long-header packet, echoing its
/// connection IDs swapped. Short headers never trigger Version Negotiation.
//= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.1
//# The server MUST include the value from the Source Connection ID field
//# of the packet it receives in the Destination Connection ID field.
//# The value for Source Connection ID MUST be copied from the
//# Destination Connection ID of the received packet, which is initially
//# randomly selected by a client.
pub fn write_version_negotiation_response(
    w: &mut Writer<'_>,
    unused_random: u8,
    received: &InvariantHeader<'_>,
    versions: &[u32],
) -> Result<Range<usize>, EncodeError> {
    match *received {
        InvariantHeader::Long { version, dst_cid, src_cid, .. } if version != 0 => {
            write_version_negotiation(w, unused_random, src_cid, dst_cid, versions)
        }
        _ => Err(EncodeError::Invalid("only long headers with a version get a reply")),
    }
}
