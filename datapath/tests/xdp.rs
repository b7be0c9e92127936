//! AF_XDP end to end, as root: two network namespaces joined by a veth pair
//! (`scripts/netns.sh`), an `XdpQueue` on side a, a plain `UdpQueue` on side b, thousands of
//! datagrams both ways, byte-exact, in generic and native mode, with and without loss; ARP and
//! ICMP keep working while the program is attached.
//!
//! Skips (with the reason printed) only when not root, when AF_XDP is missing, or when a tool
//! the setup needs (`ip`, `ethtool`, `nft` for the loss test) is absent, and fails instead
//! under `PEREGRINE_REQUIRE_ALL=1` (`peregrine_datapath::require`). Traffic stays inside the
//! namespaces each test creates; they are removed by a drop guard.

// Tests bound their loops in wall-clock time; only they read the clock.
#![allow(clippy::disallowed_methods)]

mod netns;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use netns::{icmp_echo, in_ns, NetnsPair};
use peregrine_datapath::require::xdp_netns;
use peregrine_datapath::udp::{UdpConfig, UdpQueue};
use peregrine_datapath::xdp::{XdpConfig, XdpMode, XdpQueue};
use peregrine_datapath::{Ecn, Queue, RxBatch, TxBatch, Waker};

const PAYLOAD: usize = 1200;

/// The payload of datagram `seq`: its number, then bytes that depend on it and the position.
fn payload(seq: u32, len: usize) -> Vec<u8> {
    let mut v = seq.to_le_bytes().to_vec();
    v.extend((4..len).map(|i| (seq.wrapping_mul(131).wrapping_add(i as u32 * 7) % 251) as u8));
    v
}

/// Checks a received datagram byte for byte and returns its sequence number.
fn check(data: &[u8]) -> u32 {
    assert!(data.len() >= 4, "short datagram of {} bytes", data.len());
    let seq = u32::from_le_bytes(data[..4].try_into().unwrap());
    assert_eq!(data, &payload(seq, data.len())[..], "datagram {seq} differs");
    seq
}

fn push(q: &mut dyn Queue, batch: &mut TxBatch, dst: SocketAddr, data: &[u8], ecn: Ecn) {
    let mut b = q.alloc_tx().expect("a transmit buffer");
    assert!(b.extend_from_slice(data));
    b.meta.dst = dst;
    b.meta.ecn = ecn;
    batch.push(b);
}

/// Sends the whole batch, bounded in time.
fn flush(q: &mut dyn Queue, batch: &mut TxBatch) {
    let end = Instant::now() + Duration::from_secs(2);
    while !batch.is_empty() {
        q.send(batch).expect("send");
        assert!(Instant::now() < end, "transmit stuck with {} buffers", batch.len());
    }
}

/// Receives everything ready on `q` and returns the sequence numbers with their sources.
fn drain(q: &mut dyn Queue, rx: &mut RxBatch) -> Vec<(u32, SocketAddr, Ecn)> {
    let mut out = Vec::new();
    for _ in 0..64 {
        let n = q.recv(rx).expect("recv");
        if n == 0 {
            break;
        }
        for d in rx.iter() {
            for seg in d.segments() {
                out.push((check(seg), d.meta.src, d.meta.ecn));
            }
        }
    }
    out
}

struct Pair {
    net: NetnsPair,
    xdp: XdpQueue,
    udp: UdpQueue,
}

/// `copy`: the older path that copies payloads between pool buffers and UMEM frames (with
/// software GSO); otherwise UMEM frames are lent (the default).
fn open_pair(tag: &str, mode: XdpMode, loss: u32, copy: bool) -> Option<Pair> {
    let net = NetnsPair::up(tag, loss)?;
    let (if_a, ns_a, ns_b) = (net.if_a.clone(), net.ns_a.clone(), net.ns_b.clone());
    let xdp = in_ns(&ns_a, move || {
        let cfg = XdpConfig::new(&if_a, "[::]:0".parse().unwrap()).with_mode(mode);
        XdpQueue::open(&cfg.with_payload_copy(copy))
    })
    .unwrap_or_else(|e| panic!("XdpQueue::open ({mode}): {e}"));
    let udp = in_ns(&ns_b, || UdpQueue::open(&UdpConfig::new("[::]:0".parse().unwrap())))
        .expect("UdpQueue::open");
    let caps = xdp.capabilities();
    println!(
        "xdp queue: mode {}, zero-copy {}, missing {:?}",
        xdp.mode(),
        caps.zero_copy,
        caps.missing
    );
    if mode != XdpMode::Auto {
        assert_eq!(xdp.mode(), mode);
    }
    // What was not obtained is reported, never hidden: veth has no zero-copy AF_XDP.
    let says = |p: &str| caps.missing.iter().any(|m| m.starts_with(p));
    assert!(caps.zero_copy || says("zero-copy: EOPNOTSUPP (copy mode)"), "{:?}", caps.missing);
    assert_eq!(says("native XDP"), xdp.mode() == XdpMode::Generic, "{:?}", caps.missing);
    assert!(!caps.gro && caps.ecn && caps.pktinfo && caps.ipv6);
    assert_eq!(caps.gso, copy, "a lent frame holds one datagram: GSO only with payload copy");
    assert_eq!(xdp.lends_frames(), !copy);
    assert_eq!(caps.max_udp_payload, 1500 - 48, "MTU 1500, dual-stack bind: IPv6 headers");
    Some(Pair { net, xdp, udp })
}

