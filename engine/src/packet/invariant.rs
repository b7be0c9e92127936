//! The version-independent header fields of RFC 8999, for routing and Version Negotiation.

use super::{PacketDecodeError, LONG_HEADER_FORM};
use crate::coding::Reader;

/// The fields every QUIC version shares (RFC 8999 §5). Connection IDs are borrowed because other
/// versions allow up to 255 bytes, which a Version Negotiation reply must echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvariantHeader<'a> {
    /// A long header (high bit set).
    Long {
        /// The whole first byte (version-specific bits included).
        first_byte: u8,
        /// The Version field (0 for Version Negotiation).
        version: u32,
        /// Destination Connection ID, 0 to 255 bytes.
        dst_cid: &'a [u8],
        /// Source Connection ID, 0 to 255 bytes.
        src_cid: &'a [u8],
    },
    /// A short header (high bit clear).
    Short {
        /// The whole first byte.
        first_byte: u8,
        /// Destination Connection ID, of the length the receiver chose for its IDs.
        dst_cid: &'a [u8],
    },
}

impl<'a> InvariantHeader<'a> {
    /// Parses the invariant fields at the front of `datagram`. `short_dcid_len` is the length of
    /// the connection IDs this endpoint issues (short headers do not carry it).
    //= https://www.rfc-editor.org/rfc/rfc8999#section-5.2
    //# The length of the
    //# Destination Connection ID is not encoded in packets with a short
    //# header and is not constrained by this specification.
    pub fn parse(datagram: &'a [u8], short_dcid_len: usize) -> Result<Self, PacketDecodeError> {
        let mut r = Reader::new(datagram);
        let first_byte = r.u8().map_err(|_| PacketDecodeError::Invalid("empty datagram"))?;
        if first_byte & LONG_HEADER_FORM == 0 {
            let dst_cid = r
                .bytes(short_dcid_len)
                .map_err(|_| PacketDecodeError::Invalid("short header shorter than its CID"))?;
            return Ok(InvariantHeader::Short { first_byte, dst_cid });
        }
        let truncated = |_| PacketDecodeError::Invalid("truncated long header");
        let version = r.u32().map_err(truncated)?;
        let dcid_len = r.u8().map_err(truncated)?;
        let dst_cid = r.bytes(usize::from(dcid_len)).map_err(truncated)?;
        let scid_len = r.u8().map_err(truncated)?;
        let src_cid = r.bytes(usize::from(scid_len)).map_err(truncated)?;
        Ok(InvariantHeader::Long { first_byte, version, dst_cid, src_cid })
    }

    /// The Destination Connection ID.
    pub fn dst_cid(&self) -> &'a [u8] {
        match *self {
            InvariantHeader::Long { dst_cid, .. } | InvariantHeader::Short { dst_cid, .. } => {
                dst_cid
            }
        }
    }

    /// The Version field of a long header; `None` for a short header.
    pub fn version(&self) -> Option<u32> {
        match *self {
            InvariantHeader::Long { version, .. } => Some(version),
            InvariantHeader::Short { .. } => None,
        }
    }
}
