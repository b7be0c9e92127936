//! The receiver's acknowledgment policy under a peer's ACK_FREQUENCY requests
//! (draft-ietf-quic-ack-frequency §6): Ack-Eliciting Threshold, Requested Max Ack Delay,
//! Reordering Threshold (the draft's worked examples), ECN-CE onset and IMMEDIATE_ACK.

use std::time::{Duration, Instant};

use peregrine_datapath::Ecn;

use super::super::{AckTracker, AckTrackerConfig, SpaceId};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn t0() -> Instant {
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

fn tracker() -> AckTracker {
    AckTracker::new(SpaceId::Data, AckTrackerConfig::default())
}

/// Receives `pns` in order at `now`; after each, an ACK that is due is sent at once (as the
/// connection does). Returns the packets whose receipt made an ACK due immediately.
fn run(t: &mut AckTracker, now: Instant, pns: &[u64]) -> Vec<u64> {
    let mut acked_at = Vec::new();
    for &pn in pns {
        t.on_packet_received(now, pn, true, Ecn::NotEct);
        if t.wants_ack(now) {
            acked_at.push(pn);
            t.on_ack_sent();
        }
    }
    acked_at
}

//= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-6
//= type=test
//# - The number of received ack-eliciting packets is greater than the
//#   Ack-Eliciting Threshold.
//
//= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-6
//= type=test
//# - max_ack_delay amount of time has passed and at least one ack-eliciting packet
//#   has been received.
#[test]
fn ack_eliciting_threshold_and_requested_delay() {
    let now = t0();
    // The RFC 9000 default: every second packet.
    let mut t = tracker();
    assert_eq!(run(&mut t, now, &(0..10).collect::<Vec<_>>()), [1, 3, 5, 7, 9]);
    // Threshold 9: an ACK after every 10th packet; the delay timer runs from the first.
    t.set_ack_frequency(9, ms(5), 1);
    assert_eq!(t.config().max_ack_delay, ms(5));
    assert_eq!(run(&mut t, now, &(10..40).collect::<Vec<_>>()), [19, 29, 39]);
    t.on_packet_received(now, 40, true, Ecn::NotEct);
    assert_eq!(t.ack_deadline(), Some(now + ms(5)));
    // Threshold 0: every ack-eliciting packet at once.
    t.set_ack_frequency(0, ms(5), 1);
    assert_eq!(run(&mut t, now, &[41, 42, 43]), [41, 42, 43]);
}

//= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-6.2
//= type=test
//# If the reordering theshold is 3 and acknowledgements are only sent due to
//# reordering, the sequence in Figure 2 would occur:
#[test]
fn reordering_threshold_3_follows_the_drafts_example() {
    let mut t = tracker();
    t.set_ack_frequency(1000, ms(1000), 3);
    assert_eq!(run(&mut t, t0(), &[0, 1, 3, 4, 5, 8, 9, 10]), [5, 9, 10]);
}

//= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-6.2
//= type=test
//# If the reordering threshold is 5 and acknowledgements are only sent due to
//# reordering, the sequence in Figure 3 would occur:
#[test]
fn reordering_threshold_5_follows_the_drafts_example() {
    let mut t = tracker();
    t.set_ack_frequency(1000, ms(1000), 5);
    assert_eq!(run(&mut t, t0(), &[0, 1, 3, 5, 6, 7, 8, 9]), [7, 9]);
}

/// A packet arriving so late that the sender already declared it lost (at or below Largest
/// Acked minus the threshold) is acknowledged at once, so the sender sees the spurious loss.
#[test]
fn late_packet_below_the_reordering_window_is_acked_at_once() {
    let mut t = tracker();
    t.set_ack_frequency(1000, ms(1000), 3);
    let now = t0();
    // 6 - 3 >= 3: the gap at 3 reaches the threshold with 6.
    assert_eq!(run(&mut t, now, &[0, 1, 2, 4, 5, 6, 7]), [6]);
    // Largest Acked is 6: 3 is at or below 6 - 3.
    assert_eq!(run(&mut t, now, &[3]), [3]);
}

//= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-6.2
//= type=test
//# If the most recent ACK_FREQUENCY frame received from the peer has a Reordering
//# Threshold value of 0, the endpoint SHOULD NOT send an immediate
//# acknowledgment in response to packets received out of order, and instead
//# rely on the peer's Ack-Eliciting Threshold and Requested Max Ack Delay
//# for sending acknowledgments.
#[test]
fn reordering_threshold_0_never_acks_for_gaps() {
    let mut t = tracker();
    t.set_ack_frequency(1000, ms(7), 0);
    let now = t0();
    assert!(run(&mut t, now, &[0, 5, 2, 20, 1, 40]).is_empty());
    assert_eq!(t.ack_deadline(), Some(now + ms(7)));
    // The default (1): any gap or reordering at once.
    let mut t = tracker();
    t.set_ack_frequency(1000, ms(7), 1);
    assert_eq!(run(&mut t, now, &[0, 2, 1, 3]), [2, 1]);
}

//= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-6.3
//= type=test
//# If the Ack-Eliciting Threshold is larger than 1, an endpoint SHOULD send
//# an immediate acknowledgement when a packet marked with the ECN Congestion
//# Experienced (CE) [RFC3168] codepoint in the IP header is received and
//# the previously received packet was not marked CE.
#[test]
fn ce_onset_only_with_a_large_threshold() {
    let now = t0();
    let mut t = tracker();
    t.set_ack_frequency(10, ms(25), 1);
    let mut immediate = Vec::new();
    for (pn, ecn) in [(0, Ecn::Ect0), (1, Ecn::Ce), (2, Ecn::Ce), (3, Ecn::Ect0), (4, Ecn::Ce)] {
        t.on_packet_received(now, pn, true, ecn);
        if t.wants_ack(now) {
            immediate.push(pn);
            t.on_ack_sent();
        }
    }
    assert_eq!(immediate, [1, 4], "only the transitions to CE");
    // Threshold 1 (RFC 9000): every CE-marked packet at once.
    let mut t = tracker();
    t.on_packet_received(now, 0, true, Ecn::Ce);
    assert!(t.wants_ack(now));
    t.on_ack_sent();
    t.on_packet_received(now, 1, true, Ecn::Ce);
    assert!(t.wants_ack(now));
}

//= https://datatracker.ietf.org/doc/html/draft-ietf-quic-ack-frequency-13#section-5
//= type=test
//# An endpoint SHOULD send a packet containing an ACK frame
//# immediately upon receiving an IMMEDIATE_ACK frame.
#[test]
fn immediate_ack_makes_the_ack_due_now() {
    let now = t0();
    let mut t = tracker();
    t.set_ack_frequency(100, ms(25), 3);
    t.on_packet_received(now, 0, true, Ecn::NotEct);
    assert_eq!(t.ack_deadline(), Some(now + ms(25)));
    // The frame is processed before its packet is recorded.
    t.on_immediate_ack(now + ms(1));
    t.on_packet_received(now + ms(1), 1, true, Ecn::NotEct);
    assert!(t.wants_ack(now + ms(1)));
    assert_eq!(t.ack_frame(now + ms(1)).unwrap().largest, 1);
}
