//! Receiver-side acknowledgment state of one packet number space (RFC 9000 §13.2, §13.4.1).

use std::time::{Duration, Instant};

use peregrine_datapath::Ecn;

use super::ecn::Counts;
use super::ranges::{RangeSet, RangesDesc};
use super::SpaceId;
use crate::frame::EcnCounts;
use crate::VarInt;

/// Default bound on remembered ACK ranges per space.
pub const DEFAULT_MAX_ACK_RANGES: usize = 64;

/// Default max_ack_delay (RFC 9000 §18.2: 25 ms when the transport parameter is absent).
const DEFAULT_MAX_ACK_DELAY: Duration = Duration::from_millis(25);

/// Default ack_delay_exponent (RFC 9000 §18.2).
const DEFAULT_ACK_DELAY_EXPONENT: u8 = 3;

/// Ack-eliciting packets after which an ACK is sent at once.
//= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.2
//# A receiver SHOULD send an ACK frame after receiving at least two ack-
//# eliciting packets.
const DEFAULT_ACK_ELICITING_THRESHOLD: u64 = 2;

/// How an [`AckTracker`] acknowledges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckTrackerConfig {
    /// Our max_ack_delay: the longest an ack-eliciting packet waits for its ACK (application
    /// data space only; Initial and Handshake packets are acknowledged immediately).
    /// Default 25 ms; it must match the transport parameter we advertise.
    pub max_ack_delay: Duration,
    /// Our ack_delay_exponent, used to encode the ACK Delay field. Default 3.
    pub ack_delay_exponent: u8,
    /// Ack-eliciting packets received before an ACK is sent without delay. Default 2 (the
    /// peer's ACK_FREQUENCY Ack-Eliciting Threshold plus one once it sent one).
    pub ack_eliciting_threshold: u64,
    /// Reordering that elicits an immediate ACK (draft-ietf-quic-ack-frequency §6.2): 1 (the
    /// default, RFC 9000 §13.2.1) acknowledges every gap and every reordered packet at once,
    /// 0 never, N > 1 once a packet is missing N packets below the largest received.
    pub reordering_threshold: u64,
    /// Most ranges remembered; older (lower) ranges are forgotten beyond this, and their packet
    /// numbers are then treated as duplicates. Default [`DEFAULT_MAX_ACK_RANGES`] (16 bytes
    /// each).
    pub max_ranges: usize,
}

impl Default for AckTrackerConfig {
    fn default() -> Self {
        Self {
            max_ack_delay: DEFAULT_MAX_ACK_DELAY,
            ack_delay_exponent: DEFAULT_ACK_DELAY_EXPONENT,
            ack_eliciting_threshold: DEFAULT_ACK_ELICITING_THRESHOLD,
            reordering_threshold: 1,
            max_ranges: DEFAULT_MAX_ACK_RANGES,
        }
    }
}

/// Which packets of one space were received and when an ACK for them is due.
#[derive(Clone, Debug)]
pub struct AckTracker {
    space: SpaceId,
    config: AckTrackerConfig,
    received: RangeSet,
    /// Largest packet number processed and when it was received.
    largest: Option<(u64, Instant)>,
    largest_ack_eliciting: Option<u64>,
    /// Ack-eliciting packets received since the last ACK was sent.
    ack_eliciting_since_ack: u64,
    /// Any packet received since the last ACK was sent.
    pending: bool,
    /// When the next ACK must go out (`<= now` means immediately).
    deadline: Option<Instant>,
    ecn: Counts,
    ecn_seen: bool,
    /// The previous packet received was CE-marked.
    last_ce: bool,
    /// Largest Acknowledged of the last ACK frame sent.
    largest_acked_sent: Option<u64>,
}

impl AckTracker {
    /// A tracker for `space`.
    pub fn new(space: SpaceId, config: AckTrackerConfig) -> Self {
        Self {
            space,
            config,
            received: RangeSet::new(config.max_ranges),
            largest: None,
            largest_ack_eliciting: None,
            ack_eliciting_since_ack: 0,
            pending: false,
            deadline: None,
            ecn: Counts::default(),
            ecn_seen: false,
            last_ce: false,
            largest_acked_sent: None,
        }
    }

