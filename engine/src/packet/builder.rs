//! Writing long and short headers in place, then patching Length once the payload is known.

use std::ops::Range;

use super::number::TruncatedPn;
use super::{
    EncodeError, LongType, FIXED_BIT, HP_SAMPLE_LEN, HP_SAMPLE_OFFSET, KEY_PHASE_BIT,
    LONG_HEADER_FORM, SPIN_BIT,
};
use crate::cid::ConnectionId;
use crate::coding::{BufferFull, Writer};
use crate::varint;

/// A long header to write: Initial, 0-RTT or Handshake (Retry has [`super::RetryHeader`]).
#[derive(Clone, Copy, Debug)]
pub struct LongHeader<'a> {
    /// Initial, 0-RTT or Handshake.
    pub ty: LongType,
    /// QUIC version (v1 or v2); selects the type bits.
    pub version: u32,
    /// Destination Connection ID.
    pub dst_cid: ConnectionId,
    /// Source Connection ID.
    pub src_cid: ConnectionId,
    /// Token (Initial packets only; must be empty otherwise).
    pub token: &'a [u8],
    /// The packet number, already truncated (see [`TruncatedPn::encode`]).
    pub pn: TruncatedPn,
    /// Send the Fixed Bit as 0 (RFC 9287; only when the peer advertised `grease_quic_bit`).
    pub grease_quic_bit: bool,
}

/// A short (1-RTT) header to write.
#[derive(Clone, Copy, Debug)]
pub struct ShortHeader {
    /// Destination Connection ID.
    pub dst_cid: ConnectionId,
    /// Latency spin bit.
    pub spin: bool,
    /// Key Phase bit.
    pub key_phase: bool,
    /// The packet number, already truncated.
    pub pn: TruncatedPn,
    /// Send the Fixed Bit as 0 (RFC 9287; only when the peer advertised `grease_quic_bit`).
    pub grease_quic_bit: bool,
}

/// A packet whose header is written and whose payload is being written after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "finish the packet to patch its Length and reserve the AEAD tag"]
pub struct PacketBuilder {
    start: usize,
    /// Offset (from `start`) and size of the reserved Length field, for long headers.
    length_field: Option<(usize, usize)>,
    pn_offset: usize,
    pn_len: usize,
}

/// Where the parts of a finished packet lie, for the crypto layer to seal and protect in place.
/// `start` is the packet's offset in the writer's buffer; the other offsets are from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketLayout {
    /// Offset of the packet's first byte in the writer's buffer.
    pub start: usize,
    /// Offset of the Packet Number field.
    pub pn_offset: usize,
    /// Header length including the packet number: the AEAD's associated data.
    pub header_len: usize,
    /// Total packet length, AEAD tag included.
    pub len: usize,
    /// Bytes reserved at the end for the AEAD tag (zeroed).
    pub tag_len: usize,
}

impl PacketLayout {
    /// The packet's bytes within the writer's buffer.
    pub fn range(&self) -> Range<usize> {
        self.start..self.start + self.len
    }
}

/// Size of the Length field to reserve when at most `room` bytes can follow the header so far:
/// the shortest varint that can hold any Length that fits.
fn length_field_size(room: usize) -> usize {
    let room = room as u64;
    [(2usize, 1u64 << 14), (4, 1 << 30)]
        .into_iter()
        .find(|&(size, limit)| room.saturating_sub(size as u64) < limit)
        .map_or(8, |(size, _)| size)
}

impl PacketBuilder {
    /// Writes a long header at the writer's position, reserving the Length field.
    ///
    /// Give the writer a buffer no larger than the datagram so that Length takes 2 bytes.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2
    //# Fixed Bit:  The next bit (0x40) of byte 0 is set to 1, unless the
    //# packet is a Version Negotiation packet.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-17.2
    //# The value
    //# included prior to protection MUST be set to 0.
    pub fn long(w: &mut Writer<'_>, h: &LongHeader<'_>) -> Result<Self, EncodeError> {
        if h.ty == LongType::Retry {
            return Err(EncodeError::Invalid("Retry packets are written with RetryHeader"));
        }
        if h.ty != LongType::Initial && !h.token.is_empty() {
            return Err(EncodeError::Invalid("only Initial packets carry a token"));
        }
        let ty_bits = h.ty.to_bits(h.version).ok_or(EncodeError::Invalid("unknown version"))?;
        let fixed = if h.grease_quic_bit { 0 } else { FIXED_BIT };
        let start = w.len();
        // Reserved bits are 0; the low two bits carry the packet number length.
        w.put_u8(LONG_HEADER_FORM | fixed | (ty_bits << 4) | h.pn.len_bits())?;
        w.put_u32(h.version)?;
        w.put_u8(h.dst_cid.len() as u8)?;
        w.put_slice(&h.dst_cid)?;
        w.put_u8(h.src_cid.len() as u8)?;
        w.put_slice(&h.src_cid)?;
        if h.ty == LongType::Initial {
            w.put_varint_prefixed(h.token)?;
        }
        let size = length_field_size(w.remaining());
        let length_offset = w.len() - start;
        w.reserve(size)?.fill(0);
        let pn_offset = w.len() - start;
        h.pn.write(w)?;
        Ok(Self { start, length_field: Some((length_offset, size)), pn_offset, pn_len: h.pn.len() })
    }

