//! The endpoint's timer queue: a binary heap of (deadline, connection, generation), lazily
//! invalidated — a connection whose `poll_timeout` moved pushes a new entry with a new
//! generation and stale entries are skipped when they surface.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::ConnectionHandle;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Reverse<(Instant, ConnectionHandle, u64)>>,
}

impl TimerHeap {
    /// Arms `(at, key, generation)`.
    pub(crate) fn push(&mut self, at: Instant, key: ConnectionHandle, generation: u64) {
        self.heap.push(Reverse((at, key, generation)));
    }

    /// The earliest entry's deadline (possibly stale: a spurious wake-up at worst).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Pops the next entry due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, ConnectionHandle, u64)> {
        match self.heap.peek() {
            Some(Reverse((t, _, _))) if *t <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Entries held (live and stale).
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Drops stale entries when the heap grew much larger than the live set.
    pub(crate) fn compact(&mut self, live: impl Fn(ConnectionHandle, u64) -> bool) {
        let v = std::mem::take(&mut self.heap).into_vec();
        self.heap = v.into_iter().filter(|Reverse((_, k, g))| live(*k, *g)).collect();
    }
}
