//! QUIC variable-length integers (RFC 9000 §16).

use std::fmt;

/// Largest value a variable-length integer can hold: 2^62 - 1.
pub const MAX: u64 = (1 << 62) - 1;

/// An integer in `0..=2^62-1`, the range a QUIC variable-length integer can encode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VarInt(u64);

/// A value above [`MAX`] was given where a variable-length integer is needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VarIntBoundsExceeded;

impl fmt::Display for VarIntBoundsExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("value exceeds 2^62-1")
    }
}

impl std::error::Error for VarIntBoundsExceeded {}

impl VarInt {
    /// The largest representable value.
    pub const MAX: VarInt = VarInt(MAX);

    /// Zero.
    pub const ZERO: VarInt = VarInt(0);

    /// A value known at compile time to fit in 30 bits (always valid).
    pub const fn from_u32(v: u32) -> Self {
        VarInt(v as u64)
    }

    /// Checks the range.
    pub const fn new(v: u64) -> Result<Self, VarIntBoundsExceeded> {
        if v <= MAX {
            Ok(VarInt(v))
        } else {
            Err(VarIntBoundsExceeded)
        }
    }

    /// The value.
    pub const fn into_inner(self) -> u64 {
        self.0
    }

    /// Encoded size in bytes (1, 2, 4 or 8).
    pub const fn size(self) -> usize {
        size(self.0)
    }
}

impl From<u32> for VarInt {
    fn from(v: u32) -> Self {
        VarInt(v as u64)
    }
}

impl From<u16> for VarInt {
    fn from(v: u16) -> Self {
        VarInt(v as u64)
    }
}

impl From<u8> for VarInt {
    fn from(v: u8) -> Self {
        VarInt(v as u64)
    }
}

impl TryFrom<u64> for VarInt {
    type Error = VarIntBoundsExceeded;
    fn try_from(v: u64) -> Result<Self, Self::Error> {
        VarInt::new(v)
    }
}

impl TryFrom<usize> for VarInt {
    type Error = VarIntBoundsExceeded;
    fn try_from(v: usize) -> Result<Self, Self::Error> {
        VarInt::new(v as u64)
    }
}

impl From<VarInt> for u64 {
    fn from(v: VarInt) -> u64 {
        v.0
    }
}

impl fmt::Display for VarInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Encoded size of `v` (which must be at most [`MAX`]; larger values report 8).
pub const fn size(v: u64) -> usize {
    if v < (1 << 6) {
        1
    } else if v < (1 << 14) {
        2
    } else if v < (1 << 30) {
        4
    } else {
        8
    }
}

/// Decodes a variable-length integer from the front of `buf`, returning it and its size, or
/// `None` when `buf` is too short.
//= https://www.rfc-editor.org/rfc/rfc9000#section-16
//# The QUIC variable-length integer encoding reserves the two most
//# significant bits of the first byte to encode the base-2 logarithm of
//# the integer encoding length in bytes.
#[inline]
pub fn decode(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(..len)?;
    let mut v = u64::from(first & 0x3f);
    for b in &bytes[1..] {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, len))
}

/// Writes `v` at the front of `buf` in its shortest encoding, returning the size, or `None` when
/// `buf` is too short or `v` exceeds [`MAX`].
#[inline]
pub fn encode(v: u64, buf: &mut [u8]) -> Option<usize> {
    if v > MAX {
        return None;
    }
    let n = size(v);
    encode_with_size(v, n, buf)
}

/// Writes `v` in exactly `n` bytes (1, 2, 4 or 8), e.g. to reserve a fixed-size length field.
/// Returns `None` when `v` does not fit in `n` bytes, `n` is not a valid size, or `buf` is short.
#[inline]
pub fn encode_with_size(v: u64, n: usize, buf: &mut [u8]) -> Option<usize> {
    let (tag, limit) = match n {
        1 => (0u8, 1u64 << 6),
        2 => (1, 1 << 14),
        4 => (2, 1 << 30),
        8 => (3, 1 << 62),
        _ => return None,
    };
    if v >= limit {
        return None;
    }
    let out = buf.get_mut(..n)?;
    let tag = u64::from(tag) << (8 * n - 2);
    // One fixed-size store per size: a `copy_from_slice` of `n` bytes is a memcpy call.
    match out {
        [b] => *b = (v | tag) as u8,
        [_, _] => out.copy_from_slice(&((v | tag) as u16).to_be_bytes()),
        [_, _, _, _] => out.copy_from_slice(&((v | tag) as u32).to_be_bytes()),
        _ => out.copy_from_slice(&(v | tag).to_be_bytes()),
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    //= https://www.rfc-editor.org/rfc/rfc9000#appendix-A.1
    //= type=test
    //# For example, the eight-byte sequence 0xc2197c5eff14e88c decodes to
    //# the decimal value 151,288,809,941,952,652
    #[test]
    fn rfc_examples() {
        let cases: [(&[u8], u64); 4] = [
            (&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c], 151_288_809_941_952_652),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (bytes, v) in cases {
            assert_eq!(decode(bytes), Some((v, bytes.len())));
            let mut out = [0u8; 8];
            assert_eq!(encode(v, &mut out), Some(bytes.len()));
            assert_eq!(&out[..bytes.len()], bytes);
        }
        // The two-byte encoding of 37 (0x4025) decodes too.
        assert_eq!(decode(&[0x40, 0x25]), Some((37, 2)));
    }

    #[test]
    fn bounds() {
        let mut out = [0u8; 8];
        assert_eq!(encode(MAX, &mut out), Some(8));
        assert_eq!(decode(&out), Some((MAX, 8)));
        assert_eq!(encode(MAX + 1, &mut out), None);
        assert!(VarInt::new(MAX + 1).is_err());
        assert_eq!(encode(64, &mut out[..1]), None, "short buffer");
        assert_eq!(decode(&[0x80, 0, 0]), None, "truncated");
        assert_eq!(decode(&[]), None);
        assert_eq!(encode_with_size(63, 4, &mut out), Some(4));
        assert_eq!(decode(&out), Some((63, 4)));
        assert_eq!(encode_with_size(1 << 14, 2, &mut out), None);
        assert_eq!(encode_with_size(1, 3, &mut out), None);
    }

    proptest::proptest! {
        #[test]
        fn round_trip(v in 0u64..=MAX) {
            let mut out = [0u8; 8];
            let n = encode(v, &mut out).unwrap();
            proptest::prop_assert_eq!(n, size(v));
            proptest::prop_assert_eq!(decode(&out[..n]), Some((v, n)));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..10)) {
            if let Some((v, n)) = decode(&bytes) {
                proptest::prop_assert!(v <= MAX && n <= bytes.len());
            }
        }
    }
}
