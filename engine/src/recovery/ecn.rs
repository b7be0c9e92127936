//! ECN validation of a path (RFC 9000 §13.4.2 and Appendix A.4).

use std::time::{Duration, Instant};

use peregrine_datapath::Ecn;

use crate::frame::EcnCounts;

/// Packets marked ECT(0) while testing a new path before waiting for the verdict.
//= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.2
//# If an endpoint has cause to expect that IP packets with an ECT
//# codepoint might be dropped by a faulty network element, the endpoint
//# could set an ECT codepoint for only the first ten outgoing packets on
//# a path, or for a period of three PTOs (see Section 6.2 of
//# [QUIC-RECOVERY]).
pub const ECN_TESTING_PACKETS: u64 = 10;

/// PTOs after which testing ends even if fewer than [`ECN_TESTING_PACKETS`] were sent.
const ECN_TESTING_PTOS: u32 = 3;

/// Where ECN validation of a path stands (RFC 9000 Appendix A.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcnState {
    /// Marking the first packets ECT(0) and watching what comes back.
    Testing,
    /// Testing ended; not marking, waiting for acknowledgments to decide.
    Unknown,
    /// Validated: packets are marked and CE counts are a congestion signal.
    Capable,
    /// Validation failed (or ECN is disabled): packets go out unmarked.
    Failed,
}

/// ECN counts as plain integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) ect0: u64,
    pub(crate) ect1: u64,
    pub(crate) ce: u64,
}

impl From<EcnCounts> for Counts {
    fn from(c: EcnCounts) -> Self {
        Self { ect0: c.ect0.into_inner(), ect1: c.ect1.into_inner(), ce: c.ce.into_inner() }
    }
}

impl Counts {
    /// Adds one packet with codepoint `ecn`.
    pub(crate) fn add(&mut self, ecn: Ecn) {
        match ecn {
            Ecn::Ect0 => self.ect0 += 1,
            Ecn::Ect1 => self.ect1 += 1,
            Ecn::Ce => self.ce += 1,
            Ecn::NotEct => {}
        }
    }

    pub(crate) fn to_frame(self) -> EcnCounts {
        EcnCounts {
            ect0: super::varint_saturating(self.ect0),
            ect1: super::varint_saturating(self.ect1),
            ce: super::varint_saturating(self.ce),
        }
    }
}

/// One ACK's worth of ECN evidence for [`EcnValidator::on_ack`].
#[derive(Debug)]
pub(crate) struct AckEcn<'a> {
    /// Newly acknowledged packets sent ECT(0) / ECT(1) (CE counts unused).
    pub(crate) newly_acked: Counts,
    /// Counts in the ACK frame, if it had them.
    pub(crate) reported: Option<Counts>,
    /// Whether the ACK increased the space's largest acknowledged packet number.
    pub(crate) largest_increased: bool,
    /// Packets of this space ever sent with each codepoint.
    pub(crate) sent_total: Counts,
    /// Counts of the last successfully processed ACK frame of this space (updated on success).
    pub(crate) last: &'a mut Counts,
}

/// ECN validation for one path.
#[derive(Clone, Debug)]
pub struct EcnValidator {
    state: EcnState,
    testing_sent: u64,
    testing_start: Option<Instant>,
    /// Marked packets neither acknowledged nor lost.
    marked_outstanding: u64,
    /// Marked packets ever acknowledged.
    marked_acked: u64,
}

impl EcnValidator {
    /// A validator that starts testing (`enabled`) or never marks.
    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.2
    //# *  The endpoint sets an ECT(0) codepoint in the IP header of early
    //#    outgoing packets sent on a new path to the peer [RFC8311].
    pub fn new(enabled: bool) -> Self {
        Self {
            state: if enabled { EcnState::Testing } else { EcnState::Failed },
            testing_sent: 0,
            testing_start: None,
            marked_outstanding: 0,
            marked_acked: 0,
        }
    }

    /// The current state.
    pub fn state(&self) -> EcnState {
        self.state
    }

    /// The codepoint for the next outgoing packet.
    pub fn marking(&self) -> Ecn {
        match self.state {
            EcnState::Testing | EcnState::Capable => Ecn::Ect0,
            EcnState::Unknown | EcnState::Failed => Ecn::NotEct,
        }
    }

    /// Records a packet sent with `ecn`; `pto` gives the current PTO period (for the
    /// three-PTO testing limit), asked only during testing.
    pub fn on_packet_sent(&mut self, now: Instant, ecn: Ecn, pto: impl FnOnce() -> Duration) {
        if ecn != Ecn::NotEct {
            self.marked_outstanding += 1;
        }
        if self.state != EcnState::Testing {
            return;
        }
        let start = *self.testing_start.get_or_insert(now);
        self.testing_sent += 1;
        let expired = start
            .checked_add(pto().saturating_mul(ECN_TESTING_PTOS))
            .is_some_and(|deadline| now >= deadline);
        if self.testing_sent >= ECN_TESTING_PACKETS || expired {
            self.state = EcnState::Unknown;
            self.check_all_lost();
        }
    }