/// Side b sends `n` datagrams to side a in windows of `window`; side a checks each and echoes it
/// back; side b checks the echoes. Returns (received by a, echoes received by b).
fn echo(p: &mut Pair, a_ip: IpAddr, n: u32, window: u32, lossy: bool) -> (u32, u32) {
    let xdp_addr = SocketAddr::new(a_ip, p.xdp.local_addr().port());
    let mut seen_a = vec![false; n as usize];
    let mut seen_b = vec![false; n as usize];
    let (mut got_a, mut got_b) = (0u32, 0u32);
    let mut rx_a = RxBatch::new(64);
    let mut rx_b = RxBatch::new(64);
    let mut next = 0u32;
    let deadline = Instant::now() + Duration::from_secs(60);
    while next < n {
        let end = (next + window).min(n);
        let mut batch = TxBatch::new();
        for seq in next..end {
            push(&mut p.udp, &mut batch, xdp_addr, &payload(seq, PAYLOAD), Ecn::Ect0);
        }
        flush(&mut p.udp, &mut batch);
        let want = end;
        let window_end = Instant::now() + Duration::from_millis(if lossy { 200 } else { 3000 });
        // With loss, a window ends once nothing has arrived for a while.
        let mut last_progress = Instant::now();
        while (got_b < want) && Instant::now() < window_end {
            if lossy && last_progress.elapsed() > Duration::from_millis(30) {
                break;
            }
            let before = got_a + got_b;
            let mut echo_batch = TxBatch::new();
            for (seq, src, ecn) in drain(&mut p.xdp, &mut rx_a) {
                assert!(seq < end, "unexpected sequence {seq}");
                assert!(!std::mem::replace(&mut seen_a[seq as usize], true), "duplicate {seq}");
                assert_eq!(ecn, Ecn::Ect0, "ECN read from the IP header");
                got_a += 1;
                push(&mut p.xdp, &mut echo_batch, src, &payload(seq, PAYLOAD), Ecn::NotEct);
            }
            flush(&mut p.xdp, &mut echo_batch);
            for (seq, src, _) in drain(&mut p.udp, &mut rx_b) {
                assert_eq!(src, xdp_addr, "the echo comes from the XDP queue's address");
                assert!(
                    !std::mem::replace(&mut seen_b[seq as usize], true),
                    "duplicate echo {seq}"
                );
                got_b += 1;
            }
            if got_a + got_b > before {
                last_progress = Instant::now();
            }
            if got_b < want {
                let _ = p.udp.wait(Some(Duration::from_millis(1)), false);
            }
        }
        if !lossy {
            assert_eq!(got_b, want, "echoes missing after window ending at {end}");
        }
        assert!(Instant::now() < deadline, "exchange too slow");
        next = end;
    }
    (got_a, got_b)
}

