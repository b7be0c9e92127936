//! Frames without a body: PADDING (RFC 9000 §19.1, coalesced into runs), PING (§19.2) and
//! HANDSHAKE_DONE (§19.20).

use super::FrameType;
use crate::coding::{BufferFull, Reader, Writer};

/// A run of PADDING frames: `len` zero bytes. Decoding coalesces consecutive PADDING frames
/// into one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Padding {
    /// Number of PADDING frames (zero bytes) in the run.
    pub len: usize,
}

impl Padding {
    /// The frame type (0x00).
    pub const fn frame_type(&self) -> FrameType {
        FrameType::PADDING
    }

    /// Exact number of bytes [`encode`](Self::encode) writes: `len`.
    pub const fn encoded_len(&self) -> usize {
        self.len
    }

    /// Writes `len` zero bytes; on [`BufferFull`] nothing is written.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        w.reserve(self.len)?.fill(0);
        Ok(())
    }

    /// Consumes the zero bytes following a PADDING frame type and returns the whole run.
    pub(super) fn decode_run(r: &mut Reader<'_>) -> Self {
        let rest = r.peek_rest();
        // Eight bytes at a time first: a run can fill most of a packet.
        let zero_words = rest
            .chunks_exact(8)
            .take_while(|w| <[u8; 8]>::try_from(*w).is_ok_and(|w| u64::from_ne_bytes(w) == 0))
            .count();
        let extra = zero_words * 8 + rest[zero_words * 8..].iter().take_while(|b| **b == 0).count();
        // `extra` bytes are known to be there.
        let _ = r.skip(extra);
        Self { len: 1 + extra }
    }
}

macro_rules! empty_frame {
    ($(#[$meta:meta])* $name:ident = $ty:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl $name {
            /// The frame type.
            pub const fn frame_type(&self) -> FrameType {
                $ty
            }

            /// Exact number of bytes [`encode`](Self::encode) writes (always 1).
            pub const fn encoded_len(&self) -> usize {
                1
            }

            /// Writes the frame type byte.
            pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
                w.put_varint($ty.0)
            }
        }
    };
}

empty_frame! {
    /// PING (type 0x01): elicits an acknowledgment and keeps a connection alive.
    Ping = FrameType::PING
}

empty_frame! {
    /// HANDSHAKE_DONE (type 0x1e): the server confirms the handshake. Only servers send it; a
    /// server receiving one closes with PROTOCOL_VIOLATION (RFC 9000 §19.20), which the
    /// connection checks since it knows its role.
    HandshakeDone = FrameType::HANDSHAKE_DONE
}
