//! Port tests: the `Queue` contract, GSO splitting, pools and batches, clock, binding, validation.

use std::time::Duration;

use super::*;
use crate::sim::{SimError, SimQueueConfig, DEFAULT_MAX_GSO_SEGMENTS, MAX_UDP_PAYLOAD};
use crate::TxBuffer;

fn gso_buffer(q: &mut SimQueue, dst: SocketAddr, data: &[u8], seg: usize, ecn: Ecn) -> TxBuffer {
    let mut tx = q.alloc_tx().expect("a free tx buffer");
    assert!(tx.extend_from_slice(data));
    tx.meta = TxMeta { ecn, segment_size: Some(seg), ..TxMeta::to(dst) };
    tx
}

#[test]
fn gso_buffer_becomes_equal_segments_with_a_short_tail() {
    let (net, mut a, mut b) = pair(30, LinkConfig::default());
    assert!(a.capabilities().gso && a.capabilities().max_gso_segments == DEFAULT_MAX_GSO_SEGMENTS);
    assert!(a.max_tx_buffer() >= 64 * 1000, "room for a GSO train");
    let data: Vec<u8> = (0..3500u32).map(|i| (i % 251) as u8).collect();
    let mut batch = TxBatch::new();
    batch.push(gso_buffer(&mut a, addr(B), &data, 1200, Ecn::Ect1));
    assert_eq!(a.send(&mut batch).unwrap(), 1);
    let got = recv_now(&mut b);
    let lens: Vec<usize> = got.iter().map(|(d, _)| d.len()).collect();
    assert_eq!(lens, vec![1200, 1200, 1100]);
    let joined: Vec<u8> = got.iter().flat_map(|(d, _)| d.clone()).collect();
    assert_eq!(joined, data, "segments carry the buffer's bytes in order");
    for (_, m) in &got {
        assert_eq!((m.src, m.ecn, m.segment_size), (addr(A), Ecn::Ect1, m.segment_size));
        assert_eq!(m.dst_ip, Some(addr(B).ip()));
    }
    let s = a.stats();
    assert_eq!((s.tx_datagrams, s.tx_bytes, s.tx_calls, s.tx_errors), (3, 3500, 1, 0));
    assert_eq!(net.link_stats(addr(A), addr(B)).sent, 3);
    assert_eq!(b.stats().rx_datagrams, 3);
}

#[test]
fn gso_segments_are_impaired_independently() {
    let n = 2000u32;
    let segs = 10;
    let (net, mut a, mut b) = pair(31, LinkConfig { loss: 0.5, ..LinkConfig::default() });
    for i in 0..n {
        let data: Vec<u8> = (0..segs).flat_map(|s| numbered(i * 16 + s, 100)).collect();
        let mut batch = TxBatch::new();
        batch.push(gso_buffer(&mut a, addr(B), &data, 100, Ecn::NotEct));
        a.send(&mut batch).unwrap();
    }
    let mut per_buffer = vec![0usize; n as usize];
    for (d, _) in recv_now(&mut b) {
        per_buffer[(index_of(&d) / 16) as usize] += 1;
    }
    let stats = net.link_stats(addr(A), addr(B));
    assert_eq!(stats.sent, u64::from(n) * u64::from(segs));
    assert_binomial("lost segments", stats.lost_random, stats.sent, 0.5);
    // Whole-buffer fates would give only 0 or 10 survivors per buffer.
    let partial = per_buffer.iter().filter(|&&k| k > 0 && k < segs as usize).count();
    assert!(partial as f64 > 0.99 * f64::from(n), "{partial} buffers partially delivered");
}

