//! Loopback tests of the io_uring datapath: real sockets on 127.0.0.1 and ::1, exact bytes,
//! against itself and against the UDP backend.
//!
//! Where the kernel refuses io_uring (seccomp, `kernel.io_uring_disabled`) each test prints
//! why and returns; where a feature is missing it says so. Every wait is bounded; nothing
//! asserts a timing.

// Tests bound their loops in wall-clock time; only they read the clock.
#![allow(clippy::disallowed_methods)]

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use super::{UringConfig, UringQueue};
use crate::udp::{UdpConfig, UdpQueue};
use crate::{Ecn, Queue, RxBatch, RxMeta, TxBatch};

const T: Duration = Duration::from_secs(3);

fn v4() -> UringConfig {
    UringConfig::new("127.0.0.1:0".parse().unwrap())
}

fn v6() -> UringConfig {
    UringConfig::new("[::1]:0".parse().unwrap())
}

/// Opens a queue, or `None` (printed) when this kernel or sandbox refuses io_uring.
fn try_open(cfg: &UringConfig) -> Option<UringQueue> {
    match UringQueue::open(cfg) {
        Ok(q) => Some(q),
        Err(e) if e.to_string().starts_with("io_uring unavailable") => {
            eprintln!("SKIPPED: {e}");
            None
        }
        Err(e) => panic!("open {:?}: {e}", cfg.bind_addr()),
    }
}

/// Opens a queue or returns from the test (loudly) when io_uring is unavailable.
macro_rules! open {
    ($cfg:expr) => {
        match try_open(&$cfg) {
            Some(q) => q,
            None => return,
        }
    };
}

fn udp(cfg: UdpConfig) -> UdpQueue {
    UdpQueue::open(&cfg).expect("open udp queue")
}

/// `len` bytes that depend on `tag` and position, so a misplaced byte shows.
fn pattern(tag: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (tag.wrapping_mul(31).wrapping_add(i as u32 * 7) % 251) as u8).collect()
}

/// What to put in one transmit buffer.
#[derive(Clone, Debug)]
struct Out {
    dst: SocketAddr,
    data: Vec<u8>,
    segment: Option<usize>,
    ecn: Ecn,
    src_ip: Option<IpAddr>,
}

impl Out {
    fn new(dst: SocketAddr, data: Vec<u8>) -> Self {
        Self { dst, data, segment: None, ecn: Ecn::NotEct, src_ip: None }
    }
    fn gso(mut self, seg: usize) -> Self {
        self.segment = Some(seg);
        self
    }
    fn ecn(mut self, ecn: Ecn) -> Self {
        self.ecn = ecn;
        self
    }
    fn src(mut self, ip: IpAddr) -> Self {
        self.src_ip = Some(ip);
        self
    }
}

/// 10 segments of 1200 bytes and a 500-byte tail.
fn train(dst: SocketAddr, tag: u32) -> Out {
    Out::new(dst, pattern(tag, 10 * 1200 + 500)).gso(1200)
}

fn push(q: &mut dyn Queue, batch: &mut TxBatch, o: &Out) {
    let mut b = q.alloc_tx().expect("tx pool has a buffer");
    assert!(b.extend_from_slice(&o.data), "payload fits");
    b.meta.dst = o.dst;
    b.meta.segment_size = o.segment;
    b.meta.ecn = o.ecn;
    b.meta.src_ip = o.src_ip;
    batch.push(b);
}

/// Sends `outs` as one batch until it is empty (bounded); returns each `send`'s count.
fn send_all(q: &mut dyn Queue, outs: &[Out]) -> Vec<usize> {
    let mut batch = TxBatch::new();
    for o in outs {
        push(q, &mut batch, o);
    }
    let mut counts = Vec::new();
    let deadline = Instant::now() + T;
    while !batch.is_empty() && Instant::now() < deadline {
        counts.push(q.send(&mut batch).expect("send"));
        if !batch.is_empty() {
            q.wait(Some(Duration::from_millis(5)), true).unwrap();
        }
    }
    assert!(batch.is_empty(), "batch not sent in time");
    counts
}

