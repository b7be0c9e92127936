//! Shared frame-body reading and sizing helpers (internal).

use crate::coding::Reader;
use crate::error::Error;
use crate::varint::{self, VarInt};

/// A [`Reader`] positioned after a frame's type, mapping every failure to FRAME_ENCODING_ERROR
/// tagged with that frame type.
pub(super) struct FrameReader<'r, 'a> {
    r: &'r mut Reader<'a>,
    ty: u64,
}

impl<'r, 'a> FrameReader<'r, 'a> {
    /// Reads the body of a frame of type `ty` from `r`.
    pub(super) fn new(r: &'r mut Reader<'a>, ty: u64) -> Self {
        Self { r, ty }
    }

    /// The frame type being decoded.
    pub(super) fn frame_type(&self) -> u64 {
        self.ty
    }

    /// FRAME_ENCODING_ERROR for this frame, with `reason`.
    pub(super) fn invalid(&self, reason: &'static str) -> Error {
        Error::frame_encoding(reason).with_frame_type(self.ty)
    }

    fn truncated(&self) -> Error {
        self.invalid("frame truncated")
    }

    /// A variable-length integer.
    pub(super) fn varint(&mut self) -> Result<VarInt, Error> {
        match self.r.varint() {
            // A decoded varint is at most 2^62-1, so `new` cannot fail.
            Ok(v) => VarInt::new(v).map_err(|_| self.truncated()),
            Err(_) => Err(self.truncated()),
        }
    }

    /// One byte.
    pub(super) fn u8(&mut self) -> Result<u8, Error> {
        self.r.u8().map_err(|_| self.truncated())
    }

    /// `N` bytes into an array.
    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        self.r.array().map_err(|_| self.truncated())
    }

    /// `len` bytes (a peer-supplied length).
    pub(super) fn bytes(&mut self, len: VarInt) -> Result<&'a [u8], Error> {
        let n = usize::try_from(len.into_inner()).map_err(|_| self.truncated())?;
        self.r.bytes(n).map_err(|_| self.truncated())
    }

    /// Every remaining byte of the packet payload.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        self.r.rest()
    }

    /// The unread bytes, without consuming them.
    pub(super) fn peek_rest(&self) -> &'a [u8] {
        self.r.peek_rest()
    }
}

/// The largest `n` such that a varint length prefix for `n` plus `n` bytes fit in `avail` bytes,
/// or `None` when not even an empty prefixed field fits. The prefixed field can fall short of
/// `avail` by up to 2 bytes below 2^30 (4 above): at 16385..=16387 bytes, say, 16383 bytes with
/// a 2-byte prefix is the best, since 16384 bytes need a 4-byte prefix.
pub(super) fn max_prefixed_len(avail: usize) -> Option<usize> {
    if avail == 0 {
        return None;
    }
    let avail64 = avail as u64;
    let mut best = 0u64;
    for (prefix, limit) in [(1u64, 1u64 << 6), (2, 1 << 14), (4, 1 << 30), (8, 1 << 62)] {
        if avail64 >= prefix {
            best = best.max((avail64 - prefix).min(limit - 1));
        }
    }
    // best <= avail, which is a usize.
    Some(usize::try_from(best).unwrap_or(avail))
}

/// Encoded size of a length prefix for `len` bytes.
pub(super) fn len_prefix_size(len: usize) -> usize {
    varint::size(len as u64)
}

/// Declares a frame whose body is a fixed sequence of variable-length integers, with its decoder
/// and encoders.
macro_rules! varint_frame {
    (
        $(#[$meta:meta])*
        $name:ident = $ty:expr;
        $($(#[$fmeta:meta])* $field:ident,)+
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $crate::varint::VarInt,)+
        }

        impl $name {
            /// The frame type written by [`encode`](Self::encode).
            pub const fn frame_type(&self) -> $crate::frame::FrameType {
                $ty
            }

            /// Exact number of bytes [`encode`](Self::encode) writes.
            pub fn encoded_len(&self) -> usize {
                1 $(+ self.$field.size())+
            }

            /// Writes the frame; on [`BufferFull`](crate::coding::BufferFull) nothing is written.
            pub fn encode(
                &self,
                w: &mut $crate::coding::Writer<'_>,
            ) -> Result<(), $crate::coding::BufferFull> {
                if self.encoded_len() > w.remaining() {
                    return Err($crate::coding::BufferFull);
                }
                w.put_varint($ty.0)?;
                $(w.put_varint(self.$field.into_inner())?;)+
                Ok(())
            }

            pub(super) fn decode(
                r: &mut $crate::frame::codec::FrameReader<'_, '_>,
            ) -> Result<Self, $crate::error::Error> {
                // Struct expression fields are evaluated in the order written: wire order.
                Ok(Self { $($field: r.varint()?,)+ })
            }
        }
    };
}

pub(super) use varint_frame;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_fit_is_maximal_and_fits() {
        assert_eq!(max_prefixed_len(0), None);
        assert_eq!(max_prefixed_len(1), Some(0));
        assert_eq!(max_prefixed_len(64), Some(63));
        assert_eq!(max_prefixed_len(65), Some(63));
        assert_eq!(max_prefixed_len(66), Some(64));
        assert_eq!(max_prefixed_len(16385), Some(16383));
        assert_eq!(max_prefixed_len(16386), Some(16383));
        assert_eq!(max_prefixed_len(16388), Some(16384));
        for avail in (1..70_000usize).chain((1 << 30) - 10..(1 << 30) + 10) {
            let n = max_prefixed_len(avail).unwrap();
            let used = len_prefix_size(n) + n;
            assert!(used <= avail, "{avail}");
            assert!(len_prefix_size(n + 1) + n + 1 > avail, "{avail} not maximal");
            assert!(avail - used <= if avail < 1 << 30 { 2 } else { 4 }, "{avail}");
        }
        assert_eq!(max_prefixed_len((1 << 30) + 3), Some((1 << 30) - 1), "4 bytes short");
    }
}
