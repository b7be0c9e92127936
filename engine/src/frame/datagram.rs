//! DATAGRAM frames (RFC 9221 §4): unreliable application data, types 0x30 and 0x31.

use super::codec::{len_prefix_size, max_prefixed_len, FrameReader};
use super::FrameType;
use crate::coding::{BufferFull, Writer};
use crate::error::Error;

/// A DATAGRAM frame, borrowing its payload from the packet. Whether DATAGRAM frames were
/// negotiated (`max_datagram_frame_size`) and the size limit are checked by the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Datagram<'a> {
    /// The datagram payload (may be empty).
    pub data: &'a [u8],
    /// The LEN bit: a Length field is present (type 0x31). Without it the data runs to the end
    /// of the packet, so only the last frame of a packet may omit it.
    pub has_length: bool,
}

impl<'a> Datagram<'a> {
    /// The frame type: 0x31 with a Length field, 0x30 without.
    //= https://www.rfc-editor.org/rfc/rfc9221#section-4
    //# The least significant bit of the Type field in the DATAGRAM frame
    //# is the LEN bit (0x01), which indicates whether there is a Length field present.
    pub const fn frame_type(&self) -> FrameType {
        if self.has_length {
            FrameType::DATAGRAM_LEN
        } else {
            FrameType::DATAGRAM
        }
    }

    /// The most payload a DATAGRAM frame can carry in `capacity` bytes, or `None` when not even
    /// an empty one fits. Without a Length field the frame fills `capacity` exactly; with
    /// a Length field the frame can end short of `capacity`, by at most 2 bytes below 2^30 (4
    /// above), where a bigger length field would leave no room for the extra data: fill that
    /// with PADDING.
    pub fn max_data_len(capacity: usize, has_length: bool) -> Option<usize> {
        let avail = capacity.checked_sub(1)?;
        if has_length {
            max_prefixed_len(avail)
        } else {
            Some(avail)
        }
    }

    /// Exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let len = if self.has_length { len_prefix_size(self.data.len()) } else { 0 };
        1 + len + self.data.len()
    }

    /// Writes the frame; on [`BufferFull`] nothing is written.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        if self.encoded_len() > w.remaining() {
            return Err(BufferFull);
        }
        w.put_varint(self.frame_type().0)?;
        if self.has_length {
            w.put_varint_prefixed(self.data)
        } else {
            w.put_slice(self.data)
        }
    }

    pub(super) fn decode(r: &mut FrameReader<'_, 'a>) -> Result<Self, Error> {
        let has_length = r.frame_type() == FrameType::DATAGRAM_LEN.0;
        let data = if has_length {
            let len = r.varint()?;
            r.bytes(len)?
        } else {
            r.rest()
        };
        Ok(Self { data, has_length })
    }
}