/// One received buffer, copied out.
#[derive(Clone, Debug)]
struct In {
    data: Vec<u8>,
    meta: RxMeta,
}

/// Receives until `datagrams` datagrams (GRO segments counted) arrived or `limit` passed.
fn recv_n(q: &mut dyn Queue, datagrams: usize, limit: Duration) -> Vec<In> {
    let mut batch = RxBatch::new(16);
    let (mut got, mut count) = (Vec::new(), 0);
    let deadline = Instant::now() + limit;
    while count < datagrams && Instant::now() < deadline {
        if q.recv(&mut batch).expect("recv") == 0 {
            q.wait(Some(Duration::from_millis(10)), false).unwrap();
            continue;
        }
        count += batch.datagram_count();
        got.extend(batch.iter().map(|d| In { data: d.data().to_vec(), meta: d.meta }));
    }
    got
}

/// Every datagram of `ins`, split at its segment size.
fn flatten(ins: &[In]) -> Vec<Vec<u8>> {
    ins.iter()
        .flat_map(|d| {
            if d.data.is_empty() {
                vec![Vec::new()]
            } else {
                d.data.chunks(d.meta.segment_size.max(1)).map(<[u8]>::to_vec).collect()
            }
        })
        .collect()
}

/// The wire datagrams `outs` should become.
fn expected(outs: &[Out]) -> Vec<Vec<u8>> {
    outs.iter()
        .flat_map(|o| match o.segment {
            Some(s) if s > 0 && s < o.data.len() => o.data.chunks(s).map(<[u8]>::to_vec).collect(),
            _ => vec![o.data.clone()],
        })
        .collect()
}

fn sizes(v: &[In]) -> Vec<usize> {
    v.iter().map(|d| d.data.len()).collect()
}

#[test]
fn open_probes_and_reports() {
    let q = open!(v4());
    let caps = q.capabilities();
    assert!(q.multishot_recv(), "multishot recvmsg + buffer ring: {:?}", caps.missing);
    assert!(caps.gso && caps.gro && caps.ecn && caps.pktinfo, "{caps:?}");
    assert!(!caps.missing.iter().any(|m| m.contains("IORING")), "{:?}", caps.missing);
    assert_eq!(q.uring_stats().recv_arms, 1);
    assert!(!q.send_zc(), "SEND_ZC is opt-in");
    assert_eq!(q.local_addr().ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
}

fn plain_batch(cfg: fn() -> UringConfig) {
    let mut rx = open!(cfg().with_gro(false));
    let mut tx = open!(cfg().with_gso(false));
    let dst = rx.local_addr();
    let outs: Vec<Out> = (0..50).map(|i| Out::new(dst, pattern(i, 1 + i as usize * 29))).collect();
    assert_eq!(send_all(&mut tx, &outs), vec![50]);
    let got = recv_n(&mut rx, 50, T);
    assert_eq!(flatten(&got), expected(&outs), "every datagram, in order, byte for byte");
    assert!(got
        .iter()
        .all(|d| d.meta.src == tx.local_addr() && d.meta.segment_size == d.data.len()));
    let s = tx.stats();
    assert_eq!((s.tx_datagrams, s.tx_errors), (50, 0));
    assert!(s.tx_calls >= 2, "two rounds (32 + 18), at least one enter each: {s:?}");
    let r = rx.stats();
    assert_eq!((r.rx_datagrams, r.rx_dropped), (50, 0));
    assert_eq!(r.rx_bytes, outs.iter().map(|o| o.data.len() as u64).sum::<u64>());
}

#[test]
fn plain_batch_v4() {
    plain_batch(v4);
}

#[test]
fn plain_batch_v6() {
    plain_batch(v6);
}

fn gso_without_gro(cfg: fn() -> UringConfig) {
    let mut rx = open!(cfg().with_gro(false));
    let mut tx = open!(cfg());
    assert!(tx.capabilities().gso);
    let outs = [train(rx.local_addr(), 1)];
    assert_eq!(send_all(&mut tx, &outs), vec![1]);
    let got = recv_n(&mut rx, 11, T);
    assert_eq!(sizes(&got), [vec![1200; 10], vec![500]].concat(), "exact boundaries");
    assert_eq!(flatten(&got), expected(&outs));
    let s = tx.stats();
    assert_eq!((s.tx_datagrams, s.tx_bytes), (11, 12_500));
    assert_eq!(s.tx_calls, 1, "one SQE, one enter");
}

#[test]
fn gso_train_without_gro_v4() {
    gso_without_gro(v4);
}

#[test]
fn gso_train_without_gro_v6() {
    gso_without_gro(v6);
}

fn gso_with_gro(cfg: fn() -> UringConfig) {
    let mut rx = open!(cfg());
    let mut tx = open!(cfg());
    assert!(rx.capabilities().gro && tx.capabilities().gso);
    let outs = [train(rx.local_addr(), 2), train(rx.local_addr(), 3)];
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 22, T);
    assert_eq!(flatten(&got), expected(&outs), "same datagrams, same bytes");
    assert_eq!(sizes(&got), vec![12_500, 12_500], "each train arrives as one GRO buffer");
    assert!(got.iter().all(|d| d.meta.segment_size == 1200), "GRO segment size reported");
    assert_eq!(rx.stats().rx_datagrams, 22);
}

