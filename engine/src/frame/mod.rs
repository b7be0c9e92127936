//! QUIC frames: every RFC 9000 §19 frame type plus DATAGRAM (RFC 9221), decoded zero-copy and
//! encoded in place.
//!
//! - [`Frame`] borrows from the decrypted packet payload; [`Frames`] walks a payload and stops
//!   at the first error, which carries the transport error code and the frame type.
//! - Every frame has `encoded_len()` (exact) and `encode(&mut Writer)`, which writes into the
//!   caller's (datapath-owned) buffer and writes nothing when it does not fit.
//! - [`FrameType`] holds the type numbers, the per-packet-type permissions of RFC 9000 §12.4
//!   and the ack-eliciting / probing / in-flight classification; [`PacketSummary`] adds them up.
//!
//! Decisions on the points the RFC leaves open:
//! - A frame type not in its shortest varint encoding is a PROTOCOL_VIOLATION (RFC 9000 §12.4
//!   "MAY"), checked before the type is interpreted.
//! - STREAM and CRYPTO frames ending beyond offset 2^62-1, and MAX_STREAMS / STREAMS_BLOCKED
//!   above 2^60, are FRAME_ENCODING_ERROR (the RFC allows a second code for some): the decoder
//!   detects them without connection state.
//! - ACK frames of type 0x02 and 0x03 are both accepted; the ranges are checked for underflow
//!   when the frame is decoded, so [`AckRanges`] never fails.

mod ack;
mod ack_frequency;
mod cid;
mod close;
mod codec;
mod crypto;
mod datagram;
mod flow;
mod fuzz;
mod path;
mod simple;
mod stream;
mod types;

#[cfg(test)]
mod tests;

pub use ack::{plan_ack, write_ack, Ack, AckPlan, AckRanges, AckWriteError, EcnCounts};
pub use ack_frequency::{AckFrequency, ImmediateAck};
pub use cid::{NewConnectionId, RetireConnectionId};
pub use close::{CloseKind, ConnectionClose};
pub use crypto::{Crypto, NewToken};
pub use datagram::Datagram;
pub use flow::{DataBlocked, MaxData, MaxStreams, StreamDir, StreamsBlocked, MAX_STREAM_COUNT};
pub use fuzz::{decode_all, fuzz_round_trip};
pub use path::{PathChallenge, PathResponse};
pub use simple::{HandshakeDone, Padding, Ping};
pub use stream::{
    MaxStreamData, ResetStream, StopSending, Stream, StreamDataBlocked, STREAM_FIN_BIT,
    STREAM_LEN_BIT, STREAM_OFF_BIT,
};
pub use types::{FrameType, PacketKind, PacketSummary};

use crate::coding::{BufferFull, Reader, Writer};
use crate::error::Error;
use crate::varint;
use codec::FrameReader;

