//! A set of disjoint, non-adjacent half-open `u64` ranges, used for acked and lost stream bytes.

use std::collections::BTreeMap;
use std::ops::Range;

/// Disjoint half-open ranges `start..end`, merged when they touch or overlap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    /// start -> end
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Whether the set holds no bytes.
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of disjoint ranges.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Adds `r` (no-op when empty).
    pub(crate) fn insert(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        let (mut start, mut end) = (r.start, r.end);
        // Merge with a range that starts at or before `start` and reaches it.
        if let Some((&s, &e)) = self.map.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
                self.map.remove(&s);
            }
        }
        // Merge with every range starting inside `start..=end`.
        while let Some((&s, &e)) = self.map.range(start..=end).next() {
            end = end.max(e);
            self.map.remove(&s);
        }
        self.map.insert(start, end);
    }

    /// Removes `r` from the set.
    pub(crate) fn remove(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        // A range that starts before r.start and overlaps it: keep its head (and maybe tail).
        if let Some((&s, &e)) = self.map.range(..r.start).next_back() {
            if e > r.start {
                self.map.insert(s, r.start);
                if e > r.end {
                    self.map.insert(r.end, e);
                }
            }
        }
        while let Some((&s, &e)) = self.map.range(r.start..r.end).next() {
            self.map.remove(&s);
            if e > r.end {
                self.map.insert(r.end, e);
            }
        }
    }

    /// Whether every byte of `r` is in the set (true for an empty `r`).
    pub(crate) fn contains(&self, r: Range<u64>) -> bool {
        if r.start >= r.end {
            return true;
        }
        match self.map.range(..=r.start).next_back() {
            Some((_, &e)) => e >= r.end,
            None => false,
        }
    }

    /// The lowest range, if any.
    pub(crate) fn first(&self) -> Option<Range<u64>> {
        self.map.iter().next().map(|(&s, &e)| s..e)
    }

    /// Removes and returns up to `max` bytes from the start of the lowest range.
    #[cfg(test)]
    pub(crate) fn pop_front(&mut self, max: u64) -> Option<Range<u64>> {
        let r = self.first()?;
        let end = r.end.min(r.start.saturating_add(max));
        self.remove(r.start..end);
        Some(r.start..end)
    }

    /// Iterates over the ranges, lowest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.map.iter().map(|(&s, &e)| s..e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn insert_merges_and_remove_splits() {
        let mut s = RangeSet::new();
        s.insert(10..20);
        s.insert(30..40);
        s.insert(20..30);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![10..40]);
        s.remove(15..25);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![10..15, 25..40]);
        assert!(s.contains(26..40) && !s.contains(14..16) && s.contains(5..5));
        assert_eq!(s.pop_front(3), Some(10..13));
        assert_eq!(s.first(), Some(13..15));
        s.remove(0..100);
        assert!(s.is_empty());
    }

    proptest! {
        #[test]
        fn matches_bitmap(ops in proptest::collection::vec((any::<bool>(), 0u64..64, 0u64..16), 0..60)) {
            let mut set = RangeSet::new();
            let mut model = [false; 80];
            for (add, start, len) in ops {
                let r = start..start + len;
                if add { set.insert(r.clone()) } else { set.remove(r.clone()) }
                for b in r { model[b as usize] = add; }
            }
            let mut rebuilt = [false; 80];
            let mut prev_end = None;
            for r in set.iter() {
                prop_assert!(r.start < r.end);
                if let Some(pe) = prev_end { prop_assert!(r.start > pe, "ranges must not touch"); }
                prev_end = Some(r.end);
                for b in r { rebuilt[b as usize] = true; }
            }
            prop_assert_eq!(model, rebuilt);
            let _ = set.len();
        }
    }
}
