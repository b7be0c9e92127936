//! Persistent congestion and ECN through the loss detector.

use super::*;

/// Warms the RTT with one 100 ms sample (packet 0), then sends packets 1..=7 every 200 ms from
/// t=200 ms and packet 8 at 1500 ms.
fn pc_setup() -> Harness {
    let mut h = Harness::new(true, true);
    h.send(SpaceId::Data, 0, ms(0));
    h.ack(SpaceId::Data, ms(100), &[0..=0]);
    for pn in 1..=7 {
        h.send(SpaceId::Data, pn, ms(200 * pn));
    }
    h.send(SpaceId::Data, 8, ms(1500));
    h.cc.take();
    h
}

//= https://www.rfc-editor.org/rfc/rfc9002#section-7.6.2
//= type=test
//# When persistent congestion is declared, the sender's congestion
//# window MUST be reduced to the minimum congestion window
//# (kMinimumWindow), similar to a TCP sender's response on an RTO
//# [RFC5681].
#[test]
fn persistent_congestion_established() {
    let mut h = pc_setup();
    // ACK of 8 at 1600 ms: second sample 100 ms -> smoothed 100, rttvar 37.5; duration
    // (100 + 150 + 25) * 3 = 825 ms. 1..=5 lost by count, 6 and 7 by time; 200..1400 = 1200 ms.
    let out = h.ack(SpaceId::Data, ms(1600), &[8..=8]);
    assert_eq!(pns(&out.lost), [1, 2, 3, 4, 5, 6, 7]);
    assert!(out.persistent_congestion);
    assert_eq!(h.cc.take()[..2], [Ev::Congestion { time_sent: h.at(ms(1400)) }, Ev::Persistent]);
    assert_eq!(h.d.rtt().min(), ms(100));
}

#[test]
fn persistent_congestion_broken_by_ack_in_between() {
    let mut h = pc_setup();
    // 4 acknowledged: runs 1..=3 (400 ms) and 5..=7 (400 ms) are both too short.
    let out = h.ack(SpaceId::Data, ms(1600), &[8..=8, 4..=4]);
    assert_eq!(pns(&out.lost), [1, 2, 3, 5, 6, 7]);
    assert!(!out.persistent_congestion);
    assert!(!h.cc.take().contains(&Ev::Persistent));
}

#[test]
fn persistent_congestion_across_passes() {
    // Packets 1..=3 (200..600 ms), 4 at 1300, 5 at 1310; ACK of 5 at 1410 ms: sample 100 ms,
    // duration 825 ms, loss delay 112.5 ms. 1..=3 are lost now (a 400 ms run), 4 by the timer.
    let run = |ack_middle: bool| {
        let mut h = Harness::new(true, true);
        h.send(SpaceId::Data, 0, ms(0));
        h.ack(SpaceId::Data, ms(100), &[0..=0]);
        for pn in 1..=3 {
            h.send(SpaceId::Data, pn, ms(200 * pn));
        }
        // With `ack_middle`, packet 4 (700 ms) is acknowledged and 5 and 6 take 4 and 5's roles.
        let (first, second) = if ack_middle {
            h.send(SpaceId::Data, 4, ms(700));
            (4, 5)
        } else {
            (3, 4)
        };
        h.send(SpaceId::Data, second, ms(1300));
        h.send(SpaceId::Data, second + 1, ms(1310));
        let ranges: Vec<_> = if ack_middle {
            vec![second + 1..=second + 1, first..=first]
        } else {
            vec![second + 1..=second + 1]
        };
        let out = h.ack(SpaceId::Data, ms(1410), &ranges);
        assert_eq!(pns(&out.lost), [1, 2, 3]);
        assert!(!out.persistent_congestion);
        assert_eq!(h.d.timer(), Some(h.at(us(1_412_500))));
        let out = h.timeout(us(1_412_500));
        assert_eq!(pns(&out.lost), [second]);
        out.persistent_congestion
    };
    assert!(run(false), "run 1..=4 spans 200..1300 ms > 825 ms");
    assert!(!run(true), "the acknowledgment of 4 splits 1..=3 from 5");
}

#[test]
fn persistent_congestion_needs_prior_rtt_sample_and_other_spaces() {
    // No RTT sample before the losses: the period cannot start before the first sample,
    // which is taken by the very ACK that declares them lost.
    let mut h = Harness::new(true, true);
    for pn in 1..=7 {
        h.send(SpaceId::Data, pn, ms(200 * pn));
    }
    h.send(SpaceId::Data, 8, ms(1500));
    let out = h.ack(SpaceId::Data, ms(1600), &[8..=8]);
    assert_eq!(out.lost.len(), 7);
    assert!(!out.persistent_congestion);

    //= https://www.rfc-editor.org/rfc/rfc9002#section-7.6.2
    //= type=test
    //# Since network congestion is not affected by packet number spaces,
    //# persistent congestion SHOULD consider packets sent across packet
    //# number spaces.
    let mut h = pc_setup();
    h.send(SpaceId::Handshake, 0, ms(700));
    h.ack(SpaceId::Handshake, ms(800), &[0..=0]);
    let out = h.ack(SpaceId::Data, ms(1600), &[8..=8]);
    assert_eq!(out.lost.len(), 7);
    assert!(!out.persistent_congestion, "a Handshake packet sent mid-run was acknowledged");
}

#[test]
fn ecn_validation_and_ce_signal() {
    let mut h = Harness::new(true, true);
    assert_eq!(h.d.ecn_marking(), Ecn::Ect0);
    for pn in 0..3 {
        let ecn = h.d.ecn_marking();
        h.send_with(SpaceId::Data, SentPacket::new(pn, h.at(ms(pn)), 1000, pn).with_ecn(ecn));
    }
    h.cc.take();
    let counts = |ect0: u32, ce: u32| EcnCounts {
        ect0: ect0.into(),
        ect1: crate::VarInt::ZERO,
        ce: ce.into(),
    };
    let out = h.ack_full(SpaceId::Data, ms(100), &[0..=2], ms(0), Some(counts(2, 1))).unwrap();
    assert_eq!(h.d.ecn_state(), EcnState::Capable);
    assert_eq!(out.ce_increase, 1);
    assert_eq!(h.cc.take()[0], Ev::Congestion { time_sent: h.at(ms(2)) });
    // Next marked packet acknowledged without counts: validation fails, marking stops.
    let ecn = h.d.ecn_marking();
    h.send_with(SpaceId::Data, SentPacket::new(3, h.at(ms(200)), 1000, 3).with_ecn(ecn));
    h.ack(SpaceId::Data, ms(300), &[3..=3]);
    assert_eq!(h.d.ecn_state(), EcnState::Failed);
    assert_eq!(h.d.ecn_marking(), Ecn::NotEct);
}
