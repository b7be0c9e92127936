//! Network-level tests: MTU, blackholes, NAT rebinding, determinism, accounting, live changes.

use std::time::Duration;

use super::*;
use crate::sim::{Blackhole, GilbertElliott, IPV4_UDP_OVERHEAD, IPV6_UDP_OVERHEAD};

#[test]
fn mtu_drops_exactly_the_oversized_v4_and_v6() {
    for (a_addr, b_addr, overhead) in [
        ("10.0.0.1:1", "10.0.0.2:2", IPV4_UDP_OVERHEAD),
        ("[fd00::1]:1", "[fd00::2]:2", IPV6_UDP_OVERHEAD),
    ] {
        let net = SimNetwork::new(20);
        let mut a = net.bind(addr(a_addr)).unwrap();
        let mut b = net.bind(addr(b_addr)).unwrap();
        assert_eq!(b.capabilities().ipv6, overhead == IPV6_UDP_OVERHEAD);
        let cfg = LinkConfig { mtu: Some(1280), ..LinkConfig::default() };
        net.set_link(addr(a_addr), addr(b_addr), cfg).unwrap();
        for len in 1200..=1300u32 {
            send(&mut a, addr(b_addr), &numbered(len, len as usize), Ecn::NotEct);
        }
        let got: Vec<usize> = recv_now(&mut b).iter().map(|(d, _)| d.len()).collect();
        let largest = 1280 - overhead;
        assert_eq!(got, (1200..=largest).collect::<Vec<_>>(), "exactly the datagrams that fit");
        let stats = net.link_stats(addr(a_addr), addr(b_addr));
        assert_eq!(stats.dropped_mtu, (1300 - largest) as u64);
        assert_eq!(stats.delivered, got.len() as u64);
    }
}

#[test]
fn blackhole_drops_exactly_the_window_in_one_direction() {
    let net = SimNetwork::new(21);
    let mut a = net.bind(addr(A)).unwrap();
    let mut b = net.bind(addr(B)).unwrap();
    let start = net.now();
    let hole = Blackhole {
        start: start + Duration::from_millis(100),
        end: start + Duration::from_millis(200),
    };
    let cfg =
        LinkConfig { blackholes: vec![hole], ..LinkConfig::with_delay(Duration::from_millis(5)) };
    net.set_link(addr(A), addr(B), cfg).unwrap();
    let mut back = 0;
    for i in 0..300 {
        send(&mut a, addr(B), &numbered(i, 50), Ecn::NotEct);
        send(&mut b, addr(A), &numbered(i, 50), Ecn::NotEct);
        net.advance(Duration::from_millis(1));
        back += recv_now(&mut a).len();
    }
    let got: Vec<u32> = drain(&net, &mut b).iter().map(|(_, d, _)| index_of(d)).collect();
    let expected: Vec<u32> = (0..100).chain(200..300).collect();
    assert_eq!(got, expected);
    assert_eq!(net.link_stats(addr(A), addr(B)).dropped_blackhole, 100);
    back += recv_now(&mut a).len();
    assert_eq!(back, 300, "the other direction is untouched");
}

#[test]
fn nat_rebinding_changes_the_source_and_routes_replies() {
    let net = SimNetwork::new(22);
    let mut a = net.bind(addr(A)).unwrap();
    let mut b = net.bind(addr(B)).unwrap();
    net.set_path(addr(A), addr(B), LinkConfig::with_delay(Duration::from_millis(1))).unwrap();
    let (nat, nat2) = (addr("203.0.113.7:5555"), addr("203.0.113.7:6666"));
    let start = net.now();
    net.rebind(addr(A), nat, start + Duration::from_millis(50)).unwrap();
    net.rebind(addr(A), nat2, start + Duration::from_millis(80)).unwrap();
    // Before the rebinding nobody is behind the NAT address.
    send(&mut b, nat, b"too early", Ecn::NotEct);
    assert_eq!(net.link_stats(addr(B), nat).unroutable, 1);
    let mut sources = Vec::new();
    for i in 0..100 {
        send(&mut a, addr(B), &numbered(i, 20), Ecn::NotEct);
        net.advance(Duration::from_millis(1));
        for (d, m) in recv_now(&mut b) {
            assert_eq!(m.dst_ip, Some(addr(B).ip()));
            sources.push((index_of(&d), m.src));
            // B answers whoever it sees.
            send(&mut b, m.src, &d, Ecn::NotEct);
        }
    }
    assert_eq!(sources.len(), 100);
    for (i, src) in &sources {
        let expected = match i {
            0..50 => addr(A),
            50..80 => nat,
            _ => nat2,
        };
        assert_eq!(*src, expected, "datagram {i} sent at {i} ms");
    }
    // Replies to the NAT addresses reach A, which sees its own bound IP as destination.
    let replies = drain(&net, &mut a);
    let order: Vec<u32> = replies.iter().map(|(_, d, _)| index_of(d)).collect();
    assert_eq!(order, (0..100).collect::<Vec<_>>());
    for (_, _, m) in &replies {
        assert_eq!(m.src, addr(B));
        assert_eq!(m.dst_ip, Some(addr(A).ip()));
    }
    assert_eq!(
        net.link_stats(addr(B), addr(A)).delivered,
        100,
        "replies to NAT addresses use B -> A"
    );
}

