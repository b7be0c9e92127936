//! End to end: the receiver's AckTracker, an encoded ACK frame, the sender's LossDetector.

use super::*;
use crate::coding::{Reader, Writer};
use crate::frame::{write_ack, Frame};
use crate::recovery::{AckTracker, AckTrackerConfig};

#[test]
fn tracker_frame_detector_roundtrip() {
    let mut h = Harness::new(true, true);
    let mut rx = AckTracker::new(SpaceId::Data, AckTrackerConfig::default());
    // 30 packets 1 ms apart; ECN testing marks the first ten ECT(0).
    let mut marks = Vec::new();
    for pn in 0..30u64 {
        let ecn = h.d.ecn_marking();
        marks.push(ecn);
        h.send_with(SpaceId::Data, SentPacket::new(pn, h.at(ms(pn)), 1000, pn).with_ecn(ecn));
    }
    assert_eq!(marks.iter().filter(|&&e| e == Ecn::Ect0).count(), 10);
    // The network drops 5, 6, 7 and 20 and swaps 12 and 13; each arrives 50 ms after sending.
    let dropped = [5, 6, 7, 20];
    let mut order: Vec<u64> = (0..30).filter(|pn| !dropped.contains(pn)).collect();
    order.swap(9, 10);
    assert_eq!(&order[8..12], &[11, 13, 12, 14]);
    for &pn in &order {
        let at = h.at(ms(50 + pn));
        assert!(rx.on_packet_received(at, pn, true, marks[pn as usize]));
    }
    // The receiver acknowledges at 85 ms: 6 ms after the largest (29) arrived.
    let now = h.at(ms(85));
    let f = rx.ack_frame(now).expect("packets to acknowledge");
    assert_eq!(f.ranges().collect::<Vec<_>>(), [21..=29, 8..=19, 0..=4]);
    let mut buf = [0u8; 128];
    let mut w = Writer::new(&mut buf);
    write_ack(&mut w, f.ranges(), f.delay, f.ecn.as_ref()).expect("fits");
    rx.on_ack_sent();
    let bytes = w.written().to_vec();

    let mut r = Reader::new(&bytes);
    let Ok(Frame::Ack(ack)) = Frame::decode(&mut r) else {
        panic!("not an ACK frame: {bytes:?}");
    };
    let info = AckInfo::from_frame(&ack, 3);
    assert_eq!(info.ack_delay, ms(6));
    let out = h.d.on_ack_received(now, SpaceId::Data, info, false, &mut h.cc).unwrap();
    assert_eq!(
        pns(&out.acked),
        order
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    // 5, 6, 7 and 20 are each 3 or more below the largest acknowledged (29).
    assert_eq!(pns(&out.lost), dropped);
    // First sample: 85 - 29 = 56 ms (the ack delay only matters from the second sample on).
    assert!(out.rtt_sample);
    assert_eq!(h.d.rtt().smoothed(), ms(56));
    // 7 of the 10 ECT(0) packets arrived and were reported: the path is ECN-capable.
    assert_eq!(h.d.ecn_state(), EcnState::Capable);
    assert_eq!(out.ce_increase, 0);
    assert_eq!(h.d.bytes_in_flight(), 0);
}