#[test]
fn gso_train_with_gro_v4() {
    gso_with_gro(v4);
}

#[test]
fn gso_train_with_gro_v6() {
    gso_with_gro(v6);
}

#[test]
fn long_train_is_split_at_the_segment_limit() {
    let mut rx = open!(v4().with_gro(false));
    let mut tx = open!(v4());
    let outs = [Out::new(rx.local_addr(), pattern(4, 100 * 600)).gso(600)];
    send_all(&mut tx, &outs);
    assert_eq!(flatten(&recv_n(&mut rx, 100, T)), expected(&outs));
    let s = tx.stats();
    assert_eq!((s.tx_datagrams, s.tx_errors), (100, 0), "64 + 36 as two linked SQEs");
}

fn ecn_round_trip(rx_cfg: UringConfig, tx_cfg: UringConfig) {
    let mut rx = open!(rx_cfg.with_gro(false));
    let mut tx = open!(tx_cfg);
    assert!(rx.capabilities().ecn && tx.capabilities().ecn);
    let dst = rx.local_addr();
    let marks = [Ecn::Ect0, Ecn::Ect1, Ecn::Ce, Ecn::NotEct];
    let outs: Vec<Out> = marks
        .iter()
        .enumerate()
        .map(|(i, &m)| Out::new(dst, pattern(i as u32, 64)).ecn(m))
        .collect();
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 4, T);
    assert_eq!(flatten(&got), expected(&outs));
    let seen: Vec<Ecn> = got.iter().map(|d| d.meta.ecn).collect();
    assert_eq!(seen, marks, "each ECN codepoint survives the round trip");
}

#[test]
fn ecn_marks_round_trip_v4() {
    ecn_round_trip(v4(), v4());
}

#[test]
fn ecn_marks_round_trip_v6() {
    ecn_round_trip(v6(), v6());
}

#[test]
fn pktinfo_reports_the_destination_and_source_can_be_chosen() {
    // Bound to the wildcard, so only pktinfo can tell which address a datagram was sent to.
    let mut rx = open!(UringConfig::new("0.0.0.0:0".parse().unwrap()).with_gro(false));
    let mut tx = open!(v4());
    let port = rx.local_addr().port();
    let to = |ip: &str| SocketAddr::new(ip.parse().unwrap(), port);
    let src: IpAddr = "127.0.0.9".parse().unwrap();
    let outs = [Out::new(to("127.0.0.1"), vec![1]), Out::new(to("127.0.0.3"), vec![2]).src(src)];
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 2, T);
    assert_eq!(flatten(&got), expected(&outs));
    assert_eq!(got[0].meta.dst_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(got[1].meta.dst_ip, Some("127.0.0.3".parse().unwrap()));
    assert_eq!(got[1].meta.src.ip(), src, "IP_PKTINFO on transmit chose the source");

    let mut rx6 = open!(UringConfig::new("[::]:0".parse().unwrap()).with_gro(false));
    let mut tx6 = open!(v6());
    let dst6 = SocketAddr::new("::1".parse().unwrap(), rx6.local_addr().port());
    send_all(&mut tx6, &[Out::new(dst6, vec![3])]);
    let got6 = recv_n(&mut rx6, 1, T);
    assert_eq!(got6.len(), 1);
    assert_eq!(got6[0].meta.dst_ip, Some("::1".parse().unwrap()));
}

