//! ACK_FREQUENCY (type 0xaf) and IMMEDIATE_ACK (type 0x1f) frames of the QUIC Acknowledgment
//! Frequency extension (draft-ietf-quic-ack-frequency): a data sender asks its peer to
//! acknowledge less (or more) often, or at once.

use super::codec::FrameReader;
use super::FrameType;
use crate::coding::{BufferFull, Writer};
use crate::error::Error;
use crate::varint::VarInt;

/// ACK_FREQUENCY (type 0xaf).
//= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-4
//# ACK_FREQUENCY Frame {
//#   Type (i) = 0xaf,
//#   Sequence Number (i),
//#   Ack-Eliciting Threshold (i),
//#   Requested Max Ack Delay (i),
//#   Reordering Threshold (i),
//# }
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AckFrequency {
    /// Orders the sender's ACK_FREQUENCY frames; a receiver ignores all but the newest.
    pub sequence: VarInt,
    /// Most ack-eliciting packets the receiver takes without acknowledging (1: every other
    /// packet, the RFC 9000 default).
    pub ack_eliciting_threshold: VarInt,
    /// The max_ack_delay the sender asks the receiver to use, in microseconds.
    pub request_max_ack_delay: VarInt,
    /// Reordering that elicits an immediate ACK (0: never, 1: any, the RFC 9000 default).
    pub reordering_threshold: VarInt,
}

impl AckFrequency {
    /// The frame type (0xaf).
    pub const fn frame_type(&self) -> FrameType {
        FrameType::ACK_FREQUENCY
    }

    /// Exact number of bytes [`encode`](Self::encode) writes (the type takes 2).
    pub fn encoded_len(&self) -> usize {
        2 + self.sequence.size()
            + self.ack_eliciting_threshold.size()
            + self.request_max_ack_delay.size()
            + self.reordering_threshold.size()
    }

    /// Writes the frame; on [`BufferFull`] nothing is written.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        if self.encoded_len() > w.remaining() {
            return Err(BufferFull);
        }
        w.put_varint(FrameType::ACK_FREQUENCY.0)?;
        w.put_varint(self.sequence.into_inner())?;
        w.put_varint(self.ack_eliciting_threshold.into_inner())?;
        w.put_varint(self.request_max_ack_delay.into_inner())?;
        w.put_varint(self.reordering_threshold.into_inner())
    }

    pub(super) fn decode(r: &mut FrameReader<'_, '_>) -> Result<Self, Error> {
        Ok(Self {
            sequence: r.varint()?,
            ack_eliciting_threshold: r.varint()?,
            request_max_ack_delay: r.varint()?,
            reordering_threshold: r.varint()?,
        })
    }
}

/// IMMEDIATE_ACK (type 0x1f): asks the receiver to acknowledge at once.
//= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-5
//# IMMEDIATE_ACK Frame {
//#   Type (i) = 0x1f,
//# }
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ImmediateAck;

impl ImmediateAck {
    /// The frame type (0x1f).
    pub const fn frame_type(&self) -> FrameType {
        FrameType::IMMEDIATE_ACK
    }

    /// Exact number of bytes [`encode`](Self::encode) writes (always 1).
    pub const fn encoded_len(&self) -> usize {
        1
    }

    /// Writes the frame type byte.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        w.put_varint(FrameType::IMMEDIATE_ACK.0)
    }
}
