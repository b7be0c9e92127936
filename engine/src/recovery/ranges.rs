//! A bounded set of packet numbers as disjoint ranges above a rising floor (RFC 9000 §13.2.3).

use std::collections::VecDeque;
use std::ops::RangeInclusive;

/// A set of `u64` held as at most `max_ranges` disjoint, non-adjacent ranges in ascending order.
///
/// Memory is bounded: inserting a number that would create one range too many evicts the lowest
/// range, and [`remove_up_to`](Self::remove_up_to) drops ranges on request. Either way the
/// [`floor`](Self::floor) rises: every number below it counts as already seen, so
/// [`insert`](Self::insert) refuses it and [`contains`](Self::contains) reports it.
#[derive(Clone, Debug)]
pub struct RangeSet {
    /// Inclusive `(start, end)` pairs, ascending, disjoint and never adjacent.
    ranges: VecDeque<(u64, u64)>,
    max_ranges: usize,
    floor: u64,
}

impl RangeSet {
    /// An empty set keeping at most `max_ranges` ranges (at least 1).
    pub fn new(max_ranges: usize) -> Self {
        let max_ranges = max_ranges.max(1);
        Self { ranges: VecDeque::with_capacity(max_ranges.min(64) + 1), max_ranges, floor: 0 }
    }

    /// Inserts `v`; returns `false` when it was already present or below the floor.
    pub fn insert(&mut self, v: u64) -> bool {
        if v < self.floor {
            return false;
        }
        // Fast path: in-order arrival extends or follows the last range.
        if let Some(last) = self.ranges.back_mut() {
            if v > last.1 {
                if last.1.checked_add(1) == Some(v) {
                    last.1 = v;
                } else {
                    self.ranges.push_back((v, v));
                    self.evict();
                }
                return true;
            }
        } else {
            self.ranges.push_back((v, v));
            return true;
        }
        // `i` is the index of the first range starting after `v`.
        let i = self.ranges.partition_point(|r| r.0 <= v);
        if i > 0 && self.ranges[i - 1].1 >= v {
            return false;
        }
        let joins_prev = i > 0 && self.ranges[i - 1].1.checked_add(1) == Some(v);
        let joins_next = i < self.ranges.len() && v.checked_add(1) == Some(self.ranges[i].0);
        match (joins_prev, joins_next) {
            (true, true) => {
                self.ranges[i - 1].1 = self.ranges[i].1;
                self.ranges.remove(i);
            }
            (true, false) => self.ranges[i - 1].1 = v,
            (false, true) => self.ranges[i].0 = v,
            (false, false) => {
                self.ranges.insert(i, (v, v));
                self.evict();
            }
        }
        true
    }

    fn evict(&mut self) {
        while self.ranges.len() > self.max_ranges {
            if let Some((_, end)) = self.ranges.pop_front() {
                self.floor = self.floor.max(end.saturating_add(1));
            }
        }
    }

    /// Whether `v` was inserted, or lies below the floor.
    pub fn contains(&self, v: u64) -> bool {
        if v < self.floor {
            return true;
        }
        let i = self.ranges.partition_point(|r| r.0 <= v);
        i > 0 && self.ranges[i - 1].1 >= v
    }

    /// The range holding `v`, if `v` is held (numbers below the floor are not "held").
    pub fn range_of(&self, v: u64) -> Option<RangeInclusive<u64>> {
        let i = self.ranges.partition_point(|r| r.0 <= v);
        (i > 0 && self.ranges[i - 1].1 >= v).then(|| self.ranges[i - 1].0..=self.ranges[i - 1].1)
    }

    /// Forgets every number `<= v`: ranges are trimmed and the floor rises to `v + 1`.
    pub fn remove_up_to(&mut self, v: u64) {
        self.floor = self.floor.max(v.saturating_add(1));
        while let Some(front) = self.ranges.front_mut() {
            if front.1 <= v {
                self.ranges.pop_front();
            } else {
                if front.0 <= v {
                    front.0 = v + 1;
                }
                break;
            }
        }
    }

    /// Numbers below this count as seen without being stored.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// The largest stored number.
    pub fn max(&self) -> Option<u64> {
        self.ranges.back().map(|r| r.1)
    }

    /// The smallest stored number.
    pub fn min(&self) -> Option<u64> {
        self.ranges.front().map(|r| r.0)
    }

    /// Number of stored ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether no range is stored.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The most ranges kept.
    pub fn max_ranges(&self) -> usize {
        self.max_ranges
    }

    /// The ranges, largest first (the order of an ACK frame).
    pub fn iter_desc(&self) -> RangesDesc<'_> {
        RangesDesc { inner: self.ranges.iter().rev() }
    }
}