#[test]
fn multishot_rearms_after_the_buffer_ring_runs_dry() {
    // Four provided buffers; 40 datagrams arrive before the receiver looks.
    let mut rx = open!(v4().with_gro(false).with_buf_ring_entries(4).unwrap());
    let mut tx = open!(v4().with_gso(false));
    let dst = rx.local_addr();
    let outs: Vec<Out> = (0..40).map(|i| Out::new(dst, pattern(i, 300 + i as usize))).collect();
    send_all(&mut tx, &outs);
    // Let the kernel run the receive's task work until it has filled all four buffers.
    std::thread::sleep(Duration::from_millis(20));
    let got = recv_n(&mut rx, 40, T);
    assert_eq!(
        flatten(&got),
        expected(&outs),
        "none lost, none reordered: they waited in SO_RCVBUF"
    );
    let u = rx.uring_stats();
    assert!(u.recv_enobufs >= 1, "the ring ran dry at least once: {u:?}");
    assert!(u.recv_arms >= 2, "and was re-armed: {u:?}");
    assert_eq!(rx.stats().rx_dropped, 0);
}

#[test]
fn received_buffers_outlive_the_next_call_only() {
    let mut rx = open!(v4().with_gro(false));
    let mut tx = open!(v4().with_gso(false));
    let outs: Vec<Out> = (0..3).map(|i| Out::new(rx.local_addr(), pattern(i, 100))).collect();
    send_all(&mut tx, &outs);
    let mut batch = RxBatch::new(8);
    let deadline = Instant::now() + T;
    while batch.datagram_count() < 3 && Instant::now() < deadline {
        if rx.recv(&mut batch).unwrap() == 0 {
            rx.wait(Some(Duration::from_millis(10)), false).unwrap();
        }
    }
    assert_eq!(batch.len(), 3, "all three in one batch");
    // Decrypt-in-place style write into the lent buffer, then drop the queue first: the
    // buffers are the engine's until it hands them back, and stay valid.
    for d in batch.iter_mut() {
        d.data_mut()[0] ^= 0xff;
    }
    drop(rx);
    let firsts: Vec<u8> = batch.iter().map(|d| d.data()[0]).collect();
    let want: Vec<u8> = outs.iter().map(|o| o.data[0] ^ 0xff).collect();
    assert_eq!(firsts, want);
}

#[test]
fn truncated_datagram_is_dropped_and_counted() {
    let mut rx = open!(v4().with_gro(false).with_max_datagram_size(1000).unwrap());
    let mut tx = open!(v4());
    let dst = rx.local_addr();
    let outs = [Out::new(dst, pattern(1, 1001)), Out::new(dst, pattern(2, 1000))];
    send_all(&mut tx, &outs);
    let got = recv_n(&mut rx, 1, T);
    assert_eq!(flatten(&got), vec![outs[1].data.clone()]);
    assert_eq!((rx.stats().rx_dropped, rx.stats().rx_datagrams), (1, 1));
}

