//! Tests of the loss detector against RFC 9002's rules and examples.

use super::*;
use crate::error::TransportErrorCode;
use crate::frame::EcnCounts;
use crate::recovery::ecn::EcnState;
use std::ops::RangeInclusive;

mod persistent;
mod roundtrip;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Sent { bytes: u64, in_flight_before: u64 },
    Acked { time_sent: Instant, bytes: u64, app_limited: bool },
    Congestion { time_sent: Instant },
    Persistent,
}

/// A controller that records what the detector tells it. Its window is `window` (0 by
/// default: any bytes in flight fill it, so acknowledgments are never judged
/// window-underused unless a test sets a window).
#[derive(Debug, Default)]
struct Recorder {
    ev: Vec<Ev>,
    window: u64,
}

impl Recorder {
    fn take(&mut self) -> Vec<Ev> {
        std::mem::take(&mut self.ev)
    }
}

impl Controller for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn window(&self) -> u64 {
        self.window
    }
    fn ssthresh(&self) -> u64 {
        u64::MAX
    }
    fn on_packet_sent(&mut self, _now: Instant, bytes: u64, in_flight_before: u64) {
        self.ev.push(Ev::Sent { bytes, in_flight_before });
    }
    fn on_ack(
        &mut self,
        _: Instant,
        time_sent: Instant,
        bytes: u64,
        app_limited: bool,
        _: &RttEstimator,
    ) {
        self.ev.push(Ev::Acked { time_sent, bytes, app_limited });
    }
    fn on_congestion_event(&mut self, _now: Instant, time_sent: Instant) {
        self.ev.push(Ev::Congestion { time_sent });
    }
    fn on_persistent_congestion(&mut self, _now: Instant) {
        self.ev.push(Ev::Persistent);
    }
    fn set_max_datagram_size(&mut self, _: u16) {}
    fn max_datagram_size(&self) -> u16 {
        1200
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn us(v: u64) -> Duration {
    Duration::from_micros(v)
}

struct Harness {
    t0: Instant,
    d: LossDetector<u64>,
    cc: Recorder,
}

impl Harness {
    fn new(is_server: bool, confirmed: bool) -> Self {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut d = LossDetector::new(LossConfig { is_server, ..LossConfig::default() });
        if confirmed {
            d.on_handshake_confirmed(t0);
        }
        Self { t0, d, cc: Recorder::default() }
    }

    fn at(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    fn send(&mut self, space: SpaceId, pn: u64, at: Duration) {
        let p = SentPacket::new(pn, self.t0 + at, 1000, pn);
        self.d.on_packet_sent(space, p, &mut self.cc).unwrap();
    }

    fn send_with(&mut self, space: SpaceId, p: SentPacket<u64>) {
        self.d.on_packet_sent(space, p, &mut self.cc).unwrap();
    }

    fn ack(
        &mut self,
        space: SpaceId,
        at: Duration,
        ranges: &[RangeInclusive<u64>],
    ) -> AckOutcome<u64> {
        self.ack_full(space, at, ranges, Duration::ZERO, None).unwrap()
    }

    fn ack_full(
        &mut self,
        space: SpaceId,
        at: Duration,
        ranges: &[RangeInclusive<u64>],
        ack_delay: Duration,
        ecn: Option<EcnCounts>,
    ) -> Result<AckOutcome<u64>, Error> {
        let largest = *ranges[0].end();
        let info = AckInfo { largest, ack_delay, ranges: ranges.to_vec(), ecn };
        let now = self.t0 + at;
        self.d.on_ack_received(now, space, info, false, &mut self.cc)
    }

    fn timeout(&mut self, at: Duration) -> TimeoutOutcome<u64> {
        let now = self.t0 + at;
        self.d.on_timeout(now, &mut self.cc)
    }
}

fn pns(v: &[SentPacket<u64>]) -> Vec<u64> {
    v.iter().map(|p| p.pn).collect()
}

//= https://www.rfc-editor.org/rfc/rfc9002#section-6.1.1
//= type=test
//# The RECOMMENDED initial value for the packet reordering threshold
//# (kPacketThreshold) is 3, based on best practices for TCP loss
//# detection [RFC5681] [RFC6675].
#[test]
fn packet_threshold_then_time_threshold_timer() {
    let mut h = Harness::new(true, true);
    for pn in 0..=5 {
        h.send(SpaceId::Data, pn, Duration::ZERO);
    }
    h.cc.take();
    // ACK of 4 at t=100 ms: RTT 100 ms, loss delay 9/8 * 100 = 112.5 ms.
    let out = h.ack(SpaceId::Data, ms(100), &[4..=4]);
    assert_eq!(pns(&out.acked), [4]);
    assert!(out.rtt_sample);
    // 4 >= pn + 3 for pn 0 and 1 only; 2 and 3 wait for the time threshold.
    assert_eq!(pns(&out.lost), [0, 1]);
    assert!(!out.persistent_congestion);
    assert_eq!(
        h.cc.take(),
        [
            Ev::Congestion { time_sent: h.t0 },
            Ev::Acked { time_sent: h.t0, bytes: 1000, app_limited: false },
        ]
    );
    assert_eq!(h.d.bytes_in_flight(), 3000);
    //= https://www.rfc-editor.org/rfc/rfc9002#section-6.1.2
    //= type=test
    //# If packets sent prior to the largest acknowledged packet cannot yet
    //# be declared lost, then a timer SHOULD be set for the remaining time.
    assert_eq!(h.d.timer(), Some(h.at(us(112_500))));
    assert!(h.timeout(us(112_499)).lost.is_empty(), "too early: nothing happens");
    let out = h.timeout(us(112_500));
    assert_eq!(pns(&out.lost), [2, 3]);
    assert!(out.probe.is_none());
    // Packet 5 is left: the PTO is armed from its send time, 100 + 4 * 50 + 25 ms.
    assert_eq!(h.d.timer(), Some(h.at(ms(325))));
}

//= https://www.rfc-editor.org/rfc/rfc9002#section-6.1.2
//= type=test
//# Once a later packet within the same packet number space has been
//# acknowledged, an endpoint SHOULD declare an earlier packet lost if it
//# was sent a threshold amount of time in the past.
#[test]
fn time_threshold() {
    let mut h = Harness::new(true, true);
    h.send(SpaceId::Data, 0, ms(0));
    h.send(SpaceId::Data, 1, ms(40));
    h.send(SpaceId::Data, 2, ms(50));
    // ACK of 2 at 150 ms: RTT 100, threshold 112.5 ms, lost_send_time = 37.5 ms.
    let out = h.ack(SpaceId::Data, ms(150), &[2..=2]);
    assert_eq!(pns(&out.lost), [0], "sent at 0 <= 37.5; packet 1 (40 ms) is not");
    assert_eq!(h.d.timer(), Some(h.at(us(152_500))), "40 + 112.5 ms");
    let out = h.timeout(us(152_500));
    assert_eq!(pns(&out.lost), [1]);
}

//= https://www.rfc-editor.org/rfc/rfc9002#section-5.1
//= type=test
//# To avoid generating multiple RTT samples for a single packet, an ACK
//# frame SHOULD NOT be used to update RTT estimates if it does not newly
//# acknowledge the largest acknowledged packet.
#[test]
fn rtt_sample_only_from_newly_acked_largest() {
    let mut h = Harness::new(true, true);
    for pn in 0..3 {
        h.send(SpaceId::Data, pn, ms(0));
    }
    let out = h.ack(SpaceId::Data, ms(80), &[2..=2]);
    assert!(out.rtt_sample);
    assert!(out.lost.is_empty());
    assert_eq!(h.d.rtt().latest(), ms(80));
    // 0 and 1 are new, but the largest (2) is not: no sample.
    let out = h.ack(SpaceId::Data, ms(85), &[0..=2]);
    assert_eq!(pns(&out.acked), [0, 1]);
    assert!(!out.rtt_sample);
    assert_eq!(h.d.rtt().latest(), ms(80));
    // A duplicate ACK acknowledges nothing.
    let out = h.ack(SpaceId::Data, ms(86), &[0..=2]);
    assert!(out.acked.is_empty() && !out.rtt_sample);
}

//= https://www.rfc-editor.org/rfc/rfc9002#section-5.1
//= type=test
//# An RTT sample MUST NOT be generated on receiving an ACK frame that
//# does not newly acknowledge at least one ack-eliciting packet.
#[test]
fn no_rtt_sample_from_non_ack_eliciting() {
    let mut h = Harness::new(true, true);
    let p = SentPacket::new(0, h.t0, 50, 0).with_ack_eliciting(false).with_in_flight(false);
    h.send_with(SpaceId::Data, p);
    let out = h.ack(SpaceId::Data, ms(500), &[0..=0]);
    assert_eq!(pns(&out.acked), [0]);
    assert!(!out.rtt_sample);
    assert!(!h.d.rtt().has_sample());
    // Not in flight: the controller hears nothing.
    assert!(h.cc.take().is_empty());
}

#[test]
fn initial_ack_delay_ignored_handshake_delay_used() {
    let mut h = Harness::new(true, false);
    h.send(SpaceId::Initial, 0, ms(0));
    h.send(SpaceId::Initial, 1, ms(1));
    h.ack_full(SpaceId::Initial, ms(100), &[0..=0], ms(50), None).unwrap();
    assert_eq!(h.d.rtt().smoothed(), ms(100));
    // Initial: the 50 ms delay is ignored; the 150 ms sample is used as is
    // (7/8 * 100 + 1/8 * 150), where subtracting it would have kept 100.
    h.ack_full(SpaceId::Initial, ms(151), &[1..=1], ms(50), None).unwrap();
    assert_eq!(h.d.rtt().smoothed(), us(106_250));
    // Handshake: 140 - 40 = 100 is used: 7/8 * 106.25 + 1/8 * 100.
    h.send(SpaceId::Handshake, 0, ms(160));
    h.ack_full(SpaceId::Handshake, ms(300), &[0..=0], ms(40), None).unwrap();
    assert_eq!(h.d.rtt().smoothed(), Duration::from_nanos(105_468_750));
    assert_eq!(h.d.rtt().latest(), ms(140));
}

//= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.1
//= type=test
//# When a PTO timer expires, the PTO backoff MUST be increased,
//# resulting in the PTO period being set to twice its current value.
#[test]
fn pto_backoff_doubles_and_resets() {
    let mut h = Harness::new(true, true);
    h.send(SpaceId::Data, 0, ms(0));
    // smoothed 333 + 4 * 166.5 + max_ack_delay 25 = 1024 ms.
    assert_eq!(h.d.timer(), Some(h.at(ms(1024))));
    let out = h.timeout(ms(1024));
    assert_eq!(out.probe, Some(Probe { space: SpaceId::Data, packets: 2, anti_deadlock: false }));
    assert!(out.lost.is_empty());
    assert_eq!(h.d.pto_count(), 1);
    assert_eq!(h.d.timer(), Some(h.at(ms(2048))));
    h.timeout(ms(2048));
    assert_eq!(h.d.pto_count(), 2);
    assert_eq!(h.d.timer(), Some(h.at(ms(4096))));
    // The probe goes out; its timer uses the backed-off period.
    h.send(SpaceId::Data, 1, ms(4096));
    assert_eq!(h.d.timer(), Some(h.at(ms(4096 + 4 * 1024))));
    let out = h.ack(SpaceId::Data, ms(4196), &[1..=1]);
    assert_eq!(h.d.pto_count(), 0, "an acknowledgment resets the backoff");
    assert_eq!(pns(&out.lost), [0]);
    assert_eq!(h.d.timer(), None, "nothing in flight");
}

//= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.1
//= type=test
//# An endpoint MUST NOT set its PTO timer for the Application Data
//# packet number space until the handshake is confirmed.
#[test]
fn pto_spaces_before_and_after_confirmation() {
    let mut h = Harness::new(true, false);
    h.send(SpaceId::Data, 0, ms(0));
    assert_eq!(h.d.timer(), None, "only 1-RTT data in flight, handshake not confirmed");
    h.send(SpaceId::Handshake, 0, ms(10));
    h.send(SpaceId::Initial, 0, ms(20));
    //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.1
    //= type=test
    //# When ack-eliciting packets in multiple packet number spaces are in
    //# flight, the timer MUST be set to the earlier value of the Initial and
    //# Handshake packet number spaces.
    // No max_ack_delay for Initial and Handshake: 10 + 999 ms.
    assert_eq!(h.d.timer(), Some(h.at(ms(1009))));
    let out = h.timeout(ms(1009));
    assert_eq!(out.probe.map(|p| p.space), Some(SpaceId::Handshake));
    h.d.on_handshake_confirmed(h.at(ms(1100)));
    //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.2
    //= type=test
    //# When
    //# Initial or Handshake keys are discarded, the PTO and loss detection
    //# timers MUST be reset, because discarding keys indicates forward
    //# progress and the loss detection timer might have been set for a now-
    //# discarded packet number space.
    let dropped = h.d.discard_space(h.at(ms(1100)), SpaceId::Initial);
    assert_eq!(pns(&dropped), [0]);
    h.d.discard_space(h.at(ms(1100)), SpaceId::Handshake);
    assert_eq!(h.d.pto_count(), 0);
    assert_eq!(h.d.bytes_in_flight(), 1000);
    assert_eq!(h.d.timer(), Some(h.at(ms(1024))), "the 1-RTT packet's PTO, now allowed");
}

//= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.2.1
//= type=test
//# When the PTO fires, the client MUST send a
//# Handshake packet if it has Handshake keys, otherwise it MUST send an
//# Initial packet in a UDP datagram with a payload of at least 1200
//# bytes.
#[test]
fn client_anti_deadlock_pto() {
    let mut h = Harness::new(false, false);
    h.send(SpaceId::Initial, 0, ms(0));
    h.ack(SpaceId::Initial, ms(100), &[0..=0]);
    //= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.2.1
    //= type=test
    //# That is,
    //# the client MUST set the PTO timer if the client has not received an
    //# acknowledgment for any of its Handshake packets and the handshake is
    //# not confirmed (see Section 4.1.2 of [QUIC-TLS]), even if there are no
    //# packets in flight.
    // Nothing in flight, but the server may be amplification-blocked: 100 + 4 * 50 from now.
    assert_eq!(h.d.timer(), Some(h.at(ms(400))));
    let out = h.timeout(ms(400));
    assert_eq!(out.probe, Some(Probe { space: SpaceId::Initial, packets: 1, anti_deadlock: true }));
    assert_eq!(h.d.timer(), Some(h.at(ms(1000))), "backed off, from the timeout");
    h.d.on_handshake_keys(h.at(ms(500)));
    assert_eq!(h.d.timer(), Some(h.at(ms(1100))), "re-armed from now");
    let out = h.timeout(ms(1100));
    assert_eq!(out.probe.map(|p| (p.space, p.anti_deadlock)), Some((SpaceId::Handshake, true)));
    // A Handshake ACK proves the server validated the address: no more anti-deadlock PTO.
    h.send(SpaceId::Handshake, 0, ms(1200));
    h.ack(SpaceId::Handshake, ms(1300), &[0..=0]);
    assert_eq!(h.d.timer(), None);
    assert_eq!(h.d.pto_count(), 0);
}

#[test]
fn client_keeps_backoff_on_initial_acks() {
    let mut h = Harness::new(false, false);
    h.send(SpaceId::Initial, 0, ms(0));
    h.timeout(ms(999));
    assert_eq!(h.d.pto_count(), 1);
    h.send(SpaceId::Initial, 1, ms(999));
    h.ack(SpaceId::Initial, ms(1100), &[1..=1]);
    assert_eq!(h.d.pto_count(), 1, "client not yet sure the server validated its address");
}

//= https://www.rfc-editor.org/rfc/rfc9002#section-6.2.2.1
//= type=test
//# If
//# no additional data can be sent, the server's PTO timer MUST NOT be
//# armed until datagrams have been received from the client because
//# packets sent on PTO count against the anti-amplification limit.
#[test]
fn server_amplification_limit_disarms_pto() {
    let mut h = Harness::new(true, false);
    h.send(SpaceId::Initial, 0, ms(0));
    assert_eq!(h.d.timer(), Some(h.at(ms(999))));
    h.d.set_amplification_limited(h.at(ms(1)), true);
    assert_eq!(h.d.timer(), None);
    h.d.set_amplification_limited(h.at(ms(2000)), false);
    assert_eq!(h.d.timer(), Some(h.at(ms(999))), "in the past: the caller runs on_timeout now");
    assert!(h.timeout(ms(2000)).probe.is_some());
    // A server never arms the anti-deadlock timer.
    let mut h = Harness::new(true, false);
    h.send(SpaceId::Initial, 0, ms(0));
    h.ack(SpaceId::Initial, ms(100), &[0..=0]);
    assert_eq!(h.d.timer(), None);
}

//= https://www.rfc-editor.org/rfc/rfc9002#section-6.4
//= type=test
//# The sender MUST discard all recovery state
//# associated with those packets and MUST remove them from the count of
//# bytes in flight.
#[test]
fn discarded_space_leaves_flight_and_ignores_acks() {
    let mut h = Harness::new(false, false);
    h.send(SpaceId::Initial, 0, ms(0));
    h.send(SpaceId::Handshake, 0, ms(1));
    assert_eq!(h.d.bytes_in_flight(), 2000);
    h.cc.take();
    h.d.discard_space(h.at(ms(2)), SpaceId::Initial);
    assert_eq!(h.d.bytes_in_flight(), 1000);
    assert!(h.cc.take().is_empty(), "no congestion signal");
    assert_eq!(h.d.timer(), Some(h.at(ms(1000))), "Handshake's PTO");
    let out = h.ack(SpaceId::Initial, ms(100), &[0..=0]);
    assert!(out.acked.is_empty());
    let p = SentPacket::new(1, h.at(ms(3)), 100, 1);
    assert!(h.d.on_packet_sent(SpaceId::Initial, p, &mut h.cc).is_err());
}

#[test]
fn invalid_acks_are_protocol_violations() {
    let mut h = Harness::new(true, true);
    h.send(SpaceId::Data, 0, ms(0));
    h.send(SpaceId::Data, 2, ms(1)); // 1 skipped
    h.send(SpaceId::Data, 3, ms(2));
    let e = h.ack_full(SpaceId::Data, ms(50), &[0..=4], ms(0), None).unwrap_err();
    assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION);
    let e = h.ack_full(SpaceId::Data, ms(50), &[0..=3], ms(0), None).unwrap_err();
    assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION, "skipped number acknowledged");
    let mut h = Harness::new(true, true);
    let e = h.ack_full(SpaceId::Data, ms(50), &[0..=0], ms(0), None).unwrap_err();
    assert_eq!(e.code, TransportErrorCode::PROTOCOL_VIOLATION, "nothing sent at all");
}