    /// Records `count` marked packets declared lost (or discarded).
    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.2
    //# *  The endpoint monitors whether all packets sent with an ECT
    //#    codepoint are eventually deemed lost (Section 6 of
    //#    [QUIC-RECOVERY]), indicating that ECN validation has failed.
    pub(crate) fn on_marked_lost(&mut self, count: u64) {
        self.marked_outstanding = self.marked_outstanding.saturating_sub(count);
        self.check_all_lost();
    }

    fn check_all_lost(&mut self) {
        if self.state == EcnState::Unknown && self.marked_outstanding == 0 && self.marked_acked == 0
        {
            self.state = EcnState::Failed;
        }
    }

    /// Disables ECN on this path.
    pub fn fail(&mut self) {
        self.state = EcnState::Failed;
    }

    /// Validates the ECN counts of an ACK that newly acknowledged packets; returns the increase
    /// of the CE count to treat as a congestion signal (0 unless the path is capable).
    pub(crate) fn on_ack(&mut self, ack: AckEcn<'_>) -> u64 {
        let newly_marked = ack.newly_acked.ect0 + ack.newly_acked.ect1;
        self.marked_outstanding = self.marked_outstanding.saturating_sub(newly_marked);
        self.marked_acked += newly_marked;
        if self.state == EcnState::Failed {
            return 0;
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.2.1
        //# An endpoint MUST NOT fail ECN validation as a result of
        //# processing an ACK frame that does not increase the largest
        //# acknowledged packet number.
        if !ack.largest_increased {
            return 0;
        }
        match self.check(&ack) {
            Some(ce_increase) => {
                *ack.last = ack.reported.unwrap_or(*ack.last);
                if newly_marked > 0 && matches!(self.state, EcnState::Testing | EcnState::Unknown) {
                    self.state = EcnState::Capable;
                }
                if self.state == EcnState::Capable {
                    ce_increase
                } else {
                    0
                }
            }
            None => {
                self.state = EcnState::Failed;
                0
            }
        }
    }

    /// `Some(ce increase)` when the counts validate, `None` when validation fails.
    fn check(&self, ack: &AckEcn<'_>) -> Option<u64> {
        let newly = ack.newly_acked;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.2.1
        //# If an ACK frame newly acknowledges a packet that the endpoint sent
        //# with either the ECT(0) or ECT(1) codepoint set, ECN validation fails
        //# if the corresponding ECN counts are not present in the ACK frame.
        let Some(c) = ack.reported else {
            return (newly.ect0 + newly.ect1 == 0).then_some(0);
        };
        // Counts only grow; a decrease means a broken or lying peer.
        let inc_ect0 = c.ect0.checked_sub(ack.last.ect0)?;
        let inc_ect1 = c.ect1.checked_sub(ack.last.ect1)?;
        let inc_ce = c.ce.checked_sub(ack.last.ce)?;
        //= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.2.1
        //# ECN validation also fails if the sum of the increase in ECT(0) and
        //# ECN-CE counts is less than the number of newly acknowledged packets
        //# that were originally sent with an ECT(0) marking.
        if inc_ect0 + inc_ce < newly.ect0 || inc_ect1 + inc_ce < newly.ect1 {
            return None;
        }
        //= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.2.1
        //# ECN validation can fail if the received total count for either ECT(0)
        //# or ECT(1) exceeds the total number of packets sent with each
        //# corresponding ECT codepoint.
        if c.ect0 > ack.sent_total.ect0 || c.ect1 > ack.sent_total.ect1 {
            return None;
        }
        Some(inc_ce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(ect0: u64, ect1: u64, ce: u64) -> Counts {
        Counts { ect0, ect1, ce }
    }

    fn ack<'a>(
        newly_ect0: u64,
        reported: Option<Counts>,
        sent: u64,
        last: &'a mut Counts,
    ) -> AckEcn<'a> {
        AckEcn {
            newly_acked: counts(newly_ect0, 0, 0),
            reported,
            largest_increased: true,
            sent_total: counts(sent, 0, 0),
            last,
        }
    }

    #[test]
    fn testing_ends_after_ten_packets_then_capable() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut v = EcnValidator::new(true);
        let pto = Duration::from_secs(1);
        for i in 0..ECN_TESTING_PACKETS {
            assert_eq!(v.state(), EcnState::Testing, "packet {i}");
            assert_eq!(v.marking(), Ecn::Ect0);
            v.on_packet_sent(t0, v.marking(), || pto);
        }
        assert_eq!(v.state(), EcnState::Unknown);
        assert_eq!(v.marking(), Ecn::NotEct);
        let mut last = Counts::default();
        assert_eq!(v.on_ack(ack(4, Some(counts(4, 0, 0)), 10, &mut last)), 0);
        assert_eq!(v.state(), EcnState::Capable);
        assert_eq!(last, counts(4, 0, 0));
        // CE increase on a capable path is reported.
        assert_eq!(v.on_ack(ack(3, Some(counts(5, 0, 2)), 10, &mut last)), 2);
        assert_eq!(v.marking(), Ecn::Ect0);
    }

