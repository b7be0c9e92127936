//! Packet number truncation, encoding length choice and recovery (RFC 9000 §17.1, App. A.2/A.3).

use crate::coding::{BufferFull, Reader, UnexpectedEnd, Writer};
use crate::varint;

/// Largest packet number: 2^62 - 1 (RFC 9000 §12.3).
pub const MAX_PACKET_NUMBER: u64 = varint::MAX;

/// A packet number as it appears in a header: its 1 to 4 least significant bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TruncatedPn {
    value: u32,
    len: u8,
}

/// Why a packet number could not be encoded for sending. Each is a bug or a connection that must
/// stop sending, never peer input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PnEncodeError {
    /// The packet number is above 2^62-1.
    #[error("packet number exceeds 2^62-1")]
    OutOfRange,
    /// The packet number is not above the largest acknowledged one.
    #[error("packet number not above the largest acknowledged")]
    NotAboveAcked,
    /// 2^31 or more packets are unacknowledged: not representable in 4 bytes.
    #[error("too many unacknowledged packets to encode the packet number")]
    TooManyInFlight,
}

impl TruncatedPn {
    /// A truncated packet number of `len` bytes (1 to 4). `None` when `len` is out of range or
    /// `value` does not fit in `len` bytes.
    pub fn new(value: u32, len: usize) -> Option<Self> {
        if !(1..=4).contains(&len) || (len < 4 && value >> (8 * len) != 0) {
            return None;
        }
        Some(Self { value, len: len as u8 })
    }

    /// The `len` (1 to 4, clamped) least significant bytes of `full_pn`.
    pub fn truncate(full_pn: u64, len: usize) -> Self {
        let len = len.clamp(1, 4);
        let mask = if len == 4 { u64::from(u32::MAX) } else { (1u64 << (8 * len)) - 1 };
        Self { value: (full_pn & mask) as u32, len: len as u8 }
    }

    /// Truncates `full_pn` to the fewest bytes the receiver can recover it from, given the largest
    /// packet number the peer acknowledged in this space (`None` before any acknowledgment).
    pub fn encode(full_pn: u64, largest_acked: Option<u64>) -> Result<Self, PnEncodeError> {
        Ok(Self::truncate(full_pn, encoded_len(full_pn, largest_acked)?))
    }

    /// The truncated value.
    pub fn value(self) -> u32 {
        self.value
    }

