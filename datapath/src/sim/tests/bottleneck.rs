//! Bottleneck tests: rate limit, queueing delay, tail drop, ECN marking and preservation.

use std::time::Duration;

use super::*;
use crate::sim::link::serialisation;
use crate::sim::{wire_len, LinkDrop};

const RATE: u64 = 10_000_000;
const QUEUE: usize = 30_000;
const PAYLOAD: usize = 1200;
const DELAY: Duration = Duration::from_millis(10);

fn bottleneck(ce_threshold: Option<usize>) -> LinkConfig {
    LinkConfig {
        rate_bps: Some(RATE),
        queue_bytes: QUEUE,
        ce_threshold,
        ..LinkConfig::with_delay(DELAY)
    }
}

/// Sends `PAYLOAD`-byte datagrams from A to B at `offered` bits/s for one virtual second, then
/// drains; returns the trace.
fn offer(
    seed: u64,
    cfg: LinkConfig,
    offered: u64,
    ecn: Ecn,
) -> (SimNetwork, Vec<TraceEvent>, usize) {
    let (net, mut a, mut b) = pair(seed, cfg);
    let spacing = serialisation(wire_len(PAYLOAD, false), offered);
    let mut i = 0u32;
    while net.elapsed() < Duration::from_secs(1) {
        send(&mut a, addr(B), &numbered(i, PAYLOAD), ecn);
        i += 1;
        net.advance(spacing);
    }
    let received = drain(&net, &mut b).len();
    (net.clone(), net.take_trace(), received)
}

/// Time each delivered datagram waited in the queue (arrival - send - delay - own serialisation).
fn queueing(trace: &[TraceEvent]) -> Vec<Duration> {
    let ser = serialisation(wire_len(PAYLOAD, false), RATE);
    arrivals(trace).iter().map(|(sent, at)| *at - *sent - DELAY - ser).collect()
}

#[test]
fn overdriven_bottleneck_delivers_the_rate_queues_and_tail_drops() {
    let (net, trace, received) = offer(11, bottleneck(None), 2 * RATE, Ecn::NotEct);
    let stats = net.link_stats(addr(A), addr(B));
    let ats: Vec<Duration> = arrivals(&trace).iter().map(|(_, at)| *at).collect();
    assert_eq!(received, ats.len());
    // Throughput: back-to-back wire bytes over the delivery span, within 1% of the rate.
    let span = (*ats.last().unwrap() - ats[0]).as_secs_f64();
    let bits = ((ats.len() - 1) * wire_len(PAYLOAD, false) * 8) as f64;
    let throughput = bits / span;
    assert!((throughput / RATE as f64 - 1.0).abs() < 0.01, "throughput {throughput} bit/s");
    // Offered twice the rate: about half is tail-dropped once the queue is full.
    let dropped = stats.dropped_queue_full as f64 / stats.sent as f64;
    assert!((0.45..0.52).contains(&dropped), "tail-drop fraction {dropped}");
    assert!(trace.iter().any(|e| e.fate == Fate::Dropped(LinkDrop::QueueFull)));
    assert_eq!(stats.sent, stats.delivered + stats.dropped_queue_full);
    // Queueing delay: each of the first datagrams waits exactly (serialisation - spacing) longer
    // than the previous one, up to what the buffer holds.
    let q = queueing(&trace);
    let ser = serialisation(wire_len(PAYLOAD, false), RATE);
    let spacing = serialisation(wire_len(PAYLOAD, false), 2 * RATE);
    for (i, d) in q.iter().take(20).enumerate() {
        assert_eq!(*d, (ser - spacing) * i as u32, "queueing delay of datagram {i}");
    }
    // The buffer holds 24 whole datagrams, the arriving one included: at most 23 wait ahead of
    // it, the one in service partly sent.
    let ahead = (QUEUE / wire_len(PAYLOAD, false) - 1) as u32;
    let max = *q.iter().max().unwrap();
    assert!(max <= ser * ahead, "waited {max:?}, longer than the buffer holds");
    assert!(max > ser * (ahead - 1), "the queue filled: max wait {max:?}");
}

#[test]
fn underdriven_bottleneck_never_queues_or_drops() {
    let (net, trace, received) = offer(12, bottleneck(None), RATE / 2, Ecn::NotEct);
    let stats = net.link_stats(addr(A), addr(B));
    assert_eq!(stats.dropped_queue_full, 0);
    assert_eq!(received as u64, stats.sent);
    assert!(queueing(&trace).iter().all(Duration::is_zero), "no datagram waits");
}

#[test]
fn ect_traffic_is_marked_ce_above_the_threshold() {
    let threshold = 10_000;
    let (net, trace, _) = offer(13, bottleneck(Some(threshold)), 2 * RATE, Ecn::Ect0);
    let stats = net.link_stats(addr(A), addr(B));
    assert!(stats.ce_marked > 0);
    assert_eq!(stats.dropped_aqm, 0, "ECT traffic is marked, not dropped");
    assert!(stats.dropped_queue_full > 0, "a sender that ignores CE still fills the queue");
    let ser = serialisation(wire_len(PAYLOAD, false), RATE);
    let mut marked = 0;
    for e in &trace {
        let Fate::Delivered { at, ecn, .. } = e.fate else { continue };
        let wait = at - e.sent_at - DELAY - ser;
        // The wait is the backlog ahead minus what of the datagram in service already left, so
        // a wait past the threshold's time means marked, one datagram less means not marked.
        if wait > serialisation(threshold, RATE) {
            assert_eq!(ecn, Ecn::Ce, "datagram {} waited {wait:?} unmarked", e.id);
        } else if wait < serialisation(threshold - wire_len(PAYLOAD, false), RATE) {
            assert_eq!(ecn, Ecn::Ect0, "datagram {} waited {wait:?} but was marked", e.id);
        }
        marked += u64::from(ecn == Ecn::Ce);
    }
    assert_eq!(marked, stats.ce_marked);
}