#[test]
fn bad_source_address_drops_only_that_buffer_and_keeps_order() {
    let mut rx = open!(v4().with_gro(false));
    let mut tx = open!(v4());
    let dst = rx.local_addr();
    // 198.51.100.1 (TEST-NET-2) is not local: the kernel refuses that one send, which ends the
    // linked chain; the policy drops it and sends the rest.
    let bogus: IpAddr = "198.51.100.1".parse().unwrap();
    let outs = [
        Out::new(dst, pattern(1, 50)),
        Out::new(dst, pattern(2, 3000)).gso(1000).src(bogus),
        Out::new(dst, pattern(3, 50)),
        Out::new(dst, pattern(4, 60)),
    ];
    assert_eq!(send_all(&mut tx, &outs), vec![4]);
    let got = flatten(&recv_n(&mut rx, 3, T));
    assert_eq!(got, vec![outs[0].data.clone(), outs[2].data.clone(), outs[3].data.clone()]);
    let s = tx.stats();
    assert_eq!((s.tx_datagrams, s.tx_errors), (3, 3), "the train's 3 datagrams counted");
    assert!(tx.capabilities().gso, "GSO not blamed");
}

#[test]
fn send_zc_is_byte_exact() {
    let mut rx = open!(v4());
    let mut tx = open!(v4().with_send_zc(true));
    if !tx.send_zc() {
        eprintln!("SKIPPED: SEND_ZC unavailable: {:?}", tx.capabilities().missing);
        return;
    }
    let dst = rx.local_addr();
    let mut outs: Vec<Out> = (0..6).map(|i| train(dst, 10 + i)).collect();
    outs.push(Out::new(dst, pattern(99, 777)));
    outs.push(Out::new(dst, pattern(98, 100 * 600)).gso(600)); // split into 64 + 36
    let total: usize = expected(&outs).len();
    // Several rounds, reusing the same pool buffers: a buffer handed back before the kernel
    // was done with it would show up as corrupted bytes in a later round.
    for round in 0..3 {
        send_all(&mut tx, &outs);
        let got = recv_n(&mut rx, total, T);
        assert_eq!(flatten(&got), expected(&outs), "round {round}");
    }
    let u = tx.uring_stats();
    assert!(u.zc_sends >= 3 * outs.len() as u64, "{u:?}");
    eprintln!("send_zc: {u:?} (loopback copies: zc_copied counts it)");
}

#[test]
fn interop_with_the_udp_backend_both_ways() {
    // uring sends, udp receives.
    let mut urx = udp(UdpConfig::new("127.0.0.1:0".parse().unwrap()));
    let mut utx = udp(UdpConfig::new("127.0.0.1:0".parse().unwrap()));
    let mut rx = open!(v4());
    let mut tx = open!(v4());
    let outs = [train(urx.local_addr(), 1), Out::new(urx.local_addr(), pattern(2, 99))];
    send_all(&mut tx, &outs);
    assert_eq!(flatten(&recv_n(&mut urx, 12, T)), expected(&outs));
    // udp sends, uring receives.
    let outs = [train(rx.local_addr(), 3), Out::new(rx.local_addr(), pattern(4, 1)).ecn(Ecn::Ect0)];
    send_all(&mut utx, &outs);
    let got = recv_n(&mut rx, 12, T);
    assert_eq!(flatten(&got), expected(&outs));
    assert_eq!(got.last().map(|d| d.meta.ecn), Some(Ecn::Ect0));
    assert!(got.iter().all(|d| d.meta.src == utx.local_addr()));
}