#[test]
fn app_limited_passed_to_controller_and_retry_resets() {
    let mut h = Harness::new(false, false);
    h.send(SpaceId::Initial, 0, ms(0));
    h.send(SpaceId::Initial, 1, ms(0));
    h.cc.take();
    let info = AckInfo { largest: 0, ack_delay: ms(0), ranges: [0..=0], ecn: None };
    h.d.on_ack_received(h.at(ms(50)), SpaceId::Initial, info, true, &mut h.cc).unwrap();
    assert_eq!(h.cc.take(), [Ev::Acked { time_sent: h.t0, bytes: 1000, app_limited: true }]);
    let resend = h.d.on_retry();
    assert_eq!(pns(&resend), [1]);
    assert_eq!(h.d.bytes_in_flight(), 0);
    assert_eq!(h.d.timer(), None);
    assert!(h.d.largest_acked(SpaceId::Initial).is_none());
    // Packet numbers keep growing after a Retry.
    let p = SentPacket::new(1, h.at(ms(60)), 1200, 1);
    assert!(h.d.on_packet_sent(SpaceId::Initial, p, &mut h.cc).is_err());
    h.send(SpaceId::Initial, 2, ms(60));
    assert_eq!(h.cc.take(), [Ev::Sent { bytes: 1000, in_flight_before: 0 }]);
}

