//! Internet checksum (RFC 1071), incremental update (RFC 1624) and UDP pseudo-headers.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A running ones' complement sum over a byte stream (RFC 1071).
///
/// Bytes may be added in pieces of any length: a piece of odd length leaves the stream at an odd
/// offset and the next piece continues from there, exactly as if the pieces had been one slice.
/// Internally the sum is kept in a 64-bit accumulator with end-around carry and folded to 16 bits
/// only at the end (RFC 1071 §2(C), "deferred carries"), eight bytes per addition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    acc: u64,
    /// The stream so far has odd length: its last byte was added as the high half of a word.
    odd: bool,
}

/// Ones' complement addition of two 64-bit words (end-around carry).
#[inline]
fn add64(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    // When a carry happened, s <= 2^64 - 2, so adding it back cannot overflow.
    s + u64::from(carry)
}

/// Ones' complement sum of `data` taken as big-endian 64-bit words, the last one zero-padded.
/// Since 2^16 - 1 divides 2^64 - 1, folding it to 16 bits gives the RFC 1071 sum of `data`.
#[inline]
fn sum_aligned(data: &[u8]) -> u64 {
    let mut acc = 0u64;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        if let Ok(word) = <[u8; 8]>::try_from(chunk) {
            acc = add64(acc, u64::from_be_bytes(word));
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        acc = add64(acc, u64::from_be_bytes(word));
    }
    acc
}

/// Folds a 64-bit ones' complement sum to 16 bits (end-around carry at each step).
#[inline]
fn fold(acc: u64) -> u16 {
    let mut s = (acc >> 32) + (acc & 0xffff_ffff);
    // At most four rounds: each one at least halves the number of significant bits above 16.
    while s > 0xffff {
        s = (s >> 16) + (s & 0xffff);
    }
    s as u16
}

impl Checksum {
    /// An empty sum.
    pub const fn new() -> Self {
        Checksum { acc: 0, odd: false }
    }

    /// The sum of `data`.
    pub fn of(data: &[u8]) -> Self {
        let mut c = Checksum::new();
        c.add(data);
        c
    }

    //= https://www.rfc-editor.org/rfc/rfc1071#section-1
    //# Adjacent octets to be checksummed are paired to form 16-bit
    //# integers, and the 1's complement sum of these 16-bit integers is
    //# formed.
    /// Adds `data`, continuing the byte stream where the previous addition left it.
    pub fn add(&mut self, data: &[u8]) {
        let data = match (self.odd, data.split_first()) {
            (_, None) => return,
            (true, Some((&first, rest))) => {
                // `first` is the low half of the word the previous piece's last byte began.
                self.acc = add64(self.acc, u64::from(first));
                self.odd = false;
                rest
            }
            (false, Some(_)) => data,
        };
        self.acc = add64(self.acc, sum_aligned(data));
        self.odd = data.len() % 2 == 1;
    }

    /// Adds `v` as two bytes of the stream, big-endian.
    pub fn add_u16(&mut self, v: u16) {
        self.add(&v.to_be_bytes());
    }

    /// Adds `v` as four bytes of the stream, big-endian.
    pub fn add_u32(&mut self, v: u32) {
        self.add(&v.to_be_bytes());
    }

    /// Appends another sum's byte stream to this one: the result equals the sum of the two
    /// streams concatenated, whatever their lengths. When this stream has odd length the other
    /// one starts at an odd offset, and its sum is byte-swapped (RFC 1071 §2(B)).
    pub fn combine(&mut self, other: Checksum) {
        let add = if self.odd { u64::from(fold(other.acc).swap_bytes()) } else { other.acc };
        self.acc = add64(self.acc, add);
        self.odd ^= other.odd;
    }

    /// The 16-bit ones' complement sum (not complemented). A stream that carries its own correct
    /// checksum sums to `0xffff`.
    pub fn sum(&self) -> u16 {
        fold(self.acc)
    }

    //= https://www.rfc-editor.org/rfc/rfc1071#section-1
    //# To generate a checksum, the checksum field itself is cleared,
    //# the 16-bit 1's complement sum is computed over the octets
    //# concerned, and the 1's complement of this sum is placed in the
    //# checksum field.
    /// The checksum to place in a (cleared) checksum field: the complement of [`Checksum::sum`].
    pub fn finish(&self) -> u16 {
        !self.sum()
    }

    //= https://www.rfc-editor.org/rfc/rfc1071#section-1
    //# To check a checksum, the 1's complement sum is computed over the
    //# same set of octets, including the checksum field.  If the result
    //# is all 1 bits (-0 in 1's complement arithmetic), the check
    //# succeeds.
    /// Whether the bytes summed so far, checksum field included, verify.
    pub fn verifies(&self) -> bool {
        self.sum() == 0xffff
    }
}

/// The Internet checksum of `data`: the value to place in a cleared checksum field.
pub fn internet_checksum(data: &[u8]) -> u16 {
    Checksum::of(data).finish()
}