/// Side a starts: the XDP queue sends to side b with no neighbour learned yet (the kernel's
/// neighbour table has to be consulted, and resolution triggered).
fn xdp_first(p: &mut Pair, b_ip: IpAddr, n: u32) {
    let udp_addr = SocketAddr::new(b_ip, p.udp.local_addr().port());
    let mut rx_b = RxBatch::new(64);
    let end = Instant::now() + Duration::from_secs(5);
    // Until the next hop resolves, datagrams are dropped and counted as unresolved.
    let mut first = None;
    while first.is_none() {
        assert!(Instant::now() < end, "next hop never resolved: {:?}", p.xdp.xdp_stats());
        let mut batch = TxBatch::new();
        push(&mut p.xdp, &mut batch, udp_addr, &payload(u32::MAX, PAYLOAD), Ecn::NotEct);
        flush(&mut p.xdp, &mut batch);
        std::thread::sleep(Duration::from_millis(5));
        first = drain(&mut p.udp, &mut rx_b).into_iter().next();
    }
    let s = p.xdp.xdp_stats();
    assert!(s.neigh_kernel + s.neigh_learned > 0, "resolved through the resolver: {s:?}");
    let mut seen = vec![false; n as usize];
    let mut got = 0;
    for start in (0..n).step_by(128) {
        let stop = (start + 128).min(n);
        let mut batch = TxBatch::new();
        for seq in start..stop {
            push(&mut p.xdp, &mut batch, udp_addr, &payload(seq, PAYLOAD), Ecn::Ect1);
        }
        flush(&mut p.xdp, &mut batch);
        let wend = Instant::now() + Duration::from_secs(3);
        while got < stop && Instant::now() < wend {
            for (seq, src, ecn) in drain(&mut p.udp, &mut rx_b) {
                if seq == u32::MAX {
                    continue;
                }
                assert_eq!(src.port(), p.xdp.local_addr().port());
                assert_eq!(ecn, Ecn::Ect1, "ECN written into the IP header");
                assert!(!std::mem::replace(&mut seen[seq as usize], true), "duplicate {seq}");
                got += 1;
            }
        }
        assert_eq!(got, stop, "datagrams from the XDP queue missing");
    }

    if !p.xdp.capabilities().gso {
        // Lent frames: 200 datagrams written in place into the frames alloc_tx lends, without
        // a copy in user space.
        let copies = p.xdp.xdp_stats().tx_payload_copies;
        let mut batch = TxBatch::new();
        let base = 1_000_000u32;
        for k in 0..200u32 {
            let mut b = p.xdp.alloc_tx().expect("a transmit frame");
            let data = payload(base + k, PAYLOAD);
            b.spare()[..data.len()].copy_from_slice(&data);
            b.advance(data.len());
            b.meta.dst = udp_addr;
            batch.push(b);
            if batch.len() == 50 {
                flush(&mut p.xdp, &mut batch);
            }
        }
        assert_eq!(p.xdp.xdp_stats().tx_payload_copies, copies, "nothing copied by the queue");
        let mut seen = [false; 200];
        let mut got = 0;
        let wend = Instant::now() + Duration::from_secs(3);
        while got < 200 && Instant::now() < wend {
            for (seq, _, _) in drain(&mut p.udp, &mut rx_b) {
                let i = seq.checked_sub(base).expect("one of the 200") as usize;
                assert!(!std::mem::replace(&mut seen[i], true), "duplicate {i}");
                got += 1;
            }
        }
        assert_eq!(got, 200, "every datagram sealed in its frame arrived");
        return;
    }
    // GSO trains, segmented in software: 20 trains of 10 segments, the last of each shorter.
    let mut batch = TxBatch::new();
    let base = 1_000_000u32;
    for t in 0..20u32 {
        let mut b = p.xdp.alloc_tx().expect("a transmit buffer");
        for k in 0..10u32 {
            let len = if k == 9 { 700 } else { PAYLOAD };
            assert!(b.extend_from_slice(&payload(base + t * 10 + k, len)));
        }
        b.meta.dst = udp_addr;
        b.meta.segment_size = Some(PAYLOAD);
        batch.push(b);
    }
    flush(&mut p.xdp, &mut batch);
    let mut seen = [false; 200];
    let mut got = 0;
    let wend = Instant::now() + Duration::from_secs(3);
    while got < 200 && Instant::now() < wend {
        for (seq, _, _) in drain(&mut p.udp, &mut rx_b) {
            let i = seq.checked_sub(base).expect("a train segment") as usize;
            assert!(!std::mem::replace(&mut seen[i], true), "duplicate segment {i}");
            got += 1;
        }
    }
    assert_eq!(got, 200, "every segment of every train arrived");
}