/// Sending only records that the timer is due for a re-arm; reading it, timing out, or an
/// ACK that changes nothing sees the same timer as re-arming after every packet would.
#[test]
fn timer_rearm_deferred_by_sends_matches_eager() {
    let mut h = Harness::new(true, true);
    h.d.discard_space(h.t0, SpaceId::Initial);
    h.send(SpaceId::Data, 0, ms(0));
    h.send(SpaceId::Data, 1, ms(10));
    // The last ack-eliciting packet's PTO: 10 + 1024 ms.
    assert_eq!(h.d.timer(), Some(h.at(ms(1034))));
    // An ACK in a discarded space returns early; the deferred re-arm still took effect.
    let out = h.ack(SpaceId::Initial, ms(20), &[0..=0]);
    assert!(out.acked.is_empty());
    assert_eq!(h.d.timer(), Some(h.at(ms(1034))));
    let early = h.timeout(ms(1033));
    assert_eq!(early.probe, None, "before the timer: nothing");
    let out = h.timeout(ms(1034));
    assert_eq!(out.probe, Some(Probe { space: SpaceId::Data, packets: 2, anti_deadlock: false }));
}

/// The `app_limited` flag of each acknowledgment the controller was told about.
fn acked_app_limited(cc: &mut Recorder) -> Vec<bool> {
    cc.take()
        .into_iter()
        .filter_map(|e| match e {
            Ev::Acked { app_limited, .. } => Some(app_limited),
            _ => None,
        })
        .collect()
}

