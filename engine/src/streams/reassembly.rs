//! Out-of-order reassembly storage whose memory follows the byte range it covers, not the
//! number of fragments a peer cut the data into.
//!
//! Bytes that arrive ahead of a gap are copied into fixed-size blocks of the offset space, each
//! with a bitmap of the bytes it holds. A peer that sends one byte at every other offset costs
//! the same memory as one that sends the whole range in large frames: at most one block (plus
//! its 1/8 bitmap) per [`BLOCK`] bytes of the range between the in-order point and the highest
//! offset received, which flow control (or the CRYPTO buffer limit) already bounds. There is no
//! per-fragment allocation and no map entry per fragment, so no count of ranges to limit.
//!
//! When the in-order point reaches a block, its contiguous bytes are handed out: a block whose
//! remaining bytes are all present moves out whole (no copy), a partial one is copied out up to
//! its first gap.

use std::collections::BTreeMap;

use bytes::Bytes;

/// Bytes per block of the offset space.
pub const BLOCK: usize = 4096;
const WORDS: usize = BLOCK / 64;

/// Memory one block costs, in bytes: its data, its bitmap and the map entry that holds it
/// (an estimate of the allocator's and B-tree's overhead included).
pub const BLOCK_FOOTPRINT: usize = BLOCK + WORDS * 8 + 64;

/// The data of one block and which of its bytes are present.
#[derive(Debug)]
struct Block {
    data: Box<[u8]>,
    present: Box<[u64; WORDS]>,
}

impl Block {
    fn new() -> Self {
        Self { data: vec![0; BLOCK].into_boxed_slice(), present: Box::new([0; WORDS]) }
    }

    fn is_present(&self, i: usize) -> bool {
        self.present[i / 64] & (1 << (i % 64)) != 0
    }

    /// End of the run of bytes from `i` (below `end`) that are all present (`want`) or all
    /// absent (`!want`).
    fn run_end(&self, i: usize, end: usize, want: bool) -> usize {
        let mut w = i / 64;
        let mut mask = !0u64 << (i % 64);
        while w < WORDS && w * 64 < end {
            let word = if want { !self.present[w] } else { self.present[w] };
            let x = word & mask;
            if x != 0 {
                return (w * 64 + x.trailing_zeros() as usize).min(end);
            }
            mask = !0;
            w += 1;
        }
        end
    }

    fn set(&mut self, from: usize, to: usize, on: bool) {
        let mut i = from;
        while i < to {
            let w = i / 64;
            let lo = i % 64;
            let hi = (to - w * 64).min(64);
            let bits = if hi - lo == 64 { !0 } else { ((1u64 << (hi - lo)) - 1) << lo };
            if on {
                self.present[w] |= bits;
            } else {
                self.present[w] &= !bits;
            }
            i = w * 64 + hi;
        }
    }

    fn is_empty(&self) -> bool {
        self.present.iter().all(|&w| w == 0)
    }
}

/// Retransmitted bytes differ from bytes already held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Changed;

/// Out-of-order bytes by offset, in blocks. See the module documentation.
#[derive(Debug, Default)]
pub struct Reassembly {
    /// Block start offset (a multiple of [`BLOCK`]) -> block.
    blocks: BTreeMap<u64, Block>,
}

impl Reassembly {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no byte is held.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Memory held, in bytes ([`BLOCK_FOOTPRINT`] per block).
    pub fn footprint(&self) -> usize {
        self.blocks.len() * BLOCK_FOOTPRINT
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.blocks.clear();
    }

    /// Adds `data` at `offset`: bytes not held yet are copied in, bytes already held must be
    /// the same. Returns how many bytes were new.
    pub fn insert(&mut self, offset: u64, data: &[u8]) -> Result<u64, Changed> {
        let end = offset + data.len() as u64;
        let mut pos = offset;
        let mut added = 0;
        while pos < end {
            let start = pos - pos % BLOCK as u64;
            let stop = end.min(start + BLOCK as u64);
            let block = self.blocks.entry(start).or_insert_with(Block::new);
            let (lo, hi) = ((pos - start) as usize, (stop - start) as usize);
            let src = &data[(pos - offset) as usize..(stop - offset) as usize];
            let mut i = lo;
            while i < hi {
                let present = block.is_present(i);
                let j = block.run_end(i, hi, present);
                let theirs = &src[i - lo..j - lo];
                if present {
                    if block.data[i..j] != *theirs {
                        return Err(Changed);
                    }
                } else {
                    block.data[i..j].copy_from_slice(theirs);
                    block.set(i, j, true);
                    added += (j - i) as u64;
                }
                i = j;
            }
            pos = stop;
        }
        Ok(added)
    }

