//! Sent-packet records of one packet number space, indexed by packet number (RFC 9002 App. A.1).

use std::collections::VecDeque;
use std::time::Instant;

use peregrine_datapath::Ecn;

use crate::congestion::DeliveryState;

/// What the sender remembers of one sent packet (RFC 9002 Appendix A.1.1), plus an opaque
/// `payload` the connection chooses (for example the frames' content, so it can retransmit it
/// when the packet is lost or release it when acknowledged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentPacket<T> {
    /// Packet number.
    pub pn: u64,
    /// When the packet was sent.
    pub time_sent: Instant,
    /// Bytes sent, including QUIC framing overhead but not UDP or IP overhead.
    pub size: u16,
    /// Whether the packet is ack-eliciting.
    pub ack_eliciting: bool,
    /// Whether the packet counts toward bytes in flight (ack-eliciting, or padded).
    pub in_flight: bool,
    /// The ECN codepoint the packet was sent with.
    pub ecn: Ecn,
    /// The delivery-rate sampler's state when the packet was sent (filled in by the loss
    /// detector for in-flight packets).
    pub delivery: DeliveryState,
    /// The connection's record of what the packet carried.
    pub payload: T,
}

impl<T> SentPacket<T> {
    /// A packet sent at `time_sent`: ack-eliciting and in flight, no ECN marking.
    pub fn new(pn: u64, time_sent: Instant, size: u16, payload: T) -> Self {
        Self {
            pn,
            time_sent,
            size,
            ack_eliciting: true,
            in_flight: true,
            ecn: Ecn::NotEct,
            delivery: DeliveryState::default(),
            payload,
        }
    }

    /// Sets whether the packet is ack-eliciting.
    pub fn with_ack_eliciting(mut self, ack_eliciting: bool) -> Self {
        self.ack_eliciting = ack_eliciting;
        self
    }

    /// Sets whether the packet counts toward bytes in flight.
    pub fn with_in_flight(mut self, in_flight: bool) -> Self {
        self.in_flight = in_flight;
        self
    }

    /// Sets the ECN codepoint the packet was sent with.
    pub fn with_ecn(mut self, ecn: Ecn) -> Self {
        self.ecn = ecn;
        self
    }
}

/// Skipped packet numbers remembered per space.
const MAX_SKIPPED: usize = 64;

/// One packet number's state in the ledger.
#[derive(Debug)]
pub(crate) enum Slot<T> {
    /// Sent and neither acknowledged nor lost.
    Sent(SentPacket<T>),
    /// Acknowledged.
    Acked,
    /// Declared lost (or discarded).
    Lost,
    /// Never sent: the sender skipped this number.
    Skipped,
}

/// The sent packets of one space: a deque of slots indexed by `pn - base`. Packet numbers only
/// grow, so lookups are O(1); resolved slots at the front are dropped by [`compact`].
///
/// [`compact`]: SentLedger::compact
#[derive(Debug)]
pub(crate) struct SentLedger<T> {
    base: u64,
    slots: VecDeque<Slot<T>>,
    /// One past the largest packet number sent (or skipped).
    next_pn: u64,
    /// Largest packet number whose Acked slot was dropped from the front.
    pub(crate) last_compacted_acked: Option<u64>,
    /// The most recent skipped packet numbers, ascending, kept after compaction so that an
    /// acknowledgment of one is always recognised.
    skipped: VecDeque<u64>,
    /// Outstanding (Sent) packets that are ack-eliciting and in flight.
    ack_eliciting_in_flight: u64,
    /// Bytes of outstanding in-flight packets.
    bytes_in_flight: u64,
}

impl<T> SentLedger<T> {
    pub(crate) fn new() -> Self {
        Self {
            base: 0,
            slots: VecDeque::new(),
            next_pn: 0,
            last_compacted_acked: None,
            skipped: VecDeque::new(),
            ack_eliciting_in_flight: 0,
            bytes_in_flight: 0,
        }
    }

    /// The largest packet number sent, if any.
    pub(crate) fn largest_sent(&self) -> Option<u64> {
        self.next_pn.checked_sub(1)
    }

    /// Records a packet. Returns it back if its number is not above every number already used.
    pub(crate) fn push(&mut self, p: SentPacket<T>) -> Result<(), SentPacket<T>> {
        if p.pn < self.next_pn {
            return Err(p);
        }
        if self.next_pn == 0 && self.slots.is_empty() {
            self.base = p.pn;
        } else {
            // Skipped numbers get a slot so an ACK for them can be recognised as invalid.
            // (After compaction `base == next_pn`, so the deque stays contiguous.)
            for pn in self.next_pn..p.pn {
                self.slots.push_back(Slot::Skipped);
                if self.skipped.len() == MAX_SKIPPED {
                    self.skipped.pop_front();
                }
                self.skipped.push_back(pn);
            }
        }
        self.next_pn = p.pn + 1;
        if p.in_flight {
            self.bytes_in_flight += u64::from(p.size);
            if p.ack_eliciting {
                self.ack_eliciting_in_flight += 1;
            }
        }
        self.slots.push_back(Slot::Sent(p));
        Ok(())
    }

