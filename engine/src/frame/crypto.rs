//! CRYPTO (RFC 9000 §19.6) and NEW_TOKEN (§19.7) frames.

use super::codec::{len_prefix_size, max_prefixed_len, FrameReader};
use super::FrameType;
use crate::coding::{BufferFull, Writer};
use crate::error::Error;
use crate::varint::{self, VarInt};

/// A CRYPTO frame (type 0x06): handshake bytes at an offset of the current encryption level's
/// crypto stream, borrowed from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Crypto<'a> {
    /// Offset of the first byte in the crypto stream.
    pub offset: VarInt,
    /// The handshake bytes.
    pub data: &'a [u8],
}

impl<'a> Crypto<'a> {
    /// The frame type (0x06).
    pub const fn frame_type(&self) -> FrameType {
        FrameType::CRYPTO
    }

    /// The crypto-stream offset just past this frame's data.
    pub fn end_offset(&self) -> u64 {
        self.offset.into_inner().saturating_add(self.data.len() as u64)
    }

    /// Bytes a CRYPTO frame takes before its data.
    pub fn header_len(offset: VarInt, data_len: usize) -> usize {
        1 + offset.size() + len_prefix_size(data_len)
    }

    /// The most handshake data a CRYPTO frame at `offset` can carry in `capacity` bytes, or
    /// `None` when not even an empty frame fits. CRYPTO frames always carry a Length field
    /// (there is no variant without it). With a Length field the frame can end short of `capacity`, by at most 2 bytes below 2^30 (4
    /// above), where a bigger length field would leave no room for the extra data: fill that
    /// with PADDING.
    pub fn max_data_len(offset: VarInt, capacity: usize) -> Option<usize> {
        let avail = capacity.checked_sub(1 + offset.size())?;
        let n = max_prefixed_len(avail)?;
        let room_in_stream = varint::MAX - offset.into_inner();
        Some(usize::try_from(room_in_stream).map_or(n, |r| n.min(r)))
    }

    /// Exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        Self::header_len(self.offset, self.data.len()) + self.data.len()
    }

    /// Writes the frame; on [`BufferFull`] nothing is written.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        if self.encoded_len() > w.remaining() {
            return Err(BufferFull);
        }
        w.put_varint(FrameType::CRYPTO.0)?;
        w.put_varint(self.offset.into_inner())?;
        w.put_varint_prefixed(self.data)
    }

    pub(super) fn decode(r: &mut FrameReader<'_, 'a>) -> Result<Self, Error> {
        let offset = r.varint()?;
        let len = r.varint()?;
        let data = r.bytes(len)?;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.6
        //# Receipt of a frame that exceeds
        //# this limit MUST be treated as a connection error of type
        //# FRAME_ENCODING_ERROR or CRYPTO_BUFFER_EXCEEDED.
        // FRAME_ENCODING_ERROR: detected statelessly here, before any buffering.
        match offset.into_inner().checked_add(data.len() as u64) {
            Some(end) if end <= varint::MAX => Ok(Self { offset, data }),
            _ => Err(r.invalid("CRYPTO frame ends beyond offset 2^62-1")),
        }
    }
}

/// A NEW_TOKEN frame (type 0x07): a token for the Initial packets of a future connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NewToken<'a> {
    /// The opaque token; never empty on the wire.
    pub token: &'a [u8],
}

impl<'a> NewToken<'a> {
    /// The frame type (0x07).
    pub const fn frame_type(&self) -> FrameType {
        FrameType::NEW_TOKEN
    }

    /// Exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        1 + len_prefix_size(self.token.len()) + self.token.len()
    }

    /// Writes the frame; on [`BufferFull`] nothing is written. Only servers send NEW_TOKEN, and
    /// the token must not be empty (the peer rejects an empty one).
    //= https://www.rfc-editor.org/rfc/rfc9000#section-19.7
    //# The token MUST NOT be empty.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        debug_assert!(!self.token.is_empty(), "NEW_TOKEN with an empty token");
        if self.encoded_len() > w.remaining() {
            return Err(BufferFull);
        }
        w.put_varint(FrameType::NEW_TOKEN.0)?;
        w.put_varint_prefixed(self.token)
    }

    pub(super) fn decode(r: &mut FrameReader<'_, 'a>) -> Result<Self, Error> {
        let len = r.varint()?;
        let token = r.bytes(len)?;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.7
        //# A client MUST treat receipt
        //# of a NEW_TOKEN frame with an empty Token field as a connection
        //# error of type FRAME_ENCODING_ERROR.
        if token.is_empty() {
            return Err(r.invalid("NEW_TOKEN with an empty token"));
        }
        Ok(Self { token })
    }
}