    /// Encoded length in bytes (1 to 4).
    pub fn len(self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a packet number has at least one byte.
    pub fn is_empty(self) -> bool {
        false
    }

    /// The Packet Number Length bits of the first byte: length minus one.
    pub fn len_bits(self) -> u8 {
        self.len - 1
    }

    /// Writes the packet number field (big-endian, `len` bytes).
    pub fn write(self, w: &mut Writer<'_>) -> Result<(), BufferFull> {
        let be = self.value.to_be_bytes();
        // Fixed-size copies: a `put_slice` of a variable length is a memcpy call.
        match self.len {
            1 => w.put_u8(be[3]),
            2 => w.put_slice(&[be[2], be[3]]),
            3 => w.put_slice(&[be[1], be[2], be[3]]),
            _ => w.put_slice(&be),
        }
    }

    /// Reads a `len`-byte packet number field (`len` 1 to 4, clamped).
    pub fn read(r: &mut Reader<'_>, len: usize) -> Result<Self, UnexpectedEnd> {
        let len = len.clamp(1, 4);
        let mut value = 0u32;
        for b in r.bytes(len)? {
            value = (value << 8) | u32::from(*b);
        }
        Ok(Self { value, len: len as u8 })
    }

    /// Recovers the full packet number given the largest packet number successfully processed in
    /// this space (`None` when none was). `None` when the closest candidate exceeds 2^62-1,
    /// which no valid packet can carry.
    pub fn expand(self, largest_pn: Option<u64>) -> Option<u64> {
        decode(largest_pn, self.value, 8 * self.len())
    }
}

/// Number of bytes needed to send `full_pn` given the largest acknowledged packet number.
//= https://www.rfc-editor.org/rfc/rfc9000#section-17.1
//# Prior to receiving an acknowledgment for a packet number space, the
//# full packet number MUST be included; it is not to be truncated, as
//# described below.
//= https://www.rfc-editor.org/rfc/rfc9000#section-17.1
//# After an acknowledgment is received for a packet number space, the
//# sender MUST use a packet number size able to represent more than
//# twice as large a range as the difference between the largest
//# acknowledged packet number and the packet number being sent.
pub fn encoded_len(full_pn: u64, largest_acked: Option<u64>) -> Result<usize, PnEncodeError> {
    if full_pn > MAX_PACKET_NUMBER {
        return Err(PnEncodeError::OutOfRange);
    }
    // Without an acknowledgment every number from 0 is outstanding, so the same rule keeps the
    // whole packet number (`full_pn + 1 < 2^(8n-1)` means no bit of it is dropped).
    let num_unacked = match largest_acked {
        None => full_pn + 1,
        Some(acked) if full_pn > acked => full_pn - acked,
        Some(_) => return Err(PnEncodeError::NotAboveAcked),
    };
    // The smallest n with 2^(8n) > 2 * num_unacked, i.e. num_unacked < 2^(8n-1).
    (1..=4usize).find(|n| num_unacked < 1u64 << (8 * n - 1)).ok_or(PnEncodeError::TooManyInFlight)
}

/// RFC 9000 Appendix A.3 `DecodePacketNumber`: the packet number closest to the next expected
/// one whose `pn_nbits` low bits equal `truncated_pn`. `largest_pn` is the largest packet number
/// successfully processed in the space (`None`: expect 0). `pn_nbits` is 8, 16, 24 or 32 (other
/// values are clamped into that range). Returns `None` when the result would exceed 2^62-1.
//= https://www.rfc-editor.org/rfc/rfc9000#section-17.1
//# Once header protection is removed, the packet number is decoded by
//# finding the packet number value that is closest to the next expected
//# packet.  The next expected packet is the highest received packet
//# number plus one.
pub fn decode(largest_pn: Option<u64>, truncated_pn: u32, pn_nbits: usize) -> Option<u64> {
    let nbits = pn_nbits.clamp(8, 32) / 8 * 8;
    let expected = largest_pn.map_or(0, |l| l.min(MAX_PACKET_NUMBER) + 1);
    let win = 1u64 << nbits;
    let hwin = win / 2;
    let mask = win - 1;
    let truncated = u64::from(truncated_pn) & mask;
    // expected <= 2^62, so candidate < 2^62 + 2^32: no overflow below.
    let candidate = (expected & !mask) | truncated;
    let pn = if candidate + hwin <= expected && candidate < (1u64 << 62) - win {
        candidate + win
    } else if candidate > expected + hwin && candidate >= win {
        candidate - win
    } else {
        candidate
    };
    (pn <= MAX_PACKET_NUMBER).then_some(pn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The Appendix A.3 pseudocode transcribed with unbounded (i128) arithmetic.
    fn reference(largest_pn: i128, truncated: i128, nbits: u32) -> i128 {
        let expected = largest_pn + 1;
        let win = 1i128 << nbits;
        let hwin = win / 2;
        let mask = win - 1;
        let candidate = (expected & !mask) | truncated;
        if candidate <= expected - hwin && candidate < (1i128 << 62) - win {
            candidate + win
        } else if candidate > expected + hwin && candidate >= win {
            candidate - win
        } else {
            candidate
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#appendix-A.3
    //= type=test
    //# For example, if the highest successfully authenticated packet had a
    //# packet number of 0xa82f30ea, then a packet containing a 16-bit value
    //# of 0x9b32 will be decoded as 0xa82f9b32.
    #[test]
    fn rfc_decode_example() {
        assert_eq!(decode(Some(0xa82f30ea), 0x9b32, 16), Some(0xa82f9b32));
        let pn = TruncatedPn::new(0x9b32, 2).unwrap();
        assert_eq!(pn.expand(Some(0xa82f30ea)), Some(0xa82f9b32));
        // RFC 9001 A.5: header 4200bff4 carries packet number 654360564 in three bytes.
        assert_eq!(decode(Some(654_360_563), 0x00bff4, 24), Some(654_360_564));
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#appendix-A.2
    //= type=test
    //# For example, if an endpoint has received an acknowledgment for packet
    //# 0xabe8b3 and is sending a packet with a number of 0xac5c02, there are
    //# 29,519 (0x734f) outstanding packet numbers.  In order to represent at
    //# least twice this range (59,038 packets, or 0xe69e), 16 bits are
    //# required.
    #[test]
    fn rfc_encode_example() {
        assert_eq!(encoded_len(0xac5c02, Some(0xabe8b3)), Ok(2));
        let pn = TruncatedPn::encode(0xac5c02, Some(0xabe8b3)).unwrap();
        assert_eq!((pn.value(), pn.len()), (0x5c02, 2));
        // "In the same state, sending a packet with a number of 0xace8fe uses the 24-bit
        // encoding, because at least 18 bits are required to represent twice the range".
        assert_eq!(encoded_len(0xace8fe, Some(0xabe8b3)), Ok(3));
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-17.1
    //= type=test
    //# Prior to receiving an acknowledgment for a packet number space, the
    //# full packet number MUST be included; it is not to be truncated, as
    //# described below.
    #[test]
    fn full_number_before_any_ack() {
        for pn in [0u64, 1, 127, 128, 200, 0x7fff, 0x8000, 0x7f_ffff, 0x80_0000, 0x7fff_ffff - 1] {
            let t = TruncatedPn::encode(pn, None).unwrap();
            assert_eq!(u64::from(t.value()), pn, "pn {pn:#x} truncated");
            assert_eq!(t.expand(None), Some(pn));
        }
        assert_eq!(encoded_len(0x7fff_ffff, None), Err(PnEncodeError::TooManyInFlight));
    }

    #[test]
    fn encode_boundaries() {
        // "more than twice the range": 2^(8n) > 2 * (pn - acked).
        assert_eq!(encoded_len(127, Some(0)), Ok(1));
        assert_eq!(encoded_len(128, Some(0)), Ok(2));
        assert_eq!(encoded_len(100 + 0x7fff, Some(100)), Ok(2));
        assert_eq!(encoded_len(100 + 0x8000, Some(100)), Ok(3));
        assert_eq!(encoded_len(0x7fff_ffff, Some(0)), Ok(4));
        assert_eq!(encoded_len(0x8000_0000, Some(0)), Err(PnEncodeError::TooManyInFlight));
        assert_eq!(encoded_len(5, Some(5)), Err(PnEncodeError::NotAboveAcked));
        assert_eq!(encoded_len(MAX_PACKET_NUMBER + 1, None), Err(PnEncodeError::OutOfRange));
        assert_eq!(encoded_len(MAX_PACKET_NUMBER, Some(MAX_PACKET_NUMBER - 1)), Ok(1));
    }

    #[test]
    fn field_read_write() {
        assert_eq!(TruncatedPn::new(0x100, 1), None);
        assert_eq!(TruncatedPn::new(1, 0), None);
        assert_eq!(TruncatedPn::new(1, 5), None);
        assert!(TruncatedPn::new(u32::MAX, 4).is_some());
        for len in 1..=4 {
            let pn = TruncatedPn::truncate(0x1122_3344_5566, len);
            let mut buf = [0u8; 4];
            let mut w = Writer::new(&mut buf);
            pn.write(&mut w).unwrap();
            assert_eq!(w.len(), len);
            assert_eq!(pn.len_bits() as usize, len - 1);
            let mut r = Reader::new(w.written());
            assert_eq!(TruncatedPn::read(&mut r, len), Ok(pn));
        }
        assert_eq!(TruncatedPn::truncate(0x1122_3344_5566, 2).value(), 0x5566);
        let mut r = Reader::new(&[1, 2]);
        assert_eq!(TruncatedPn::read(&mut r, 3), Err(UnexpectedEnd));
    }

    /// Every truncated value against the reference, for 8- and 16-bit fields, around the low
    /// edge, the window edges and the 2^62 top.
    #[test]
    fn exhaustive_against_reference_at_edges() {
        for nbits in [8usize, 16] {
            let win = 1u64 << nbits;
            let hwin = win / 2;
            let mut largest: Vec<u64> = Vec::new();
            for centre in [0, hwin, win, win + hwin, 2 * win, 1 << 32, 1 << 40] {
                largest.extend(centre.saturating_sub(3)..=centre + 3);
            }
            for from_top in [0, hwin, win, win + hwin, 2 * win] {
                let c = MAX_PACKET_NUMBER - from_top;
                largest.extend(c - 3..=(c + 3).min(MAX_PACKET_NUMBER));
            }
            if nbits == 8 {
                largest.extend(0..=4 * win);
            }
            for &l in &largest {
                for t in 0..win as u32 {
                    let want = reference(i128::from(l), i128::from(t), nbits as u32);
                    let got = decode(Some(l), t, nbits);
                    if want > i128::from(MAX_PACKET_NUMBER) {
                        assert_eq!(got, None, "largest {l} t {t} bits {nbits}");
                    } else {
                        assert_eq!(got, Some(want as u64), "largest {l} t {t} bits {nbits}");
                        let got = want as u64;
                        assert_eq!(got & (win - 1), u64::from(t));
                        // Closest to expected: within the half-window unless pushed by a bound.
                        let expected = l + 1;
                        let inside = got + hwin > expected && got <= expected + hwin;
                        let near_bound = expected < hwin || expected + win > (1 << 62);
                        assert!(inside || near_bound, "largest {l} t {t} got {got}");
                    }
                }
            }
        }
        // No packet received yet: expected is 0.
        for t in 0..256u32 {
            assert_eq!(decode(None, t, 8), Some(u64::from(t)));
        }
    }

    proptest! {
        /// Any packet number within the half-window around the next expected one round-trips.
        #[test]
        fn window_round_trip(largest in 0..=MAX_PACKET_NUMBER, len in 1usize..=4, off in any::<u64>()) {
            let expected = largest + 1;
            let hwin = 1u64 << (8 * len - 1);
            // pn in (expected - hwin, expected + hwin]
            let span = 2 * hwin;
            let pn = (expected + hwin).checked_sub(off % span);
            if let Some(pn) = pn.filter(|&p| p <= MAX_PACKET_NUMBER && p + hwin > expected) {
                let t = TruncatedPn::truncate(pn, len);
                prop_assert_eq!(t.expand(Some(largest)), Some(pn));
            }
        }

        /// What the sender picks is recovered by a receiver whose largest packet lies anywhere
        /// between the largest acknowledged and well past the packet (reordering).
        #[test]
        fn sender_choice_is_recoverable(acked in 0..MAX_PACKET_NUMBER, d in 1u64..(1 << 31), k in any::<u64>()) {
            let pn = acked.saturating_add(d).min(MAX_PACKET_NUMBER);
            let d = pn - acked;
            let t = TruncatedPn::encode(pn, Some(acked)).unwrap();
            let rx_largest = (acked + k % (2 * d)).min(MAX_PACKET_NUMBER);
            prop_assert_eq!(t.expand(Some(rx_largest)), Some(pn));
            prop_assert_eq!(t.expand(Some(acked)), Some(pn));
        }

        #[test]
        fn decode_matches_reference(largest in 0..=MAX_PACKET_NUMBER, t in any::<u32>(), n in 1usize..=4) {
            let nbits = 8 * n;
            let t = if n == 4 { t } else { t & ((1 << nbits) - 1) };
            let want = reference(i128::from(largest), i128::from(t), nbits as u32);
            let got = decode(Some(largest), t, nbits);
            if want > i128::from(MAX_PACKET_NUMBER) {
                prop_assert_eq!(got, None);
            } else {
                prop_assert_eq!(got, Some(want as u64));
            }
        }
    }
}