#[test]
fn refused_transmits_are_counted_not_returned() {
    let net = SimNetwork::new(32);
    let cfg = SimQueueConfig { max_gso_segments: 4, ..SimQueueConfig::default() };
    let mut a = net.bind_with(addr(A), cfg).unwrap();
    let mut b = net.bind(addr(B)).unwrap();
    let mut batch = TxBatch::new();
    batch.push(gso_buffer(&mut a, addr(B), &[1; 100], 0, Ecn::NotEct)); // zero segment size
    batch.push(gso_buffer(&mut a, addr(B), &[2; 100], 20, Ecn::NotEct)); // 5 > 4 segments
    batch.push(gso_buffer(&mut a, addr("[fd00::2]:2"), &[3; 10], 10, Ecn::NotEct)); // v6 from v4
    let mut wrong_src = gso_buffer(&mut a, addr(B), &[4; 10], 10, Ecn::NotEct);
    wrong_src.meta.src_ip = Some(addr("10.0.0.77:0").ip());
    batch.push(wrong_src);
    batch.push(gso_buffer(&mut a, addr(B), &[5; 100], 25, Ecn::NotEct)); // 4 segments: fine
    let mut own_src = gso_buffer(&mut a, addr(B), &[6; 10], 10, Ecn::NotEct);
    own_src.meta.src_ip = Some(addr(A).ip());
    batch.push(own_src);
    assert_eq!(a.send(&mut batch).unwrap(), 6, "every buffer leaves the batch");
    assert!(batch.is_empty());
    let s = a.stats();
    assert_eq!((s.tx_errors, s.tx_datagrams), (4, 5));
    let got: Vec<Vec<u8>> = recv_now(&mut b).into_iter().map(|(d, _)| d).collect();
    assert_eq!(got, vec![vec![5; 25], vec![5; 25], vec![5; 25], vec![5; 25], vec![6; 10]]);
}

#[test]
fn port_without_gso_refuses_trains_but_sends_single_datagrams() {
    let net = SimNetwork::new(33);
    let cfg = SimQueueConfig { gso: false, max_udp_payload: 1500, ..SimQueueConfig::default() };
    let mut a = net.bind_with(addr(A), cfg).unwrap();
    let mut b = net.bind(addr(B)).unwrap();
    let caps = a.capabilities().clone();
    assert!(!caps.gso && caps.max_gso_segments == 1 && caps.max_udp_payload == 1500);
    assert_eq!(a.max_tx_buffer(), 1500);
    let mut batch = TxBatch::new();
    batch.push(gso_buffer(&mut a, addr(B), &[1; 200], 100, Ecn::NotEct));
    batch.push(gso_buffer(&mut a, addr(B), &[2; 100], 100, Ecn::NotEct));
    a.send(&mut batch).unwrap();
    assert_eq!(a.stats().tx_errors, 1);
    assert_eq!(recv_now(&mut b).len(), 1);
}

#[test]
fn empty_datagram_is_delivered() {
    let (_net, mut a, mut b) = pair(34, LinkConfig::default());
    send(&mut a, addr(B), &[], Ecn::Ect0);
    let got = recv_now(&mut b);
    assert_eq!(got.len(), 1);
    assert!(got[0].0.is_empty());
    assert_eq!(a.stats().tx_datagrams, 1);
}

#[test]
fn tx_pool_gives_back_pressure_and_refills_on_send() {
    let net = SimNetwork::new(35);
    let cfg = SimQueueConfig { tx_buffers: 2, ..SimQueueConfig::default() };
    let mut a = net.bind_with(addr(A), cfg).unwrap();
    let _b = net.bind(addr(B)).unwrap();
    let mut batch = TxBatch::new();
    for _ in 0..2 {
        let mut tx = a.alloc_tx().expect("within the pool");
        tx.meta = TxMeta::to(addr(B));
        batch.push(tx);
    }
    assert!(a.alloc_tx().is_none(), "every buffer is in flight");
    assert_eq!(a.send(&mut batch).unwrap(), 2);
    assert!(a.alloc_tx().is_some(), "sent buffers went back to the pool");
}

