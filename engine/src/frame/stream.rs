//! STREAM (RFC 9000 §19.8) and the per-stream control frames RESET_STREAM, STOP_SENDING,
//! MAX_STREAM_DATA and STREAM_DATA_BLOCKED (§19.4, §19.5, §19.10, §19.13).

use super::codec::{len_prefix_size, max_prefixed_len, varint_frame, FrameReader};
use super::FrameType;
use crate::coding::{BufferFull, Writer};
use crate::error::Error;
use crate::varint::{self, VarInt};

/// The OFF bit of a STREAM frame type: an Offset field is present.
pub const STREAM_OFF_BIT: u64 = 0x04;
/// The LEN bit of a STREAM frame type: a Length field is present.
pub const STREAM_LEN_BIT: u64 = 0x02;
/// The FIN bit of a STREAM frame type: the frame ends the stream.
pub const STREAM_FIN_BIT: u64 = 0x01;

/// A STREAM frame (types 0x08..=0x0f), borrowing its data from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stream<'a> {
    /// The stream ID.
    pub stream_id: VarInt,
    /// Offset of the first data byte in the stream (the OFF bit is written only when non-zero).
    pub offset: VarInt,
    /// The stream data.
    pub data: &'a [u8],
    /// The FIN bit: the frame ends the stream, whose final size is `offset + data.len()`.
    pub fin: bool,
    /// The LEN bit: a Length field is present. Without it the data runs to the end of the
    /// packet, so only the last frame of a packet may omit it.
    pub has_length: bool,
}

impl<'a> Stream<'a> {
    /// The stream offset just past this frame's data (the final size when `fin` is set).
    pub fn end_offset(&self) -> u64 {
        self.offset.into_inner().saturating_add(self.data.len() as u64)
    }

    /// The frame type with the OFF, LEN and FIN bits this frame is written with.
    pub fn frame_type(&self) -> FrameType {
        let mut ty = FrameType::STREAM.0;
        if self.offset != VarInt::ZERO {
            ty |= STREAM_OFF_BIT;
        }
        if self.has_length {
            ty |= STREAM_LEN_BIT;
        }
        if self.fin {
            ty |= STREAM_FIN_BIT;
        }
        FrameType(ty)
    }

    /// Bytes a STREAM frame takes before its data.
    pub fn header_len(
        stream_id: VarInt,
        offset: VarInt,
        data_len: usize,
        has_length: bool,
    ) -> usize {
        let off = if offset == VarInt::ZERO { 0 } else { offset.size() };
        let len = if has_length { len_prefix_size(data_len) } else { 0 };
        1 + stream_id.size() + off + len
    }

    /// The most data a STREAM frame for `stream_id` at `offset` can carry in `capacity` bytes,
    /// with or without the Length field, also keeping the end offset within 2^62-1. `None`
    /// when not even an empty frame (e.g. a bare FIN) fits. Without a Length field the frame
    /// fills `capacity` exactly (unless capped by the offset limit); with a Length field the frame can end short of `capacity`, by at most 2 bytes below 2^30 (4
    /// above), where a bigger length field would leave no room for the extra data: fill that
    /// with PADDING.
    pub fn max_data_len(
        stream_id: VarInt,
        offset: VarInt,
        capacity: usize,
        has_length: bool,
    ) -> Option<usize> {
        let fixed = Self::header_len(stream_id, offset, 0, false);
        let avail = capacity.checked_sub(fixed)?;
        let n = if has_length { max_prefixed_len(avail)? } else { avail };
        let room_in_stream = varint::MAX - offset.into_inner();
        Some(usize::try_from(room_in_stream).map_or(n, |r| n.min(r)))
    }

    /// Exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        Self::header_len(self.stream_id, self.offset, self.data.len(), self.has_length)
            + self.data.len()
    }

    /// Writes the frame; on [`BufferFull`] nothing is written. The caller keeps
    /// `offset + data.len()` within 2^62-1 (see [`max_data_len`](Self::max_data_len)).
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        if self.encoded_len() > w.remaining() {
            return Err(BufferFull);
        }
        w.put_varint(self.frame_type().0)?;
        w.put_varint(self.stream_id.into_inner())?;
        if self.offset != VarInt::ZERO {
            w.put_varint(self.offset.into_inner())?;
        }
        if self.has_length {
            w.put_varint(self.data.len() as u64)?;
        }
        w.put_slice(self.data)
    }

    pub(super) fn decode(r: &mut FrameReader<'_, 'a>) -> Result<Self, Error> {
        let ty = r.frame_type();
        let stream_id = r.varint()?;
        let offset = if ty & STREAM_OFF_BIT != 0 { r.varint()? } else { VarInt::ZERO };
        let has_length = ty & STREAM_LEN_BIT != 0;
        let data = if has_length {
            let len = r.varint()?;
            r.bytes(len)?
        } else {
            r.rest()
        };
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.8
        //# Receipt of a frame that exceeds this limit
        //# MUST be treated as a connection error of type FRAME_ENCODING_ERROR or
        //# FLOW_CONTROL_ERROR.
        // FRAME_ENCODING_ERROR: the decoder sees it without any flow-control state.
        match offset.into_inner().checked_add(data.len() as u64) {
            Some(end) if end <= varint::MAX => {}
            _ => return Err(r.invalid("STREAM frame ends beyond offset 2^62-1")),
        }
        Ok(Self { stream_id, offset, data, fin: ty & STREAM_FIN_BIT != 0, has_length })
    }
}

varint_frame! {
    /// RESET_STREAM (type 0x04): abruptly ends the sending part of a stream (RFC 9000 §19.4).
    ResetStream = FrameType::RESET_STREAM;
    /// The stream being reset.
    stream_id,
    /// The application protocol error code.
    error_code,
    /// The final size of the stream in bytes.
    final_size,
}

varint_frame! {
    /// STOP_SENDING (type 0x05): asks the peer to stop sending on a stream (RFC 9000 §19.5).
    StopSending = FrameType::STOP_SENDING;
    /// The stream being ignored.
    stream_id,
    /// The application protocol error code.
    error_code,
}

varint_frame! {
    /// MAX_STREAM_DATA (type 0x11): raises a stream's flow-control limit (RFC 9000 §19.10).
    MaxStreamData = FrameType::MAX_STREAM_DATA;
    /// The stream the limit applies to.
    stream_id,
    /// The maximum amount of data, in bytes, that can be sent on the stream.
    max_data,
}

varint_frame! {
    /// STREAM_DATA_BLOCKED (type 0x15): the sender is blocked by a stream's flow-control limit
    /// (RFC 9000 §19.13).
    StreamDataBlocked = FrameType::STREAM_DATA_BLOCKED;
    /// The blocked stream.
    stream_id,
    /// The stream offset at which blocking occurred.
    limit,
}