    /// Applies a peer's ACK_FREQUENCY request (application data space): acknowledge after
    /// more than `ack_eliciting_threshold` ack-eliciting packets or after `max_ack_delay`,
    /// and at once on reordering of `reordering_threshold` packets (0: never).
    //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-6
    //# After receiving an ACK_FREQUENCY frame and updating its max_ack_delay and
    //# Ack-Eliciting Threshold values (Section 4), the data receiver
    //# sends an acknowledgment when one of the following conditions are met since the
    //# last acknowledgement was sent:
    pub fn set_ack_frequency(
        &mut self,
        ack_eliciting_threshold: u64,
        max_ack_delay: Duration,
        reordering_threshold: u64,
    ) {
        self.config.ack_eliciting_threshold = ack_eliciting_threshold.saturating_add(1);
        self.config.max_ack_delay = max_ack_delay;
        self.config.reordering_threshold = reordering_threshold;
    }

    /// The acknowledgment policy in force.
    pub fn config(&self) -> &AckTrackerConfig {
        &self.config
    }

    /// The peer sent an IMMEDIATE_ACK: an ACK is due now (the packet carrying the frame is
    /// recorded right after its frames are processed, and is included).
    //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-5
    //# An endpoint SHOULD send a packet containing an ACK frame
    //# immediately upon receiving an IMMEDIATE_ACK frame.
    pub fn on_immediate_ack(&mut self, now: Instant) {
        self.deadline = Some(self.deadline.map_or(now, |d| d.min(now)));
    }

    /// Whether the reordering seen with `pn` (ack-eliciting, just recorded) reaches a
    /// `threshold` above 1 (draft-ietf-quic-ack-frequency §6.2).
    fn reordering_exceeds(&self, pn: u64, threshold: u64) -> bool {
        let Some(largest_unacked) = self.largest_ack_eliciting else { return false };
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-6.2
        //# * the received packet number is less than or equal to `Largest Acked - Reordering Threshold`.
        if self.largest_acked_sent.is_some_and(|la| la >= threshold && pn <= la - threshold) {
            return true;
        }
        if self.received.len() < 2 {
            return false; // No gap below the largest.
        }
        // Largest Reported Missing: numbers at or below it were reported in an ACK already.
        let reported = self.largest_acked_sent.and_then(|la| la.checked_sub(threshold));
        // The smallest missing number above it: walk the gaps between ranges, largest first.
        let mut smallest_missing = None;
        let mut above: Option<u64> = None;
        for r in self.received.iter_desc() {
            if let Some(next_start) = above {
                let (lo, hi) = (*r.end() + 1, next_start - 1);
                let lo = reported.map_or(lo, |rm| lo.max(rm + 1));
                if lo <= hi && lo < largest_unacked {
                    smallest_missing = Some(lo);
                }
            }
            above = Some(*r.start());
        }
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-6.2
        //# * the difference between the smallest Unreported Missing packet and the
        //#   Largest Unacked packet is greater than or equal to the Reordering
        //#   Threshold value; or
        smallest_missing.is_some_and(|m| largest_unacked - m >= threshold)
    }

    /// Whether `pn` was already processed (or is below the floor of forgotten numbers). Check
    /// this after removing packet protection and drop the packet when true.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-12.3
    //# A receiver MUST discard a newly unprotected packet unless it is
    //# certain that it has not processed another packet with the same packet
    //# number from the same packet number space.
    pub fn is_duplicate(&self, pn: u64) -> bool {
        self.received.contains(pn)
    }