    /// Writes a short (1-RTT) header at the writer's position.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-17.3.1
    //# The value included prior to
    //# protection MUST be set to 0.
    pub fn short(w: &mut Writer<'_>, h: &ShortHeader) -> Result<Self, EncodeError> {
        let fixed = if h.grease_quic_bit { 0 } else { FIXED_BIT };
        let spin = if h.spin { SPIN_BIT } else { 0 };
        let key_phase = if h.key_phase { KEY_PHASE_BIT } else { 0 };
        let start = w.len();
        w.put_u8(fixed | spin | key_phase | h.pn.len_bits())?;
        w.put_slice(&h.dst_cid)?;
        let pn_offset = w.len() - start;
        h.pn.write(w)?;
        Ok(Self { start, length_field: None, pn_offset, pn_len: h.pn.len() })
    }

    /// Offset of the packet's first byte in the writer's buffer.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Offset of the Packet Number field from the packet's first byte.
    pub fn pn_offset(&self) -> usize {
        self.pn_offset
    }

    /// Header length including the packet number.
    pub fn header_len(&self) -> usize {
        self.pn_offset + self.pn_len
    }

    /// Payload bytes written so far after the header.
    pub fn payload_len(&self, w: &Writer<'_>) -> usize {
        w.len().saturating_sub(self.start + self.header_len())
    }

    /// Adds zero bytes (PADDING frames) to this packet's payload until the datagram, whose first
    /// byte is the start of the writer's buffer, will be at least `min_len` bytes once the
    /// `tag_len`-byte AEAD tag is added: the Initial padding rule, applied inside the last packet
    /// of the datagram before its Length is patched.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-14.1
    //# A client MUST expand the payload of all UDP datagrams carrying
    //# Initial packets to at least the smallest allowed maximum datagram
    //# size of 1200 bytes by adding PADDING frames to the Initial packet or
    //# by coalescing the Initial packet; see Section 12.2.
    pub fn pad_datagram_to(
        &self,
        w: &mut Writer<'_>,
        min_len: usize,
        tag_len: usize,
    ) -> Result<(), BufferFull> {
        let have = w.len() + tag_len;
        if have < min_len {
            w.reserve(min_len - have)?.fill(0);
        }
        Ok(())
    }

    /// Ends the packet: pads the payload with PADDING so header protection has a full sample,
    /// reserves `tag_len` zero bytes for the AEAD tag, and patches Length (long headers).
    ///
    /// Fails with [`EncodeError::Invalid`] when no frame was written.
    //= https://www.rfc-editor.org/rfc/rfc9001#section-5.4.2
    //# To ensure that sufficient data is available for sampling, packets are
    //# padded so that the combined lengths of the encoded packet number and
    //# protected payload is at least 4 bytes longer than the sample required
    //# for header protection.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-12.4
    //# The payload of a packet that contains frames MUST contain at least
    //# one frame, and MAY contain multiple frames and multiple frame types.
    pub fn finish(self, w: &mut Writer<'_>, tag_len: usize) -> Result<PacketLayout, EncodeError> {
        let payload = self.payload_len(w);
        if payload == 0 {
            return Err(EncodeError::Invalid("packet without frames"));
        }
        let have = self.pn_len + payload + tag_len;
        let need = (HP_SAMPLE_OFFSET + HP_SAMPLE_LEN).saturating_sub(have);
        if need + tag_len > w.remaining() {
            return Err(EncodeError::BufferFull);
        }
        w.reserve(need + tag_len)?.fill(0);
        let len = w.len() - self.start;
        if let Some((offset, size)) = self.length_field {
            let length = (len - self.pn_offset) as u64;
            let at = self.start + offset;
            varint::encode_with_size(length, size, &mut w.written_mut()[at..])
                .ok_or(EncodeError::Invalid("payload too long for the Length field"))?;
        }
        Ok(PacketLayout {
            start: self.start,
            pn_offset: self.pn_offset,
            header_len: self.header_len(),
            len,
            tag_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_field_sizes() {
        assert_eq!(length_field_size(0), 2);
        assert_eq!(length_field_size(1500), 2);
        assert_eq!(length_field_size(16385), 2);
        assert_eq!(length_field_size(16386), 4);
        assert_eq!(length_field_size((1 << 30) + 3), 4);
        assert_eq!(length_field_size((1 << 30) + 4), 8);
    }
}