/// One decoded frame, borrowing payload bytes (stream and crypto data, tokens, reason phrases,
/// datagram payloads, ACK ranges) from the decrypted packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A run of PADDING frames (type 0x00).
    Padding(Padding),
    /// PING (0x01).
    Ping(Ping),
    /// ACK (0x02) or ACK with ECN counts (0x03).
    Ack(Ack<'a>),
    /// RESET_STREAM (0x04).
    ResetStream(ResetStream),
    /// STOP_SENDING (0x05).
    StopSending(StopSending),
    /// CRYPTO (0x06).
    Crypto(Crypto<'a>),
    /// NEW_TOKEN (0x07).
    NewToken(NewToken<'a>),
    /// STREAM (0x08..=0x0f).
    Stream(Stream<'a>),
    /// MAX_DATA (0x10).
    MaxData(MaxData),
    /// MAX_STREAM_DATA (0x11).
    MaxStreamData(MaxStreamData),
    /// MAX_STREAMS (0x12 bidirectional, 0x13 unidirectional).
    MaxStreams(MaxStreams),
    /// DATA_BLOCKED (0x14).
    DataBlocked(DataBlocked),
    /// STREAM_DATA_BLOCKED (0x15).
    StreamDataBlocked(StreamDataBlocked),
    /// STREAMS_BLOCKED (0x16 bidirectional, 0x17 unidirectional).
    StreamsBlocked(StreamsBlocked),
    /// NEW_CONNECTION_ID (0x18).
    NewConnectionId(NewConnectionId),
    /// RETIRE_CONNECTION_ID (0x19).
    RetireConnectionId(RetireConnectionId),
    /// PATH_CHALLENGE (0x1a).
    PathChallenge(PathChallenge),
    /// PATH_RESPONSE (0x1b).
    PathResponse(PathResponse),
    /// CONNECTION_CLOSE (0x1c transport, 0x1d application).
    ConnectionClose(ConnectionClose<'a>),
    /// HANDSHAKE_DONE (0x1e).
    HandshakeDone(HandshakeDone),
    /// IMMEDIATE_ACK (0x1f, draft-ietf-quic-ack-frequency).
    ImmediateAck(ImmediateAck),
    /// DATAGRAM (0x30, or 0x31 with a Length field; RFC 9221).
    Datagram(Datagram<'a>),
    /// ACK_FREQUENCY (0xaf, draft-ietf-quic-ack-frequency).
    AckFrequency(AckFrequency),
}

/// Applies `$body` to the payload of whichever variant `$frame` is.
macro_rules! each_frame {
    ($frame:expr, $f:ident => $body:expr) => {
        match $frame {
            Frame::Padding($f) => $body,
            Frame::Ping($f) => $body,
            Frame::Ack($f) => $body,
            Frame::ResetStream($f) => $body,
            Frame::StopSending($f) => $body,
            Frame::Crypto($f) => $body,
            Frame::NewToken($f) => $body,
            Frame::Stream($f) => $body,
            Frame::MaxData($f) => $body,
            Frame::MaxStreamData($f) => $body,
            Frame::MaxStreams($f) => $body,
            Frame::DataBlocked($f) => $body,
            Frame::StreamDataBlocked($f) => $body,
            Frame::StreamsBlocked($f) => $body,
            Frame::NewConnectionId($f) => $body,
            Frame::RetireConnectionId($f) => $body,
            Frame::PathChallenge($f) => $body,
            Frame::PathResponse($f) => $body,
            Frame::ConnectionClose($f) => $body,
            Frame::HandshakeDone($f) => $body,
            Frame::ImmediateAck($f) => $body,
            Frame::Datagram($f) => $body,
            Frame::AckFrequency($f) => $body,
        }
    };
}

impl<'a> Frame<'a> {
    /// The type this frame is (or would be) written with, flag bits included.
    pub fn frame_type(&self) -> FrameType {
        each_frame!(self, f => f.frame_type())
    }

    /// Exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        each_frame!(self, f => f.encoded_len())
    }

    /// Writes the frame into `w`; on [`BufferFull`] nothing is written.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        each_frame!(self, f => f.encode(w))
    }

    /// Decodes one frame from `r`. A run of PADDING frames is returned as one [`Padding`].
    pub fn decode(r: &mut Reader<'a>) -> Result<Frame<'a>, Error> {
        Self::decode_in(r, None)
    }

    /// Decodes one frame from the payload of a `kind` packet: a known frame type that `kind`
    /// may not carry is a PROTOCOL_VIOLATION, reported before its body is looked at.
    pub fn decode_for(r: &mut Reader<'a>, kind: PacketKind) -> Result<Frame<'a>, Error> {
        Self::decode_in(r, Some(kind))
    }

    fn decode_in(r: &mut Reader<'a>, kind: Option<PacketKind>) -> Result<Frame<'a>, Error> {
        let (ty, ty_len) =
            varint::decode(r.peek_rest()).ok_or(Error::frame_encoding("truncated frame type"))?;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-12.4
        //# An endpoint MAY treat the
        //# receipt of a frame type that uses a longer encoding than necessary as
        //# a connection error of type PROTOCOL_VIOLATION.
        if ty_len != varint::size(ty) {
            return Err(
                Error::protocol_violation("frame type not minimally encoded").with_frame_type(ty)
            );
        }
        r.skip(ty_len).map_err(|_| Error::frame_encoding("truncated frame type"))?;
        if let Some(kind) = kind {
            let ty = FrameType(ty);
            // Unknown types fall through to the FRAME_ENCODING_ERROR below.
            if ty.is_known() {
                ty.check_allowed(kind)?;
            }
        }
        if ty == FrameType::PADDING.0 {
            return Ok(Frame::Padding(Padding::decode_run(r)));
        }
        let mut fr = FrameReader::new(r, ty);
        let r = &mut fr;
        Ok(match ty {
            0x01 => Frame::Ping(Ping),
            0x02 | 0x03 => Frame::Ack(Ack::decode(r)?),
            0x04 => Frame::ResetStream(ResetStream::decode(r)?),
            0x05 => Frame::StopSending(StopSending::decode(r)?),
            0x06 => Frame::Crypto(Crypto::decode(r)?),
            0x07 => Frame::NewToken(NewToken::decode(r)?),
            0x08..=0x0f => Frame::Stream(Stream::decode(r)?),
            0x10 => Frame::MaxData(MaxData::decode(r)?),
            0x11 => Frame::MaxStreamData(MaxStreamData::decode(r)?),
            0x12 | 0x13 => Frame::MaxStreams(MaxStreams::decode(r)?),
            0x14 => Frame::DataBlocked(DataBlocked::decode(r)?),
            0x15 => Frame::StreamDataBlocked(StreamDataBlocked::decode(r)?),
            0x16 | 0x17 => Frame::StreamsBlocked(StreamsBlocked::decode(r)?),
            0x18 => Frame::NewConnectionId(NewConnectionId::decode(r)?),
            0x19 => Frame::RetireConnectionId(RetireConnectionId::decode(r)?),
            0x1a => Frame::PathChallenge(PathChallenge::decode(r)?),
            0x1b => Frame::PathResponse(PathResponse::decode(r)?),
            0x1c | 0x1d => Frame::ConnectionClose(ConnectionClose::decode(r)?),
            0x1e => Frame::HandshakeDone(HandshakeDone),
            0x1f => Frame::ImmediateAck(ImmediateAck),
            0xaf => Frame::AckFrequency(AckFrequency::decode(r)?),
            0x30 | 0x31 => Frame::Datagram(Datagram::decode(r)?),
            //= https://www.rfc-editor.org/rfc/rfc9000#section-12.4
            //# An endpoint MUST treat the receipt of a frame of unknown type as a
            //# connection error of type FRAME_ENCODING_ERROR.
            _ => return Err(r.invalid("unknown frame type")),
        })
    }
}

/// Iterator over the frames of a decrypted packet payload. Yields each frame or the first
/// error, then stops. With [`for_packet`](Self::for_packet) it also rejects frames the packet
/// type may not carry.
#[derive(Clone, Debug)]
pub struct Frames<'a> {
    reader: Reader<'a>,
    kind: Option<PacketKind>,
    failed: bool,
}

impl<'a> Frames<'a> {
    /// Frames of `payload`, without packet-type checks.
    pub fn new(payload: &'a [u8]) -> Self {
        Self { reader: Reader::new(payload), kind: None, failed: false }
    }

    /// Frames of the payload of a `kind` packet; a frame not permitted in `kind` is a
    /// PROTOCOL_VIOLATION (RFC 9000 §12.4 Table 3).
    pub fn for_packet(payload: &'a [u8], kind: PacketKind) -> Self {
        Self { reader: Reader::new(payload), kind: Some(kind), failed: false }
    }

    /// Bytes of the payload not yet decoded.
    pub fn remaining(&self) -> usize {
        self.reader.remaining()
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.is_empty() {
            return None;
        }
        let result = Frame::decode_in(&mut self.reader, self.kind);
        self.failed = result.is_err();
        Some(result)
    }
}

impl std::iter::FusedIterator for Frames<'_> {}
