//! Ports, failures and back-pressure: SO_REUSEPORT, closed ports, bad sources, truncation,
//! a receiver that does not read, pool exhaustion, `wait`.

use std::os::fd::AsRawFd;
use std::time::Duration;

use super::*;
use crate::udp::{DEFAULT_MAX_DATAGRAM, MAX_GSO_SEGMENTS, MAX_UDP_PAYLOAD};

const T: Duration = Duration::from_secs(2);

#[test]
fn capabilities_are_reported_honestly() {
    for cfg in [v4(), v6(), UdpConfig::new("[::]:0".parse().unwrap())] {
        let q = open(&cfg);
        let c = q.capabilities().clone();
        eprintln!("{}: {c:?}", cfg.bind_addr());
        // Each requested feature is either there or explained.
        for (name, on) in [("GSO", c.gso), ("GRO", c.gro), ("ECN", c.ecn), ("pktinfo", c.pktinfo)] {
            assert!(on || !c.missing.is_empty(), "{name} off without a reason");
        }
        assert_eq!(c.max_gso_segments, if c.gso { MAX_GSO_SEGMENTS } else { 1 });
        assert_eq!(c.max_udp_payload, MAX_UDP_PAYLOAD);
        assert!(!c.zero_copy);
        assert_eq!(c.ipv6, cfg.bind_addr().is_ipv6());
        assert_eq!(q.max_tx_buffer(), if c.gso { MAX_UDP_PAYLOAD } else { DEFAULT_MAX_DATAGRAM });
    }
    let off = open(&v4().with_gso(false).with_gro(false).with_ecn(false).with_pktinfo(false));
    let c = off.capabilities();
    assert!(!c.gso && !c.gro && !c.ecn && !c.pktinfo, "nothing not asked for");
}

