//! Zero-copy transmit bookkeeping: which transmit buffers the kernel may still read.
//!
//! A `SENDMSG_ZC` completes twice: the result (the datagram is queued) and, later, a
//! notification (the kernel no longer reads the pages; on a NIC, after the device's transmit
//! completion). Between the two the buffer must not be written. The transmit policy hands sent
//! buffers back to the pool at once, so the pool may lend out one still being read; instead of
//! waiting for every notification in `send`, the queue tracks the base address of each buffer
//! with notifications outstanding here and `alloc_tx` sets such buffers aside ("parks" them)
//! until their notifications arrived. The one case where the policy itself writes into a sent
//! buffer — a train sent in part, whose unsent tail is moved to the front — waits for that
//! buffer's notifications before the policy sees the result.

use std::collections::HashMap;

use crate::buffer::{BufferPool, PoolBuf};

/// Outstanding zero-copy notifications.
#[derive(Debug, Default)]
pub(crate) struct ZcTracker {
    /// Base address of each buffer with notifications outstanding → how many.
    busy: HashMap<usize, u32>,
    /// `user_data` of a send whose notification is outstanding → its buffer's base address.
    notif: HashMap<u64, usize>,
    /// Base address of each send of the current round, by index.
    pub(crate) round: Vec<usize>,
    /// Buffers back from the pool while still busy.
    parked: Vec<PoolBuf>,
    /// Round counter, part of each send's `user_data` so notifications of earlier rounds
    /// cannot be mistaken for this round's.
    seq: u32,
}

impl ZcTracker {
    /// Starts a round: returns its sequence number (for the `user_data` of its sends).
    pub(crate) fn next_round(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Send `i` of the current round (`user_data` `ud`) reported a notification to come.
    pub(crate) fn expect(&mut self, ud: u64, i: usize) {
        if let Some(&addr) = self.round.get(i) {
            *self.busy.entry(addr).or_default() += 1;
            self.notif.insert(ud, addr);
        }
    }

    /// The notification of `ud` arrived.
    pub(crate) fn notified(&mut self, ud: u64) {
        if let Some(addr) = self.notif.remove(&ud) {
            if let Some(n) = self.busy.get_mut(&addr) {
                *n -= 1;
                if *n == 0 {
                    self.busy.remove(&addr);
                }
            }
        }
    }

    /// True when the kernel may still read the buffer starting at `addr`.
    pub(crate) fn is_busy(&self, addr: usize) -> bool {
        self.busy.contains_key(&addr)
    }

    /// True when no notification is outstanding and nothing is parked.
    pub(crate) fn is_idle(&self) -> bool {
        self.busy.is_empty() && self.parked.is_empty()
    }

    /// True when notifications are outstanding.
    pub(crate) fn has_busy(&self) -> bool {
        !self.busy.is_empty()
    }

    /// Sets a busy buffer aside.
    pub(crate) fn park(&mut self, buf: PoolBuf) {
        self.parked.push(buf);
    }

    /// Hands parked buffers that are no longer busy back to `pool`.
    pub(crate) fn unpark(&mut self, pool: &mut BufferPool) {
        let mut i = 0;
        while i < self.parked.len() {
            if self.is_busy(self.parked[i].as_ptr() as usize) {
                i += 1;
            } else {
                pool.put(self.parked.swap_remove(i));
            }
        }
    }

    /// Gives up the parked buffers without freeing them (teardown while the kernel may still
    /// read them).
    pub(crate) fn leak_parked(&mut self) {
        std::mem::forget(std::mem::take(&mut self.parked));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_stay_busy_until_every_notification() {
        let mut pool = BufferPool::new(8, 4);
        let (a, b) = (pool.take().unwrap(), pool.take().unwrap());
        let (pa, pb) = (a.as_ptr() as usize, b.as_ptr() as usize);
        let mut z = ZcTracker::default();
        let r1 = u64::from(z.next_round()) << 16;
        z.round = vec![pa, pa, pb];
        z.expect(r1, 0);
        z.expect(r1 | 1, 1);
        z.expect(r1 | 2, 2);
        assert!(z.is_busy(pa) && z.is_busy(pb));
        z.notified(r1);
        assert!(z.is_busy(pa), "one of two notifications for a");
        z.park(a);
        z.park(b);
        z.notified(r1 | 2);
        z.unpark(&mut pool);
        assert!(!z.is_busy(pb) && z.is_busy(pa));
        assert_eq!(pool.outstanding(), 1, "b went back, a stays parked");
        z.notified(r1 | 1);
        z.notified(r1 | 1); // a duplicate is ignored
        z.unpark(&mut pool);
        assert!(z.is_idle());
        assert_eq!(pool.outstanding(), 0);
    }
}