/// Whether `data`, which includes its checksum field, verifies.
pub fn verify(data: &[u8]) -> bool {
    Checksum::of(data).verifies()
}

//= https://www.rfc-editor.org/rfc/rfc1624#section-3
//# HC' = ~(~HC + ~m + m')
/// Incrementally updates checksum field `checksum` after the aligned 16-bit word `old` of the
/// covered data became `new` (RFC 1624 eqn. 3), e.g. to rewrite the ECN bits of an IPv4 header
/// without summing it again.
pub fn update_word(checksum: u16, old: u16, new: u16) -> u16 {
    let s = u64::from(!checksum) + u64::from(!old) + u64::from(new);
    !fold(s)
}

//= https://www.rfc-editor.org/rfc/rfc768
//# The pseudo  header  conceptually prefixed to the UDP header contains the
//# source  address,  the destination  address,  the protocol,  and the  UDP
//# length.
/// Sum of the IPv4 pseudo-header: source, destination, zero, protocol, upper-layer length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> Checksum {
    let mut c = Checksum::new();
    c.add(&src.octets());
    c.add(&dst.octets());
    c.add(&[0, protocol]);
    c.add_u16(len);
    c
}

//= https://www.rfc-editor.org/rfc/rfc8200#section-8.1
//# Any transport or other upper-layer protocol that includes the
//# addresses from the IP header in its checksum computation must be
//# modified for use over IPv6, to include the 128-bit IPv6 addresses
//# instead of 32-bit IPv4 addresses.
/// Sum of the IPv6 pseudo-header: source, destination, 32-bit upper-layer length, three zero
/// bytes, next header.
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> Checksum {
    let mut c = Checksum::new();
    c.add(&src.octets());
    c.add(&dst.octets());
    c.add_u32(len);
    c.add(&[0, 0, 0, next_header]);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A straightforward RFC 1071 sum, 16 bits at a time: the reference the fast one must match.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u32::from(b));
            s += hi | lo;
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_numerical_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Checksum::of(&bytes).sum(), 0xddf2);
        assert_eq!(internet_checksum(&bytes), !0xddf2);
        // Split at an odd offset, the running sum is the same.
        let mut c = Checksum::new();
        c.add(&bytes[..3]);
        c.add(&bytes[3..]);
        assert_eq!(c.sum(), 0xddf2);
    }

    #[test]
    fn wikipedia_ipv4_header() {
        // The IPv4 header used as the worked example of the Wikipedia article "Internet
        // checksum" (192.168.0.1 -> 192.168.0.199, UDP, checksum b861).
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verify(&hdr));
        let mut cleared = hdr;
        cleared[10..12].fill(0);
        assert_eq!(internet_checksum(&cleared), 0xb861);
    }

    #[test]
    fn edge_cases() {
        assert_eq!(Checksum::of(&[]).sum(), 0);
        assert_eq!(Checksum::of(&[0xff]).sum(), 0xff00);
        assert_eq!(Checksum::of(&[0xff; 64]).sum(), 0xffff);
        assert_eq!(Checksum::of(&[0xff; 65]).sum(), reference_sum(&[0xff; 65]));
        assert!(!verify(&[0, 0]), "an all-zero stream sums to +0, not -0");
    }

    proptest! {
        #[test]
        fn matches_reference(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(Checksum::of(&data).sum(), reference_sum(&data));
        }

        #[test]
        fn pieces_equal_whole(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut idx: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            idx.sort_unstable();
            let mut c = Checksum::new();
            let mut at = 0;
            for &cut in &idx {
                c.add(&data[at..cut]);
                at = cut;
            }
            c.add(&data[at..]);
            prop_assert_eq!(c.sum(), reference_sum(&data));
        }

        #[test]
        fn combine_equals_concatenation(
            a in proptest::collection::vec(any::<u8>(), 0..100),
            b in proptest::collection::vec(any::<u8>(), 0..100),
            c in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut sum = Checksum::of(&a);
            sum.combine(Checksum::of(&b));
            sum.add(&c);
            let whole = [a, b, c].concat();
            prop_assert_eq!(sum.sum(), reference_sum(&whole));
        }

        #[test]
        fn incremental_update_matches_recompute(
            mut words in proptest::collection::vec(any::<u16>(), 2..40),
            pos in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            // A nonzero word keeps the sum away from the +0/-0 ambiguity RFC 1624 discusses
            // (real headers always have one: the version nibble).
            words[0] |= 0x4000;
            let bytes = |w: &[u16]| w.iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
            let at = 1 + pos.index(words.len() - 1);
            let old_ck = internet_checksum(&bytes(&words));
            let old = words[at];
            words[at] = new;
            prop_assert_eq!(update_word(old_ck, old, new), internet_checksum(&bytes(&words)));
        }
    }
}
