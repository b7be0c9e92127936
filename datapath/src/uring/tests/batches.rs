//! Batches over loopback: plain, GSO/GRO trains with exact boundaries, SEND_ZC, random
//! traffic, interop with the UDP backend.

use super::*;
use crate::uring::ring::TAG_SEND;

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

#[test]
fn send_zc_is_byte_exact() {
    let mut rx = open!(v4());
    let mut tx = open!(v4().with_send_zc(true));
    crate::require!(tx.send_zc(), "SEND_ZC unavailable: {:?}", tx.capabilities().missing);
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

/// Seeded random traffic, uring to uring, with a tiny buffer ring (constant re-arming) and a
/// tiny receive batch: every datagram arrives once, in order, byte for byte. A receive buffer
/// handed back to the ring too early, or a transmit buffer reused while the kernel still read
/// it, would show up as corrupted bytes.
#[test]
fn random_traffic_is_byte_exact_across_buffer_reuse() {
    use rand::{Rng, SeedableRng};
    for (gro, zc) in [(true, false), (false, false), (true, true)] {
        let mut rx = open!(v4().with_gro(gro).with_buf_ring_entries(8).unwrap());
        let mut tx = open!(v4().with_send_zc(zc));
        let dst = rx.local_addr();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut want, mut got) = (Vec::new(), Vec::new());
        let mut rb = RxBatch::new(3);
        for round in 0..60u32 {
            let mut outs = Vec::new();
            for k in 0..rng.gen_range(1..6u32) {
                let tag = round * 8 + k;
                let seg = rng.gen_range(1..1500usize);
                let segs = rng.gen_range(1..12usize);
                let len = seg * (segs - 1) + rng.gen_range(1..=seg);
                let ecn = [Ecn::NotEct, Ecn::Ect0, Ecn::Ect1][rng.gen_range(0..3)];
                let o = Out::new(dst, pattern(tag, len)).ecn(ecn);
                outs.push(if segs > 1 { o.gso(seg) } else { o });
            }
            send_all(&mut tx, &outs);
            want.extend(expected(&outs));
            let deadline = Instant::now() + T;
            while got.len() < want.len() && Instant::now() < deadline {
                if rx.recv(&mut rb).unwrap() == 0 {
                    rx.wait(Some(Duration::from_millis(10)), false).unwrap();
                    continue;
                }
                for d in rb.iter() {
                    got.extend(d.segments().map(<[u8]>::to_vec));
                }
            }
        }
        assert_eq!(got.len(), want.len(), "gro {gro} zc {zc}");
        assert!(got == want, "gro {gro} zc {zc}: same datagrams, same order, same bytes");
        assert!(rx.uring_stats().recv_arms > 1, "{:?}", rx.uring_stats());
        assert_eq!((rx.stats().rx_dropped, tx.stats().tx_errors), (0, 0));
    }
}

#[test]
fn send_zc_parks_buffers_until_their_notification() {
    let mut rx = open!(v4().with_gro(false));
    let mut tx = open!(v4().with_send_zc(true).with_tx_batch(1).unwrap());
    crate::require!(tx.send_zc(), "SEND_ZC unavailable: {:?}", tx.capabilities().missing);
    let dst = rx.local_addr();
    // Trains of 100 segments with one message per round: every train goes out in two rounds,
    // and its unsent tail is moved only after the first part's notification.
    let outs: Vec<Out> =
        (0..4).map(|i| Out::new(dst, pattern(50 + i, 100 * 500)).gso(500)).collect();
    send_all(&mut tx, &outs);
    assert_eq!(flatten(&recv_n(&mut rx, 400, T)), expected(&outs));
    eprintln!("zero-copy partial trains: {:?}", tx.uring_stats());

    // White box: pretend the kernel still reads the buffer on top of the pool's free list
    // (the pool lends last in, first out), so alloc_tx must park it and lend another.
    let c = tx.alloc_tx().unwrap();
    let top = c.data().as_ptr() as usize;
    tx.udp.tx_pool.put(c.buf);
    let fake = TAG_SEND | 0xdead << 16;
    tx.core.zc.round = vec![top];
    tx.core.zc.expect(fake, 0);
    let other = tx.alloc_tx().unwrap();
    assert_ne!(other.data().as_ptr() as usize, top, "a busy buffer is not lent");
    assert_eq!(tx.uring_stats().zc_parked, 1);
    tx.udp.tx_pool.put(other.buf);
    tx.core.zc.notified(fake);
    let again = tx.alloc_tx().unwrap();
    assert_eq!(again.data().as_ptr() as usize, top, "lent again once notified");
}