/// RFC 9002 §7.8: acknowledgments of a window the sender did not fill (less than half of it
/// in flight since the previous ACK) reach the controller as application-limited even when
/// the connection had data to send (it was held back by its send buffer, flow control or
/// CPU, not by the window); once the sender fills half the window they count again.
#[test]
fn acks_of_an_underused_window_are_app_limited() {
    let mut h = Harness::new(false, true);
    h.cc.window = 10_000;
    // Four 1000-byte packets: 4000 in flight, under half of the window.
    for pn in 0..4 {
        h.send(SpaceId::Data, pn, ms(0));
    }
    assert!(!h.d.window_used(10_000));
    h.cc.take();
    h.ack(SpaceId::Data, ms(50), &[0..=3]);
    assert_eq!(acked_app_limited(&mut h.cc), [true; 4]);
    // Now five in flight at once: half the window is used.
    for pn in 4..9 {
        h.send(SpaceId::Data, pn, ms(60));
    }
    assert!(h.d.window_used(10_000));
    h.cc.take();
    h.ack(SpaceId::Data, ms(110), &[4..=8]);
    assert_eq!(acked_app_limited(&mut h.cc), [false; 5]);
    // The peak restarts from what is in flight after each ACK (nothing now).
    assert!(!h.d.window_used(10_000));
    h.send(SpaceId::Data, 9, ms(120));
    assert!(!h.d.window_used(10_000));
}