    /// The lowest offset in `from..to` that holds a byte, if any.
    pub fn first_present(&self, from: u64, to: u64) -> Option<u64> {
        let first = from - from % BLOCK as u64;
        for (&start, block) in self.blocks.range(first..to) {
            let lo = from.saturating_sub(start) as usize;
            let hi = (to - start).min(BLOCK as u64) as usize;
            let i = block.run_end(lo, hi, false);
            if i < hi {
                return Some(start + i as u64);
            }
        }
        None
    }

    /// Takes the bytes held contiguously from `at` (up to the first gap or the end of `at`'s
    /// block), if the byte at `at` is held. Everything below `at` must already be taken or
    /// never have been inserted.
    pub fn take(&mut self, at: u64) -> Option<Bytes> {
        let start = at - at % BLOCK as u64;
        let i = (at - start) as usize;
        let block = self.blocks.get_mut(&start)?;
        if !block.is_present(i) {
            return None;
        }
        let j = block.run_end(i, BLOCK, true);
        if j == BLOCK {
            let block = self.blocks.remove(&start)?;
            return Some(Bytes::from(block.data).slice(i..));
        }
        let out = Bytes::copy_from_slice(&block.data[i..j]);
        block.set(i, j, false);
        if block.is_empty() {
            self.blocks.remove(&start);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn insert_compare_and_take() {
        let mut r = Reassembly::new();
        assert_eq!(r.insert(10, b"abcdef"), Ok(6));
        assert_eq!(r.insert(8, b"xxabc"), Ok(2));
        assert_eq!(r.insert(12, b"cX"), Err(Changed));
        assert_eq!(r.first_present(0, 100), Some(8));
        assert_eq!(r.first_present(0, 8), None);
        assert_eq!(r.take(7), None);
        assert_eq!(&r.take(8).unwrap()[..], b"xxabcdef");
        assert!(r.is_empty(), "a copied-out block with nothing left is freed");
    }

    #[test]
    fn full_blocks_move_out_and_runs_span_words() {
        let mut r = Reassembly::new();
        let data: Vec<u8> = (0..3 * BLOCK).map(|i| i as u8).collect();
        assert_eq!(r.insert(100, &data[100..]), Ok(3 * BLOCK as u64 - 100));
        assert_eq!(r.footprint(), 3 * BLOCK_FOOTPRINT);
        let a = r.take(100).unwrap();
        assert_eq!(&a[..], &data[100..BLOCK]);
        assert_eq!(&r.take(BLOCK as u64).unwrap()[..], &data[BLOCK..2 * BLOCK]);
        assert_eq!(r.footprint(), BLOCK_FOOTPRINT);
    }

    #[test]
    fn one_byte_fragments_cost_blocks_not_entries() {
        let mut r = Reassembly::new();
        let window = 1 << 20;
        for off in (1..window).step_by(2) {
            r.insert(off, &[1]).unwrap();
        }
        assert_eq!(r.footprint(), (window as usize / BLOCK) * BLOCK_FOOTPRINT);
        assert_eq!(r.first_present(0, window), Some(1));
    }

    proptest! {
        /// Any set of pieces, inserted in any order, reads back as the original bytes.
        #[test]
        fn reassembles_like_a_model(
            pieces in proptest::collection::vec((0u64..3 * BLOCK as u64, 1usize..700), 1..40)
        ) {
            let msg: Vec<u8> = (0..4 * BLOCK).map(|i| (i * 7 + 3) as u8).collect();
            let mut r = Reassembly::new();
            let mut model = vec![false; msg.len()];
            let mut added = 0;
            for &(off, len) in &pieces {
                let end = (off as usize + len).min(msg.len());
                added += r.insert(off, &msg[off as usize..end]).unwrap();
                model[off as usize..end].iter_mut().for_each(|b| *b = true);
            }
            prop_assert_eq!(added, model.iter().filter(|&&b| b).count() as u64);
            let first = model.iter().position(|&b| b).map(|p| p as u64);
            prop_assert_eq!(r.first_present(0, msg.len() as u64), first);
            let mut at = first.unwrap();
            while let Some(b) = r.take(at) {
                prop_assert_eq!(&b[..], &msg[at as usize..at as usize + b.len()]);
                prop_assert!(model[at as usize..at as usize + b.len()].iter().all(|&x| x));
                at += b.len() as u64;
            }
            prop_assert!((at as usize) == msg.len() || !model[at as usize]);
        }
    }
}