#[test]
fn not_ect_traffic_is_dropped_above_the_threshold() {
    let (net, trace, _) = offer(14, bottleneck(Some(10_000)), 2 * RATE, Ecn::NotEct);
    let stats = net.link_stats(addr(A), addr(B));
    assert!(stats.dropped_aqm > 0);
    assert_eq!(stats.ce_marked, 0);
    assert!(trace.iter().all(|e| !matches!(e.fate, Fate::Delivered { ecn: Ecn::Ce, .. })));
    // The AQM keeps the queue near the threshold: nothing waits for a full buffer.
    let max = *queueing(&trace).iter().max().unwrap();
    assert!(max <= serialisation(10_000 + wire_len(PAYLOAD, false), RATE), "max wait {max:?}");
    assert_eq!(stats.dropped_queue_full, 0);
}

#[test]
fn ecn_codepoints_are_preserved_without_marking() {
    let (net, mut a, mut b) = pair(15, bottleneck(None));
    let all = [Ecn::NotEct, Ecn::Ect0, Ecn::Ect1, Ecn::Ce];
    for (i, ecn) in all.iter().enumerate() {
        send(&mut a, addr(B), &numbered(i as u32, 100), *ecn);
    }
    let got = drain(&net, &mut b);
    let seen: Vec<Ecn> = got.iter().map(|(_, _, m)| m.ecn).collect();
    assert_eq!(seen, all);
}

#[test]
fn queue_backlog_is_observable_and_drains() {
    let (net, mut a, _b) = pair(16, bottleneck(None));
    for i in 0..10 {
        send(&mut a, addr(B), &numbered(i, PAYLOAD), Ecn::NotEct);
    }
    let wire = wire_len(PAYLOAD, false);
    assert_eq!(net.backlog_bytes(addr(A), addr(B)), 10 * wire);
    net.advance(serialisation(wire, RATE) * 4);
    assert_eq!(net.backlog_bytes(addr(A), addr(B)), 6 * wire);
    net.advance(Duration::from_secs(1));
    assert_eq!(net.backlog_bytes(addr(A), addr(B)), 0);
    // A burst fills the buffer to the last whole datagram that fits, and no further.
    for i in 0..100 {
        send(&mut a, addr(B), &numbered(i, PAYLOAD), Ecn::NotEct);
    }
    assert_eq!(net.backlog_bytes(addr(A), addr(B)), QUEUE / wire * wire);
    assert_eq!(net.link_stats(addr(A), addr(B)).dropped_queue_full, (100 - QUEUE / wire) as u64);
}

#[test]
fn ce_marking_threshold_is_exact_on_a_burst() {
    // A burst at one instant: the k-th datagram finds k * wire bytes queued and is marked iff
    // that exceeds the threshold (the datagram itself not counted).
    let threshold = 10_000;
    let (net, mut a, mut b) = pair(17, bottleneck(Some(threshold)));
    for i in 0..20 {
        send(&mut a, addr(B), &numbered(i, PAYLOAD), Ecn::Ect1);
    }
    let wire = wire_len(PAYLOAD, false);
    for (_, data, meta) in drain(&net, &mut b) {
        let k = index_of(&data) as usize;
        let expected = if k * wire > threshold { Ecn::Ce } else { Ecn::Ect1 };
        assert_eq!(meta.ecn, expected, "datagram {k} behind {} bytes", k * wire);
    }
    assert_eq!(net.link_stats(addr(A), addr(B)).ce_marked, 20 - threshold.div_ceil(wire) as u64);
}

#[test]
fn queue_limited_in_datagrams_tail_drops_past_the_count() {
    // 200 datagrams of room whatever their size (as `netem limit` and the interop relay count),
    // with a byte limit far above it.
    let cfg = LinkConfig::relay(DELAY, RATE, 200, 0.0, 3);
    assert_eq!(cfg.queue_packets, Some(200));
    let (net, mut a, mut b) = pair(18, cfg);
    for i in 0..250 {
        send(&mut a, addr(B), &numbered(i, 100), Ecn::NotEct);
    }
    let wire = wire_len(100, false);
    assert_eq!(net.backlog_bytes(addr(A), addr(B)), 200 * wire);
    assert_eq!(net.link_stats(addr(A), addr(B)).dropped_queue_full, 50);
    // Once one datagram has left, one more fits.
    net.advance(serialisation(wire, RATE));
    send(&mut a, addr(B), &numbered(250, 100), Ecn::NotEct);
    send(&mut a, addr(B), &numbered(251, 100), Ecn::NotEct);
    assert_eq!(net.link_stats(addr(A), addr(B)).dropped_queue_full, 51);
    let got: Vec<u32> = drain(&net, &mut b).iter().map(|(_, d, _)| index_of(d)).collect();
    assert_eq!(got.len(), 201);
    assert_eq!(got[200], 250, "the datagram sent after one left was queued");
}
