//! Persistent congestion: a long enough run of lost packets, nothing acknowledged (RFC 9002 §7.6).

use std::time::{Duration, Instant};

use super::rtt::RttEstimator;

//= https://www.rfc-editor.org/rfc/rfc9002#section-7.6.1
//# The RECOMMENDED value for kPersistentCongestionThreshold is 3, which
//# results in behavior that is approximately equivalent to a TCP sender
//# declaring an RTO after two TLPs.
/// kPersistentCongestionThreshold.
pub const PERSISTENT_CONGESTION_THRESHOLD: u32 = 3;

/// `(smoothed_rtt + max(4*rttvar, kGranularity) + max_ack_delay) * kPersistentCongestionThreshold`.
//= https://www.rfc-editor.org/rfc/rfc9002#section-7.6.1
//# The persistent congestion duration is computed as follows:
//#
//# (smoothed_rtt + max(4*rttvar, kGranularity) + max_ack_delay) *
//#     kPersistentCongestionThreshold
pub(crate) fn duration(rtt: &RttEstimator, max_ack_delay: Duration) -> Duration {
    rtt.pto_base().saturating_add(max_ack_delay).saturating_mul(PERSISTENT_CONGESTION_THRESHOLD)
}

/// A run of consecutive lost packets in one space, starting at an eligible ack-eliciting packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    /// Send time of the first ack-eliciting packet of the run.
    pub(crate) start: Instant,
    /// The last packet number in the run.
    pub(crate) last_pn: u64,
}

/// What the run tracker needs to know about one lost packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LostInfo {
    pub(crate) pn: u64,
    pub(crate) time_sent: Instant,
    pub(crate) ack_eliciting: bool,
    /// Whether some packet of the same space numbered between the run's last packet and this
    /// one was acknowledged.
    pub(crate) acked_since_run: bool,
}

/// Feeds one lost packet (in packet number order) to the run; returns true when it establishes
/// persistent congestion. `others_acked_after(start)` tells whether another space acknowledged
/// a packet sent after `start`.
pub(crate) fn on_lost(
    run: &mut Option<Run>,
    lost: LostInfo,
    first_rtt_sample: Option<Instant>,
    duration: Duration,
    others_acked_after: impl Fn(Instant) -> bool,
) -> bool {
    if lost.acked_since_run {
        *run = None;
    }
    //= https://www.rfc-editor.org/rfc/rfc9002#section-7.6.2
    //# These two packets MUST be ack-eliciting, since a receiver is required
    //# to acknowledge only ack-eliciting packets within its maximum
    //# acknowledgment delay; see Section 13.2 of [QUIC-TRANSPORT].
    //= https://www.rfc-editor.org/rfc/rfc9002#section-7.6.2
    //# The persistent congestion period SHOULD NOT start until there is at
    //# least one RTT sample.
    let eligible = lost.ack_eliciting && first_rtt_sample.is_some_and(|f| lost.time_sent > f);
    match run {
        Some(r) => {
            r.last_pn = lost.pn;
            //= https://www.rfc-editor.org/rfc/rfc9002#section-7.6.2
            //# Since network congestion is not affected by packet number spaces,
            //# persistent congestion SHOULD consider packets sent across packet
            //# number spaces.
            if eligible
                && lost.time_sent.saturating_duration_since(r.start) > duration
                && !others_acked_after(r.start)
            {
                *run = None;
                return true;
            }
        }
        None if eligible => *run = Some(Run { start: lost.time_sent, last_pn: lost.pn }),
        None => {}
    }
    false
}

/// One packet of a space, for [`persistent_congestion_in`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanEvent {
    /// The packet was acknowledged.
    Acked,
    /// The packet was declared lost.
    Lost {
        /// Whether it was ack-eliciting.
        ack_eliciting: bool,
    },
}