    /// Records a processed packet: call after all its frames were processed. Returns `false`
    /// (and records nothing) for a duplicate.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.1
    //# A packet MUST NOT be acknowledged until packet protection has been
    //# successfully removed and all frames contained in the packet have been
    //# processed.
    pub fn on_packet_received(
        &mut self,
        now: Instant,
        pn: u64,
        ack_eliciting: bool,
        ecn: Ecn,
    ) -> bool {
        // Read before inserting: the gap check compares against earlier packets.
        let prev_largest_ae = self.largest_ack_eliciting;
        if !self.received.insert(pn) {
            return false;
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.1
        //# Even if an endpoint does not set an ECT field in packets it sends,
        //# the endpoint MUST provide feedback about ECN markings it receives, if
        //# these are accessible.
        self.ecn.add(ecn);
        self.ecn_seen |= ecn != Ecn::NotEct;
        let ce_onset = ecn == Ecn::Ce && !self.last_ce;
        self.last_ce = ecn == Ecn::Ce;
        if self.largest.is_none_or(|(l, _)| pn > l) {
            self.largest = Some((pn, now));
        }
        self.pending = true;
        if !ack_eliciting {
            //= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.1
            //# An endpoint MUST NOT send a non-ack-eliciting packet in response to a
            //# non-ack-eliciting packet, even if there are packet gaps that precede
            //# the received packet.
            return true;
        }
        self.largest_ack_eliciting = Some(prev_largest_ae.map_or(pn, |l| l.max(pn)));
        self.ack_eliciting_since_ack += 1;

        //= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.1
        //# In order to assist loss detection at the sender, an endpoint SHOULD
        //# generate and send an ACK frame without delay when it receives an ack-
        //# eliciting packet either:
        let reordered = match self.config.reordering_threshold {
            //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-6.2
            //# If the most recent ACK_FREQUENCY frame received from the peer has a Reordering
            //# Threshold value of 0, the endpoint SHOULD NOT send an immediate
            //# acknowledgment in response to packets received out of order, and instead
            //# rely on the peer's Ack-Eliciting Threshold and Requested Max Ack Delay
            //# for sending acknowledgments.
            0 => false,
            1 => {
                let out_of_order = prev_largest_ae.is_some_and(|l| pn < l);
                let gap = prev_largest_ae.is_some_and(|l| {
                    pn > l && self.received.range_of(pn).is_none_or(|r| *r.start() > l + 1)
                });
                out_of_order || gap
            }
            n => self.reordering_exceeds(pn, n),
        };
        //= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.1
        //# Similarly, packets marked with the ECN Congestion Experienced (CE)
        //# codepoint in the IP header SHOULD be acknowledged immediately, to
        //# reduce the peer's response time to congestion events.
        //= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-6.3
        //# If the Ack-Eliciting Threshold is larger than 1, an endpoint SHOULD send
        //# an immediate acknowledgement when a packet marked with the ECN Congestion
        //# Experienced (CE) [RFC3168] codepoint in the IP header is received and
        //# the previously received packet was not marked CE.
        let congestion =
            if self.config.ack_eliciting_threshold > 2 { ce_onset } else { ecn == Ecn::Ce };
        //= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.1
        //# An endpoint MUST acknowledge all ack-eliciting Initial and Handshake
        //# packets immediately and all ack-eliciting 0-RTT and 1-RTT packets
        //# within its advertised max_ack_delay, with the following exception.
        let handshake = self.space != SpaceId::Data;
        let threshold = self.ack_eliciting_since_ack >= self.config.ack_eliciting_threshold;
        if handshake || threshold || reordered || congestion {
            self.deadline = Some(self.deadline.map_or(now, |d| d.min(now)));
        } else if self.deadline.is_none() {
            self.deadline = Some(now + self.config.max_ack_delay);
        }
        true
    }

    /// When an ACK must be sent: `None` when no ack-eliciting packet awaits one, a time
    /// `<= now` when it is due immediately.
    pub fn ack_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether an ACK is due at `now`.
    pub fn wants_ack(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }

    /// Whether packets arrived since the last ACK was sent: an ACK may ride along in any
    /// packet being sent anyway, even if none is due yet.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.1
    //# An endpoint SHOULD
    //# send an ACK frame with other frames when there are new ack-eliciting
    //# packets to acknowledge.
    pub fn has_new_packets(&self) -> bool {
        self.pending
    }

    /// The largest packet number processed (kept even when ranges are dropped).
    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.3
    //# Receivers can discard all ACK Ranges, but they MUST retain the
    //# largest packet number that has been successfully processed, as that
    //# is used to recover packet numbers from subsequent packets; see
    //# Section 17.1.
    pub fn largest_received(&self) -> Option<u64> {
        self.largest.map(|(pn, _)| pn)
    }

    /// ECN counts of the packets processed in this space.
    pub fn ecn_counts(&self) -> EcnCounts {
        self.ecn.to_frame()
    }

    /// What the next ACK frame carries, or `None` when there is nothing to acknowledge.
    pub fn ack_frame(&self, now: Instant) -> Option<AckFrameData<'_>> {
        let largest = self.received.max()?;
        let delay = match self.largest {
            Some((pn, at)) if pn == largest => now.saturating_duration_since(at),
            _ => Duration::ZERO,
        };
        //= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.5
        //# When the measured acknowledgment delay is larger than its
        //# max_ack_delay, an endpoint SHOULD report the measured delay.
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        let delay = super::varint_saturating(micros >> self.config.ack_delay_exponent.min(63));
        let ecn = self.ecn_seen.then(|| self.ecn.to_frame());
        Some(AckFrameData { largest, delay, ecn, ranges: &self.received })
    }

    /// Records that an ACK frame (built from [`ack_frame`](Self::ack_frame)) was sent: the
    /// delayed-ACK timer and counters restart.
    pub fn on_ack_sent(&mut self) {
        self.largest_acked_sent = self.received.max().or(self.largest_acked_sent);
        self.ack_eliciting_since_ack = 0;
        self.pending = false;
        self.deadline = None;
    }

