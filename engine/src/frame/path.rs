//! PATH_CHALLENGE (RFC 9000 §19.17) and PATH_RESPONSE (§19.18) frames.

use super::codec::FrameReader;
use super::FrameType;
use crate::coding::{BufferFull, Writer};
use crate::error::Error;

macro_rules! path_frame {
    ($(#[$meta:meta])* $name:ident = $ty:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name {
            /// Eight bytes of arbitrary data (64 bits of entropy in a challenge).
            pub data: [u8; 8],
        }

        impl $name {
            /// The frame type.
            pub const fn frame_type(&self) -> FrameType {
                $ty
            }

            /// Exact number of bytes [`encode`](Self::encode) writes (always 9).
            pub const fn encoded_len(&self) -> usize {
                9
            }

            /// Writes the frame; on [`BufferFull`] nothing is written.
            pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
                if self.encoded_len() > w.remaining() {
                    return Err(BufferFull);
                }
                w.put_varint($ty.0)?;
                w.put_slice(&self.data)
            }

            pub(super) fn decode(r: &mut FrameReader<'_, '_>) -> Result<Self, Error> {
                Ok(Self { data: r.array()? })
            }
        }
    };
}

path_frame! {
    /// PATH_CHALLENGE (type 0x1a): checks reachability of the peer on a path.
    PathChallenge = FrameType::PATH_CHALLENGE
}

path_frame! {
    /// PATH_RESPONSE (type 0x1b): answers a PATH_CHALLENGE with the same data.
    PathResponse = FrameType::PATH_RESPONSE
}

impl PathChallenge {
    /// The PATH_RESPONSE that answers this challenge.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-19.17
    //# The recipient of this frame MUST generate a PATH_RESPONSE frame
    //# (Section 19.18) containing the same Data value.
    pub const fn response(&self) -> PathResponse {
        PathResponse { data: self.data }
    }
}
