//! Retry packets: build and split; the crypto layer computes and checks the integrity tag.

use std::ops::Range;

use super::{EncodeError, LongType, PacketDecodeError, FIXED_BIT, LONG_HEADER_FORM};
use crate::cid::ConnectionId;
use crate::coding::{Reader, Writer};
use crate::version;

/// Length of the Retry Integrity Tag (RFC 9001 §5.8).
pub const RETRY_INTEGRITY_TAG_LEN: usize = 16;

/// A Retry packet to send, without its integrity tag.
#[derive(Clone, Copy, Debug)]
pub struct RetryHeader<'a> {
    /// QUIC version (v1 or v2).
    pub version: u32,
    /// The client's Source Connection ID from its Initial.
    pub dst_cid: ConnectionId,
    /// The connection ID the server chose (must differ from the client's Destination CID).
    pub src_cid: ConnectionId,
    /// The address validation token (at least one byte).
    pub token: &'a [u8],
    /// Arbitrary bits for the four Unused bits of the first byte (randomness as input).
    pub unused_bits: u8,
}

/// A received Retry packet, split into its fields. The crypto layer checks the tag
/// (`crypto::verify_retry_integrity`) before anything here is trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPacket<'a> {
    /// QUIC version.
    pub version: u32,
    /// Destination Connection ID (the client's Source Connection ID).
    pub dst_cid: ConnectionId,
    /// Source Connection ID: the server's new ID, which the client uses as Destination next.
    pub src_cid: ConnectionId,
    /// The Retry Token, to echo in the next Initial packets.
    pub token: &'a [u8],
    /// The Retry Integrity Tag.
    pub integrity_tag: [u8; RETRY_INTEGRITY_TAG_LEN],
    /// The packet minus its tag (what the pseudo-packet covers).
    pub without_tag: &'a [u8],
}

impl RetryHeader<'_> {
    /// Writes the Retry packet without its integrity tag, returning the range written. The
    /// caller computes the tag over those bytes (`crypto::retry_integrity_tag`) and appends it
    /// with [`Writer::put_slice`], or uses [`RetryHeader::write_with_tag`].
    pub fn write(&self, w: &mut Writer<'_>) -> Result<Range<usize>, EncodeError> {
        if self.token.is_empty() {
            return Err(EncodeError::Invalid("Retry token must not be empty"));
        }
        let ty =
            LongType::Retry.to_bits(self.version).ok_or(EncodeError::Invalid("unknown version"))?;
        let start = w.len();
        w.put_u8(LONG_HEADER_FORM | FIXED_BIT | (ty << 4) | (self.unused_bits & 0x0f))?;
        w.put_u32(self.version)?;
        w.put_u8(self.dst_cid.len() as u8)?;
        w.put_slice(&self.dst_cid)?;
        w.put_u8(self.src_cid.len() as u8)?;
        w.put_slice(&self.src_cid)?;
        w.put_slice(self.token)?;
        Ok(start..w.len())
    }

    /// Writes the whole Retry packet with `tag` appended.
    pub fn write_with_tag(
        &self,
        w: &mut Writer<'_>,
        tag: &[u8; RETRY_INTEGRITY_TAG_LEN],
    ) -> Result<Range<usize>, EncodeError> {
        let need = 7 + self.dst_cid.len() + self.src_cid.len() + self.token.len() + tag.len();
        if need > w.remaining() {
            return Err(EncodeError::BufferFull);
        }
        let r = self.write(w)?;
        w.put_slice(tag)?;
        Ok(r.start..w.len())
    }
}

impl<'a> RetryPacket<'a> {
    /// Splits a Retry packet (the whole datagram: Retry is never coalesced).
    //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.5
    //# The value in
    //# the Unused field is set to an arbitrary value by the server; a client
    //# MUST ignore these bits.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2.5.2
    //# A client
    //# MUST discard a Retry packet with a zero-length Retry Token field.
    pub fn parse(packet: &'a [u8]) -> Result<Self, PacketDecodeError> {
        let bad = |_| PacketDecodeError::Invalid("truncated Retry packet");
        let mut r = Reader::new(packet);
        let first = r.u8().map_err(bad)?;
        let version = r.u32().map_err(bad)?;
        if first & LONG_HEADER_FORM == 0 || version == 0 {
            return Err(PacketDecodeError::Invalid("not a Retry packet"));
        }
        if !version::is_supported(version) {
            return Err(PacketDecodeError::UnsupportedVersion(version));
        }
        if LongType::from_bits(version, (first >> 4) & 0x03) != Some(LongType::Retry) {
            return Err(PacketDecodeError::Invalid("not a Retry packet"));
        }
        let too_long = |_| PacketDecodeError::Invalid("connection ID over 20 bytes");
        let dcid_len = r.u8().map_err(bad)?;
        let dst_cid =
            ConnectionId::new(r.bytes(usize::from(dcid_len)).map_err(bad)?).map_err(too_long)?;
        let scid_len = r.u8().map_err(bad)?;
        let src_cid =
            ConnectionId::new(r.bytes(usize::from(scid_len)).map_err(bad)?).map_err(too_long)?;
        let token_len = r
            .remaining()
            .checked_sub(RETRY_INTEGRITY_TAG_LEN)
            .filter(|&n| n > 0)
            .ok_or(PacketDecodeError::Invalid("Retry without token"))?;
        let token = r.bytes(token_len).map_err(bad)?;
        let without_tag = &packet[..r.position()];
        let integrity_tag = r.array().map_err(bad)?;
        Ok(Self { version, dst_cid, src_cid, token, integrity_tag, without_tag })
    }
}