#[test]
fn reuseport_group_shares_a_port() {
    let mut group = match UringQueue::open_group(&v4().with_gro(false), 2) {
        Ok(g) => g,
        Err(e) if e.to_string().starts_with("io_uring unavailable") => {
            eprintln!("SKIPPED: {e}");
            return;
        }
        Err(e) => panic!("open group: {e}"),
    };
    let port = group[0].local_addr().port();
    assert_eq!(group[1].local_addr().port(), port);
    assert!(group.iter().all(|q| q.config().udp().reuse_port()));
    // 32 senders (32 flows, hashed over the two sockets); each sends one tagged datagram.
    let dst = group[0].local_addr();
    let mut senders: Vec<UdpQueue> =
        (0..32).map(|_| udp(UdpConfig::new("127.0.0.1:0".parse().unwrap()))).collect();
    for (i, s) in senders.iter_mut().enumerate() {
        send_all(s, &[Out::new(dst, vec![i as u8; 10])]);
    }
    let mut seen = vec![0u32; 32];
    let mut per_queue = [0usize; 2];
    let deadline = Instant::now() + T;
    while per_queue.iter().sum::<usize>() < 32 && Instant::now() < deadline {
        for (k, q) in group.iter_mut().enumerate() {
            let got = recv_n(q, 1, Duration::from_millis(20));
            per_queue[k] += got.len();
            for d in got {
                seen[usize::from(d.data[0])] += 1;
            }
        }
    }
    assert!(seen.iter().all(|&n| n == 1), "each datagram reached exactly one queue: {seen:?}");
    assert!(per_queue.iter().all(|&n| n > 0), "the kernel spread 32 flows: {per_queue:?}");
}

#[test]
fn wait_times_out_and_wakes_on_data() {
    let mut rx = open!(v4());
    let mut tx = open!(v4());
    let mut batch = RxBatch::new(4);
    rx.wait(Some(Duration::from_millis(20)), false).unwrap(); // nothing: times out
    assert_eq!(rx.recv(&mut batch).unwrap(), 0);
    send_all(&mut tx, &[Out::new(rx.local_addr(), vec![42; 5])]);
    let deadline = Instant::now() + T;
    let mut n = 0;
    while n == 0 && Instant::now() < deadline {
        rx.wait(Some(Duration::from_millis(500)), false).unwrap();
        n = rx.recv(&mut batch).unwrap();
    }
    assert_eq!(n, 1);
    assert_eq!(batch.iter().next().map(|d| d.data().to_vec()), Some(vec![42; 5]));
    tx.wait(Some(Duration::from_millis(20)), true).unwrap(); // writable: returns
}

