//! Send scheduling: strict priority levels (higher first), round-robin within a level.

use std::collections::VecDeque;

use super::id::StreamId;

/// Streams with something to send, by priority. The caller keeps each stream in at most
/// one place (it tracks a `queued` flag per stream).
#[derive(Debug, Default)]
pub(crate) struct StreamScheduler {
    /// One queue per priority in use, highest priority first. A sorted vector rather than a
    /// tree: each STREAM frame pops its stream and pushes it back, and with the few levels in
    /// use a binary search and a scan for the first non-empty level cost less than a tree.
    levels: Vec<(i32, VecDeque<StreamId>)>,
    len: usize,
}

impl StreamScheduler {
    /// Number of queued streams.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Index of `priority`'s level (levels are sorted highest first), or where it goes.
    fn find(&self, priority: i32) -> Result<usize, usize> {
        self.levels.binary_search_by(|(p, _)| priority.cmp(p))
    }

    /// The queue of `priority`, created in order if missing.
    fn level(&mut self, priority: i32) -> &mut VecDeque<StreamId> {
        let i = self.find(priority).unwrap_or_else(|i| {
            self.levels.insert(i, (priority, VecDeque::new()));
            i
        });
        &mut self.levels[i].1
    }

    /// Queues `id` behind the other streams of its level.
    pub(crate) fn push_back(&mut self, id: StreamId, priority: i32) {
        self.level(priority).push_back(id);
        self.len += 1;
    }

    /// Puts `id` back at the head of its level (it could not use its turn).
    pub(crate) fn push_front(&mut self, id: StreamId, priority: i32) {
        self.level(priority).push_front(id);
        self.len += 1;
    }

    /// Takes the next stream: the head of the highest non-empty level.
    pub(crate) fn pop(&mut self) -> Option<(StreamId, i32)> {
        // Empty levels are kept (there are only as many as priorities in use), so that a
        // stream popped and pushed back on every frame costs no allocation.
        for (prio, q) in self.levels.iter_mut() {
            if let Some(id) = q.pop_front() {
                self.len -= 1;
                return Some((id, *prio));
            }
        }
        None
    }

    /// Removes `id` queued at `priority`; returns whether it was there.
    pub(crate) fn remove(&mut self, id: StreamId, priority: i32) -> bool {
        let Ok(i) = self.find(priority) else { return false };
        let q = &mut self.levels[i].1;
        let Some(pos) = q.iter().position(|&x| x == id) else { return false };
        q.remove(pos);
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::id::{Dir, Role};

    fn sid(i: u64) -> StreamId {
        StreamId::new(Role::Client, Dir::Bi, i).unwrap()
    }

    #[test]
    fn priority_then_round_robin() {
        let mut s = StreamScheduler::default();
        s.push_back(sid(0), 0);
        s.push_back(sid(1), 5);
        s.push_back(sid(2), 0);
        s.push_back(sid(3), -3);
        s.push_back(sid(4), 5);
        assert_eq!(s.len(), 5);
        let order: Vec<_> = std::iter::from_fn(|| s.pop()).map(|(id, _)| id.index()).collect();
        assert_eq!(order, vec![1, 4, 0, 2, 3]);
        assert!(s.is_empty());
        s.push_back(sid(7), 1);
        s.push_front(sid(8), 1);
        assert!(s.remove(sid(7), 1) && !s.remove(sid(7), 1) && !s.remove(sid(8), 2));
        assert_eq!(s.pop(), Some((sid(8), 1)));
        assert_eq!(s.pop(), None);
    }
}