fn full_exchange(tag: &str, mode: XdpMode, copy: bool) {
    let Some(mut p) = open_pair(tag, mode, 0, copy) else { return };
    let (a4, b4) = (p.net.ip4_a, p.net.ip4_b);
    xdp_first(&mut p, b4, 2000);
    // IPv6 too: the route and the neighbour (found by NDP, which passes to the kernel) come
    // from the kernel, nothing was learned from this peer yet.
    let kernel_before = p.xdp.xdp_stats().neigh_kernel;
    let b6 = p.net.ip6_b;
    xdp_first(&mut p, b6, 300);
    assert!(p.xdp.xdp_stats().neigh_kernel > kernel_before, "IPv6 next hop from the kernel");
    let udp_tx_before = p.udp.stats().tx_datagrams;
    let (got_a, got_b) = echo(&mut p, a4, 3000, 128, false);
    assert_eq!((got_a, got_b), (3000, 3000));
    let (a6, _b6) = (p.net.ip6_a, p.net.ip6_b);
    let (g6a, g6b) = echo(&mut p, a6, 1000, 128, false);
    assert_eq!((g6a, g6b), (1000, 1000), "IPv6 exchange");
    let sent_to_xdp = p.udp.stats().tx_datagrams - udp_tx_before;
    let s = p.xdp.xdp_stats();
    println!("{mode}: xdp stats {s:?}\nqueue {:?}", p.xdp.stats());
    assert_eq!(sent_to_xdp, 4000);
    assert_eq!(s.kernel_rx, 0, "nothing went through the kernel's UDP stack");
    assert_eq!(s.xsk_rx_frames, sent_to_xdp, "every datagram came through the XSK");
    assert_eq!(s.rx_invalid, 0, "every frame verified");
    assert_eq!(p.xdp.stats().rx_datagrams, sent_to_xdp);
    // Received payloads: lent in their frames, or (payload copy) copied once each.
    let (lent, copied) = if copy { (0, sent_to_xdp) } else { (sent_to_xdp, 0) };
    assert_eq!((s.rx_lent, s.rx_payload_copies), (lent, copied), "{s:?}");
    assert_eq!(s.xsk.rx_dropped + s.xsk.rx_ring_full + s.xsk.tx_invalid_descs, 0);

    // Everything else still reaches the kernel: ARP (neighbours flushed first) and ICMP echo,
    // and UDP to another port.
    p.net.flush_neighbours();
    let rtt = in_ns(&p.net.ns_b, move || icmp_echo(a4, 3));
    assert!(rtt.is_ok(), "ping through the XDP-attached interface: {rtt:?}");
    let other = in_ns(&p.net.ns_a, || std::net::UdpSocket::bind("0.0.0.0:0")).unwrap();
    other.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let other_port = other.local_addr().unwrap().port();
    let sender = in_ns(&p.net.ns_b, || std::net::UdpSocket::bind("0.0.0.0:0")).unwrap();
    sender.send_to(b"not for xdp", (a4, other_port)).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = other.recv_from(&mut buf).expect("UDP to another port reaches the kernel");
    assert_eq!(&buf[..n], b"not for xdp");
    assert_eq!(p.xdp.xdp_stats().xsk_rx_frames, s.xsk_rx_frames, "not redirected");

    // The program hangs on a BPF link: closing the queue detaches it.
    let link = |net: &NetnsPair| {
        let out = std::process::Command::new("ip")
            .args(["-n", &net.ns_a, "-d", "link", "show", &net.if_a])
            .output()
            .expect("ip link show");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(link(&p.net).contains("prog/xdp"), "attached while open: {}", link(&p.net));
    let Pair { net, xdp, udp } = p;
    drop(xdp);
    assert!(!link(&net).contains("prog/xdp"), "detached on drop: {}", link(&net));
    drop(udp);
}

#[test]
fn xdp_generic_mode_exchange() {
    if !xdp_netns(false) {
        return;
    }
    full_exchange("xg", XdpMode::Generic, false);
}

#[test]
fn xdp_native_mode_exchange() {
    if !xdp_netns(false) {
        return;
    }
    full_exchange("xn", XdpMode::Native, false);
}

/// The older path: payloads copied between pool buffers and UMEM frames, GSO trains split in
/// software.
#[test]
fn xdp_native_mode_exchange_with_payload_copy() {
    if !xdp_netns(false) {
        return;
    }
    full_exchange("xp", XdpMode::Native, true);
}

#[test]
fn xdp_exchange_with_loss() {
    if !xdp_netns(true) {
        return;
    }
    let Some(mut p) = open_pair("xl", XdpMode::Generic, 2, false) else { return };
    let a4 = p.net.ip4_a;
    let n = 3000;
    let (got_a, got_b) = echo(&mut p, a4, n, 64, true);
    let s = p.xdp.xdp_stats();
    println!("loss: a got {got_a}/{n}, b got {got_b} echoes of {got_a}; {s:?}");
    // Each direction loses about 2%: far from none, far from most.
    assert!(got_a < n && got_a > n * 9 / 10, "side a received {got_a} of {n}");
    assert!(got_b < got_a && got_b > got_a * 9 / 10, "side b received {got_b} of {got_a}");
    assert_eq!(s.xsk_rx_frames, u64::from(got_a), "what arrived came through the XSK");
    assert_eq!(p.xdp.stats().tx_datagrams, u64::from(got_a), "one echo per received datagram");
    assert_eq!(s.kernel_rx, 0);
    assert_eq!(s.rx_invalid, 0);
}

#[test]
fn xdp_partial_checksums_are_accepted_and_counted() {
    if !xdp_netns(false) {
        return;
    }
    let Some(mut p) = open_pair("xc", XdpMode::Generic, 0, false) else { return };
    // Side b leaves its UDP checksums partial again (for an offload that a veth never does):
    // the frames reach the XSK with only the pseudo-header sum in the checksum field, and are
    // accepted (QUIC's AEAD authenticates the payload) and counted, not dropped.
    let ok = std::process::Command::new("ip")
        .args(["netns", "exec", &p.net.ns_b, "ethtool", "-K", &p.net.if_b, "tx", "on"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ethtool -K tx on");
    let dst = SocketAddr::new(p.net.ip4_a, p.xdp.local_addr().port());
    let n = 200;
    let mut batch = TxBatch::new();
    for seq in 0..n {
        push(&mut p.udp, &mut batch, dst, &payload(seq, PAYLOAD), Ecn::NotEct);
        if batch.len() == 32 {
            flush(&mut p.udp, &mut batch);
        }
    }
    flush(&mut p.udp, &mut batch);
    let mut rx = RxBatch::new(64);
    let end = Instant::now() + Duration::from_secs(3);
    let mut delivered = 0;
    while p.xdp.xdp_stats().xsk_rx_frames < u64::from(n) && Instant::now() < end {
        delivered += drain(&mut p.xdp, &mut rx).len();
        let _ = p.xdp.wait(Some(Duration::from_millis(5)), false);
    }
    let s = p.xdp.xdp_stats();
    println!("partial checksums: {s:?}");
    assert_eq!(s.xsk_rx_frames, u64::from(n), "every frame reached the XSK");
    assert_eq!(s.rx_csum_partial, u64::from(n), "every frame had a partial checksum");
    assert_eq!((s.rx_invalid, s.rx_bad_checksum, s.rx_malformed), (0, 0, 0));
    assert_eq!(delivered, n as usize, "every partial-checksum datagram was delivered");
    let q = p.xdp.stats();
    assert_eq!((q.rx_dropped, q.rx_csum_partial), (0, u64::from(n)));
}

#[test]
fn xdp_queue_group_covers_every_rx_queue() {
    if !xdp_netns(false) {
        return;
    }
    let Some(net) = NetnsPair::up_with("xq", &["--queues", "2"]) else { return };
    let (if_a, ns_a) = (net.if_a.clone(), net.ns_a.clone());
    let mut group = in_ns(&ns_a, move || {
        let cfg = XdpConfig::new(&if_a, "0.0.0.0:0".parse().unwrap()).with_mode(XdpMode::Native);
        XdpQueue::open_group(&cfg, &[0, 1])
    })
    .expect("open_group");
    let port = group[0].local_addr().port();
    assert_eq!(group[1].local_addr().port(), port, "one port for the group");
    // Many flows (one socket each), so that side b's transmit queue choice spreads them.
    let senders: Vec<std::net::UdpSocket> = in_ns(&net.ns_b, || {
        (0..16).map(|_| std::net::UdpSocket::bind("0.0.0.0:0").unwrap()).collect()
    });
    let per = 100u32;
    let mut seq = 0u32;
    for s in &senders {
        for _ in 0..per {
            s.send_to(&payload(seq, PAYLOAD), (net.ip4_a, port)).unwrap();
            seq += 1;
        }
    }
    let total = u64::from(seq);
    let mut rx = RxBatch::new(64);
    let mut seen = vec![false; seq as usize];
    let mut got = 0u64;
    let end = Instant::now() + Duration::from_secs(5);
    while got < total && Instant::now() < end {
        for q in group.iter_mut() {
            for (s, _, _) in drain(q, &mut rx) {
                assert!(!std::mem::replace(&mut seen[s as usize], true), "duplicate {s}");
                got += 1;
            }
        }
    }
    let stats: Vec<_> = group.iter().map(|q| q.xdp_stats()).collect();
    println!(
        "per-queue XSK frames: {:?}",
        stats.iter().map(|s| s.xsk_rx_frames).collect::<Vec<_>>()
    );
    assert_eq!(got, total, "every datagram received by the group");
    assert_eq!(stats.iter().map(|s| s.xsk_rx_frames).sum::<u64>(), total, "all through XSKs");
    assert_eq!(stats.iter().map(|s| s.kernel_rx).sum::<u64>(), 0);
}

#[test]
fn xdp_fragments_reach_the_guard_socket() {
    if !xdp_netns(false) {
        return;
    }
    // Auto mode: native on veth (generic, with the reason in the capabilities, elsewhere).
    let Some(mut p) = open_pair("xf", XdpMode::Auto, 0, false) else { return };
    assert_ne!(p.xdp.mode(), XdpMode::Auto, "the mode in use is reported");
    // A datagram larger than the MTU leaves side b in IPv4 fragments; the program passes
    // fragments to the kernel, which reassembles them for the guard socket.
    let sender = in_ns(&p.net.ns_b, || std::net::UdpSocket::bind("0.0.0.0:0")).unwrap();
    let big = payload(7, 3000);
    sender.send_to(&big, (p.net.ip4_a, p.xdp.local_addr().port())).unwrap();
    let mut rx = RxBatch::new(8);
    let end = Instant::now() + Duration::from_secs(3);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < end {
        for d in {
            p.xdp.recv(&mut rx).unwrap();
            rx.iter()
        } {
            got.push((d.data().to_vec(), d.meta.src));
        }
        let _ = p.xdp.wait(Some(Duration::from_millis(5)), false);
    }
    assert_eq!(got.len(), 1, "the reassembled datagram was delivered");
    assert_eq!(got[0].0, big, "byte-exact");
    assert_eq!(
        got[0].1,
        sender.local_addr().map(|a| SocketAddr::new(p.net.ip4_b, a.port())).unwrap()
    );
    let s = p.xdp.xdp_stats();
    assert_eq!(s.kernel_rx, 1, "counted as arriving through the kernel: {s:?}");
    assert_eq!(s.xsk_rx_frames, 0, "fragments are not redirected");
}

#[test]
fn xdp_specific_address_leaves_other_addresses_alone() {
    if !xdp_netns(false) {
        return;
    }
    let Some(net) = NetnsPair::up("xa", 0) else { return };
    let ok = std::process::Command::new("ip")
        .args(["-n", &net.ns_a, "addr", "add", "10.203.0.3/24", "dev", &net.if_a])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "second address on side a");
    let if_a = net.if_a.clone();
    let mut xdp = in_ns(&net.ns_a, move || {
        let bind = "10.203.0.1:0".parse().unwrap();
        XdpQueue::open(&XdpConfig::new(&if_a, bind).with_mode(XdpMode::Generic))
    })
    .expect("XdpQueue::open");
    let port = xdp.local_addr().port();
    // Another service on the same port, another address of the same interface.
    let other = in_ns(&net.ns_a, || std::net::UdpSocket::bind(("10.203.0.3", port))).unwrap();
    other.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let sender = in_ns(&net.ns_b, || std::net::UdpSocket::bind("0.0.0.0:0")).unwrap();
    sender.send_to(&payload(1, PAYLOAD), ("10.203.0.3", port)).unwrap();
    let mut buf = vec![0u8; 2048];
    let (n, _) = other.recv_from(&mut buf).expect("the other service got its datagram");
    assert_eq!(check(&buf[..n]), 1);
    sender.send_to(&payload(2, PAYLOAD), (net.ip4_a, port)).unwrap();
    let mut rx = RxBatch::new(8);
    let end = Instant::now() + Duration::from_secs(2);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < end {
        got = drain(&mut xdp, &mut rx);
        let _ = xdp.wait(Some(Duration::from_millis(5)), false);
    }
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![2]);
    let s = xdp.xdp_stats();
    assert_eq!((s.xsk_rx_frames, s.rx_not_ours, s.kernel_rx), (1, 0, 0), "{s:?}");

    // A waker wakes a queue sleeping with nothing to receive.
    let waker = std::sync::Arc::new(Waker::new().unwrap());
    let w = std::sync::Arc::clone(&waker);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        w.wake();
    });
    let start = Instant::now();
    xdp.wait_with(Some(Duration::from_secs(10)), false, &waker).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5), "woken by the waker, not the timeout");
    t.join().unwrap();
}