/// Iterator over a [`RangeSet`], largest range first.
#[derive(Clone, Debug)]
pub struct RangesDesc<'a> {
    inner: std::iter::Rev<std::collections::vec_deque::Iter<'a, (u64, u64)>>,
}

impl Iterator for RangesDesc<'_> {
    type Item = RangeInclusive<u64>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|&(s, e)| s..=e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for RangesDesc<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ranges(s: &RangeSet) -> Vec<(u64, u64)> {
        let mut v: Vec<_> = s.iter_desc().map(|r| (*r.start(), *r.end())).collect();
        v.reverse();
        v
    }

    #[test]
    fn merge_and_split_cases() {
        let mut s = RangeSet::new(16);
        assert!(s.insert(5));
        assert!(s.insert(7));
        assert_eq!(ranges(&s), [(5, 5), (7, 7)]);
        assert!(s.insert(6), "fills the hole and merges both sides");
        assert_eq!(ranges(&s), [(5, 7)]);
        assert!(!s.insert(6));
        assert!(s.insert(4));
        assert!(s.insert(10));
        assert!(s.insert(1));
        assert_eq!(ranges(&s), [(1, 1), (4, 7), (10, 10)]);
        assert!(s.insert(9));
        assert_eq!(ranges(&s), [(1, 1), (4, 7), (9, 10)]);
        assert!(s.contains(9) && !s.contains(8) && !s.contains(0) && !s.contains(2));
        assert_eq!(s.range_of(5), Some(4..=7));
        assert_eq!(s.range_of(8), None);
        s.remove_up_to(5);
        assert_eq!(ranges(&s), [(6, 7), (9, 10)]);
        assert_eq!(s.floor(), 6);
        assert!(s.contains(2), "below the floor counts as seen");
        assert!(!s.insert(3));
    }

    #[test]
    fn eviction_drops_lowest_range_and_raises_floor() {
        let mut s = RangeSet::new(3);
        for v in [0, 2, 4, 6] {
            assert!(s.insert(v));
        }
        assert_eq!(ranges(&s), [(2, 2), (4, 4), (6, 6)]);
        assert_eq!(s.floor(), 1);
        assert!(!s.insert(0), "evicted");
        // A fourth range evicts the lowest again.
        assert!(s.insert(8));
        assert_eq!(ranges(&s), [(4, 4), (6, 6), (8, 8)]);
        assert_eq!(s.floor(), 3);
        assert!(!s.insert(1), "numbers below the floor are refused even if never seen");
        assert!(s.insert(3), "at the floor: accepted and merged");
        assert_eq!(ranges(&s), [(3, 4), (6, 6), (8, 8)]);
    }

    proptest! {
        /// With room for every range, the set equals a BTreeSet model and its ranges are
        /// maximal: sorted, disjoint and never adjacent.
        #[test]
        fn matches_btreeset_model(values in proptest::collection::vec(0u64..200, 0..300)) {
            let mut s = RangeSet::new(usize::MAX);
            let mut model = BTreeSet::new();
            for &v in &values {
                prop_assert_eq!(s.insert(v), model.insert(v));
            }
            for v in 0..210 {
                prop_assert_eq!(s.contains(v), model.contains(&v));
            }
            let r = ranges(&s);
            for w in r.windows(2) {
                prop_assert!(w[0].1 + 1 < w[1].0, "ranges {:?} not maximal", w);
            }
            let flattened: Vec<u64> = r.iter().flat_map(|&(a, b)| a..=b).collect();
            let expected: Vec<u64> = model.iter().copied().collect();
            prop_assert_eq!(flattened, expected);
        }

        /// With a small bound, the set never holds more than `max` ranges, everything it
        /// holds was inserted, and every inserted value at or above the floor is held.
        #[test]
        fn bounded_invariants(
            values in proptest::collection::vec(0u64..500, 0..400),
            max in 1usize..8,
        ) {
            let mut s = RangeSet::new(max);
            let mut model = BTreeSet::new();
            for &v in &values {
                let fresh = s.insert(v);
                if fresh {
                    prop_assert!(model.insert(v), "accepted a duplicate {}", v);
                }
                prop_assert!(s.len() <= max);
            }
            for (a, b) in ranges(&s) {
                prop_assert!(a >= s.floor());
                for v in a..=b {
                    prop_assert!(model.contains(&v));
                }
            }
            for &v in model.range(s.floor()..) {
                prop_assert!(s.range_of(v).is_some(), "lost {} above floor {}", v, s.floor());
            }
        }
    }
}