#[test]
fn socket_is_non_blocking() {
    let q = open(&v4());
    // SAFETY: F_GETFL on a descriptor the queue keeps open; no memory passed.
    let flags = unsafe { libc::fcntl(q.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0 && flags & libc::O_NONBLOCK != 0);
}

#[test]
fn reuseport_lets_a_group_share_a_port() {
    let mut group = UdpQueue::open_group(&v4(), 2).unwrap();
    let port = group[0].local_addr().port();
    assert_ne!(port, 0);
    assert_eq!(group[1].local_addr(), group[0].local_addr());
    // Without SO_REUSEPORT the same port is refused.
    let err = UdpQueue::open(&v4().with_bind(group[0].local_addr())).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    // Datagrams from several source ports: each arrives exactly once, at one of the two.
    let mut sent = Vec::new();
    for i in 0..8u32 {
        let mut tx = open(&v4());
        let out = Out::new(group[0].local_addr(), i.to_be_bytes().to_vec());
        send_all(&mut tx, &[out]);
        sent.push(i);
    }
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + T;
    while got.len() < sent.len() && std::time::Instant::now() < deadline {
        for q in &mut group {
            for d in recv_n(q, 1, Duration::from_millis(20)) {
                got.push(u32::from_be_bytes(d.data[..4].try_into().unwrap()));
            }
        }
    }
    got.sort_unstable();
    assert_eq!(got, sent);
}

/// A steered group picks the queue from the Destination Connection ID octet (here octet 1,
/// as Peregrine's connection IDs carry the worker index), not from the 4-tuple: datagrams of
/// ONE client socket (one 4-tuple, which plain SO_REUSEPORT sends to one queue) reach the
/// queue their octet names, in short and long headers alike.
#[test]
fn a_steered_group_routes_by_the_connection_id_octet() {
    let mut group = UdpQueue::open_steered_group(&v4(), 2, 1).unwrap();
    let mut tx = open(&v4());
    // (datagram, queue it must reach).
    let cases = super::steering_cases();
    let outs: Vec<Out> =
        cases.iter().map(|(d, _)| Out::new(group[0].local_addr(), d.clone())).collect();
    send_all(&mut tx, &outs);
    let mut got: Vec<(Vec<u8>, usize)> = Vec::new();
    let deadline = std::time::Instant::now() + T;
    while got.len() < cases.len() && std::time::Instant::now() < deadline {
        for (qi, q) in group.iter_mut().enumerate() {
            for d in recv_n(q, 1, Duration::from_millis(20)) {
                got.push((d.data.to_vec(), qi));
            }
        }
    }
    got.sort();
    let mut want = cases.clone();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn send_to_a_closed_port_does_not_fail_the_queue() {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut rx = open(&v4());
    let mut tx = open(&v4());
    let dead: Vec<Out> = (0..3).map(|i| Out::new(closed, pattern(i, 100))).collect();
    assert_eq!(send_all(&mut tx, &dead), vec![3]);
    // Whatever ICMP came back, the queue keeps working in both directions.
    let mut batch = RxBatch::new(4);
    assert_eq!(tx.recv(&mut batch).unwrap(), 0);
    let live = [Out::new(rx.local_addr(), pattern(9, 100))];
    assert_eq!(send_all(&mut tx, &live), vec![1]);
    assert_eq!(flatten(&recv_n(&mut rx, 1, T)), expected(&live));
    let s = tx.stats();
    assert_eq!(s.tx_datagrams + s.tx_errors, 4, "each datagram sent or counted");
}

#[test]
fn bad_source_address_drops_only_that_buffer() {
    let mut rx = open(&v4());
    let mut tx = open(&v4());
    let dst = rx.local_addr();
    // 198.51.100.1 (TEST-NET-2) is not local: the kernel refuses to send from it.
    let bogus: IpAddr = "198.51.100.1".parse().unwrap();
    let outs = [
        Out::new(dst, pattern(1, 50)),
        Out::new(dst, pattern(2, 3000)).gso(1000).src(bogus),
        Out::new(dst, pattern(3, 50)),
    ];
    assert_eq!(send_all(&mut tx, &outs), vec![3], "all three left the batch in one call");
    let got = flatten(&recv_n(&mut rx, 2, T));
    assert_eq!(got, vec![outs[0].data.clone(), outs[2].data.clone()], "order kept");
    let s = tx.stats();
    assert_eq!((s.tx_datagrams, s.tx_errors), (2, 3), "the train's 3 datagrams counted");
    assert_eq!(tx.capabilities().gso, rx.capabilities().gso, "GSO not blamed");
}

#[test]
fn truncated_datagram_is_dropped_and_counted() {
    let mut rx = open(&v4().with_gro(false).with_max_datagram_size(1000).unwrap());
    assert_eq!(rx.capabilities().max_udp_payload, 1000);
    let mut tx = open(&v4());
    let outs =
        [Out::new(rx.local_addr(), pattern(1, 1001)), Out::new(rx.local_addr(), pattern(2, 1000))];
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 1, T);
    assert_eq!(flatten(&got), vec![outs[1].data.clone()]);
    assert_eq!(rx.stats().rx_dropped, 1);
    assert_eq!(rx.stats().rx_datagrams, 1);
}

#[test]
fn send_never_blocks_and_keeps_order() {
    // A receiver with a tiny buffer that does not read while 3000 datagrams are sent.
    let mut rx = open(&v4().with_recv_buffer(Some(4096)).unwrap().with_gro(false));
    let mut tx = open(&v4().with_send_buffer(Some(4096)).unwrap().with_gso(false));
    let dst = rx.local_addr();
    let (total, mut pushed, mut left) = (3000u32, 0u32, 0usize);
    let mut batch = TxBatch::new();
    for _ in 0..10_000 {
        while pushed < total && batch.len() < 64 {
            push(&mut tx, &mut batch, &Out::new(dst, [pushed.to_be_bytes(), [7; 4]].concat()));
            pushed += 1;
        }
        let before = batch.len();
        let n = tx.send(&mut batch).unwrap();
        assert_eq!(n + batch.len(), before, "the count is what left the batch");
        left += n;
        if pushed == total && batch.is_empty() {
            break;
        }
    }
    assert_eq!(left, total as usize);
    let s = tx.stats();
    assert_eq!(s.tx_datagrams + s.tx_errors, u64::from(total));
    // The receiver lost what did not fit, but what it has is in order, without duplicates.
    let mut seqs = Vec::new();
    let mut batch = RxBatch::new(32);
    while rx.recv(&mut batch).unwrap() > 0 {
        seqs.extend(batch.iter().map(|d| u32::from_be_bytes(d.data()[..4].try_into().unwrap())));
    }
    assert!(!seqs.is_empty());
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order kept: {seqs:?}");
    assert!(seqs.iter().all(|&s| s < total));
}

#[test]
fn exhausted_receive_pool_is_an_error_not_a_spin() {
    let cfg = v4().with_rx_batch(2).unwrap().with_rx_pool(2).unwrap();
    let mut rx = open(&cfg);
    let mut tx = open(&v4());
    let outs: Vec<Out> = (0..4).map(|i| Out::new(rx.local_addr(), vec![i as u8])).collect();
    send_all(&mut tx, &outs);
    rx.wait(Some(T), false).unwrap();
    let mut first = RxBatch::new(2);
    assert_eq!(rx.recv(&mut first).unwrap(), 2);
    let mut second = RxBatch::new(2);
    assert!(rx.recv(&mut second).is_err(), "both buffers are held by `first`");
    assert_eq!(rx.recv(&mut first).unwrap(), 2, "handing them back makes room again");
}

#[test]
fn wait_times_out_and_wakes_on_data() {
    let mut rx = open(&v4());
    let mut tx = open(&v4());
    rx.wait(Some(Duration::from_millis(20)), false).unwrap();
    tx.wait(Some(Duration::from_millis(20)), true).unwrap();
    let mut batch = RxBatch::new(4);
    assert_eq!(rx.recv(&mut batch).unwrap(), 0, "nothing there");
    send_all(&mut tx, &[Out::new(rx.local_addr(), vec![1, 2, 3])]);
    rx.wait(Some(T), false).unwrap();
    assert_eq!(rx.recv(&mut batch).unwrap(), 1, "wait returned because data is ready");
    assert_eq!(batch.iter().next().unwrap().data(), &[1, 2, 3]);
}