#[test]
fn recv_respects_batch_capacity_and_rx_pool() {
    let net = SimNetwork::new(36);
    let mut a = net.bind(addr(A)).unwrap();
    let cfg = SimQueueConfig { rx_buffers: 6, ..SimQueueConfig::default() };
    let mut b = net.bind_with(addr(B), cfg).unwrap();
    for i in 0..10 {
        send(&mut a, addr(B), &numbered(i, 10), Ecn::NotEct);
    }
    let mut batch = RxBatch::new(4);
    let mut other = RxBatch::new(4);
    assert_eq!(b.recv(&mut batch).unwrap(), 4);
    // The engine still holds 4 buffers: only 2 left in a pool of 6.
    assert_eq!(b.recv(&mut other).unwrap(), 2);
    assert_eq!(b.recv(&mut batch).unwrap(), 4, "the first batch's buffers came back");
    let order: Vec<u32> = other.iter().chain(batch.iter()).map(|d| index_of(d.data())).collect();
    assert_eq!(order, vec![4, 5, 6, 7, 8, 9]);
    assert_eq!(b.stats().rx_datagrams, 10);
}

#[test]
fn datagrams_too_large_for_the_receiver_are_dropped_and_counted() {
    let net = SimNetwork::new(37);
    let mut a = net.bind(addr(A)).unwrap();
    let cfg = SimQueueConfig { max_udp_payload: 1000, ..SimQueueConfig::default() };
    let mut b = net.bind_with(addr(B), cfg).unwrap();
    send(&mut a, addr(B), &[7; 1001], Ecn::NotEct);
    send(&mut a, addr(B), &[8; 1000], Ecn::NotEct);
    let got = recv_now(&mut b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.len(), 1000);
    assert_eq!(b.stats().rx_dropped, 1);
    assert_eq!(net.link_stats(addr(A), addr(B)).undelivered, 1);
}

#[test]
fn nothing_arrives_before_its_time_and_next_event_says_when() {
    let (net, mut a, mut b) = pair(38, LinkConfig::with_delay(Duration::from_millis(30)));
    let start = net.now();
    assert_eq!(net.next_event(), None);
    send(&mut a, addr(B), b"one", Ecn::NotEct);
    net.advance(Duration::from_millis(5));
    send(&mut a, addr(B), b"two", Ecn::NotEct);
    assert_eq!(net.next_event(), Some(start + Duration::from_millis(30)));
    assert_eq!(b.next_arrival(), net.next_event());
    assert_eq!(a.next_arrival(), None);
    net.advance_to(start + Duration::from_millis(30) - Duration::from_nanos(1));
    assert!(recv_now(&mut b).is_empty(), "one nanosecond early");
    net.advance_to(start + Duration::from_millis(30));
    assert_eq!(recv_now(&mut b).len(), 1);
    assert_eq!(net.next_event(), Some(start + Duration::from_millis(35)));
    net.advance_to(start);
    assert_eq!(net.now(), start + Duration::from_millis(30), "time never goes back");
    net.advance(Duration::from_millis(100));
    assert_eq!(recv_now(&mut b).len(), 1);
    assert_eq!(net.next_event(), None);
    let t = net.now();
    b.wait(Some(Duration::from_secs(3600)), false).unwrap();
    assert_eq!(net.now(), t, "wait returns at once without moving time");
    assert_eq!(b.now(), t);
}

#[test]
fn bind_rules() {
    let net = SimNetwork::new(39);
    let a = net.bind(addr(A)).unwrap();
    assert_eq!(a.local_addr(), addr(A));
    assert_eq!(net.bind(addr(A)).unwrap_err(), SimError::AddrInUse(addr(A)));
    assert!(matches!(net.bind(addr("0.0.0.0:1")), Err(SimError::UnspecifiedAddr(_))));
    let e1 = net.bind(addr("10.0.0.5:0")).unwrap();
    let e2 = net.bind(addr("10.0.0.5:0")).unwrap();
    assert_eq!((e1.local_addr().port(), e2.local_addr().port()), (49_152, 49_153));
    let v6 = net.bind(addr("[fd00::5]:443")).unwrap();
    assert!(v6.capabilities().ipv6 && !a.capabilities().ipv6);
    let caps = a.capabilities();
    assert!(caps.ecn && caps.pktinfo && !caps.gro && !caps.zero_copy && caps.missing.is_empty());
    assert_eq!(caps.max_udp_payload, MAX_UDP_PAYLOAD);
    for bad in [
        SimQueueConfig { max_udp_payload: 0, ..SimQueueConfig::default() },
        SimQueueConfig { max_udp_payload: MAX_UDP_PAYLOAD + 1, ..SimQueueConfig::default() },
        SimQueueConfig { max_gso_segments: 0, ..SimQueueConfig::default() },
        SimQueueConfig { rx_buffers: 0, ..SimQueueConfig::default() },
    ] {
        assert!(matches!(net.bind_with(addr("10.0.0.6:1"), bad), Err(SimError::InvalidPort(_))));
    }
}