/// Whether a sequence of packets of one space (in packet number order, each with its send
/// time) establishes persistent congestion, using the same rule as [`super::LossDetector`].
///
/// `first_rtt_sample` is when the first RTT sample was taken; `duration` the persistent
/// congestion duration (RFC 9002 §7.6.1).
pub fn persistent_congestion_in(
    packets: impl IntoIterator<Item = (u64, Instant, SpanEvent)>,
    first_rtt_sample: Option<Instant>,
    duration: Duration,
) -> bool {
    let mut run = None;
    let mut acked_since_run = false;
    for (pn, time_sent, event) in packets {
        match event {
            SpanEvent::Acked => acked_since_run = true,
            SpanEvent::Lost { ack_eliciting } => {
                let info = LostInfo { pn, time_sent, ack_eliciting, acked_since_run };
                acked_since_run = false;
                if on_lost(&mut run, info, first_rtt_sample, duration, |_| false) {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9002 §7.6.3, Table 1, with one time unit = 1 s: smoothed_rtt + max(4*rttvar,
    /// kGranularity) + max_ack_delay = 2, so the duration is 6 (the example assumes an RTT
    /// estimate exists from the start). Packet 1 (t=0) is acknowledged at t=1.2, packets 2..=8
    /// (t=1..=8) are lost, packet 9 (t=12) is acknowledged.
    //= https://www.rfc-editor.org/rfc/rfc9002#section-7.6.2
    //= type=test
    //# A sender establishes persistent congestion after the receipt of an
    //# acknowledgment if two packets that are ack-eliciting are declared
    //# lost, and:
    #[test]
    fn rfc9002_example() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let at = |tenths: u64| t0 + Duration::from_millis(tenths * 100);
        let sent =
            [(1, 0), (2, 10), (3, 20), (4, 30), (5, 40), (6, 50), (7, 60), (8, 80), (9, 120)];
        let events = |acked: &[u64]| {
            sent.iter()
                .map(|&(pn, t)| {
                    let e = if acked.contains(&pn) {
                        SpanEvent::Acked
                    } else {
                        SpanEvent::Lost { ack_eliciting: true }
                    };
                    (pn, at(t), e)
                })
                .collect::<Vec<_>>()
        };
        let first_sample = Some(t0);
        let duration = Duration::from_secs(6);
        // 8 - 1 = 7 > 6: persistent congestion.
        assert!(persistent_congestion_in(events(&[1, 9]), first_sample, duration));
        // A duration of 7 is not exceeded by 7.
        assert!(!persistent_congestion_in(events(&[1, 9]), first_sample, Duration::from_secs(7)));
        // An acknowledgment in the middle (packet 5) splits the run into 2..4 and 6..8.
        assert!(!persistent_congestion_in(events(&[1, 5, 9]), first_sample, duration));
        // Without a prior RTT sample the period cannot start.
        assert!(!persistent_congestion_in(events(&[1, 9]), None, duration));
        // Packets sent before the first RTT sample do not start the period: with the sample at
        // t=2.5 the run starts at packet 4 (t=3) and 8 - 3 = 5 < 6.
        assert!(!persistent_congestion_in(events(&[1, 9]), Some(at(25)), duration));
    }

    //= https://www.rfc-editor.org/rfc/rfc9002#section-7.6.2
    //= type=test
    //# These two packets MUST be ack-eliciting, since a receiver is required
    //# to acknowledge only ack-eliciting packets within its maximum
    //# acknowledgment delay; see Section 13.2 of [QUIC-TRANSPORT].
    #[test]
    fn endpoints_must_be_ack_eliciting() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let s = |v: u64| t0 + Duration::from_secs(v);
        let lost = |ae| SpanEvent::Lost { ack_eliciting: ae };
        let d = Duration::from_secs(6);
        // Non-ack-eliciting first and last packets; the ack-eliciting ones span only 2..6.
        let seq = [
            (1, s(1), lost(false)),
            (2, s(2), lost(true)),
            (3, s(6), lost(true)),
            (4, s(9), lost(false)),
        ];
        assert!(!persistent_congestion_in(seq, Some(t0), d));
        // Non-ack-eliciting packets inside the run do not break it.
        let seq = [(1, s(1), lost(true)), (2, s(4), lost(false)), (3, s(8), lost(true))];
        assert!(persistent_congestion_in(seq, Some(t0), d));
    }
}