    fn index(&self, pn: u64) -> Option<usize> {
        let i = usize::try_from(pn.checked_sub(self.base)?).ok()?;
        (i < self.slots.len()).then_some(i)
    }

    /// The slot of `pn`, if still held.
    pub(crate) fn slot(&self, pn: u64) -> Option<&Slot<T>> {
        self.index(pn).map(|i| &self.slots[i])
    }

    /// The outstanding packet `pn`, if any.
    pub(crate) fn get(&self, pn: u64) -> Option<&SentPacket<T>> {
        match self.slot(pn) {
            Some(Slot::Sent(p)) => Some(p),
            _ => None,
        }
    }

    /// Whether a remembered skipped packet number lies in `lo..=hi`.
    pub(crate) fn skipped_in(&self, lo: u64, hi: u64) -> bool {
        let i = self.skipped.partition_point(|&pn| pn < lo);
        self.skipped.get(i).is_some_and(|&pn| pn <= hi)
    }

    /// Packet numbers held in `lo..=hi` (clamped to the ledger), ascending.
    pub(crate) fn held_range(&self, lo: u64, hi: u64) -> std::ops::Range<u64> {
        let start = lo.max(self.base);
        let end = hi.saturating_add(1).min(self.base + self.slots.len() as u64);
        start..end.max(start)
    }

    /// Takes the outstanding packet `pn`, leaving `Acked` (if `acked`) or `Lost` behind.
    pub(crate) fn take(&mut self, pn: u64, acked: bool) -> Option<SentPacket<T>> {
        let i = self.index(pn)?;
        if !matches!(self.slots[i], Slot::Sent(_)) {
            return None;
        }
        let mark = if acked { Slot::Acked } else { Slot::Lost };
        let Slot::Sent(p) = std::mem::replace(&mut self.slots[i], mark) else {
            return None;
        };
        if p.in_flight {
            self.bytes_in_flight -= u64::from(p.size);
            if p.ack_eliciting {
                self.ack_eliciting_in_flight -= 1;
            }
        }
        Some(p)
    }

    /// Drops resolved slots from the front.
    pub(crate) fn compact(&mut self) {
        while let Some(front) = self.slots.front() {
            match front {
                Slot::Sent(_) => break,
                Slot::Acked => self.last_compacted_acked = Some(self.base),
                Slot::Lost | Slot::Skipped => {}
            }
            self.slots.pop_front();
            self.base += 1;
        }
    }

    /// Removes every outstanding packet for which `pred` holds, in packet number order.
    pub(crate) fn drain_where(
        &mut self,
        mut pred: impl FnMut(&SentPacket<T>) -> bool,
    ) -> Vec<SentPacket<T>> {
        let pns: Vec<u64> =
            (self.base..self.next_pn).filter(|&pn| self.get(pn).is_some_and(&mut pred)).collect();
        let out = pns.into_iter().filter_map(|pn| self.take(pn, false)).collect();
        self.compact();
        out
    }

    /// Outstanding ack-eliciting in-flight packets.
    pub(crate) fn ack_eliciting_in_flight(&self) -> u64 {
        self.ack_eliciting_in_flight
    }

    /// Bytes of outstanding in-flight packets.
    pub(crate) fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    /// Number of slots held (outstanding or not yet compacted).
    #[cfg(test)]
    pub(crate) fn slots_len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_take_compact() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut l = SentLedger::new();
        l.push(SentPacket::new(3, t0, 100, 'a')).unwrap();
        l.push(SentPacket::new(4, t0, 200, 'b').with_ack_eliciting(false)).unwrap();
        l.push(SentPacket::new(7, t0, 300, 'c')).unwrap();
        assert!(l.push(SentPacket::new(7, t0, 1, 'x')).is_err(), "numbers never repeat");
        assert_eq!(l.bytes_in_flight(), 600);
        assert_eq!(l.ack_eliciting_in_flight(), 2);
        assert!(matches!(l.slot(5), Some(Slot::Skipped)));
        assert_eq!(l.held_range(0, 100), 3..8);
        assert_eq!(l.take(4, true).map(|p| p.payload), Some('b'));
        assert!(l.take(4, true).is_none());
        assert_eq!(l.ack_eliciting_in_flight(), 2);
        assert_eq!(l.take(3, true).map(|p| p.payload), Some('a'));
        l.compact();
        assert_eq!(l.slots_len(), 1, "3 and 4 acknowledged, 5 and 6 skipped, 7 outstanding");
        assert_eq!(l.last_compacted_acked, Some(4));
        assert!(l.skipped_in(5, 5) && l.skipped_in(0, 100) && l.skipped_in(6, 9));
        assert!(!l.skipped_in(7, 9) && !l.skipped_in(0, 4));
        let d = l.drain_where(|p| p.payload == 'c');
        assert_eq!(d.len(), 1);
        assert_eq!(l.bytes_in_flight(), 0);
        assert_eq!(l.slots_len(), 0);
        assert_eq!(l.largest_sent(), Some(7));
    }
}