fn rebind_errors_case(net: &SimNetwork) {
    let now = net.now();
    let err = net.rebind(addr("10.9.9.9:1"), addr("1.2.3.4:5"), now).unwrap_err();
    assert_eq!(err, crate::sim::SimError::UnknownEndpoint(addr("10.9.9.9:1")));
    let err = net.rebind(addr(A), addr(B), now).unwrap_err();
    assert_eq!(err, crate::sim::SimError::AddrInUse(addr(B)));
    let err = net.rebind(addr(A), addr("[fd00::9]:9"), now).unwrap_err();
    assert!(matches!(err, crate::sim::SimError::FamilyMismatch { .. }));
}

#[test]
fn rebinding_refuses_bad_requests() {
    let net = SimNetwork::new(23);
    let _a = net.bind(addr(A)).unwrap();
    let _b = net.bind(addr(B)).unwrap();
    rebind_errors_case(&net);
}

/// Every impairment at once, both directions, two flows; returns the trace and what each port
/// received (with arrival times).
fn busy_scenario(seed: u64, reverse_traffic: bool) -> (Vec<TraceEvent>, Received) {
    let net = SimNetwork::new(seed);
    net.set_trace(true);
    let mut a = net.bind(addr(A)).unwrap();
    let mut b = net.bind(addr(B)).unwrap();
    let cfg = LinkConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(3),
        rate_bps: Some(20_000_000),
        queue_bytes: 40_000,
        ce_threshold: Some(20_000),
        loss: 0.02,
        burst_loss: Some(GilbertElliott::bursty(0.005, 0.3)),
        reorder: 0.02,
        duplicate: 0.02,
        corrupt: 0.02,
        mtu: Some(1400),
        ..LinkConfig::default()
    };
    net.set_path(addr(A), addr(B), cfg).unwrap();
    let mut received = Vec::new();
    for i in 0..3000u32 {
        let len = 1000 + (i as usize * 7) % 420;
        send(&mut a, addr(B), &numbered(i, len), if i % 3 == 0 { Ecn::NotEct } else { Ecn::Ect0 });
        if reverse_traffic {
            send(&mut b, addr(A), &numbered(i, 60), Ecn::Ect1);
        }
        net.advance(Duration::from_micros(200));
        received.extend(recv_now(&mut b).into_iter().map(|(d, m)| (net.elapsed(), d, m)));
        recv_now(&mut a);
    }
    received.extend(drain(&net, &mut b));
    (net.take_trace(), received)
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let (t1, r1) = busy_scenario(42, true);
    let (t2, r2) = busy_scenario(42, true);
    assert_eq!(t1, t2, "identical traces");
    assert_eq!(r1, r2, "identical received bytes, metadata and times");
    let fates = |t: &[TraceEvent]| {
        let mut seen = std::collections::BTreeSet::new();
        for e in t {
            seen.insert(match e.fate {
                Fate::Dropped(r) => format!("{r:?}"),
                Fate::Delivered { corrupted: true, .. } => "corrupted".into(),
                Fate::Delivered { reordered: true, .. } => "reordered".into(),
                Fate::Delivered { duplicated: true, .. } => "duplicated".into(),
                Fate::Delivered { ecn: Ecn::Ce, .. } => "ce".into(),
                Fate::Delivered { .. } => "clean".into(),
            });
        }
        seen
    };
    assert_eq!(fates(&t1).len(), 10, "the scenario exercises every fate: {:?}", fates(&t1));
    let (t3, r3) = busy_scenario(43, true);
    assert_ne!(t1, t3, "another seed, another trace");
    assert_ne!(r1, r3);
}

#[test]
fn links_have_independent_random_streams() {
    // What happens A -> B does not depend on traffic B -> A.
    let forward = |t: Vec<TraceEvent>| -> Vec<(Duration, Fate)> {
        t.into_iter().filter(|e| e.from == addr(A)).map(|e| (e.sent_at, e.fate)).collect()
    };
    let (alone, _) = busy_scenario(7, false);
    let (mixed, _) = busy_scenario(7, true);
    assert_eq!(forward(alone), forward(mixed));
}

