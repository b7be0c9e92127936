//! Connection-level flow-control frames: MAX_DATA, MAX_STREAMS, DATA_BLOCKED and STREAMS_BLOCKED
//! (RFC 9000 §19.9, §19.11, §19.12, §19.14).

use super::codec::{varint_frame, FrameReader};
use super::FrameType;
use crate::coding::{BufferFull, Writer};
use crate::error::Error;
use crate::varint::VarInt;

/// The largest stream count MAX_STREAMS and STREAMS_BLOCKED may carry: 2^60, since no stream ID
/// above 2^62-1 can be encoded.
pub const MAX_STREAM_COUNT: u64 = 1 << 60;

/// Which kind of streams a MAX_STREAMS or STREAMS_BLOCKED frame counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamDir {
    /// Bidirectional streams (frame types 0x12, 0x16).
    Bidi,
    /// Unidirectional streams (frame types 0x13, 0x17).
    Uni,
}

varint_frame! {
    /// MAX_DATA (type 0x10): raises the connection's flow-control limit (RFC 9000 §19.9).
    MaxData = FrameType::MAX_DATA;
    /// The maximum amount of data, in bytes, that can be sent on the connection.
    max_data,
}

varint_frame! {
    /// DATA_BLOCKED (type 0x14): the sender is blocked by the connection's flow-control limit
    /// (RFC 9000 §19.12).
    DataBlocked = FrameType::DATA_BLOCKED;
    /// The connection-level limit at which blocking occurred.
    limit,
}

/// MAX_STREAMS (types 0x12 bidirectional, 0x13 unidirectional): the cumulative number of
/// streams of one kind the peer may open (RFC 9000 §19.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaxStreams {
    /// Which streams are counted.
    pub dir: StreamDir,
    /// The cumulative stream count, at most [`MAX_STREAM_COUNT`].
    pub max_streams: VarInt,
}

/// STREAMS_BLOCKED (types 0x16 bidirectional, 0x17 unidirectional): the sender wanted to open
/// a stream but the peer's limit stopped it (RFC 9000 §19.14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamsBlocked {
    /// Which streams are counted.
    pub dir: StreamDir,
    /// The stream limit at the time the frame was sent, at most [`MAX_STREAM_COUNT`].
    pub limit: VarInt,
}

/// Reads a stream count, rejecting counts above 2^60 with FRAME_ENCODING_ERROR.
fn read_count(r: &mut FrameReader<'_, '_>) -> Result<VarInt, Error> {
    let count = r.varint()?;
    if count.into_inner() > MAX_STREAM_COUNT {
        return Err(r.invalid("stream count above 2^60"));
    }
    Ok(count)
}

fn write_count(w: &mut Writer<'_>, ty: FrameType, count: VarInt) -> Result<(), BufferFull> {
    if 1 + count.size() > w.remaining() {
        return Err(BufferFull);
    }
    w.put_varint(ty.0)?;
    w.put_varint(count.into_inner())
}

impl MaxStreams {
    /// The frame type: 0x12 for bidirectional, 0x13 for unidirectional streams.
    pub const fn frame_type(&self) -> FrameType {
        match self.dir {
            StreamDir::Bidi => FrameType::MAX_STREAMS_BIDI,
            StreamDir::Uni => FrameType::MAX_STREAMS_UNI,
        }
    }

    /// Exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        1 + self.max_streams.size()
    }

    /// Writes the frame; on [`BufferFull`] nothing is written. The caller keeps the count at
    /// most [`MAX_STREAM_COUNT`].
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        write_count(w, self.frame_type(), self.max_streams)
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-19.11
    //# Receipt of a frame that
    //# permits opening of a stream larger than this limit MUST be treated
    //# as a connection error of type FRAME_ENCODING_ERROR.
    pub(super) fn decode(r: &mut FrameReader<'_, '_>) -> Result<Self, Error> {
        let dir = if r.frame_type() == FrameType::MAX_STREAMS_BIDI.0 {
            StreamDir::Bidi
        } else {
            StreamDir::Uni
        };
        Ok(Self { dir, max_streams: read_count(r)? })
    }
}

impl StreamsBlocked {
    /// The frame type: 0x16 for bidirectional, 0x17 for unidirectional streams.
    pub const fn frame_type(&self) -> FrameType {
        match self.dir {
            StreamDir::Bidi => FrameType::STREAMS_BLOCKED_BIDI,
            StreamDir::Uni => FrameType::STREAMS_BLOCKED_UNI,
        }
    }

    /// Exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        1 + self.limit.size()
    }

    /// Writes the frame; on [`BufferFull`] nothing is written. The caller keeps the limit at
    /// most [`MAX_STREAM_COUNT`].
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        write_count(w, self.frame_type(), self.limit)
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-19.14
    //# Receipt of a frame that encodes a larger
    //# stream ID MUST be treated as a connection error of type
    //# STREAM_LIMIT_ERROR or FRAME_ENCODING_ERROR.
    // FRAME_ENCODING_ERROR, as for MAX_STREAMS: it is a property of the frame alone.
    pub(super) fn decode(r: &mut FrameReader<'_, '_>) -> Result<Self, Error> {
        let dir = if r.frame_type() == FrameType::STREAMS_BLOCKED_BIDI.0 {
            StreamDir::Bidi
        } else {
            StreamDir::Uni
        };
        Ok(Self { dir, limit: read_count(r)? })
    }
}
