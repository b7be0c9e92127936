//! The ring itself: probing, multishot re-arm, buffer lifetimes, errors, pool exhaustion,
//! `SO_REUSEPORT`, waiting and waking.

use super::*;

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
fn reuseport_group_shares_a_port() {
    let mut group = match UringQueue::open_group(&v4().with_gro(false), 2) {
        Ok(g) => g,
        Err(e) if e.to_string().starts_with("io_uring unavailable") => {
            return crate::require::unavailable(e);
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

/// Blocks `io_uring_setup` for the calling thread only (seccomp filters and `no_new_privs`
/// are per thread), the way a container runtime's default profile does.
fn deny_io_uring_setup_in_this_thread() -> std::io::Result<()> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let nr = libc::SYS_io_uring_setup as u32;
    let mut prog = [
        // Load seccomp_data.nr (offset 0).
        libc::sock_filter { code: LD_W_ABS, jt: 0, jf: 0, k: 0 },
        libc::sock_filter { code: JEQ_K, jt: 0, jf: 1, k: nr },
        libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: 0x0005_0000 | libc::EPERM as u32 },
        libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: 0x7fff_0000 },
    ];
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_mut_ptr() };
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fprog` points at `prog`, both alive for the call; the kernel copies the filter.
    let rc = unsafe {
        libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const _, 0, 0)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[test]
fn io_uring_refused_by_seccomp_is_a_clear_error() {
    // A thread of its own: the filter dies with it.
    let r = std::thread::spawn(|| {
        if let Err(e) = deny_io_uring_setup_in_this_thread() {
            return Err(format!("cannot install a seccomp filter here: {e}"));
        }
        Ok(UringQueue::open(&v4()).map(drop).map_err(|e| e.to_string()))
    })
    .join()
    .unwrap();
    match r {
        Err(why) => crate::require::unavailable(why),
        Ok(Ok(())) => panic!("open succeeded although io_uring_setup is blocked"),
        Ok(Err(msg)) => {
            assert!(msg.starts_with("io_uring unavailable"), "{msg}");
            assert!(msg.contains("EPERM") && msg.contains("seccomp"), "{msg}");
            assert!(msg.contains("udp backend"), "says what to use instead: {msg}");
            eprintln!("refused as expected: {msg}");
        }
    }
    // This thread was not affected.
    assert!(try_open(&v4()).is_some());
}

/// A steered group picks the queue from the Destination Connection ID octet (octet 1 here, as
/// Peregrine's connection IDs carry the worker index there), not from the 4-tuple: the
/// datagrams of ONE sender socket (one 4-tuple, which plain SO_REUSEPORT hashes to one queue)
/// reach the queue their octet names, short and long headers alike.
#[test]
fn a_steered_group_routes_by_the_connection_id_octet() {
    let mut group = match UringQueue::open_steered_group(&v4().with_gro(false), 2, 1) {
        Ok(g) => g,
        Err(e) if e.to_string().starts_with("io_uring unavailable") => {
            eprintln!("SKIPPED: {e}");
            return;
        }
        Err(e) => panic!("open steered group: {e}"),
    };
    let mut tx = udp(UdpConfig::new("127.0.0.1:0".parse().unwrap()));
    let mut cases = crate::udp::tests::steering_cases();
    let dst = group[0].local_addr();
    let outs: Vec<Out> = cases.iter().map(|(d, _)| Out::new(dst, d.clone())).collect();
    send_all(&mut tx, &outs);
    let mut got: Vec<(Vec<u8>, usize)> = Vec::new();
    let deadline = Instant::now() + T;
    while got.len() < cases.len() && Instant::now() < deadline {
        for (k, q) in group.iter_mut().enumerate() {
            for d in recv_n(q, 1, Duration::from_millis(20)) {
                got.push((d.data.to_vec(), k));
            }
        }
    }
    got.sort();
    cases.sort();
    assert_eq!(got, cases);
}