#[test]
fn send_never_blocks_and_keeps_order() {
    // A receiver with a tiny socket buffer that does not read while 3000 datagrams are sent.
    let rx_cfg = v4().with_recv_buffer(Some(4096)).unwrap().with_gro(false);
    let mut rx = open!(rx_cfg.with_buf_ring_entries(8).unwrap());
    let mut tx = open!(v4().with_send_buffer(Some(4096)).unwrap().with_gso(false));
    let dst = rx.local_addr();
    let (total, mut pushed, mut left) = (3000u32, 0u32, 0usize);
    let mut batch = TxBatch::new();
    for _ in 0..10_000 {
        while pushed < total && batch.len() < 64 {
            let out = Out::new(dst, [pushed.to_be_bytes(), [7; 4]].concat());
            push(&mut tx, &mut batch, &out);
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
    for _ in 0..1000 {
        if rx.recv(&mut batch).unwrap() == 0 {
            break;
        }
        seqs.extend(batch.iter().map(|d| u32::from_be_bytes(d.data()[..4].try_into().unwrap())));
    }
    assert!(!seqs.is_empty());
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order kept: {seqs:?}");
    assert!(seqs.iter().all(|&s| s < total));
}

#[test]
fn gso_failing_at_runtime_falls_back_without_loss() {
    let mut rx = open!(v4().with_gro(false));
    let mut tx = open!(v4());
    // With UDP checksums off the kernel refuses GSO sends (EINVAL) but sends plain datagrams,
    // like a device that cannot segment; the error comes back through the SQE's result.
    crate::udp::socket::set_int(tx.as_fd(), libc::SOL_SOCKET, libc::SO_NO_CHECK, 1).unwrap();
    let outs = [train(rx.local_addr(), 6), train(rx.local_addr(), 7)];
    send_all(&mut tx, &outs);
    assert_eq!(flatten(&recv_n(&mut rx, 22, T)), expected(&outs), "no datagram lost");
    let caps = tx.capabilities();
    assert!(!caps.gso && caps.max_gso_segments == 1, "GSO turned off");
    assert!(caps.missing.iter().any(|m| m.contains("UDP_SEGMENT")), "{:?}", caps.missing);
    assert_eq!((tx.stats().tx_datagrams, tx.stats().tx_errors), (22, 0));
}

#[test]
fn exhausted_receive_pool_is_an_error_not_a_spin() {
    // Ring of 2, pool of 2 + 2 × 1: four buffers in all.
    let cfg = v4().with_gro(false).with_buf_ring_entries(2).unwrap();
    let udp_cfg = cfg.udp().clone().with_rx_batch(1).unwrap().with_rx_pool(1).unwrap();
    let mut rx = open!(cfg.with_udp(udp_cfg));
    let mut tx = open!(v4().with_gso(false));
    let outs: Vec<Out> = (0..8).map(|i| Out::new(rx.local_addr(), pattern(i, 10))).collect();
    send_all(&mut tx, &outs);
    // Hold every received buffer in its own batch.
    let mut held: Vec<RxBatch> = Vec::new();
    let mut err = None;
    let deadline = Instant::now() + T;
    while err.is_none() && Instant::now() < deadline && held.len() < 8 {
        let mut b = RxBatch::new(1);
        match rx.recv(&mut b) {
            Ok(0) => rx.wait(Some(Duration::from_millis(10)), false).unwrap(),
            Ok(_) => held.push(b),
            Err(e) => err = Some(e),
        }
    }
    assert_eq!(held.len(), 4, "the pool's four buffers, then nothing");
    let e = err.expect("an error once every buffer is held");
    assert!(e.to_string().contains("pool exhausted"), "{e}");
    // Handing one batch back lets receiving go on.
    let mut b = held.pop().unwrap();
    let mut n = 0;
    for _ in 0..100 {
        n = rx.recv(&mut b).unwrap();
        if n > 0 {
            break;
        }
        rx.wait(Some(Duration::from_millis(10)), false).unwrap();
    }
    assert_eq!(n, 1);
}

#[test]
fn wait_with_wakes_on_the_waker() {
    let mut rx = open!(v4());
    let w = std::sync::Arc::new(crate::Waker::new().unwrap());
    let w2 = std::sync::Arc::clone(&w);
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        w2.wake();
    });
    // Woken from another thread, not by the 30 s timeout.
    let t = Instant::now();
    rx.wait_with(Some(Duration::from_secs(30)), false, &w).unwrap();
    assert!(t.elapsed() < Duration::from_secs(15), "the wake ended the wait");
    h.join().unwrap();
    // The queue cleared the waker after it fired.
    let mut pfd = libc::pollfd { fd: w.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one live pollfd for the call.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0, "eventfd reset");
    // The wake was consumed: the next wait_with sleeps until data arrives instead.
    let mut tx = open!(v4());
    send_all(&mut tx, &[Out::new(rx.local_addr(), vec![1, 2, 3])]);
    let mut batch = RxBatch::new(4);
    let deadline = Instant::now() + T;
    let mut n = 0;
    while n == 0 && Instant::now() < deadline {
        rx.wait_with(Some(Duration::from_millis(500)), false, &w).unwrap();
        n = rx.recv(&mut batch).unwrap();
    }
    assert_eq!(n, 1);
    assert!(rx.uring_stats().wait_enters >= 1);
}

#[test]
fn dual_stack_socket_reports_ipv4_peers_as_ipv4() {
    let mut rx = open!(UringConfig::new("[::]:0".parse().unwrap()).with_gro(false));
    let mut tx = open!(v4().with_gso(false));
    let dst = SocketAddr::new("127.0.0.1".parse().unwrap(), rx.local_addr().port());
    send_all(&mut tx, &[Out::new(dst, pattern(5, 33)).ecn(Ecn::Ect1)]);
    let got = recv_n(&mut rx, 1, T);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, pattern(5, 33));
    assert_eq!(got[0].meta.src, tx.local_addr(), "an IPv4 address, not ::ffff:127.0.0.1");
    assert_eq!(got[0].meta.dst_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(got[0].meta.ecn, Ecn::Ect1);
}