    #[test]
    fn testing_ends_after_three_ptos() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut v = EcnValidator::new(true);
        let pto = Duration::from_millis(100);
        v.on_packet_sent(t0, Ecn::Ect0, || pto);
        v.on_packet_sent(t0 + Duration::from_millis(299), Ecn::Ect0, || pto);
        assert_eq!(v.state(), EcnState::Testing);
        v.on_packet_sent(t0 + Duration::from_millis(300), Ecn::Ect0, || pto);
        assert_eq!(v.state(), EcnState::Unknown);
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.2
    //= type=test
    //# *  The endpoint monitors whether all packets sent with an ECT
    //#    codepoint are eventually deemed lost (Section 6 of
    //#    [QUIC-RECOVERY]), indicating that ECN validation has failed.
    #[test]
    fn all_marked_lost_fails() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut v = EcnValidator::new(true);
        for _ in 0..ECN_TESTING_PACKETS {
            v.on_packet_sent(t0, Ecn::Ect0, || Duration::from_secs(1));
        }
        v.on_marked_lost(9);
        assert_eq!(v.state(), EcnState::Unknown);
        v.on_marked_lost(1);
        assert_eq!(v.state(), EcnState::Failed);
        assert_eq!(v.marking(), Ecn::NotEct);
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.2.1
    //= type=test
    //# If an ACK frame newly acknowledges a packet that the endpoint sent
    //# with either the ECT(0) or ECT(1) codepoint set, ECN validation fails
    //# if the corresponding ECN counts are not present in the ACK frame.
    #[test]
    fn missing_counts_fail() {
        let mut v = EcnValidator::new(true);
        let mut last = Counts::default();
        v.on_ack(ack(1, None, 1, &mut last));
        assert_eq!(v.state(), EcnState::Failed);
        // Unmarked packets acknowledged without counts are fine.
        let mut v = EcnValidator::new(true);
        v.on_ack(ack(0, None, 0, &mut last));
        assert_eq!(v.state(), EcnState::Testing);
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.2.1
    //= type=test
    //# ECN validation also fails if the sum of the increase in ECT(0) and
    //# ECN-CE counts is less than the number of newly acknowledged packets
    //# that were originally sent with an ECT(0) marking.
    #[test]
    fn remarking_detected() {
        let mut v = EcnValidator::new(true);
        let mut last = counts(2, 0, 0);
        // Three ECT(0) packets newly acknowledged, but counts rose by only 1 + 1.
        v.on_ack(ack(3, Some(counts(3, 0, 1)), 10, &mut last));
        assert_eq!(v.state(), EcnState::Failed);
        assert_eq!(last, counts(2, 0, 0), "failed counts are not remembered");
        // CE counts make up for ECT(0): 1 + 2 >= 3 validates.
        let mut v = EcnValidator::new(true);
        let mut last = counts(2, 0, 0);
        assert_eq!(v.on_ack(ack(3, Some(counts(3, 0, 2)), 10, &mut last)), 2);
        assert_eq!(v.state(), EcnState::Capable);
    }

    #[test]
    fn decrease_and_excess_fail() {
        let mut v = EcnValidator::new(true);
        let mut last = counts(5, 0, 1);
        v.on_ack(ack(0, Some(counts(4, 0, 1)), 10, &mut last));
        assert_eq!(v.state(), EcnState::Failed, "counts decreased");
        //= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.2.1
        //= type=test
        //# ECN validation can fail if the received total count for either ECT(0)
        //# or ECT(1) exceeds the total number of packets sent with each
        //# corresponding ECT codepoint.
        let mut v = EcnValidator::new(true);
        let mut last = Counts::default();
        v.on_ack(ack(2, Some(counts(11, 0, 0)), 10, &mut last));
        assert_eq!(v.state(), EcnState::Failed, "more ECT(0) reported than sent");
        // ECT(1) never sent but reported.
        let mut v = EcnValidator::new(true);
        let mut last = Counts::default();
        v.on_ack(ack(1, Some(counts(1, 1, 0)), 10, &mut last));
        assert_eq!(v.state(), EcnState::Failed);
    }

    //= https://www.rfc-editor.org/rfc/rfc9000#section-13.4.2.1
    //= type=test
    //# An endpoint MUST NOT fail ECN validation as a result of
    //# processing an ACK frame that does not increase the largest
    //# acknowledged packet number.
    #[test]
    fn reordered_ack_never_fails() {
        let mut v = EcnValidator::new(true);
        let mut last = counts(5, 0, 0);
        let mut a = ack(2, Some(counts(1, 0, 0)), 10, &mut last);
        a.largest_increased = false;
        assert_eq!(v.on_ack(a), 0);
        assert_eq!(v.state(), EcnState::Testing);
    }
}