#[test]
fn invalid_link_configs_are_refused_with_the_reason() {
    let net = SimNetwork::new(40);
    let start = net.now();
    let d = LinkConfig::default;
    let cases: Vec<(LinkConfig, SimError)> = vec![
        (LinkConfig { loss: 1.5, ..d() }, SimError::Probability { field: "loss", value: 1.5 }),
        (
            LinkConfig { reorder: -0.1, ..d() },
            SimError::Probability { field: "reorder", value: -0.1 },
        ),
        (
            LinkConfig { duplicate: 2.0, ..d() },
            SimError::Probability { field: "duplicate", value: 2.0 },
        ),
        (
            LinkConfig { corrupt: 1.01, ..d() },
            SimError::Probability { field: "corrupt", value: 1.01 },
        ),
        (
            LinkConfig { burst_loss: Some(crate::sim::GilbertElliott::bursty(0.1, 7.0)), ..d() },
            SimError::Probability { field: "burst_loss.p_bad_to_good", value: 7.0 },
        ),
        (LinkConfig { rate_bps: Some(0), ..d() }, SimError::ZeroRate),
        (LinkConfig { queue_bytes: 0, ..d() }, SimError::ZeroQueue),
        (LinkConfig { queue_packets: Some(0), ..d() }, SimError::ZeroQueue),
        (LinkConfig { max_loss_burst: Some(0), ..d() }, SimError::ZeroLossBurst),
        (LinkConfig { ce_threshold: Some(10), ..d() }, SimError::CeThresholdWithoutRate),
        (
            LinkConfig { rate_bps: Some(1000), queue_bytes: 100, ce_threshold: Some(100), ..d() },
            SimError::CeThresholdTooLarge { threshold: 100, queue_bytes: 100 },
        ),
        (
            LinkConfig { reorder: 0.1, reorder_delay: Duration::ZERO, ..d() },
            SimError::ZeroReorderDelay,
        ),
        (LinkConfig { mtu: Some(67), ..d() }, SimError::MtuTooSmall { mtu: 67 }),
        (
            LinkConfig { blackholes: vec![crate::sim::Blackhole { start, end: start }], ..d() },
            SimError::EmptyBlackhole { start, end: start },
        ),
    ];
    for (cfg, err) in cases {
        assert_eq!(net.set_link(addr(A), addr(B), cfg.clone()), Err(err.clone()));
        assert!(!err.to_string().is_empty());
    }
    let nan = LinkConfig { loss: f64::NAN, ..d() };
    assert!(matches!(nan.validate(), Err(SimError::Probability { field: "loss", .. })));
    assert_eq!(net.link_config(addr(A), addr(B)), LinkConfig::default(), "nothing was applied");
}

#[test]
fn ports_can_move_to_worker_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send_only<T: Send>() {}
    send_sync::<SimNetwork>();
    send_only::<SimQueue>();
    let net = SimNetwork::new(41);
    let mut a = net.bind(addr(A)).unwrap();
    let mut b = net.bind(addr(B)).unwrap();
    let sender = std::thread::spawn(move || {
        send(&mut a, addr(B), b"from a thread", Ecn::NotEct);
        a
    });
    let _a = sender.join().expect("sender thread");
    assert_eq!(recv_now(&mut b)[0].0, b"from a thread");
}