#[test]
fn every_datagram_is_accounted_for() {
    let (net, mut a, mut b) = pair(24, LinkConfig::default());
    let cfg = LinkConfig {
        loss: 0.1,
        duplicate: 0.1,
        mtu: Some(1000),
        rate_bps: Some(1_000_000),
        queue_bytes: 5_000,
        ..LinkConfig::with_delay(Duration::from_millis(2))
    };
    net.set_link(addr(A), addr(B), cfg).unwrap();
    let mut got = 0;
    for i in 0..2000u32 {
        send(&mut a, addr(B), &numbered(i, 200 + (i as usize % 1000)), Ecn::NotEct);
        send(&mut a, addr("10.0.0.99:9"), b"nobody home", Ecn::NotEct);
        net.advance(Duration::from_micros(700));
        if i % 100 == 0 {
            got += recv_now(&mut b).len() as u64;
        }
    }
    got += drain(&net, &mut b).len() as u64;
    let s = net.link_stats(addr(A), addr(B));
    assert!(s.lost_random > 0 && s.duplicated > 0 && s.dropped_mtu > 0 && s.dropped_queue_full > 0);
    assert_eq!(s.sent + s.duplicated, s.accounted(), "{s:?}");
    assert_eq!(net.in_flight(), 0);
    assert_eq!(got, s.delivered);
    let u = net.link_stats(addr(A), addr("10.0.0.99:9"));
    assert_eq!((u.sent, u.unroutable), (2000, 2000));
    let total = net.total_stats();
    assert_eq!(total.sent, s.sent + u.sent);
    assert_eq!(total.sent + total.duplicated, total.accounted());
    assert_eq!(a.stats().tx_datagrams, 4000);
}

#[test]
fn closing_a_port_counts_its_in_flight_datagrams_undelivered() {
    let (net, mut a, b) = pair(25, LinkConfig::with_delay(Duration::from_millis(10)));
    for i in 0..5 {
        send(&mut a, addr(B), &numbered(i, 10), Ecn::NotEct);
    }
    assert_eq!(net.in_flight(), 5);
    drop(b);
    assert_eq!(net.in_flight(), 0);
    assert_eq!(net.link_stats(addr(A), addr(B)).undelivered, 5);
    let _b = net.bind(addr(B)).expect("the address is free again");
}

#[test]
fn link_changes_apply_to_later_datagrams_only() {
    let (net, mut a, mut b) = pair(26, LinkConfig::with_delay(Duration::from_millis(50)));
    send(&mut a, addr(B), &numbered(0, 10), Ecn::NotEct);
    net.advance(Duration::from_millis(1));
    net.set_link(addr(A), addr(B), LinkConfig::with_delay(Duration::from_millis(10))).unwrap();
    send(&mut a, addr(B), &numbered(1, 10), Ecn::NotEct);
    net.advance(Duration::from_millis(100));
    send(&mut a, addr(B), &numbered(2, 10), Ecn::NotEct);
    let ms = Duration::from_millis;
    // The first keeps its 50 ms; the second would arrive at 11 ms but a link never reorders on
    // its own, so it follows the first; the third sees the new 10 ms.
    let expected = vec![(ms(0), ms(50)), (ms(1), ms(50)), (ms(101), ms(111))];
    assert_eq!(arrivals(&net.take_trace()), expected);
    let order: Vec<u32> = drain(&net, &mut b).iter().map(|(_, d, _)| index_of(d)).collect();
    assert_eq!(order, vec![0, 1, 2]);
}

#[test]
fn default_link_applies_to_links_not_set_explicitly() {
    let net = SimNetwork::new(27);
    let mut a = net.bind(addr(A)).unwrap();
    let mut b = net.bind(addr(B)).unwrap();
    net.set_link(addr(B), addr(A), LinkConfig::with_delay(Duration::from_millis(3))).unwrap();
    net.set_default_link(LinkConfig::with_delay(Duration::from_millis(7))).unwrap();
    assert_eq!(net.link_config(addr(A), addr(B)).delay, Duration::from_millis(7));
    assert_eq!(net.link_config(addr(B), addr(A)).delay, Duration::from_millis(3), "explicit wins");
    send(&mut a, addr(B), b"x", Ecn::NotEct);
    send(&mut b, addr(A), b"y", Ecn::NotEct);
    assert_eq!(drain(&net, &mut a)[0].0, Duration::from_millis(3));
    // `drain` stepped time to 3 ms; B's datagram arrives at 7 ms.
    assert_eq!(drain(&net, &mut b)[0].0, Duration::from_millis(7));
    let bad = LinkConfig { loss: 2.0, ..LinkConfig::default() };
    assert!(net.set_default_link(bad).is_err());
    assert_eq!(
        net.link_config(addr(A), addr(B)).delay,
        Duration::from_millis(7),
        "a refused config changes nothing"
    );
}
