//! NEW_CONNECTION_ID (RFC 9000 §19.15) and RETIRE_CONNECTION_ID (§19.16) frames.

use super::codec::{varint_frame, FrameReader};
use super::FrameType;
use crate::cid::{ConnectionId, ResetToken, MAX_CID_LEN};
use crate::coding::{BufferFull, Writer};
use crate::error::Error;
use crate::varint::VarInt;

/// A NEW_CONNECTION_ID frame (type 0x18): a further connection ID for the peer to use, with its
/// stateless reset token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NewConnectionId {
    /// The sequence number of this connection ID.
    pub sequence: VarInt,
    /// Connection IDs with lower sequence numbers are to be retired; at most `sequence`.
    pub retire_prior_to: VarInt,
    /// The connection ID: 1 to 20 bytes on the wire.
    pub id: ConnectionId,
    /// The stateless reset token for `id`.
    pub reset_token: ResetToken,
}

impl NewConnectionId {
    /// The frame type (0x18).
    pub const fn frame_type(&self) -> FrameType {
        FrameType::NEW_CONNECTION_ID
    }

    /// Exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        1 + self.sequence.size() + self.retire_prior_to.size() + 1 + self.id.len() + 16
    }

    /// Writes the frame; on [`BufferFull`] nothing is written. The caller sends a non-empty
    /// connection ID and `retire_prior_to <= sequence`; the peer rejects anything else.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        if self.encoded_len() > w.remaining() {
            return Err(BufferFull);
        }
        w.put_varint(FrameType::NEW_CONNECTION_ID.0)?;
        w.put_varint(self.sequence.into_inner())?;
        w.put_varint(self.retire_prior_to.into_inner())?;
        // A ConnectionId holds at most 20 bytes, so its length fits the 8-bit field.
        w.put_u8(self.id.len() as u8)?;
        w.put_slice(self.id.as_bytes())?;
        w.put_slice(&self.reset_token.0)
    }

    pub(super) fn decode(r: &mut FrameReader<'_, '_>) -> Result<Self, Error> {
        let sequence = r.varint()?;
        let retire_prior_to = r.varint()?;
        let len = r.u8()?;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.15
        //# Values less than 1 and greater than 20 are invalid
        //# and MUST be treated as a connection error of type
        //# FRAME_ENCODING_ERROR.
        if len == 0 || usize::from(len) > MAX_CID_LEN {
            return Err(r.invalid("NEW_CONNECTION_ID length not in 1..=20"));
        }
        let bytes = r.bytes(VarInt::from(len))?;
        let id = ConnectionId::new(bytes).map_err(|_| r.invalid("connection ID too long"))?;
        let reset_token = ResetToken(r.array()?);
        //= https://www.rfc-editor.org/rfc/rfc9000#section-19.15
        //# Receiving a value in the Retire Prior To field that is greater than
        //# that in the Sequence Number field MUST be treated as a connection
        //# error of type FRAME_ENCODING_ERROR.
        if retire_prior_to > sequence {
            return Err(r.invalid("NEW_CONNECTION_ID retire_prior_to above sequence number"));
        }
        Ok(Self { sequence, retire_prior_to, id, reset_token })
    }
}

varint_frame! {
    /// RETIRE_CONNECTION_ID (type 0x19): the sender will no longer use the peer's connection ID
    /// with this sequence number (RFC 9000 §19.16).
    RetireConnectionId = FrameType::RETIRE_CONNECTION_ID;
    /// The sequence number of the connection ID being retired.
    sequence,
}
