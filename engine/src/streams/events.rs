//! What the stream layer hands out: application events, control frames and STREAM data to send.

use bytes::Bytes;

use super::id::{Dir, StreamId};
use super::send::{WriteId, WriteOutcome};

/// Something the application should learn about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// The peer opened this stream (explicitly or by opening a higher one of its type).
    Opened {
        /// The stream.
        id: StreamId,
    },
    /// Data or the end of the stream can now be read. Sent when the stream goes from
    /// "nothing to read" to "readable"; read until `Blocked` to be told again.
    Readable {
        /// The stream.
        id: StreamId,
    },
    /// A write that returned `Blocked` may now succeed.
    Writable {
        /// The stream.
        id: StreamId,
    },
    /// Everything we wrote on the stream, and the FIN, was acknowledged.
    Finished {
        /// The stream.
        id: StreamId,
    },
    /// The peer reset its sending part: no more data will arrive.
    Reset {
        /// The stream.
        id: StreamId,
        /// The peer's application error code.
        error_code: u64,
    },
    /// The peer asked us to stop sending (STOP_SENDING); our sending part was reset.
    Stopped {
        /// The stream.
        id: StreamId,
        /// The peer's application error code (also sent back in RESET_STREAM).
        error_code: u64,
    },
    /// An accepted write ended. Exactly one per accepted write.
    WriteComplete {
        /// The stream.
        id: StreamId,
        /// The write.
        write: WriteId,
        /// Delivered or cancelled.
        outcome: WriteOutcome,
    },
    /// The peer raised its stream limit after an open of this type was refused.
    Available {
        /// Which kind of stream may now be opened.
        dir: Dir,
    },
}

/// A control frame the connection should send (it owns the encoding), and report back as
/// acknowledged or lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlFrame {
    /// RESET_STREAM.
    ResetStream {
        /// The stream.
        id: StreamId,
        /// Application error code.
        error_code: u64,
        /// Final size.
        final_size: u64,
    },
    /// STOP_SENDING.
    StopSending {
        /// The stream.
        id: StreamId,
        /// Application error code.
        error_code: u64,
    },
    /// MAX_DATA.
    MaxData(u64),
    /// MAX_STREAM_DATA.
    MaxStreamData {
        /// The stream.
        id: StreamId,
        /// New limit.
        max: u64,
    },
    /// MAX_STREAMS (type 0x12 for bidirectional, 0x13 for unidirectional).
    MaxStreams {
        /// Stream type.
        dir: Dir,
        /// New cumulative limit.
        max: u64,
    },
    /// DATA_BLOCKED.
    DataBlocked(u64),
    /// STREAM_DATA_BLOCKED.
    StreamDataBlocked {
        /// The stream.
        id: StreamId,
        /// The stream limit we are blocked at.
        limit: u64,
    },
    /// STREAMS_BLOCKED (type 0x16 for bidirectional, 0x17 for unidirectional).
    StreamsBlocked {
        /// Stream type.
        dir: Dir,
        /// The stream limit we are blocked at.
        limit: u64,
    },
}

/// A STREAM frame the connection should send; report it back with
/// `on_stream_data_acked` / `on_stream_data_lost` using the same fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamFrame {
    /// The stream.
    pub id: StreamId,
    /// Offset of the first byte.
    pub offset: u64,
    /// The bytes (zero-copy slice of an application write; empty for FIN only).
    pub data: Bytes,
    /// Whether to set the FIN bit.
    pub fin: bool,
}