    /// The peer acknowledged a packet of ours that carried an ACK frame whose Largest
    /// Acknowledged was `largest`: stop tracking numbers up to it.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.3
    //# After receiving
    //# acknowledgments for an ACK frame, the receiver SHOULD stop tracking
    //# those acknowledged ACK Ranges.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.3
    //# A receiver MUST retain an ACK Range unless it can ensure that it will
    //# not subsequently accept packets with numbers in that range.
    pub fn on_ack_frame_acked(&mut self, largest: u64) {
        // Numbers up to `largest` fall below the floor and count as duplicates from now on.
        self.received.remove_up_to(largest);
    }

    /// Number of ranges currently tracked.
    pub fn range_count(&self) -> usize {
        self.received.len()
    }
}

/// The content of an ACK frame, ready for the frame encoder (`crate::frame::write_ack`).
#[derive(Clone, Copy, Debug)]
pub struct AckFrameData<'a> {
    /// Largest Acknowledged.
    pub largest: u64,
    /// ACK Delay, already scaled by our ack_delay_exponent.
    pub delay: VarInt,
    /// ECN counts, once any ECN-marked packet was received in this space.
    pub ecn: Option<EcnCounts>,
    ranges: &'a RangeSet,
}

impl<'a> AckFrameData<'a> {
    /// The acknowledged ranges, largest first, each `smallest..=largest`.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.3
    //# A receiver SHOULD include an ACK Range containing the largest
    //# received packet number in every ACK frame.
    pub fn ranges(&self) -> RangesDesc<'a> {
        self.ranges.iter_desc()
    }

    /// Number of ranges.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn data() -> AckTracker {
        AckTracker::new(SpaceId::Data, AckTrackerConfig::default())
    }

    #[test]
    fn delayed_ack_then_second_packet_triggers_immediate() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut t = data();
        assert!(t.ack_frame(t0).is_none());
        assert!(t.on_packet_received(t0, 0, true, Ecn::NotEct));
        assert_eq!(t.ack_deadline(), Some(t0 + ms(25)));
        assert!(!t.wants_ack(t0 + ms(24)));
        assert!(t.wants_ack(t0 + ms(25)));
        //= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.2
        //= type=test
        //# A receiver SHOULD send an ACK frame after receiving at least two ack-
        //# eliciting packets.
        assert!(t.on_packet_received(t0 + ms(5), 1, true, Ecn::NotEct));
        assert_eq!(t.ack_deadline(), Some(t0 + ms(5)));
        let f = t.ack_frame(t0 + ms(7)).unwrap();
        assert_eq!(f.largest, 1);
        // 2 ms = 2000 us >> 3 = 250.
        assert_eq!(f.delay.into_inner(), 250);
        assert_eq!(f.ranges().collect::<Vec<_>>(), [0..=1]);
        assert!(f.ecn.is_none());
        t.on_ack_sent();
        assert_eq!(t.ack_deadline(), None);
        assert!(!t.has_new_packets());
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.1
    //= type=test
    //# An endpoint MUST NOT send a non-ack-eliciting packet in response to a
    //# non-ack-eliciting packet, even if there are packet gaps that precede
    //# the received packet.
    #[test]
    fn non_ack_eliciting_never_arms_timer() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut t = data();
        for pn in [0, 5, 9] {
            assert!(t.on_packet_received(t0, pn, false, Ecn::Ce));
        }
        assert_eq!(t.ack_deadline(), None);
        assert!(t.has_new_packets());
        assert_eq!(t.ack_frame(t0).unwrap().range_count(), 3);
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.2.1
    //= type=test
    //# In order to assist loss detection at the sender, an endpoint SHOULD
    //# generate and send an ACK frame without delay when it receives an ack-
    //# eliciting packet either:
    #[test]
    fn reordering_and_gaps_ack_immediately() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        // Gap: 0 then 2 (1 missing).
        let mut t = data();
        t.on_packet_received(t0, 0, true, Ecn::NotEct);
        t.on_ack_sent();
        t.on_packet_received(t0 + ms(1), 2, true, Ecn::NotEct);
        assert_eq!(t.ack_deadline(), Some(t0 + ms(1)));
        t.on_ack_sent();
        // Out of order: 1 is below the largest ack-eliciting (2).
        t.on_packet_received(t0 + ms(2), 1, true, Ecn::NotEct);
        assert_eq!(t.ack_deadline(), Some(t0 + ms(2)));
        t.on_ack_sent();
        // In order again: delayed.
        t.on_packet_received(t0 + ms(3), 3, true, Ecn::NotEct);
        assert_eq!(t.ack_deadline(), Some(t0 + ms(28)));
        t.on_ack_sent();
        // A gap filled only by a non-ack-eliciting packet is not a gap.
        t.on_packet_received(t0 + ms(4), 4, false, Ecn::NotEct);
        t.on_packet_received(t0 + ms(4), 5, true, Ecn::NotEct);
        assert_eq!(t.ack_deadline(), Some(t0 + ms(29)));
    }

    #[test]
    fn ce_and_handshake_spaces_ack_immediately() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut t = data();
        t.on_packet_received(t0, 0, true, Ecn::Ce);
        assert_eq!(t.ack_deadline(), Some(t0));
        let f = t.ack_frame(t0).unwrap();
        let ecn = f.ecn.unwrap();
        assert_eq!((ecn.ect0.into_inner(), ecn.ect1.into_inner(), ecn.ce.into_inner()), (0, 0, 1));
        for space in [SpaceId::Initial, SpaceId::Handshake] {
            let mut t = AckTracker::new(space, AckTrackerConfig::default());
            t.on_packet_received(t0, 0, true, Ecn::NotEct);
            assert_eq!(t.ack_deadline(), Some(t0), "{space:?}");
        }
    }

    #[test]
    fn duplicates_and_ecn_counts() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut t = data();
        assert!(t.on_packet_received(t0, 7, true, Ecn::Ect0));
        assert!(t.is_duplicate(7));
        assert!(!t.on_packet_received(t0, 7, true, Ecn::Ect0), "duplicate");
        assert!(t.on_packet_received(t0, 8, true, Ecn::Ect1));
        let c = t.ecn_counts();
        assert_eq!((c.ect0.into_inner(), c.ect1.into_inner(), c.ce.into_inner()), (1, 1, 0));
    }

    #[test]
    fn acked_ack_prunes_ranges_but_keeps_largest() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut t = data();
        for pn in [0, 1, 2, 4, 5, 8] {
            t.on_packet_received(t0, pn, true, Ecn::NotEct);
        }
        assert_eq!(t.ack_frame(t0).unwrap().ranges().collect::<Vec<_>>(), [8..=8, 4..=5, 0..=2]);
        t.on_ack_frame_acked(4);
        assert_eq!(t.ack_frame(t0).unwrap().ranges().collect::<Vec<_>>(), [8..=8, 5..=5]);
        assert!(t.is_duplicate(3), "pruned numbers are treated as duplicates");
        t.on_ack_frame_acked(8);
        assert!(t.ack_frame(t0).is_none());
        assert_eq!(t.largest_received(), Some(8));
    }

    #[test]
    fn bounded_ranges() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let cfg = AckTrackerConfig { max_ranges: 4, ..AckTrackerConfig::default() };
        let mut t = AckTracker::new(SpaceId::Data, cfg);
        for pn in (0..40).step_by(2) {
            t.on_packet_received(t0, pn, false, Ecn::NotEct);
        }
        let f = t.ack_frame(t0).unwrap();
        assert_eq!(f.ranges().collect::<Vec<_>>(), [38..=38, 36..=36, 34..=34, 32..=32]);
        assert!(t.is_duplicate(1), "forgotten below the oldest kept range");
    }

    proptest! {
        /// Any arrival order: the ACK ranges describe exactly the set received (largest first,
        /// disjoint, non-adjacent), duplicates are refused, and an ACK is due within
        /// max_ack_delay of the first unacknowledged ack-eliciting packet.
        #[test]
        fn arrival_orders(pns in proptest::collection::vec(0u64..120, 1..200)) {
            #[allow(clippy::disallowed_methods)]
            let t0 = Instant::now();
            let mut t = data();
            let mut model = BTreeSet::new();
            for (i, &pn) in pns.iter().enumerate() {
                let now = t0 + Duration::from_micros(i as u64);
                prop_assert_eq!(t.on_packet_received(now, pn, true, Ecn::NotEct), model.insert(pn));
                let d = t.ack_deadline().unwrap();
                prop_assert!(d <= now + ms(25));
            }
            let f = t.ack_frame(t0).unwrap();
            prop_assert_eq!(f.largest, *model.iter().next_back().unwrap());
            let got: Vec<_> = f.ranges().collect();
            for w in got.windows(2) {
                prop_assert!(*w[1].end() + 1 < *w[0].start());
            }
            let mut flat: Vec<u64> = got.iter().flat_map(|r| r.clone()).collect();
            flat.sort_unstable();
            prop_assert_eq!(flat, model.into_iter().collect::<Vec<_>>());
        }
    }
}
